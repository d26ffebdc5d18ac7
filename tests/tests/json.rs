//! `--json` as an agent reads it (docs/json.md): one row shape for a program in `top`,
//! `top --cumulative` and `list` (and `ebpfstatd sample`), and `null` wherever there is no
//! value, never a sentinel (-1, 0, ""); against a real daemon with real programs.

use std::collections::BTreeSet;
use std::os::fd::AsFd;
use std::process::Command;
use std::time::Duration;

use ebpfstat_tests::bus::{self, ApiDaemon};
use ebpfstat_tests::*;
use serde_json::Value;

fn sleep_ms(ms: u64) {
    std::thread::sleep(Duration::from_millis(ms));
}

/// The keys of an object, and of the objects in it (`rates.cpu_pct`), when not null.
fn keys(v: &Value) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for (k, inner) in v.as_object().expect("an object") {
        out.insert(k.clone());
        if let Some(o) = inner.as_object() {
            out.extend(o.keys().map(|i| format!("{k}.{i}")));
        }
    }
    out
}

/// Every place in `v` a sentinel stands for "no value": a -1, or an empty text.
fn sentinels(v: &Value, at: &str, found: &mut Vec<String>) {
    match v {
        Value::Number(n) if n.as_f64() == Some(-1.0) => found.push(format!("{at}: -1")),
        Value::String(s) if s.is_empty() => found.push(format!("{at}: \"\"")),
        Value::Array(a) => {
            for (i, x) in a.iter().enumerate() {
                sentinels(x, &format!("{at}[{i}]"), found);
            }
        }
        Value::Object(o) => {
            for (k, x) in o {
                sentinels(x, &format!("{at}.{k}"), found);
            }
        }
        _ => {}
    }
}

fn assert_no_sentinels(what: &str, v: &Value) {
    let mut found = Vec::new();
    sentinels(v, what, &mut found);
    assert!(found.is_empty(), "sentinels for no value: {found:?}");
}

/// A daemon at 200 ms that has seen `fleet[0]` run 10 times, `fleet[1]` never, and
/// `fleet[2]` run 5 times and then be unloaded; the name of the unloaded one.
fn three_kinds(fleet: &mut Fleet) -> (ApiDaemon, String) {
    let d = ApiDaemon::start(None, "200ms");
    sleep_ms(500);
    fleet.drive(0, 10);
    fleet.drive(2, 5);
    sleep_ms(800);
    let gone = fleet.programs.pop().expect("a third program");
    let (name, id) = (gone.name.clone(), gone.id);
    drop(gone);
    wait_until_freed(&[id]);
    sleep_ms(800);
    (d, name)
}

#[test]
fn top_cumulative_and_list_rows_have_one_shape_and_null_for_no_value() {
    require_bpf!();
    let mut fleet = Fleet::load(&format!("js{}_", tag()), 3);
    let (d, gone) = three_kinds(&mut fleet);
    let (ran, idle) = (&fleet.programs[0].name, &fleet.programs[1].name);
    let top = d.ctl_json(&["top", "--window", "1m", "-n", "10000"]);
    let cumulative = d.ctl_json(&["top", "--cumulative", "-n", "10000"]);
    let list = d.ctl_json(&["list"]);
    let list_rows = &list["programs"];

    // The same keys in each view, nested ones too, for a live and an unloaded program.
    same_keys(
        bus::by_name(&top, ran),
        &[
            ("top, unloaded", bus::by_name(&top, &gone)),
            ("top --cumulative", bus::by_name(&cumulative, ran)),
            ("list", bus::by_name(list_rows, ran)),
        ],
    );
    for (view, rows) in [
        ("top", &top),
        ("top --cumulative", &cumulative),
        ("list", &list),
    ] {
        assert_no_sentinels(view, rows);
    }

    // What each view says of a program that ran 10 times.
    let pid = std::process::id();
    for (view, row, over) in [
        ("top", bus::by_name(&top, ran), "window"),
        (
            "top --cumulative",
            bus::by_name(&cumulative, ran),
            "since_load",
        ),
        ("list", bus::by_name(list_rows, ran), "interval"),
    ] {
        assert_eq!(row["over"], over, "{view}: {row}");
        assert_eq!(row["alive"], true, "{view}");
        assert_eq!(
            row["owners"][0]["pid"], pid,
            "{view}: holders in every view: {row}"
        );
        assert_eq!(row["since_load"]["run_cnt"], 10, "{view}: {row}");
        assert!(row["load_time_ns"].as_i64() > Some(0), "{view}: {row}");
        assert!(row["map_memory_bytes"].as_u64() > Some(0), "{view}: {row}");
    }
    for (view, row) in [
        ("top", bus::by_name(&top, ran)),
        ("top --cumulative", bus::by_name(&cumulative, ran)),
    ] {
        assert_eq!(row["run_cnt"], 10, "{view}: {row}");
        assert!(row["span_ns"].as_u64() > Some(0), "{view}: {row}");
        assert!(
            row["rates"]["cpu_pct"].as_f64() > Some(0.0),
            "{view}: {row}"
        );
        assert!(row["avg_ns_per_run"].as_f64() > Some(0.0), "{view}: {row}");
    }
    // Since load the coverage is not known: null, not 1.
    assert!(bus::by_name(&cumulative, ran)["rates"]["coverage"].is_null());
    assert!(bus::by_name(&top, ran)["rates"]["coverage"].as_f64() > Some(0.0));

    // Never ran: no average, in any view.
    for (view, rows) in [
        ("top", &top),
        ("top --cumulative", &cumulative),
        ("list", list_rows),
    ] {
        let row = bus::by_name(rows, idle);
        assert!(row["avg_ns_per_run"].is_null(), "{view}: {row}");
        assert!(
            row["since_load"]["avg_ns_per_run"].is_null(),
            "{view}: {row}"
        );
    }
    unloaded(bus::by_name(&top, &gone));
    assert!(bus::find_by_name(list_rows, &gone).is_none());
    assert!(d.stop());
}

/// Each of `rows` has the keys of `shape`.
fn same_keys(shape: &Value, rows: &[(&str, &Value)]) {
    let shape = keys(shape);
    for (view, row) in rows {
        let mut other = keys(row);
        // Only objects that are there have their keys listed: `since_load` of an unloaded
        // program is null.
        if row["since_load"].is_null() {
            other.extend(
                shape
                    .iter()
                    .filter(|k| k.starts_with("since_load."))
                    .cloned(),
            );
        }
        assert_eq!(other, shape, "{view}: {row}");
    }
}

/// An unloaded program's row over a window it ran 5 times in: nothing of now.
fn unloaded(row: &Value) {
    assert_eq!(row["alive"], false, "{row}");
    assert_eq!(row["run_cnt"], 5, "{row}");
    for key in ["since_load", "load_time_ns", "map_memory_bytes"] {
        assert!(row[key].is_null(), "{key}: {row}");
    }
    assert_eq!(row["owners"], serde_json::json!([]), "{row}");
}

#[test]
fn show_says_no_value_with_null() {
    require_bpf!();
    let fleet = Fleet::load(&format!("jw{}_", tag()), 1);
    let d = ApiDaemon::start(None, "200ms");
    sleep_ms(800);
    let shown = d.ctl_json(&["show", &fleet.programs[0].id.to_string()]);
    assert_no_sentinels("show", &shown);
    // Loaded without BTF, never run.
    assert!(shown["btf_id"].is_null(), "{shown}");
    let program = &shown["program"];
    assert!(program["avg_ns_per_run"].is_null(), "{program}");
    assert_eq!(program["run_cnt"], 0, "{program}");
    assert_eq!(program["over"], "interval", "{program}");
    let list = d.ctl_json(&["list"]);
    assert_eq!(
        keys(program),
        keys(bus::by_name(&list["programs"], &fleet.programs[0].name)),
        "show's program is a list row"
    );
    assert!(d.stop());
}

#[test]
fn a_history_step_without_samples_has_no_values() {
    require_bpf!();
    let fleet = Fleet::load(&format!("jh{}_", tag()), 1);
    let mut d = ApiDaemon::start(None, "200ms");
    sleep_ms(600);
    fleet.drive(0, 4);
    sleep_ms(800);
    // Three seconds nobody sampled, then more runs.
    d.stop_in_place();
    sleep_ms(3000);
    d.start_again("200ms", &[]);
    fleet.drive(0, 3);
    sleep_ms(800);
    let id = fleet.programs[0].id.to_string();
    let h = d.ctl_json(&["history", &id, "--since", "1m", "--step", "1s"]);
    assert_no_sentinels("history", &h);
    let points = h["points"].as_array().expect("points");
    let empty: Vec<&Value> = points.iter().filter(|p| p["samples"] == 0).collect();
    assert!(!empty.is_empty(), "steps without samples in the gap: {h}");
    for p in &empty {
        for key in ["span_ns", "run_cnt", "run_time_ns", "avg_ns_per_run"] {
            assert!(p[key].is_null(), "{key}: {p}");
        }
        for key in ["cpu_pct", "coverage", "runs_per_sec", "est_cpu_pct"] {
            assert!(p["rates"][key].is_null(), "rates.{key}: {p}");
        }
    }
    let seen = points.iter().find(|p| p["samples"].as_u64() > Some(0));
    assert!(
        seen.is_some_and(|p| p["rates"]["coverage"].as_f64() > Some(0.0)),
        "{h}"
    );
    // Complete: nowhere to continue.
    assert!(h["info"]["next_from_ns"].is_null(), "{}", h["info"]);
    assert!(d.stop());
}

/// One pass of `ebpfstatd sample --json` after a first (so programs have an interval).
fn sampled() -> Value {
    let out = Command::new(bin("ebpfstatd"))
        .args(["sample", "--json", "--count", "2", "--interval", "300ms"])
        .output()
        .expect("run ebpfstatd sample");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).expect("utf-8");
    let last = text.lines().last().expect("two passes");
    serde_json::from_str(last).expect("a JSON pass")
}

#[test]
fn the_daemon_sample_uses_the_client_names() {
    require_bpf!();
    let fleet = Fleet::load(&format!("jd{}_", tag()), 1);
    let name = &fleet.programs[0].name;
    let pass = sampled();
    let d = ApiDaemon::start(None, "200ms");
    sleep_ms(800);
    let list = d.ctl_json(&["list"]);
    let row = bus::by_name(&list["programs"], name);
    let program = bus::by_name(&pass["programs"], name);

    // Every key of the client's row, with the same meaning; the sampler's own beside them.
    let (client, daemon) = (keys(row), keys(program));
    let missing: Vec<&String> = client.difference(&daemon).collect();
    assert!(
        missing.is_empty(),
        "missing from sample: {missing:?}\n{program}"
    );
    let own: BTreeSet<&str> = daemon.difference(&client).map(String::as_str).collect();
    let documented = [
        "load_boottime_ns",
        "created_by_uid",
        "verified_insns",
        "jited_size",
        "xlated_size",
        "btf_id",
        "prog_memlock_bytes",
        "recursion_misses",
        "probe_misses",
        "cpu_pct_all_cores",
        "map_ids",
        "pins",
        "attach",
        "note_maps",
    ];
    assert_eq!(own, documented.into_iter().collect(), "{program}");
    for key in ["id", "name", "full_name", "prog_type", "tag", "over"] {
        assert_eq!(program[key], row[key], "{key}");
    }
    // The load time on the wall clock is read from the boot clock's by each process.
    let load = |r: &Value| r["load_time_ns"].as_i64().expect("a load time");
    assert!(
        (load(program) - load(row)).abs() < 1_000_000,
        "{program}\n{row}"
    );
    assert!(
        program["series_id"].is_null(),
        "sample stores nothing: {program}"
    );
    // The pass says what `list` says, in the same names.
    let listed: BTreeSet<&String> = list.as_object().expect("list").keys().collect();
    let passed: BTreeSet<&String> = pass.as_object().expect("pass").keys().collect();
    let missing: Vec<&&String> = listed.difference(&passed).collect();
    assert!(missing.is_empty(), "missing from the pass: {missing:?}");
    assert!(d.stop());
}

/// Each of `keys` of `v` is `null` (its wire value says there is none).
fn nulls(what: &str, v: &Value, keys: &[&str]) {
    let set: Vec<&&str> = keys.iter().filter(|k| !v[**k].is_null()).collect();
    assert!(set.is_empty(), "{what}: {set:?} should be null: {v:#}");
}

/// `maps`, `compare`, `events`, `alerts` and `status`, as an agent reads them: no -1, no
/// empty text, and null where the wire's 0 or "" says none (docs/json.md): a version that
/// never ran and is not judged yet, an event that is no comparison (a run killed before), a
/// host-wide alert, a daemon that never failed a pass, wrote no textfile, serves no
/// `/metrics`.
#[test]
fn the_other_views_say_no_value_with_null() {
    require_bpf!();
    let dir = bus::open_tempdir();
    let db = dir.path().join("history.db");
    let name = format!("jsn{}", tag());
    // Host-wide: the programs named `name`, together.
    let rule = format!(
        "[[alert]]\nname = \"host\"\nmetric = \"total_cpu_pct\"\nthreshold = 0.05\n\
         clear = 0.02\nprogram = \"{name}\"\n"
    );
    let cfg = dir.path().join("ebpfstatd.toml");
    std::fs::write(&cfg, rule).expect("write config");
    let cfg = cfg.display().to_string();
    let first = ApiDaemon::start_on_with(None, "200ms", &db, &["--config", &cfg]);
    let st = first.ctl_json(&["status"]);
    nulls("a new database", &st, &["previous_run_last_written_ns"]);
    // A version that never runs, seen by passes and stored by a clean stop; then a run that
    // is killed, and another version.
    let old = costly_filter(&name, 10);
    sleep_ms(800);
    drop(old);
    assert!(first.stop());
    ApiDaemon::start_on_with(None, "200ms", &db, &["--config", &cfg]).kill();
    let d = ApiDaemon::start_on_with(None, "200ms", &db, &["--config", &cfg]);
    let new = costly_filter(&name, 600);
    let load = PacedLoad::start(new.as_fd(), 20);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while d.ctl_json(&["status"])["alerts_active"].as_u64() != Some(1) {
        assert!(std::time::Instant::now() < deadline, "the host rule raised");
        sleep_ms(100);
    }

    let maps = d.ctl_json(&["maps"]);
    assert_no_sentinels("maps", &maps);
    for m in maps.as_array().expect("an array") {
        assert_ne!(m["memlock_bytes"], 0, "{m}");
    }

    let c = d.ctl_json(&["compare", &name, "--min-runs", "100000000"]);
    assert_no_sentinels("compare", &c);
    assert_eq!(c["judged"], false, "{c:#}");
    nulls(
        "not judged",
        &c,
        &["ratio", "ratio_low", "ratio_high", "significant"],
    );
    assert_eq!(c["before"]["steps"], 0, "{c:#}");
    nulls("never ran", &c["before"], &["median_ns_per_run"]);
    assert!(
        c["after"]["median_ns_per_run"].as_f64() > Some(0.0),
        "{c:#}"
    );

    no_event_values(&d);

    let alerts = d.ctl_json(&["alerts"]);
    assert_no_sentinels("alerts", &alerts);
    let host = &alerts["active"][0];
    assert_eq!(host["rule"], "host", "{alerts:#}");
    nulls("host-wide", host, &["program_id", "program", "prog_type"]);
    drop(load);

    none_happened(&d);
    assert!(d.stop());
}

/// The run killed before is an event that is no comparison: none of a comparison's values.
fn no_event_values(d: &ApiDaemon) {
    let events = d.ctl_json(&["events"]);
    assert_no_sentinels("events", &events);
    let killed: Vec<&Value> = events
        .as_array()
        .expect("an array")
        .iter()
        .filter(|e| e["kind"] == "unclean_stop")
        .collect();
    assert_eq!(killed.len(), 1, "{events:#}");
    let fields = [
        "program",
        "prog_type",
        "tag",
        "before_tag",
        "judged",
        "significant",
        "ratio",
        "ratio_low",
        "ratio_high",
    ];
    nulls("not a comparison", killed[0], &fields);
}

/// A daemon that never failed a pass, wrote no textfile, serves no `/metrics`, has no 1h tier
/// yet, and was started after a killed run.
fn none_happened(d: &ApiDaemon) {
    let st = d.ctl_json(&["status"]);
    assert_no_sentinels("status", &st);
    nulls(
        "never happened",
        &st,
        &[
            "last_failed_pass_ns",
            "last_failure",
            "textfile_written_ns",
            "textfile_error",
            "metrics_listen",
            "metrics_error",
            "last_error",
            "tier_1h_oldest_ns",
            "tier_1h_newest_ns",
        ],
    );
    assert_eq!(st["previous_run_unclean"], true, "{st:#}");
    assert!(
        st["previous_run_last_written_ns"].as_i64() > Some(0),
        "{st:#}"
    );
    assert!(st["tier_raw_oldest_ns"].as_i64() > Some(0), "{st:#}");
    assert_eq!(st["failed_passes"], 0, "a counted zero stays: {st:#}");
}
