//! Time the daemon could not see — it was stopped, or it had no descriptors left to read the
//! programs with — is counted, and history shows it as one long interval closed by the next
//! pass that saw: never as zeros, never as a burst.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use ebpfstat_tests::bus::ApiDaemon;
use ebpfstat_tests::*;
use serde_json::Value;

/// Runs program 0 of `fleet` five times a second on another thread while `during` runs;
/// returns how many runs it made.
fn driven_at_5_per_sec(fleet: &Fleet, during: impl FnOnce()) -> u64 {
    let stop = AtomicBool::new(false);
    let runs = AtomicU64::new(0);
    std::thread::scope(|s| {
        s.spawn(|| {
            while !stop.load(Ordering::Relaxed) {
                fleet.drive(0, 1);
                runs.fetch_add(1, Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(200));
            }
        });
        during();
        stop.store(true, Ordering::Relaxed);
    });
    runs.load(Ordering::Relaxed)
}

/// History of program `id` over the last `since`, in 1 s steps.
fn points(d: &ApiDaemon, id: u32, since: &str) -> Vec<Value> {
    let h = d.ctl_json(&["history", &id.to_string(), "--since", since, "--step", "1s"]);
    h["points"].as_array().expect("points").clone()
}

fn u(v: &Value, k: &str) -> u64 {
    v[k].as_u64().unwrap_or_else(|| panic!("{k} in {v}"))
}

/// A point's samples: `null` (none) for time no pass saw.
fn samples(p: &Value) -> u64 {
    p["samples"].as_u64().unwrap_or(0)
}

/// A point's runs, none where it has no samples.
fn run_cnt(p: &Value) -> u64 {
    p["run_cnt"].as_u64().unwrap_or(0)
}

/// The point whose samples cover a long time, and checks that hold of every point: no
/// burst (the true rate is 5/s) and no zeros for unseen time.
fn the_long_point(points: &[Value], at_least: Duration) -> &Value {
    for p in points {
        if samples(p) == 0 {
            // Unseen time has no value, not zeros.
            for k in ["span_ns", "run_cnt", "peak_runs_per_sec"] {
                assert!(p[k].is_null(), "{k} of a step no pass saw: {p}");
            }
            continue;
        }
        let peak = u(p, "peak_runs_per_sec");
        let rate = p["rates"]["runs_per_sec"].as_f64().expect("rate");
        assert!(peak <= 7 && rate <= 7.0, "a burst at {p}");
    }
    let at_least = u64::try_from(at_least.as_nanos()).expect("fits");
    let long: Vec<&Value> = points
        .iter()
        .filter(|p| p["span_ns"].as_u64().is_some_and(|s| s >= at_least))
        .collect();
    assert_eq!(long.len(), 1, "one step holds the gap: {long:?}");
    long[0]
}

#[test]
fn a_stall_is_one_late_pass_whose_interval_is_the_stall() {
    require_bpf!();
    let fleet = Fleet::load(&format!("st{}_", tag()), 1);
    let d = ApiDaemon::start(None, "1s");
    let late = |d: &ApiDaemon| u(&d.ctl_json(&["status"]), "late_passes");
    let missed = |d: &ApiDaemon| u(&d.ctl_json(&["status"]), "missed_passes");
    let (mut late_before, mut missed_before) = (0, 0);
    let mut stopped = Duration::ZERO;
    let runs = driven_at_5_per_sec(&fleet, || {
        std::thread::sleep(Duration::from_secs(3));
        late_before = late(&d);
        missed_before = missed(&d);
        d.signal(libc::SIGSTOP);
        let at = std::time::Instant::now();
        std::thread::sleep(Duration::from_secs(20));
        d.signal(libc::SIGCONT);
        // As long as it really was (a busy machine stretches the sleep).
        stopped = at.elapsed();
        std::thread::sleep(Duration::from_secs(3));
    });
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(
        late(&d),
        late_before + 1,
        "the pass after the stall is late"
    );
    // The 19 or so slots the stall ran past are counted (a busy machine may stretch the
    // sleeps, never shorten them).
    let skipped = missed(&d) - missed_before;
    assert!(
        (18..=30).contains(&skipped),
        "{skipped} slots missed in a 20 s stall"
    );

    let points = points(&d, fleet.programs[0].id, "60s");
    let p = the_long_point(&points, Duration::from_secs(19));
    let span = u(p, "span_ns");
    // The stop, the part of an interval before it, and the first pass after it.
    let stopped = u64::try_from(stopped.as_nanos()).expect("fits");
    assert!(
        (stopped..stopped + 2_500_000_000).contains(&span),
        "the stall ({stopped} ns) is the interval: {p}"
    );
    let rate = p["rates"]["runs_per_sec"].as_f64().expect("rate");
    let expected = u(p, "run_cnt") as f64 * 1e9 / span as f64;
    assert!((rate - expected).abs() < 1e-6, "{p}");
    assert!((3.0..=5.5).contains(&rate), "{p}");
    let unseen = points.iter().filter(|p| samples(p) == 0).count();
    assert!(unseen >= 18, "{unseen} steps without samples in the stall");
    let stored: u64 = points.iter().map(run_cnt).sum();
    assert_eq!(stored, runs, "every run is in the history");
    assert!(d.stop());
}

/// `prlimit --pid <pid> --nofile=<soft>:` (util-linux, Essential on Debian).
fn set_soft_nofile(pid: libc::pid_t, soft: u64) {
    ok(std::process::Command::new("prlimit")
        .arg("--pid")
        .arg(pid.to_string())
        .arg(format!("--nofile={soft}:")));
}

fn soft_nofile(pid: libc::pid_t) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/limits"))
        .expect("limits")
        .lines()
        .find_map(|l| l.strip_prefix("Max open files"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .expect("a soft limit")
}

#[test]
fn passes_without_descriptors_fail_loudly_and_leave_no_zeros() {
    require_bpf!();
    let fleet = Fleet::load(&format!("fd{}_", tag()), 3);
    let d = ApiDaemon::start(None, "500ms");
    let pid = d.pid();
    let soft = soft_nofile(pid);
    let runs = driven_at_5_per_sec(&fleet, || {
        std::thread::sleep(Duration::from_secs(2));
        // The limit at the lowest free descriptor: every program's fd fails with EMFILE.
        let open: std::collections::HashSet<u64> = std::fs::read_dir(format!("/proc/{pid}/fd"))
            .expect("fds")
            .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
            .collect();
        let lowest_free = (0..).find(|n| !open.contains(n)).expect("a free number");
        set_soft_nofile(pid, lowest_free);
        std::thread::sleep(Duration::from_secs(6));
        set_soft_nofile(pid, soft);
        std::thread::sleep(Duration::from_secs(3));
    });
    std::thread::sleep(Duration::from_millis(1000));

    let st = d.ctl_json(&["status"]);
    let failed = u(&st, "failed_passes");
    assert!((9..=14).contains(&failed), "{failed} failed passes: {st}");
    assert!(
        st["last_failure"]
            .as_str()
            .is_some_and(|w| w.contains("Too many open files")),
        "{st}"
    );
    assert!(u(&st, "last_failed_pass_ns") > 0, "{st}");
    assert!(st["last_error"].is_null(), "recovered: {st}");

    let points = points(&d, fleet.programs[0].id, "30s");
    let p = the_long_point(&points, Duration::from_secs(5));
    assert!(u(p, "span_ns") < 8_000_000_000, "{p}");
    let stored: u64 = points.iter().map(run_cnt).sum();
    assert_eq!(stored, runs, "every run is in the history");

    let (clean, log) = d.stop_logged();
    assert!(clean, "{log}");
    let said = log.matches("failed and is not stored").count();
    assert_eq!(said, 1, "said once, not twice a second:\n{log}");
    assert!(log.contains("read every program again after"), "{log}");
}
