//! A name's history across its loads, as a person reads it: every version after a reload with
//! a changed body, two loads of one name side by side, and the runs a program made before the
//! first pass that saw it. Real daemon, real programs run a known number of times.

use std::os::fd::AsFd;
use std::time::{Duration, SystemTime};

use ebpfstat_tests::bus::{ApiDaemon, history_runs};
use ebpfstat_tests::terminal::on_pty;
use ebpfstat_tests::*;
use serde_json::Value;

fn history_json(d: &ApiDaemon, program: &str, step: &str) -> Value {
    d.ctl_json(&["history", program, "--since", "2m", "--step", step])
}

fn ctl_text(d: &ApiDaemon, args: &[&str]) -> String {
    let socket = d.socket.to_str().expect("utf-8");
    let mut all = vec!["--socket", socket];
    all.extend_from_slice(args);
    let (text, code) = on_pty(&bin("ebpfstatctl"), &all, 80);
    assert_eq!(code, 0, "ebpfstatctl {args:?}:\n{text}");
    text
}

fn series(h: &Value) -> &Vec<Value> {
    h["info"]["series"].as_array().expect("info.series")
}

#[test]
fn a_name_shows_every_version_after_a_reload() {
    require_bpf!();
    let name = format!("vr{}", tag());
    let d = ApiDaemon::start(None, "200ms");
    // Version 1 runs 30 times, is unloaded, and version 2 (another body) runs 50 times; each
    // runs after a pass saw it, so only the reload is at stake here.
    let v1 = costly_filter(&name, 1);
    let v1_id = prog_id(v1.as_fd());
    d.wait_passes(2);
    run_exactly(v1.as_fd(), 30);
    d.wait_passes(2);
    drop(v1);
    d.wait_passes(3);
    let v2 = costly_filter(&name, 5);
    let v2_id = prog_id(v2.as_fd());
    d.wait_passes(2);
    run_exactly(v2.as_fd(), 50);
    d.wait_passes(3);

    let h = history_json(&d, &name, "1s");
    let loads = series(&h);
    assert_eq!(loads.len(), 2, "both loads: {}", h["info"]);
    let ids: Vec<u64> = loads.iter().filter_map(|s| s["id"].as_u64()).collect();
    assert_eq!(ids, [u64::from(v1_id), u64::from(v2_id)], "oldest first");
    assert_ne!(loads[0]["tag"], loads[1]["tag"], "two versions");
    assert_eq!(history_runs(&h), 80, "both versions' runs: {h}");
    // Each load's own history holds its own runs exactly.
    for (s, runs) in loads.iter().zip([30, 50]) {
        let one = history_json(&d, &format!("series:{}", s["series_id"]), "1s");
        assert_eq!(history_runs(&one), runs, "{s}");
    }
    // Cumulative over the loads: the name ran 80 times in all by the end.
    let last = h["points"]
        .as_array()
        .and_then(|p| p.last())
        .expect("points");
    assert_eq!(last["cum_run_cnt"], 80, "{last}");

    let text = ctl_text(&d, &["history", &name, "--since", "2m", "--step", "1s"]);
    assert!(text.contains("2 loads, 2 versions"), "{text}");
    assert!(text.contains("v1 tag") && text.contains("v2 tag"), "{text}");
    let rows = |v: &str| {
        text.lines()
            .filter(|l| l.contains(&format!(" {v} ")))
            .count()
    };
    assert!(
        rows("v1") > 0 && rows("v2") > 0,
        "steps marked by version:\n{text}"
    );
}

#[test]
fn two_loads_side_by_side_are_observed_once() {
    require_bpf!();
    let name = format!("vs{}", tag());
    let d = ApiDaemon::start(None, "200ms");
    let a = costly_filter(&name, 1);
    let b = costly_filter(&name, 1);
    d.wait_passes(2);
    // Both run through several whole 2 s steps.
    for _ in 0..30 {
        run_exactly(a.as_fd(), 1000);
        run_exactly(b.as_fd(), 500);
        std::thread::sleep(Duration::from_millis(200));
    }
    d.wait_passes(3);
    let h = history_json(&d, &name, "2s");
    assert_eq!(series(&h).len(), 2, "{}", h["info"]);
    assert_eq!(history_runs(&h), 45_000, "every run of both");
    let step_ns = h["info"]["step_ns"].as_u64().expect("step");
    let interval_ns = 200_000_000;
    let mut whole = 0;
    for p in h["points"].as_array().expect("points") {
        let span = p["span_ns"].as_u64().expect("span");
        let samples = p["samples"].as_u64().expect("samples");
        // Observed once: never (much) more than the step, one sample a pass.
        assert!(span <= step_ns + interval_ns, "summed span: {p}");
        assert!(samples <= step_ns / interval_ns + 1, "samples of both: {p}");
        if samples > 0 {
            assert_eq!(p["rates"]["coverage"], 1.0, "{p}");
            // CPU % is the loads' run time summed over the time observed.
            let rt = p["run_time_ns"].as_f64().expect("run time");
            let cpu = p["rates"]["cpu_pct"].as_f64().expect("cpu");
            let want = rt * 100.0 / span as f64;
            assert!((cpu - want).abs() <= want * 1e-9, "{p}");
        }
        if span + interval_ns / 2 >= step_ns && p["run_cnt"].as_u64() > Some(0) {
            whole += 1;
        }
    }
    assert!(whole >= 2, "whole steps with runs: {h}");
    let text = ctl_text(&d, &["history", &name, "--since", "2m", "--step", "2s"]);
    assert!(
        !text.contains('*'),
        "no late mark without a late pass:\n{text}"
    );
    assert!(text.contains("v1×2"), "two loads of one version:\n{text}");
}

#[test]
fn runs_before_the_first_pass_are_the_first_interval() {
    require_bpf!();
    let name = format!("vf{}", tag());
    // Passes 3 s apart: the program is loaded and run 11 times between two of them.
    let d = ApiDaemon::start(None, "3s");
    d.wait_passes(1);
    let before_load = SystemTime::now();
    let p = costly_filter(&name, 2);
    run_exactly(p.as_fd(), 11);
    d.wait_passes(2);
    let cumulative = d.ctl_json(&["top", "--cumulative", "-n", "100"]);
    let row = bus::by_name(&cumulative, &name);
    assert_eq!(row["run_cnt"], 11, "{row}");
    let h = history_json(&d, &name, "3s");
    assert_eq!(history_runs(&h), 11, "the runs before the first pass: {h}");
    let s = &series(&h)[0];
    assert_eq!(s["runs_before_first_pass"], 0, "{s}");
    // Its first interval starts at its load, before the pass that first saw it.
    let first_seen = s["first_seen_ns"].as_i64().expect("first seen");
    let loaded = before_load
        .duration_since(SystemTime::UNIX_EPOCH)
        .expect("after 1970")
        .as_nanos();
    assert!(
        i128::from(first_seen) - i128::try_from(loaded).expect("ns") < 1_000_000_000,
        "first seen at its load: {s}"
    );
}

#[test]
fn a_load_older_than_the_daemon_says_its_first_step_is_partial() {
    require_bpf!();
    let name = format!("vp{}", tag());
    // Stats held by this test, not the daemon: the daemon cannot know they were on.
    let _stats = ebpfstatd::sampler::stats::StatsSwitch::acquire(std::path::Path::new("/proc"));
    let p = costly_filter(&name, 3);
    run_exactly(p.as_fd(), 7);
    let d = ApiDaemon::start(None, "200ms");
    run_exactly(p.as_fd(), 4);
    d.wait_passes(3);
    let h = history_json(&d, &name, "1s");
    assert_eq!(history_runs(&h), 4, "only what passes saw: {h}");
    assert_eq!(series(&h)[0]["runs_before_first_pass"], 7, "{}", h["info"]);
    let text = ctl_text(&d, &["history", &name, "--since", "2m", "--step", "1s"]);
    assert!(
        text.contains("first step is partial: it had run 7 times before the first pass"),
        "{text}"
    );
}
