//! `push` benchmark: what remote write costs a device, on the wire and in CPU.
//!
//! 1. A day's backlog: a store holding a day of 100 programs at 1-second passes (simulated,
//!    ending now), the release daemon on it with a target whose receiver acknowledged nothing
//!    since the day began, at a step of 15 s: what goes on the wire to catch up (bytes,
//!    samples, requests), and the pushing thread's CPU.
//! 2. Steady state: the same daemon, caught up, with 100 real programs loaded (socket
//!    filters), sending every minute (the default) for 5 minutes: bytes and the pushing
//!    thread's CPU per request, and per day.
//!
//! The receiver counts what it is sent and answers 204. Run as root: `cargo build --release
//! --workspace && cargo bench -p ebpfstat-tests --bench push` (`-- --quick`: 1 minute of
//! steady state).

use std::time::{Duration, Instant, SystemTime};

use ebpfstat_tests::bus::ApiDaemon;
use ebpfstat_tests::receiver::{ScriptedReceiver, set_pushed};
use ebpfstat_tests::synthetic::Workload;
use ebpfstat_tests::{Fleet, is_root, store_config};

const DAY: u64 = 86_400;
const PROGRAMS: usize = 100;

/// The CPU time (ns) of the daemon's threads named `name`, from their schedstat.
fn thread_cpu_ns(pid: i32, name: &str) -> u64 {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .expect("tasks")
        .filter_map(|t| {
            let dir = t.ok()?.path();
            let comm = std::fs::read_to_string(dir.join("comm")).ok()?;
            (comm.trim() == name).then_some(())?;
            let stat = std::fs::read_to_string(dir.join("schedstat")).ok()?;
            stat.split_whitespace().next()?.parse::<u64>().ok()
        })
        .sum()
}

/// The CPU time (ns) of the pushing thread, and of the storage thread that reads its batches.
fn push_cpu_ns(pid: i32) -> (u64, u64) {
    (thread_cpu_ns(pid, "push-0"), thread_cpu_ns(pid, "store"))
}

fn sent(r: &ScriptedReceiver) -> (usize, usize) {
    let got = r.received();
    (got.len(), got.iter().map(|g| g.body.len()).sum())
}

/// A store holding a day of `PROGRAMS` programs at 1-second passes, ending now; where the day
/// began.
fn day_of_history(db: &std::path::Path) -> SystemTime {
    let start = SystemTime::now() - Duration::from_secs(DAY + 60);
    let made = Instant::now();
    let mut store = ebpfstat_store::Store::open(store_config(db)).expect("open");
    let mut work = Workload::starting("sim", PROGRAMS, 0.2, start);
    store.ingest(work.host.tick()).expect("baseline");
    work.fill(&mut store, DAY, || {});
    println!(
        "\npush: a day of {PROGRAMS} programs (store simulated in {:.0} s), step 15 s",
        made.elapsed().as_secs_f64()
    );
    start
}

fn samples_sent(d: &ApiDaemon) -> u64 {
    d.ctl_json(&["status"])["remote_write"][0]["samples_sent"]
        .as_u64()
        .unwrap_or(0)
}

fn row(what: &str, (bytes, samples, requests): (usize, u64, usize), (push, store): (u64, u64)) {
    println!(
        "{what:>28} | {bytes:>10} | {samples:>9} | {requests:>8} | {:>10.2} | {:>8.1} | {:>9.1}",
        bytes as f64 / samples.max(1) as f64,
        push as f64 / 1e6,
        store as f64 / 1e6
    );
}

/// Waits until the daemon has caught up with the day; prints what that took.
fn backlog(d: &ApiDaemon, receiver: &ScriptedReceiver) {
    let began = Instant::now();
    let caught_up = || {
        let st = d.ctl_json(&["status"]);
        st["remote_write"][0]["backlog_ns"]
            .as_i64()
            .unwrap_or(i64::MAX)
            < 30_000_000_000
            && st["remote_write"][0]["requests"].as_u64().unwrap_or(0) > 0
    };
    while !caught_up() {
        assert!(
            began.elapsed() < Duration::from_secs(600),
            "never caught up"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let took = began.elapsed();
    let (requests, bytes) = sent(receiver);
    println!(
        "{:>28} | {:>10} | {:>9} | {:>8} | {:>10} | {:>8} | {:>9}",
        "", "bytes", "samples", "requests", "B/sample", "push ms", "store ms"
    );
    let what = "the day's backlog";
    row(
        what,
        (bytes, samples_sent(d), requests),
        push_cpu_ns(d.pid()),
    );
    println!("  caught up in {:.1} s", took.as_secs_f64());
}

/// Sends for `window` once caught up; prints what it cost, and per day.
fn steady(d: &ApiDaemon, receiver: &ScriptedReceiver, window: Duration) {
    let (cpu0, (n0, b0), s0) = (push_cpu_ns(d.pid()), sent(receiver), samples_sent(d));
    std::thread::sleep(window);
    let (cpu1, (n1, b1), s1) = (push_cpu_ns(d.pid()), sent(receiver), samples_sent(d));
    let what = format!("steady, {} s", window.as_secs());
    // The storage thread also stores the passes meanwhile: its share is an upper bound.
    let cpu = (cpu1.0 - cpu0.0, cpu1.1 - cpu0.1);
    row(&what, (b1 - b0, s1 - s0, n1 - n0), cpu);
    let n = (n1 - n0).max(1) as f64;
    let per_day = DAY as f64 / window.as_secs_f64();
    println!(
        "steady state per request: {:.0} B, {:.2} ms CPU pushing; per day (a request a minute): \
         {:.2} MB, {:.1} s CPU pushing",
        (b1 - b0) as f64 / n,
        cpu.0 as f64 / 1e6 / n,
        (b1 - b0) as f64 * per_day / 1e6,
        cpu.0 as f64 * per_day / 1e9
    );
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    if !is_root() {
        eprintln!("push benchmark: needs root (the daemon); skipped");
        return;
    }
    let quick = std::env::args().any(|a| a == "--quick");
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("history.db");
    let start = day_of_history(&db);
    let receiver = ScriptedReceiver::start(&[]);
    let url = format!("http://127.0.0.1:{}/api/v1/write", receiver.port);
    set_pushed(&db, &url, start);
    let cfg = dir.path().join("ebpfstatd.toml");
    let table = format!("[[remote_write]]\nurl = \"{url}\"\ninterval = \"1m\"\nstep = \"15s\"\n");
    std::fs::write(&cfg, table).expect("config");
    // The steady state's programs: real ones, loaded now (the day's were simulated).
    ebpfstat_tests::raise_fd_limit();
    let _fleet = Fleet::load("pb", PROGRAMS);
    let d = ApiDaemon::start_on_with(None, "1s", &db, &["--config", cfg.to_str().expect("utf-8")]);
    backlog(&d, &receiver);
    steady(
        &d,
        &receiver,
        Duration::from_secs(if quick { 60 } else { 300 }),
    );
    assert!(d.stop());
}
