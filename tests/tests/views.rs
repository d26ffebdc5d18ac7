//! `ebpfstatctl` as a person sees it: on a pseudo-terminal, with real programs whose run
//! counts are known, against a real daemon.

use std::io::{BufRead, BufReader};
use std::os::fd::AsFd;
use std::process::{Command, Stdio};
use std::time::Duration;

use ebpfstat_tests::bus::{self, ApiDaemon};
use ebpfstat_tests::terminal::{assert_aligned, on_pty, table_lines, visible};
use ebpfstat_tests::*;

/// A daemon at 200 ms that has seen `fleet` run.
fn running(fleet: &Fleet) -> ApiDaemon {
    let d = ApiDaemon::start(None, "200ms");
    for i in 0..fleet.programs.len() {
        fleet.drive(i, 10 * (i as u64 + 1));
    }
    std::thread::sleep(Duration::from_millis(1200));
    d
}

fn ctl_on_pty(d: &ApiDaemon, args: &[&str]) -> String {
    let socket = d.socket.to_str().expect("utf-8");
    let mut all = vec!["--socket", socket];
    // On a terminal `top` is the interactive view (tested in tests/top.rs); these check the
    // table it prints once.
    for a in args {
        all.push(a);
        if *a == "top" {
            all.push("--once");
        }
    }
    let (text, code) = on_pty(&bin("ebpfstatctl"), &all, 120);
    assert_eq!(code, 0, "ebpfstatctl {args:?}:\n{text}");
    text
}

#[test]
fn tables_line_up_on_a_terminal() {
    require_bpf!();
    let fleet = Fleet::load(&format!("al{}_", tag()), 3);
    let d = running(&fleet);
    let id = fleet.programs[2].id.to_string();
    for (args, first, rows) in [
        (vec!["top"], "ID", 3),
        (vec!["top", "--cumulative"], "ID", 3),
        (vec!["list"], "ID", 3),
        (vec!["maps"], "ID", 3),
        (
            vec!["history", &id, "--since", "1m", "--step", "10s"],
            "TIME",
            1,
        ),
    ] {
        let raw = ctl_on_pty(&d, &args);
        assert!(
            raw.contains("\x1b[1m"),
            "{args:?}: a bold header on a terminal:\n{raw}"
        );
        assert_aligned(&visible(&raw), first, 120, rows);
    }
}

/// Each command, read by a reader that goes away after one line (`| head -1`), ends quietly.
#[test]
fn a_reader_that_goes_away_ends_each_command_quietly() {
    require_bpf!();
    let fleet = Fleet::load(&format!("rp{}_", tag()), 3);
    let d = running(&fleet);
    let id = fleet.programs[0].id.to_string();
    for args in [
        vec!["status"],
        vec!["top"],
        vec!["list"],
        vec!["maps"],
        vec!["show", &id],
        vec!["history", &id, "--since", "1m", "--step", "1s"],
        vec!["--json", "list"],
    ] {
        let mut child = Command::new(bin("ebpfstatctl"))
            .arg("--socket")
            .arg(&d.socket)
            .args(&args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn");
        let mut first = String::new();
        BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut first)
            .expect("a line");
        // The reader is dropped here: the pipe is closed.
        let out = child.wait_with_output().expect("wait");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!first.is_empty(), "{args:?}");
        assert!(out.status.success(), "{args:?}: {:?} {err}", out.status);
        assert!(err.is_empty(), "{args:?}: {err}");
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

#[test]
fn cumulative_views_are_since_load_in_every_field() {
    require_bpf!();
    let fleet = Fleet::load(&format!("cu{}_", tag()), 2);
    let d = running(&fleet);
    let rows = d.ctl_json(&["top", "--cumulative", "-n", "100"]);
    for (i, p) in fleet.programs.iter().enumerate() {
        let r = bus::by_name(&rows, &p.name);
        let (cnt, rt) = (
            r["run_cnt"].as_u64().expect("runs"),
            r["run_time_ns"].as_u64().expect("run time"),
        );
        assert_eq!(cnt, 10 * (i as u64 + 1), "{r}");
        let avg = r["avg_ns_per_run"].as_f64().expect("avg");
        assert!((avg - rt as f64 / cnt as f64).abs() < 1e-6, "{r}");
        assert!(r["rates"]["cpu_pct"].as_f64().expect("cpu") > 0.0, "{r}");
    }
    // Exact on request: the run time as the kernel counts it, to the nanosecond.
    let r = bus::by_name(&rows, &fleet.programs[1].name);
    let exact = format!("{}ns", r["run_time_ns"].as_u64().expect("run time"));
    let screen = visible(&ctl_on_pty(&d, &["--exact", "top", "--cumulative"]));
    assert!(screen.contains(&exact), "{exact} in:\n{screen}");
    // The cumulative chart climbs and stays; the per-step one is a spike.
    let id = fleet.programs[1].id.to_string();
    let chart = |cumulative: bool| {
        let mut args = vec![
            "history", &id, "--since", "30s", "--step", "1s", "--metric", "runs",
        ];
        if cumulative {
            args.push("--cumulative");
        }
        let screen = visible(&ctl_on_pty(&d, &args));
        screen
            .lines()
            .find(|l| l.starts_with("Runs"))
            .expect("a chart line")
            .to_owned()
    };
    let (steps, total) = (chart(false), chart(true));
    assert_ne!(steps, total, "the cumulative chart is the per-step chart");
    assert!(total.trim_end().ends_with('█'), "{total}");
}

#[test]
fn cpu_is_one_number_in_top_and_history() {
    require_bpf!();
    let fleet = Fleet::load(&format!("cp{}_", tag()), 1);
    let d = ApiDaemon::start(None, "200ms");
    for _ in 0..10 {
        fleet.drive(0, 50);
        std::thread::sleep(Duration::from_millis(150));
    }
    std::thread::sleep(Duration::from_millis(500));
    let id = fleet.programs[0].id;
    let rt = runtime();
    rt.block_on(async {
        let (_c, p) = bus::proxy_on_socket(&d.socket).await;
        let to = ebpfstat_numbers::WallNs::of(std::time::SystemTime::now()).ns() - 300_000_000;
        let from = to - 3_000_000_000;
        let opts = ebpfstat_dbus::Options::new;
        let (_, top) = p.top(from, to, "cpu", 100, opts()).await.expect("top");
        let row = top.iter().find(|r| r.id == id).expect("the program in top");
        let step = u64::try_from(to - from).expect("positive");
        let (_, points) = p
            .history(&id.to_string(), from, to, step, opts())
            .await
            .expect("history");
        assert_eq!(points.len(), 1);
        let pt = &points[0];
        assert_eq!((pt.run_cnt, pt.span_ns), (row.run_cnt, row.span_ns));
        assert!(pt.run_cnt > 0 && pt.span_ns > 0);
        for (h, t) in [
            (pt.rates.cpu_pct, row.rates.cpu_pct),
            (pt.rates.runs_per_sec, row.rates.runs_per_sec),
            (pt.rates.stats_overhead_pct, row.rates.stats_overhead_pct),
        ] {
            assert!((h - t).abs() <= 1e-9 * t.abs().max(1.0), "{h} against {t}");
        }
    });
}

#[test]
fn the_cost_line_agrees_with_the_rows_and_the_state_is_one() {
    require_bpf!();
    let fleet = Fleet::load(&format!("co{}_", tag()), 3);
    let d = running(&fleet);
    let rows = d.ctl_json(&["top", "-n", "10000"]);
    let rows = rows.as_array().expect("rows");
    let overhead: f64 = rows
        .iter()
        // A row without samples in the window has no rates (null).
        .filter_map(|r| r["rates"]["stats_overhead_ns"].as_f64())
        .sum();
    let observed = rows
        .iter()
        .filter_map(|r| r["span_ns"].as_u64())
        .max()
        .expect("a span");
    let expected = overhead / observed as f64 * 100.0;
    let screen = visible(&ctl_on_pty(&d, &["top"]));
    let line = screen
        .lines()
        .find(|l| l.starts_with("stats cost this host"))
        .expect("the cost line");
    // "stats cost this host 0.0012% of one core over the 2s observed (…)"
    let shown: f64 = line
        .split_whitespace()
        .nth(4)
        .and_then(|v| v.strip_suffix('%'))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("a percentage in {line:?}"));
    assert!(
        (shown - expected).abs() <= expected * 0.5,
        "{line:?} against {expected}% from the rows (uptime a few seconds, window 5 min)"
    );
    // One stats state, whichever view asks.
    let status = d.ctl_json(&["status"]);
    let list = d.ctl_json(&["list"]);
    assert_eq!(status["stats_state"], list["stats_state"]);
}

#[test]
fn an_unloaded_program_ends_at_the_first_pass_without_it() {
    require_bpf!();
    let mut fleet = Fleet::load(&format!("ul{}_", tag()), 2);
    // Nothing is written for an hour: what queries see comes from memory.
    let d = ApiDaemon::start_with(None, "200ms", &["--flush-interval", "1h"]);
    fleet.drive(1, 5);
    std::thread::sleep(Duration::from_millis(600));
    let gone = fleet.programs.pop().expect("a program");
    let (name, id) = (gone.name.clone(), gone.id);
    drop(gone);
    std::thread::sleep(Duration::from_secs(3));
    let rows = d.ctl_json(&["top", "--window", "2s", "-n", "10000"]);
    assert!(
        bus::find_by_name(&rows, &name).is_none(),
        "{name} unloaded 3 s ago is in a 2 s window: {rows}"
    );
    let h = d.ctl_json(&[
        "history",
        &id.to_string(),
        "--since",
        "10s",
        "--step",
        "200ms",
    ]);
    let points = h["points"].as_array().expect("points");
    let with_samples: Vec<i64> = points
        .iter()
        .filter(|p| p["samples"].as_u64() > Some(0))
        .map(|p| p["start_ns"].as_i64().expect("start"))
        .collect();
    let last = *with_samples.last().expect("samples before the unload");
    let now = ebpfstat_numbers::WallNs::of(std::time::SystemTime::now()).ns();
    assert!(
        now - last > 2_000_000_000,
        "samples until {} ms ago",
        (now - last) / 1_000_000
    );
    let runs = bus::history_runs(&h);
    assert_eq!(runs, 5);
}

#[test]
fn history_shows_only_when_the_program_was_seen() {
    require_bpf!();
    let fleet = Fleet::load(&format!("hc{}_", tag()), 1);
    let d = running(&fleet);
    let id = fleet.programs[0].id.to_string();
    let now = ebpfstat_numbers::WallNs::of(std::time::SystemTime::now()).ns();
    let seen = |h: &serde_json::Value| -> Vec<serde_json::Value> {
        h["points"].as_array().expect("points").clone()
    };
    // 200 days asked, a few seconds seen: a point or two, nothing before or after.
    let h = d.ctl_json(&["history", &id, "--since", "200d"]);
    let points = seen(&h);
    assert!((1..=2).contains(&points.len()), "{h}");
    let info = &h["info"];
    assert!(info["next_from_ns"].is_null(), "complete: {info}");
    let runs = bus::history_runs(&h);
    assert_eq!(runs, 10);
    // Into the future: the last point ends at the newest sample, not later.
    let h = d.ctl_json(&[
        "history",
        &id,
        "--since",
        "1m",
        "--until",
        "2099-01-01T00:00:00Z",
        "--step",
        "1s",
    ]);
    let last = seen(&h).last().cloned().expect("points");
    assert!(
        last["end_ns"].as_i64().expect("end") <= now + 2_000_000_000,
        "{last}"
    );
    // A step finer than passes are taken is raised to the interval, and said so.
    let h = d.ctl_json(&["history", &id, "--since", "1m", "--step", "1ns"]);
    assert_eq!(
        h["info"]["step_ns"].as_u64(),
        Some(200_000_000),
        "{}",
        h["info"]
    );
    let screen = visible(&ctl_on_pty(
        &d,
        &["history", &id, "--since", "1m", "--step", "1ns"],
    ));
    assert!(screen.contains("step raised from 1ns"), "{screen}");
    // Beyond the point limit: one page, and how to go on.
    let screen = visible(&ctl_on_pty(
        &d,
        &[
            "history",
            &id,
            "--since",
            "1m",
            "--step",
            "200ms",
            "--max-points",
            "3",
        ],
    ));
    assert!(
        screen.contains("3 points shown; the range goes on: continue with --since"),
        "{screen}"
    );
    let h = d.ctl_json(&[
        "history",
        &id,
        "--since",
        "1m",
        "--step",
        "200ms",
        "--max-points",
        "3",
    ]);
    assert_eq!(seen(&h).len(), 3);
    assert!(
        h["info"]["next_from_ns"].as_i64() > Some(0),
        "{}",
        h["info"]
    );
    // --since in the future is named as such.
    let out = d.ctl(&["history", &id, "--since", "2099-01-01T00:00:00Z"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--since is in the future"));
}

#[test]
#[expect(
    clippy::too_many_lines,
    reason = "one scenario read top to bottom: each step checks what the step before left"
)]
fn filters_holders_and_the_daemons_own_probe() {
    require_bpf!();
    let fleet = Fleet::load(&format!("fl{}_", tag()), 2);
    let bt = bpftrace::Bpftrace::start(
        "tracepoint:syscalls:sys_enter_getppid { @[comm] = count(); printf(\"x\\n\"); }",
        "sys_enter_getpp",
        1,
    );
    let d = running(&fleet);
    let pid = bt.pid().to_string();
    // Programs of bpftrace only, by its command name or its pid; in top and in list.
    for owner in ["bpftrace", pid.as_str()] {
        let listed = d.ctl_json(&["list", "--owner", owner]);
        let names: Vec<&str> = listed["programs"]
            .as_array()
            .expect("programs")
            .iter()
            .filter_map(|p| p["name"].as_str())
            .collect();
        assert_eq!(names, ["sys_enter_getpp"], "--owner {owner}");
    }
    let top = d.ctl_json(&["top", "--owner", "bpftrace"]);
    assert_eq!(top.as_array().map(Vec::len), Some(1), "{top}");
    let by_glob = d.ctl_json(&[
        "list",
        "--name",
        &format!("fl{}_*", tag()),
        "--type",
        "socket_filter",
    ]);
    assert_eq!(
        by_glob["programs"].as_array().map(Vec::len),
        Some(2),
        "{by_glob}"
    );
    // The daemon's probe is not a workload: never sampled, so in no view, not even with --all
    // (which still shows probes an older daemon stored). Other tests' daemons run their own
    // probes at the same time, so this daemon's is found by its holder: the daemon itself.
    let dpid = d.pid().to_string();
    assert!(
        holds_a_program(d.pid()),
        "the daemon holds its probe while it runs"
    );
    for args in [
        vec!["list", "--owner", dpid.as_str()],
        vec!["list", "--all", "--owner", dpid.as_str()],
    ] {
        let listed = d.ctl_json(&args);
        assert_eq!(
            listed["programs"],
            serde_json::json!([]),
            "{args:?}: {listed}"
        );
    }
    let top = d.ctl_json(&["top", "-n", "10000", "--owner", dpid.as_str()]);
    assert_eq!(top, serde_json::json!([]), "{top}");

    // Maps: holders named, programs counted, the perf-event caveat on its own row.
    let maps = d.ctl_json(&["maps", "--owner", "bpftrace"]);
    let rows = maps.as_array().expect("maps");
    let perf = rows
        .iter()
        .find(|m| m["map_type"] == "perf_event_array")
        .expect("bpftrace's printf map");
    assert_eq!(perf["notes"], serde_json::json!(["perf_event_array"]));
    assert!(rows.iter().all(|m| {
        m["owners"]
            .as_array()
            .is_some_and(|o| o.iter().any(|o| o["comm"] == "bpftrace"))
    }));
    let screen = visible(&ctl_on_pty(&d, &["maps", "--owner", "bpftrace"]));
    assert_aligned(&screen, "ID", 120, rows.len());
    let row = screen
        .lines()
        .find(|l| l.contains("perf_event_array"))
        .expect("the row");
    assert!(
        row.contains("B **") && row.contains(&format!("bpftrace[{pid}]")),
        "{screen}"
    );
    assert!(
        screen.contains("** perf_event_array maps count their fd slots"),
        "{screen}"
    );
    assert!(
        screen.contains(&format!("{} maps · ", rows.len())),
        "{screen}"
    );
    // Where bpftrace attached it (a perf event, not a link), as `bpftool perf show` says.
    let shown = d.ctl_json(&["show", "sys_enter_getpp"]);
    assert_eq!(
        shown["attach"],
        serde_json::json!([{"link_id": 0, "link_type": "perf_event", "attach_type": "tracepoint",
                             "target": "sys_enter_getppid", "missed": null}]),
        "{shown}"
    );
    // Holders in top, as `top ebpf` shows them.
    let screen = visible(&ctl_on_pty(&d, &["top", "--owner", "bpftrace"]));
    assert!(screen.contains(&format!("bpftrace[{pid}]")), "{screen}");
    drop(bt);
}

#[test]
fn ranking_by_average_needs_enough_runs() {
    require_bpf!();
    let fleet = Fleet::load(&format!("av{}_", tag()), 2);
    let d = ApiDaemon::start(None, "200ms");
    fleet.drive(0, 5);
    fleet.drive(1, 150);
    std::thread::sleep(Duration::from_millis(700));
    for cumulative in [false, true] {
        let mut args = vec!["top", "--sort", "avg", "-n", "10000"];
        if cumulative {
            args.push("--cumulative");
        }
        let rows = d.ctl_json(&args);
        let at = |name: &str| {
            rows.as_array()
                .expect("rows")
                .iter()
                .position(|r| r["name"] == name)
                .unwrap_or_else(|| panic!("{name} in {rows}"))
        };
        assert!(
            at(&fleet.programs[1].name) < at(&fleet.programs[0].name),
            "150 runs rank before 5: {rows}"
        );
        let screen = visible(&ctl_on_pty(&d, &args));
        assert!(
            screen.contains("of programs with at least 100 runs"),
            "{screen}"
        );
    }
}

#[test]
fn programs_are_found_by_any_unambiguous_start_of_their_name() {
    require_bpf!();
    let mut fleet = Fleet::load(&format!("nm{}_", tag()), 3);
    let d = running(&fleet);
    let (first, second) = (
        fleet.programs[0].name.clone(),
        fleet.programs[1].name.clone(),
    );
    let err = |args: &[&str]| {
        let out = d.ctl(args);
        assert!(!out.status.success(), "{args:?} succeeded");
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    // The start of several names asks for more; a unique start is enough.
    let common = &first[..first.len() - 1];
    let e = err(&["show", common]);
    assert!(
        e.contains("is the start of 3 program names") && e.contains("give more"),
        "{e}"
    );
    let shown = d.ctl_json(&["show", &first[..first.len()]]);
    assert_eq!(shown["program"]["name"], first.as_str());
    // A typo suggests the closest.
    let typo = format!("{}x", &second[..second.len() - 1]);
    let e = err(&["history", &typo]);
    assert!(e.contains("did you mean") && e.contains(&second), "{e}");
    // Unloaded: `show` points to its history, which still answers.
    let gone = fleet.programs.pop().expect("a program");
    let gone_name = gone.name.clone();
    drop(gone);
    std::thread::sleep(Duration::from_millis(600));
    let e = err(&["show", &gone_name]);
    assert!(
        e.contains("is not loaded now; its history remains: ebpfstatctl history"),
        "{e}"
    );
    let h = d.ctl_json(&["history", &gone_name, "--since", "1m", "--step", "10s"]);
    let runs = bus::history_runs(&h);
    assert_eq!(runs, 30);
}

#[test]
fn status_reads_at_a_glance() {
    require_bpf!();
    let fleet = Fleet::load(&format!("st{}_", tag()), 2);
    let d = running(&fleet);
    let screen = visible(&ctl_on_pty(&d, &["status"]));
    for said in [
        "sampling: every 200ms",
        " missed, 0 failed, 0 not stored",
        "used of the 64.0MiB cap (",
        "series (one per load of a program) · ",
        "daemon: ",
    ] {
        assert!(screen.contains(said), "{said:?} in:\n{screen}");
    }
}

/// Whether a process holds an eBPF program fd (its fdinfo names a `prog_id`).
fn holds_a_program(pid: libc::pid_t) -> bool {
    let dir = format!("/proc/{pid}/fdinfo");
    std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{dir}: {e}"))
        .filter_map(Result::ok)
        .any(|e| std::fs::read_to_string(e.path()).is_ok_and(|t| t.contains("prog_id:")))
}

/// `ebpfstatctl --socket … args` on a pseudo-terminal of `cols` columns, as the screen shows it.
fn screen_at(d: &ApiDaemon, args: &[&str], cols: u16) -> String {
    let socket = d.socket.to_str().expect("utf-8");
    let all: Vec<&str> = ["--socket", socket]
        .into_iter()
        .chain(args.iter().copied())
        .collect();
    let (text, code) = on_pty(&bin("ebpfstatctl"), &all, cols);
    assert_eq!(code, 0, "ebpfstatctl {args:?}:\n{text}");
    visible(&text)
}

/// `ebpfstatctl --socket … args` into a pipe: its standard output.
fn piped(d: &ApiDaemon, args: &[&str]) -> String {
    let out = Command::new(bin("ebpfstatctl"))
        .arg("--socket")
        .arg(&d.socket)
        .args(args)
        .output()
        .expect("run ebpfstatctl");
    assert!(out.status.success(), "{args:?}: {out:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The words of a table's header line (titles of two words, `RUN TIME`, count as two).
fn header_words(screen: &str) -> Vec<&str> {
    table_lines(screen, "ID")
        .first()
        .map(|h| h.split_whitespace().collect())
        .unwrap_or_default()
}

/// A full (BTF) name of 482 bytes starting with `prefix`, as one seen on a host.
fn wide_name(prefix: &str) -> String {
    format!("{prefix}wide_{}", "n".repeat(482 - prefix.len() - 5))
}

/// Every line of what `args` printed on the screen in at most `cols` columns.
fn assert_within(screen: &str, cols: usize, args: &[&str]) {
    for line in screen.lines() {
        let n = line.chars().count();
        assert!(n <= cols, "{args:?}: a line of {n} columns:\n{screen}");
    }
}

/// Issue 24, items 8 and 9: `top --once` was 107 columns on an 80-column terminal and a
/// 482-byte name made `list` lines of 570; `--sort runs` ranked by a column not shown.
#[test]
fn tables_fit_an_80_column_terminal_and_a_pipe_keeps_every_value() {
    require_bpf!();
    let prefix = format!("wd{}_", tag());
    let mut fleet = Fleet::load(&prefix, 2);
    let full = wide_name(&prefix);
    fleet.add(&full[..15], Some(&full));
    let d = running(&fleet);
    // This test's programs only: others on the host may rank above them.
    let glob = format!("{prefix}*");
    for args in [
        vec!["top", "--once"],
        vec!["top", "--once", "--sort", "runs"],
        vec!["top", "--once", "--sort", "runtime"],
        vec!["top", "--once", "--cumulative"],
        vec!["list"],
        vec!["maps"],
    ] {
        let mut args = args;
        args.extend(["--name", glob.as_str()]);
        let screen = screen_at(&d, &args, 80);
        assert_within(&screen, 80, &args);
        assert_aligned(&screen, "ID", 80, 3);
        if args[0] != "maps" {
            let row = screen
                .lines()
                .find(|l| l.contains(&full[..14]))
                .unwrap_or_else(|| panic!("{args:?}: the wide program in:\n{screen}"));
            assert!(
                row.split_whitespace()
                    .any(|w| w.starts_with(&full[..14]) && w.ends_with('…')),
                "{args:?}: its name cut with …: {row}"
            );
        }
    }
    // Ranked by runs or run time, the table shows them: the wide program ran 30 times.
    let screen = screen_at(
        &d,
        &["top", "--once", "--sort", "runs", "--name", &glob],
        80,
    );
    assert!(header_words(&screen).contains(&"RUNS"), "{screen}");
    let row = screen
        .lines()
        .find(|l| l.contains(&full[..14]))
        .expect("its row");
    assert!(row.split_whitespace().any(|w| w == "30"), "30 runs: {row}");
    let screen = screen_at(
        &d,
        &["top", "--once", "--sort", "runtime", "--name", &glob],
        80,
    );
    assert!(
        header_words(&screen)
            .windows(2)
            .any(|w| w == ["RUN", "TIME"]),
        "{screen}"
    );
    // Piped, every value is whole: the name of 482 bytes, every column.
    for args in [vec!["top"], vec!["list"], vec!["top", "--cumulative"]] {
        let mut args = args;
        args.extend(["--name", glob.as_str()]);
        let out = piped(&d, &args);
        assert!(out.contains(&full), "{args:?}: the whole name in:\n{out}");
        assert!(
            out.lines()
                .any(|l| l.contains("HOLDERS") && l.contains("TYPE")),
            "{out}"
        );
    }
}

/// Issue 24, item 8, for `history` and `show`: a 482-byte name made their header and facts
/// lines wider than the terminal by hundreds of columns.
#[test]
fn history_and_show_fit_an_80_column_terminal_and_a_pipe_keeps_the_name() {
    require_bpf!();
    let prefix = format!("hw{}_", tag());
    let mut fleet = Fleet::load(&prefix, 0);
    let full = wide_name(&prefix);
    // Two loads of the name: the history says so and lists each load on a line.
    fleet.add(&full[..15], Some(&full));
    fleet.add(&full[..15], Some(&full));
    let d = running(&fleet);
    let id = fleet.ids()[0].to_string();
    let history = ["history", full.as_str(), "--since", "5m", "--step", "1s"];
    for args in [&history[..], &["show", id.as_str()][..]] {
        let screen = screen_at(&d, args, 80);
        assert_within(&screen, 80, args);
        assert!(
            screen
                .split_whitespace()
                .any(|w| w.starts_with(&full[..14]) && w.ends_with('…')),
            "{}: the name cut with …:\n{screen}",
            args[0]
        );
        assert!(!screen.contains(&full), "{}:\n{screen}", args[0]);
        if args[0] == "history" {
            assert!(screen.contains("2 loads"), "{screen}");
            assert!(
                table_lines(&screen, "TIME")
                    .first()
                    .is_some_and(|h| h.contains("TIME")),
                "{screen}"
            );
        }
        // Piped, the name is whole.
        let out = piped(&d, args);
        assert!(
            out.contains(&full),
            "{}: the whole name in:\n{out}",
            args[0]
        );
    }
}

/// Issue 24, item 11 and the counts: a program seen by one pass only showed `0` runs/s and
/// `0%`; `1 programs`; `top 0 by CPU%`; a window of `1year 1month 4days …`.
#[test]
fn a_first_pass_shows_no_rate_and_counts_read_right() {
    require_bpf!();
    let prefix = format!("fp{}_", tag());
    let fleet = Fleet::load(&prefix, 1);
    fleet.drive(0, 5);
    // One pass, at the start: no interval for any program until an hour from now.
    let d = ApiDaemon::start(None, "1h");
    let name = &fleet.programs[0].name;
    let glob = format!("{prefix}*");
    // The cells from the fourth on of the row naming the program.
    let cells = |args: &[&str]| {
        let screen = screen_at(&d, args, 120);
        let row = screen
            .lines()
            .find(|l| l.contains(name.as_str()))
            .unwrap_or_else(|| panic!("its row in:\n{screen}"));
        let cells: Vec<String> = row.split_whitespace().skip(3).map(String::from).collect();
        (screen, cells)
    };
    let (screen, list) = cells(&["list", "--name", &glob]);
    assert!(screen.starts_with("1 program ·"), "{screen}");
    // RUNS 5, then RUNS/S, AVG and CPU% have no interval to be over.
    assert_eq!(list[..4], ["5", "-", "-", "-"], "{screen}");
    // RUNS/S, AVG, CPU%, PEAK CPU%.
    let (screen, top) = cells(&["top", "--once", "--name", &glob]);
    assert_eq!(top[..4], ["-", "-", "-", "-"], "{screen}");
    let screen = screen_at(&d, &["top", "--once", "--name", "none-such-*"], 120);
    assert!(
        screen.starts_with("no programs to rank over the last 5m"),
        "{screen}"
    );
    // `over the last 1year 1month 4days 7h 26m 24s`, as humantime wrote it.
    let screen = screen_at(
        &d,
        &["top", "--once", "--since", "400d", "--name", &glob],
        120,
    );
    assert!(
        screen.starts_with("top 1 by CPU% while observed over the last 400d "),
        "{screen}"
    );
}

/// Issue 24: `compare` said `map memory … +420152 %` for a version whose maps grew from a few
/// hundred bytes: a size's change is said as a size.
#[test]
fn compare_says_a_change_of_map_memory_as_a_size() {
    require_bpf!();
    let name = format!("mm{}_v", tag());
    let d = ApiDaemon::start(None, "200ms");
    let small = array_map(&format!("{name}s"), 8, 1);
    let big = array_map(&format!("{name}b"), 8, 100_000);
    // Two versions under one name (other code, so another tag), each seen by a few passes.
    for (map, ret) in [(&small, 0), (&big, 1)] {
        let prog = load_program(PROG_TYPE_SOCKET_FILTER, &name, None, &[map.as_fd()], ret);
        std::thread::sleep(Duration::from_millis(800));
        drop(prog);
    }
    std::thread::sleep(Duration::from_millis(400));
    let screen = screen_at(&d, &["compare", &name], 80);
    let row = screen
        .lines()
        .find(|l| l.trim_start().starts_with("map memory"))
        .unwrap_or_else(|| panic!("the map memory row in:\n{screen}"));
    let change = row.split_whitespace().last().unwrap_or_default();
    assert!(
        change.starts_with('+') && change.ends_with("KiB"),
        "{change:?} in {row:?}"
    );
    assert!(!row.contains('%'), "{row}");
}
