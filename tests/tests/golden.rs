//! Behaviour kept: a fixed store answers every command as it did when the files in
//! `tests/golden/` were written, on a terminal as a person sees it and as JSON; and a fixed
//! workload leaves the store's tables exactly as they were. A change that means to change what
//! is shown writes the files again (`GOLDEN=write cargo test --test golden`) and the diff is
//! read in review.
//!
//! The daemon and the client run with the wall clock frozen (libfaketime, monotonic clocks
//! left alone), so "now", and every window ending now, is the same on every run.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use ebpfstat_store::Store;
use ebpfstat_tests::bus::ApiDaemon;
use ebpfstat_tests::synthetic::{SimHost, start};
use ebpfstat_tests::terminal::{Tmux, on_pty_with, visible};
use ebpfstat_tests::*;

/// The environment that freezes the wall clock for a program started with it.
type FrozenEnv = Vec<(&'static str, String)>;

/// The frozen wall clock: 30 s after the workload's last pass.
const NOW: &str = "2026-01-01 02:00:30";
/// Seconds of simulated history.
const SECONDS: u64 = 7200;

fn golden_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("golden")
}

/// libfaketime's library, where Debian's `faketime` package puts it.
fn faketime_lib() -> Option<PathBuf> {
    [
        "x86_64-linux-gnu",
        "aarch64-linux-gnu",
        "arm-linux-gnueabihf",
    ]
    .iter()
    .map(|triple| PathBuf::from(format!("/usr/lib/{triple}/faketime/libfaketime.so.1")))
    .find(|p| p.exists())
}

/// The environment that freezes the wall clock at [`NOW`] (UTC).
fn frozen(lib: &Path) -> FrozenEnv {
    vec![
        ("LD_PRELOAD", lib.display().to_string()),
        ("FAKETIME", NOW.to_owned()),
        ("FAKETIME_DONT_FAKE_MONOTONIC", "1".to_owned()),
        ("TZ", "UTC".to_owned()),
    ]
}

/// The index of program `id` in the host's tick.
fn index(host: &SimHost, id: u32) -> usize {
    host.tick()
        .programs
        .iter()
        .position(|p| p.id == id)
        .expect("loaded")
}

/// A value that varies from second to second without randomness: `t·k mod m`.
fn wobble(t: u64, k: u64, m: u64) -> u64 {
    t * k % m
}

/// Two hours of five programs from 2026-01-01T00:00:00Z: a steady busy one with a long name,
/// an idle one, one that runs in bursts once a minute, one unloaded after 30 minutes, and one
/// reloaded with other code after an hour (two versions, the second slower); stats on for half
/// of each interval from 01:30 to 01:45. Flushed every minute, rolled up at the end.
fn fill(store: &mut Store) {
    let mut host = SimHost::new("golden-boot", start(), Duration::from_secs(36_000));
    host.load(11, "golden_busy_handler");
    host.load(12, "golden_idle");
    host.load(13, "golden_spiky");
    host.load(16, "golden_gone");
    host.load(14, "golden_ver");
    for t in 1..=SECONDS {
        host.advance(Duration::from_secs(1));
        let busy = 2000 + wobble(t, 37, 400);
        host.run(index(&host, 11), busy, busy * (300 + wobble(t, 13, 50)));
        if t.is_multiple_of(60) {
            host.run(index(&host, 13), 50_000, 50_000 * 900);
        }
        if t < 1800 {
            host.run(index(&host, 16), 10, 10 * 5000);
        } else if t == 1800 {
            host.unload(index(&host, 16));
        }
        let ver = 1000 + wobble(t, 1, 100);
        if t == 3600 {
            host.unload(index(&host, 14));
            host.load(15, "golden_ver");
        }
        let (id, cost) = if t < 3600 { (14, 400) } else { (15, 600) };
        host.run(index(&host, id), ver, ver * (cost + wobble(t, 7, 40)));
        host.set_coverage(if (5400..6300).contains(&t) { 0.5 } else { 1.0 });
        store.ingest(host.tick()).expect("ingest");
        if t.is_multiple_of(60) {
            store.flush(host.wall()).expect("flush");
        }
    }
    store.flush(host.wall()).expect("flush");
    store.maintain(host.wall()).expect("maintain");
}

fn golden_store(path: &Path) {
    let mut store = Store::open(store_config(path)).expect("open");
    fill(&mut store);
}

/// Every row of every table of the database, each table's rows sorted: what the store wrote.
fn dump(path: &Path) -> String {
    let db = rusqlite::Connection::open(path).expect("open");
    let mut tables: Vec<String> = db
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
        .expect("prepare")
        .query_map([], |r| r.get(0))
        .expect("tables")
        .collect::<Result<_, _>>()
        .expect("names");
    tables.retain(|t| !t.starts_with("sqlite_"));
    let mut out = String::new();
    for table in tables {
        let mut stmt = db
            .prepare(&format!("SELECT * FROM {table}"))
            .expect("select");
        let columns = stmt.column_count();
        let mut rows: Vec<String> = stmt
            .query_map([], |r| {
                (0..columns)
                    .map(|i| r.get_ref(i).map(|v| format!("{v:?}")))
                    .collect::<Result<Vec<_>, _>>()
                    .map(|cells| cells.join("|"))
            })
            .expect("rows")
            .collect::<Result<_, _>>()
            .expect("row");
        rows.sort();
        out.push_str(&format!("== {table} ({} rows)\n", rows.len()));
        for row in rows {
            out.push_str(&row);
            out.push('\n');
        }
    }
    out
}

/// Compares `text` with the golden file `name`, or writes it under `GOLDEN=write`.
fn check(name: &str, text: &str) {
    let path = golden_dir().join(name);
    if std::env::var("GOLDEN").as_deref() == Ok("write") {
        std::fs::create_dir_all(golden_dir()).expect("mkdir");
        std::fs::write(&path, text).expect("write golden");
        return;
    }
    let want = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (GOLDEN=write makes it)", path.display()));
    if want != text {
        let got = path.with_extension("got");
        std::fs::write(&got, text).expect("write got");
        panic!(
            "{name} differs from what was kept: diff {} {}",
            path.display(),
            got.display()
        );
    }
}

#[test]
fn a_fixed_workload_writes_the_same_tables() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("history.db");
    golden_store(&path);
    let dumped = dir.path().join("dump.txt");
    std::fs::write(&dumped, dump(&path)).expect("write dump");
    let sum = ok(Command::new("sha256sum").arg(&dumped));
    let sum = sum.split_whitespace().next().expect("a sum");
    check("store.sha256", &format!("{sum}\n"));
}

/// Commands a person types, each run on a 120-column terminal; `--json` ones are piped too.
const SCREENS: &[&[&str]] = &[
    &["top", "--once", "--name", "golden*"],
    &[
        "top", "--once", "--name", "golden*", "--window", "1h", "--sort", "runtime",
    ],
    &[
        "top",
        "--once",
        "--name",
        "golden*",
        "--since",
        "2026-01-01T00:00:00Z",
        "--sort",
        "runs",
        "-n",
        "3",
    ],
    &[
        "top", "--once", "--name", "golden*", "--window", "2h", "--sort", "avg",
    ],
    &[
        "top", "--once", "--name", "golden*", "--window", "2h", "--sort", "mapmem",
    ],
    &["top", "--once", "--name", "golden*", "--window", "40m"],
    &[
        "--exact", "top", "--once", "--name", "golden*", "--window", "40m",
    ],
    &["top", "--once", "--cumulative", "--name", "golden*"],
    &[
        "history",
        "golden_busy_handler",
        "--since",
        "2026-01-01T00:00:00Z",
        "--until",
        "2026-01-01T02:00:00Z",
        "--step",
        "10m",
    ],
    &[
        "history",
        "golden_busy_handler",
        "--since",
        "2026-01-01T00:00:00Z",
        "--until",
        "2026-01-01T02:00:00Z",
        "--step",
        "10m",
        "--cumulative",
        "--metric",
        "runs",
    ],
    &[
        "history",
        "golden_ver",
        "--since",
        "2026-01-01T00:00:00Z",
        "--until",
        "2026-01-01T02:00:00Z",
        "--step",
        "15m",
        "--metric",
        "avg",
    ],
    &[
        "history",
        "golden_spiky",
        "--since",
        "2026-01-01T01:00:00Z",
        "--until",
        "2026-01-01T01:10:00Z",
        "--step",
        "1m",
        "--metric",
        "runtime",
    ],
    &[
        "history",
        "golden_gone",
        "--since",
        "2h30m",
        "--step",
        "10m",
    ],
    &[
        "history",
        "golden_busy_handler",
        "--since",
        "2026-01-01T01:20:00Z",
        "--until",
        "2026-01-01T01:50:00Z",
        "--step",
        "5m",
    ],
    &[
        "history",
        "series:1",
        "--since",
        "2026-01-01T00:00:00Z",
        "--step",
        "30m",
        "--max-points",
        "3",
    ],
    &["compare", "golden_ver"],
    &["events", "--since", "2025-12-31T00:00:00Z"],
    &["alerts", "--since", "2025-12-31T00:00:00Z"],
    &[
        "export",
        "--since",
        "2026-01-01T01:00:00Z",
        "--until",
        "2026-01-01T01:03:00Z",
        "--step",
        "1m",
        "--name",
        "golden_b*",
    ],
    &["history", "golden_nope"],
    &["compare", "golden_busy_handler"],
    &["top", "-n", "0"],
    &[
        "history",
        "golden_ver",
        "--since",
        "2026-01-01T02:00:00Z",
        "--until",
        "2026-01-01T01:00:00Z",
    ],
    &["--json", "top", "--name", "golden*", "--window", "1h"],
    &[
        "--json",
        "history",
        "golden_ver",
        "--since",
        "2026-01-01T00:00:00Z",
        "--until",
        "2026-01-01T02:00:00Z",
        "--step",
        "30m",
    ],
    &["--json", "compare", "golden_ver"],
    &["--json", "events", "--since", "2025-12-31T00:00:00Z"],
];

/// A daemon serving the fixed store with the wall clock frozen, and the environment that freezes
/// it for a client; `None` (the test skipped, or failed under CI) without libfaketime. The live
/// host's programs are filtered out of what is asked (`--name golden*`), and its passes are
/// stamped with the frozen time, after every window asked about but those ending now.
fn frozen_daemon(test: &str) -> Option<(FrozenEnv, ApiDaemon, tempfile::TempDir)> {
    let Some(lib) = faketime_lib() else {
        skip_or_fail(test, "needs libfaketime (apt install faketime)");
        return None;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("history.db");
    golden_store(&db);
    let env = frozen(&lib);
    let pairs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let d = ApiDaemon::start_on_with_env("10s", &db, &[], &pairs);
    Some((env, d, dir))
}

#[test]
fn every_command_shows_what_it_showed() {
    require_bpf!();
    let Some((env, d, _dir)) = frozen_daemon(module_path!()) else {
        return;
    };
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let socket = d.socket.to_str().expect("utf-8").to_owned();
    let mut transcript = String::new();
    for args in SCREENS {
        let mut all = vec!["--socket", socket.as_str()];
        all.extend_from_slice(args);
        let (text, code) = on_pty_with(&bin("ebpfstatctl"), &all, 120, &env);
        let text = cost_masked(&text);
        transcript.push_str(&format!(
            "$ ebpfstatctl {}\n{text}[exit {code}]\n\n",
            args.join(" ")
        ));
    }
    check("screens.txt", &transcript);
}

/// The live views over real programs: what varies from run to run (ids, pids, the test's own
/// command name, times and sizes of the host) is replaced by a placeholder first.
#[test]
fn live_views_show_what_they_showed() {
    require_bpf!();
    let fleet = Fleet::load("goldlive", 2);
    fleet.drive(0, 7);
    let d = ApiDaemon::start(None, "200ms");
    fleet.drive(1, 3);
    std::thread::sleep(Duration::from_millis(800));
    let socket = d.socket.to_str().expect("utf-8").to_owned();
    let mut transcript = String::new();
    for args in LIVE {
        let mut all = vec!["--socket", socket.as_str()];
        all.extend_from_slice(args);
        let (text, code) = on_pty_with(&bin("ebpfstatctl"), &all, 160, &[]);
        let text = visible(&text)
            .replace(&own_comm(), "<comm>")
            .replace(d.db.to_str().expect("utf-8"), "<db>")
            .replace(&kernel_release(), "<kernel>")
            // Whether another holder was seen depends on when the daemon last looked.
            .replace(" · another process also holds stats on", "");
        transcript.push_str(&format!(
            "$ ebpfstatctl {}\n{}[exit {code}]\n\n",
            args.join(" "),
            numbers_masked(&text)
        ));
    }
    check("live.txt", &transcript);
}

/// `text` with the calibrated cost of stats (measured on this host, or a default while another
/// process holds stats on) and what it cost the host now written `<cost>`: in the tables'
/// lines (`(84ns per program run)`) and the interactive view's (`cost 0% of a core, 84ns/run`).
fn cost_masked(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for line in text.split_inclusive('\n') {
        let span = match (line.rfind('('), line.find(" per program run)")) {
            (Some(open), Some(end)) if open < end => Some((open + 1, end)),
            _ => line
                .find("cost ")
                .zip(line.find("/run"))
                .filter(|(a, b)| a < b)
                .map(|(a, b)| (a + "cost ".len(), b)),
        };
        match span {
            Some((from, to)) => {
                out.push_str(&line[..from]);
                out.push_str("<cost>");
                out.push_str(&line[to..]);
            }
            None => out.push_str(line),
        }
    }
    out
}

fn kernel_release() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .expect("osrelease")
        .trim()
        .to_owned()
}

/// `text` with every number (and the unit after it: `12.3µs`, `4.0KiB`, `0x0`) written `#`,
/// and runs of spaces made one: what is left is the words, the order and the shape.
fn numbers_masked(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    let mut prev = ' ';
    while let Some(c) = chars.next() {
        if c.is_ascii_digit() && !prev.is_alphanumeric() {
            while chars
                .peek()
                .is_some_and(|n| n.is_alphanumeric() || matches!(n, '.' | '%'))
            {
                chars.next();
            }
            out.push('#');
            prev = '#';
        } else if c == ' ' && prev == ' ' {
        } else {
            out.push(c);
            prev = c;
        }
    }
    out
}

const LIVE: &[&[&str]] = &[
    &["list", "--name", "goldlive*"],
    &["show", "goldlive0"],
    &["maps", "--name", "goldlive*"],
    &["status"],
    &["--json", "list", "--name", "goldlive*"],
    // By runs: the programs' run counts are set, their run times are the kernel's.
    &[
        "top",
        "--once",
        "--cumulative",
        "--name",
        "goldlive*",
        "--sort",
        "runs",
    ],
    &[
        "top",
        "--once",
        "--cumulative",
        "--name",
        "goldlive*",
        "--sort",
        "runs",
        "-n",
        "1",
    ],
    &[
        "--json",
        "top",
        "--cumulative",
        "--name",
        "goldlive*",
        "--sort",
        "runs",
    ],
];

/// The interactive `top` on a real terminal (tmux) over the fixed store: the table over the
/// last hour, then the chart of its first row.
#[test]
fn the_interactive_view_shows_what_it_showed() {
    require_bpf!();
    if !Tmux::available(module_path!()) {
        return;
    }
    let Some((env, d, _dir)) = frozen_daemon(module_path!()) else {
        return;
    };
    let t = Tmux::start(120, 30);
    let assignments: Vec<String> = env.iter().map(|(k, v)| format!("{k}='{v}'")).collect();
    t.type_line(&format!(
        "{} {} --socket {} top --name 'golden*' --window 1h",
        assignments.join(" "),
        bin("ebpfstatctl").display(),
        d.socket.display()
    ));
    let table = t.wait_for("the table", |s| s.contains("golden_busy_handler"));
    t.keys(&["Home", "Enter"]);
    let chart = t.wait_for("the chart", |s| {
        s.contains("average per run") && s.contains("in this span")
    });
    t.keys(&["q"]);
    check(
        "interactive.txt",
        &cost_masked(&format!("{table}\n---- Enter ----\n{chart}")),
    );
}
