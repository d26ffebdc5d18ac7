//! Alert rules with real programs: a socket filter driven with `BPF_PROG_TEST_RUN` over a CPU
//! threshold and back, signals received by a client of a real dbus-daemon, a program flapping
//! across the threshold, a restart in between, and rules the daemon refuses.

use std::os::fd::AsFd;
use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ebpfstat_dbus::Alert;
use ebpfstat_tests::bus::{self, ApiDaemon};
use ebpfstat_tests::terminal::{assert_aligned, on_pty, table_lines, visible};
use ebpfstat_tests::*;

/// A rule on one program's CPU %: raised above 0.05 % of a core for `hold`, cleared at or
/// below 0.02 %. The driven filter takes several times that; idle, it takes nothing.
fn rule(name: &str, program: &str, hold: &str) -> String {
    format!(
        "[[alert]]\nname = \"{name}\"\nmetric = \"cpu_pct\"\nthreshold = 0.05\nclear = 0.02\n\
         for = \"{hold}\"\nprogram = \"{program}\"\ntype = \"socket_filter\"\n"
    )
}

fn config(dir: &Path, text: &str) -> String {
    let path = dir.join("ebpfstatd.toml");
    std::fs::write(&path, text).expect("write config");
    path.display().to_string()
}

/// Collects the `AlertChanged` signals of rule `rule` on the bus at `address`, with when each
/// came, on a thread of its own.
fn listen(address: &str, rule: &str) -> Arc<Mutex<Vec<(Instant, Alert)>>> {
    use zbus::export::futures_core::Stream;
    let got = Arc::new(Mutex::new(Vec::new()));
    let (into, address, rule) = (Arc::clone(&got), address.to_owned(), rule.to_owned());
    let (ready_tx, ready) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async move {
            let (_conn, p) = bus::proxy_on(&address).await;
            let mut signals = p.receive_alert_changed().await.expect("subscribe");
            ready_tx.send(()).expect("ready");
            while let Some(s) =
                std::future::poll_fn(|cx| std::pin::Pin::new(&mut signals).poll_next(cx)).await
            {
                let a = s.args().expect("args").alert().clone();
                if a.rule == rule {
                    into.lock().expect("lock").push((Instant::now(), a));
                }
            }
        });
    });
    ready
        .recv_timeout(Duration::from_secs(10))
        .expect("subscribed");
    got
}

fn states(got: &Mutex<Vec<(Instant, Alert)>>) -> Vec<String> {
    got.lock()
        .expect("lock")
        .iter()
        .map(|(_, a)| a.state.clone())
        .collect()
}

fn wait_for(got: &Mutex<Vec<(Instant, Alert)>>, n: usize, within: Duration) {
    let deadline = Instant::now() + within;
    while got.lock().expect("lock").len() < n && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `ebpfstatctl alerts --since 1h` as an 80-column terminal shows it.
fn alerts_on_pty(d: &ApiDaemon) -> String {
    let socket = d.socket.to_str().expect("utf-8");
    let (text, code) = on_pty(
        &bin("ebpfstatctl"),
        &["--socket", socket, "alerts", "--since", "1h"],
        80,
    );
    assert_eq!(code, 0, "{text}");
    visible(&text)
}

/// `ebpfstatctl alerts`: (active, changes) of rule `rule`.
fn listed(d: &ApiDaemon, rule: &str) -> (Vec<serde_json::Value>, Vec<serde_json::Value>) {
    let a = d.ctl_json(&["alerts", "--since", "1h"]);
    let mine = |key: &str| -> Vec<serde_json::Value> {
        a[key]
            .as_array()
            .expect("list")
            .iter()
            .filter(|x| x["rule"] == rule)
            .cloned()
            .collect()
    };
    (mine("active"), mine("changes"))
}

#[test]
#[expect(
    clippy::too_many_lines,
    reason = "one scenario read top to bottom: each step checks what the step before left"
)]
fn a_cpu_alert_is_raised_once_after_its_hold_cleared_and_kept_across_a_restart() {
    require_bpf!();
    let bus = bus::TestBus::start();
    let name = format!("alhot{}", tag());
    let dir = bus::open_tempdir();
    let cfg = config(dir.path(), &rule("hot", &name, "3s"));
    let mut d = ApiDaemon::start_with(Some(&bus), "200ms", &["--config", &cfg]);
    let signals = listen(&bus.address, "hot");
    let prog = costly_filter(&name, 600);
    let id = prog_id(prog.as_fd());
    std::thread::sleep(Duration::from_millis(600));

    let started = Instant::now();
    let load = PacedLoad::start(prog.as_fd(), 20);
    wait_for(&signals, 1, Duration::from_secs(10));
    // Held on: still one signal.
    std::thread::sleep(Duration::from_secs(2));
    let got = signals.lock().expect("lock").clone();
    assert_eq!(states(&signals), ["raised"], "{got:?}");
    let (at, raised) = &got[0];
    // Not before it held for 3 s (its first value above covers the interval before it).
    let after = at.saturating_duration_since(started);
    assert!(
        // Half an interval of slack for passes a little early.
        after >= Duration::from_millis(2500),
        "raised after {after:?}"
    );
    assert_eq!(
        (raised.program_id, raised.program.as_str()),
        (id, name.as_str())
    );
    assert_eq!(
        (raised.metric.as_str(), raised.threshold, raised.clear),
        ("cpu_pct", 0.05, 0.02)
    );
    assert!(raised.value > 0.05, "{raised:?}");
    assert!(
        raised
            .text
            .starts_with(&format!("alert hot raised: {name} (id {id}): cpu_pct "))
    );
    assert!(d.log().contains(&raised.text), "logged too");
    let (active, _) = listed(&d, "hot");
    assert_eq!(active.len(), 1);
    assert_eq!(active[0]["since_ns"], raised.since_ns);
    let shown = alerts_on_pty(&d);
    assert!(shown.starts_with("1 alert raised now:\n"), "{shown}");
    assert_aligned(&shown, "RULE", 80, 1);
    let row = table_lines(&shown, "RULE")[1];
    let cells: Vec<&str> = row.split_whitespace().collect();
    let id_cell = format!("({id})");
    assert_eq!(
        cells[..4],
        ["hot", name.as_str(), id_cell.as_str(), "cpu_pct"],
        "{row}"
    );
    let st = d.ctl_json(&["status"]);
    assert_eq!(
        (st["alerts_active"].as_u64(), st["alert_rules"].as_u64()),
        (Some(1), Some(1))
    );

    // A restart while it is still above: the alert carries on from when it was raised, with
    // no second raise.
    d.stop_in_place();
    d.start_again("200ms", &["--config", &cfg]);
    // Restored on the first pass with values.
    let deadline = Instant::now() + Duration::from_secs(10);
    while listed(&d, "hot").0.is_empty() {
        assert!(Instant::now() < deadline, "not restored:\n{}", d.log());
        std::thread::sleep(Duration::from_millis(100));
    }
    let (active, changes) = listed(&d, "hot");
    assert_eq!(active.len(), 1, "{active:?}");
    assert_eq!(active[0]["since_ns"], raised.since_ns);
    assert_eq!(changes.len(), 1, "{changes:?}");
    assert!(
        d.log()
            .contains("1 alerts were raised when the daemon stopped")
    );

    // Idle: cleared at once (the first pass at or below the clear level).
    let (runs, _) = load.stop();
    assert!(runs > 10_000);
    let deadline = Instant::now() + Duration::from_secs(5);
    let cleared = loop {
        let (active, changes) = listed(&d, "hot");
        if active.is_empty() && changes.len() == 2 {
            break changes;
        }
        assert!(
            Instant::now() < deadline,
            "not cleared: {active:?} {changes:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(cleared[0]["text"], raised.text.as_str());
    assert_eq!(cleared[1]["state"], "cleared");
    assert_eq!(cleared[1]["since_ns"], raised.since_ns);
    assert!(
        cleared[1]["value"].as_f64().is_some_and(|v| v <= 0.02),
        "{cleared:?}"
    );
    let text = cleared[1]["text"].as_str().expect("text");
    assert!(
        text.starts_with(&format!("alert hot cleared: {name} (id {id}): cpu_pct ")),
        "{text}"
    );
    let shown = alerts_on_pty(&d);
    eprintln!("{shown}");
    assert!(
        shown.starts_with("no alert raised now\n\nraised and cleared since "),
        "{shown}"
    );
    assert_aligned(&shown, "TIME", 80, 2);
}

#[test]
fn a_program_flapping_across_the_threshold_gives_a_bounded_number_of_signals() {
    require_bpf!();
    let bus = bus::TestBus::start();
    let name = format!("alflap{}", tag());
    let dir = bus::open_tempdir();
    let cfg = config(dir.path(), &rule("flap", &name, "1s"));
    let _d = ApiDaemon::start_with(Some(&bus), "200ms", &["--config", &cfg]);
    let signals = listen(&bus.address, "flap");
    let prog = costly_filter(&name, 600);
    // 30 s of 2.5 s driven, 1.5 s idle: 8 times above the threshold for longer than `for`.
    let start = Instant::now();
    let mut phases = 0;
    while start.elapsed() < Duration::from_secs(30) {
        let load = PacedLoad::start(prog.as_fd(), 20);
        std::thread::sleep(Duration::from_millis(2500));
        load.stop();
        phases += 1;
        std::thread::sleep(Duration::from_millis(1500));
    }
    let got = states(&signals);
    eprintln!("{phases} phases above: {got:?}");
    // Unbounded, that would be a raise and a clear per phase. Each raise after the first must
    // hold twice as long as the one before: 1 s, then 2 s, then 4 s, which 2.5 s never holds
    // (on a busy machine a slow pass may cost one of the first two).
    assert!(phases >= 7, "{phases}");
    let raises = got.iter().filter(|s| *s == "raised").count();
    assert!((1..=2).contains(&raises), "{got:?}");
    assert!(got.len() <= 4, "{got:?}");
    assert!(got.chunks(2).all(|p| p[0] == "raised"), "{got:?}");
}

/// `ebpfstatd --check-config` on `text`: whether it passed, and what it said.
fn check(text: &str) -> (bool, String) {
    let dir = bus::open_tempdir();
    let cfg = config(dir.path(), text);
    let out = Command::new(bin("ebpfstatd"))
        .args(["--config", &cfg, "--check-config"])
        .output()
        .expect("ebpfstatd");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), said)
}

#[test]
fn bad_rules_are_named_with_their_line_and_the_daemon_does_not_start() {
    let head = "interval = \"1s\"\n\n";
    let ok = rule("fine", "x*", "3s");
    for (bad, says, line) in [
        (
            "[[alert]]\nname = \"m\"\nmetric = \"cpu_percent\"\nthreshold = 1\n",
            "unknown variant `cpu_percent`",
            14,
        ),
        (
            "[[alert]]\nname = \"n\"\nmetric = \"avg_ns\"\nthreshold = -5\n",
            "threshold -5 is negative",
            12,
        ),
        (
            "[[alert]]\nname = \"c\"\nmetric = \"cpu_pct\"\nthreshold = 1\nclear = 2\n",
            "clear 2 is above threshold 1",
            12,
        ),
        (
            "[[alert]]\nname = \"g\"\nmetric = \"cpu_pct\"\nthreshold = 1\nprogram = \"sys_[a\"\n",
            "'[' is not supported",
            12,
        ),
        (
            "[[alert]]\nname = \"fine\"\nmetric = \"cpu_pct\"\nthreshold = 1\n",
            "\"fine\" is used twice",
            13,
        ),
    ] {
        let text = format!("{head}{ok}\n{bad}");
        let (passed, said) = check(&text);
        assert!(!passed, "{text}");
        assert!(said.contains(says), "{said}");
        assert!(said.contains(&format!("line {line}")), "{said}");
        // The daemon does not start with it either: it stops before opening anything.
        let dir = bus::open_tempdir();
        let cfg = config(dir.path(), &text);
        let db = dir.path().join("h.db");
        let out = Command::new(bin("ebpfstatd"))
            .args([
                "run", "--config", &cfg, "--bus", "none", "--socket", "none", "--db",
            ])
            .arg(&db)
            .output()
            .expect("ebpfstatd");
        assert!(!out.status.success());
        assert!(String::from_utf8_lossy(&out.stderr).contains(says));
        assert!(!db.exists(), "nothing opened");
    }
    let (passed, said) = check(&format!("{head}{ok}"));
    assert!(passed, "{said}");
    assert!(said.contains("[[alert]]\nname = \"fine\""), "{said}");
}

#[test]
fn the_shipped_examples_are_valid_rules() {
    // The packaged configuration has them commented out: none is active by default.
    let shipped = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../packaging/ebpfstatd.toml"),
    )
    .expect("shipped configuration");
    let (passed, said) = check(&shipped);
    assert!(passed && !said.contains("[[alert]]"), "{said}");
    // Everything commented out from the first `# [[alert]]` on, uncommented.
    let examples: String = shipped
        .lines()
        .skip_while(|l| *l != "# [[alert]]")
        .map(|l| format!("{}\n", l.trim_start_matches('#').trim_start()))
        .collect();
    let (passed, said) = check(&examples);
    assert!(passed, "{examples}\n{said}");
    assert!(said.matches("[[alert]]").count() >= 3, "{said}");
}

#[test]
fn a_reload_keeps_unchanged_rules_and_clears_the_alerts_of_changed_ones() {
    require_bpf!();
    let name = format!("alrel{}", tag());
    let dir = bus::open_tempdir();
    let both = |threshold: &str| {
        format!(
            "{}\n{}",
            rule("kept", &name, "0s"),
            rule("edited", &name, "0s").replace("threshold = 0.05", threshold)
        )
    };
    let cfg = config(dir.path(), &both("threshold = 0.05"));
    let d = ApiDaemon::start_with(None, "200ms", &["--config", &cfg]);
    let prog = costly_filter(&name, 600);
    let _load = PacedLoad::start(prog.as_fd(), 20);
    let deadline = Instant::now() + Duration::from_secs(5);
    while d.ctl_json(&["status"])["alerts_active"].as_u64() != Some(2) {
        assert!(Instant::now() < deadline, "both raised");
        std::thread::sleep(Duration::from_millis(100));
    }
    // `edited` now needs 500 % of a core: its alert is cleared by the reload, `kept`'s stays.
    config(dir.path(), &both("threshold = 500"));
    d.signal(libc::SIGHUP);
    let deadline = Instant::now() + Duration::from_secs(5);
    while !d.log().contains("alert edited cleared") {
        assert!(
            Instant::now() < deadline,
            "cleared by the reload:\n{}",
            d.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_secs(1));
    let (kept, kept_changes) = listed(&d, "kept");
    let (edited, edited_changes) = listed(&d, "edited");
    assert_eq!((kept.len(), kept_changes.len()), (1, 1), "{kept_changes:?}");
    assert!(edited.is_empty(), "{edited:?}");
    assert_eq!(edited_changes.len(), 2);
    assert!(
        edited_changes[1]["text"]
            .as_str()
            .is_some_and(|t| t.ends_with("a reload changed or removed the rule")),
        "{edited_changes:?}"
    );
    assert!(
        d.log()
            .contains("alert 2 rules → 2 rules (changed: edited)"),
        "{}",
        d.log()
    );
}

/// 256 rules whose `program` glob backtracks through pattern × name (`*aaa…ab`) against 200
/// programs with 480-byte names of `a`s: passes go on and `status` answers, where matching
/// them stalled passes for tens of seconds and `Status` waited on the evaluator's lock.
#[test]
fn pathological_globs_stall_neither_passes_nor_the_api() {
    require_bpf!();
    let dir = bus::open_tempdir();
    let glob = format!("*{}b", "a".repeat(254));
    let rules: String = (0..256)
        .map(|i| rule(&format!("g{i}"), &glob, "0s"))
        .collect();
    let cfg = config(dir.path(), &rules);
    let d = ApiDaemon::start_with(None, "200ms", &["--config", &cfg]);
    let status = |d: &ApiDaemon| d.ctl_json(&["status"]);
    let before = status(&d)["passes"].as_u64().expect("passes");
    // Loaded while the daemon samples: the passes that see them match them against the rules.
    let prefix = format!("pg{}_", tag());
    let mut fleet = Fleet::load(&prefix, 0);
    for i in 0..200 {
        // The kernel keeps 15 bytes of a name: at 15, the full name is read from BTF.
        let kernel = format!("{prefix}{i:0>width$}", width = 15 - prefix.len());
        let full = format!("{}{i:03}", "a".repeat(477));
        fleet.add(&kernel, Some(&full));
    }
    std::thread::sleep(Duration::from_secs(5));
    let shown = d.ctl_json(&["show", &fleet.programs[199].id.to_string()]);
    assert_eq!(
        shown["program"]["full_name"].as_str().map(str::len),
        Some(480),
        "{shown}"
    );
    let st = status(&d);
    assert!(st["programs"].as_u64() >= Some(200), "{st}");
    let passes = st["passes"].as_u64().expect("passes") - before;
    // About 30 slots since the loads began: matching by backtracking took a minute for the
    // pass that saw them, and `status` waited for it.
    assert!(passes >= 10, "{passes} passes: {st}");
    assert_eq!(st["alert_rules"].as_u64(), Some(256), "{st}");
    assert_eq!(st["alerts_active"].as_u64(), Some(0), "{st}");
    assert_eq!(st["failed_passes"].as_u64(), Some(0), "{st}");
    assert!(d.stop());
}

/// A program run once a second, sampled every 200 ms: four intervals in five have no run. An
/// `avg_ns` rule on it is raised by its first run and stays raised: an interval without runs
/// said `avg_ns 0ns` and cleared it, and the next run raised it again.
#[test]
fn an_avg_ns_alert_keeps_its_state_through_intervals_without_runs() {
    require_bpf!();
    let name = format!("alavg{}", tag());
    let dir = bus::open_tempdir();
    let rule = format!(
        "[[alert]]\nname = \"slow\"\nmetric = \"avg_ns\"\nthreshold = 20\nclear = 10\n\
         program = \"{name}\"\ntype = \"socket_filter\"\n"
    );
    let cfg = config(dir.path(), &rule);
    let d = ApiDaemon::start_with(None, "200ms", &["--config", &cfg]);
    let prog = costly_filter(&name, 600);
    let id = prog_id(prog.as_fd());
    std::thread::sleep(Duration::from_millis(600));
    let packet = [0u8; 64];
    for _ in 0..8 {
        ebpfstatd::bpf::sys::prog_test_run(prog.as_fd(), &packet, 1).expect("test run");
        std::thread::sleep(Duration::from_secs(1));
    }
    let (_, runs, _) = prog_counters(prog.as_fd());
    assert_eq!(runs, 8);
    let (active, changes) = listed(&d, "slow");
    let said: Vec<&str> = changes.iter().filter_map(|c| c["text"].as_str()).collect();
    eprintln!("{said:#?}");
    assert_eq!(
        changes
            .iter()
            .map(|c| c["state"].clone())
            .collect::<Vec<_>>(),
        ["raised"],
        "{said:#?}"
    );
    assert_eq!(active.len(), 1, "{active:?}");
    assert!(active[0]["value"].as_f64() > Some(20.0), "{active:?}");

    // The table says the level it clears at.
    let shown = alerts_on_pty(&d);
    eprintln!("{shown}");
    assert_aligned(&shown, "RULE", 80, 1);
    let header: Vec<&str> = table_lines(&shown, "RULE")[0]
        .split("  ")
        .map(str::trim)
        .filter(|h| !h.is_empty())
        .collect();
    assert_eq!(
        header,
        [
            "RULE",
            "SUBJECT (ID)",
            "METRIC",
            "NOW",
            "ABOVE",
            "CLEARS AT",
            "RAISED"
        ],
        "{shown}"
    );
    let row = table_lines(&shown, "RULE")[1];
    let cells: Vec<&str> = row.split_whitespace().collect();
    let id_cell = format!("({id})");
    assert_eq!(
        (cells[..4].to_vec(), cells[5], cells[6]),
        (
            vec!["slow", name.as_str(), id_cell.as_str(), "avg_ns"],
            "20ns",
            "10ns"
        ),
        "{row}"
    );
    assert!(row.trim_end().ends_with(" ago"), "{row}");

    // Unloaded, it is cleared as such.
    drop(prog);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !listed(&d, "slow").0.is_empty() {
        assert!(Instant::now() < deadline, "cleared once unloaded");
        std::thread::sleep(Duration::from_millis(100));
    }
    let (_, changes) = listed(&d, "slow");
    assert!(
        changes[1]["text"]
            .as_str()
            .is_some_and(|t| t.contains(&format!("{name} (id {id}) was unloaded"))),
        "{changes:?}"
    );
}
