//! `api` benchmark: D-Bus latency of top-N over 24 h and of a 7-day history at 1 minute, on a
//! store holding 500 programs × 7 days, through a real dbus-daemon to a real `ebpfstatd`; and
//! the wall time of `ebpfstatctl top` end to end.
//!
//! Run as root: `cargo build --release --workspace && cargo bench -p ebpfstat-tests --bench api`

use std::process::Command;
use std::time::{Duration, Instant};

use ebpfstat_dbus::Options;
use ebpfstat_numbers::WallNs;
use ebpfstat_store::Store;
use ebpfstat_tests::bus::{ApiDaemon, TestBus, open_tempdir, proxy_on};
use ebpfstat_tests::synthetic::Workload;
use ebpfstat_tests::{bin, is_root, store_config};

const DAY: u64 = 86_400;
const RUNS: usize = 200;

fn percentiles(mut v: Vec<f64>) -> (f64, f64) {
    v.sort_by(f64::total_cmp);
    let at = |percent: usize| v[(v.len() * percent / 100).min(v.len() - 1)];
    (at(50), at(99))
}

async fn timed<F, Fut>(runs: usize, mut f: F) -> (f64, f64)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = ()>,
{
    let mut v = Vec::with_capacity(runs);
    for _ in 0..runs {
        let t = Instant::now();
        f().await;
        v.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    percentiles(v)
}

#[expect(
    clippy::too_many_lines,
    reason = "one benchmark's setup, runs and table, read in the order they happen"
)]
fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    if !is_root() {
        eprintln!("api benchmark: needs root (the daemon samples real programs); skipped");
        return;
    }
    let quick = std::env::args().any(|a| a == "--quick");
    let days = if quick { 1 } else { 7 };

    // A store of 500 programs × `days` days, written by the store itself.
    let dir = open_tempdir();
    let db = dir.path().join("history.db");
    let sim_end = {
        let mut store = Store::open(store_config(&db)).expect("open");
        // Ending now: the daemon applies retention against the real clock.
        let start = std::time::SystemTime::now() - Duration::from_secs(days * DAY + 60);
        let mut work = Workload::starting("bench", 500, 0.2, start);
        store.ingest(work.host.tick()).expect("ingest");
        work.fill(&mut store, days * DAY, || {});
        work.host.wall() + Duration::from_secs(1)
    };

    let bus = TestBus::start();
    let daemon = ApiDaemon::start_on(Some(&bus), "1s", Some(&db));
    let address = bus.address.clone();
    let to = WallNs::of(sim_end).ns();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let ((top50, top99), (hist50, hist99), points) = rt.block_on(async move {
        let (_conn, p) = proxy_on(&address).await;
        let day = i64::try_from(DAY).expect("a day") * 1_000_000_000;
        let top = timed(RUNS, || async {
            let (_, rows) = p
                .top(to - day, to, "cpu", 10, Options::new())
                .await
                .expect("top");
            assert_eq!(rows.len(), 10);
        })
        .await;
        let mut n = 0;
        let mut times = Vec::new();
        for _ in 0..RUNS / 4 {
            let mut opts = Options::new();
            opts.insert("max_points".into(), zbus::OwnedVariant::from(20_000u32));
            let t = Instant::now();
            let (info, pts) = p
                .history(
                    "series:1",
                    to - i64::try_from(days).expect("days") * day,
                    to,
                    60_000_000_000,
                    opts,
                )
                .await
                .expect("history");
            times.push(t.elapsed().as_secs_f64() * 1000.0);
            assert_eq!(info.tier, "1m");
            n = pts.len();
        }
        let hist = percentiles(times);
        (top, hist, n)
    });

    let ctl_runs: Vec<f64> = (0..21)
        .map(|_| {
            let t = Instant::now();
            let out = Command::new(bin("ebpfstatctl"))
                .args(["--address", &bus.address, "top"])
                .output()
                .expect("ebpfstatctl");
            assert!(out.status.success());
            t.elapsed().as_secs_f64() * 1000.0
        })
        .collect();
    let (ctl50, ctl99) = percentiles(ctl_runs);
    assert!(daemon.stop());

    println!("\napi: D-Bus through a real dbus-daemon, store of 500 programs × {days} days");
    println!(
        "{:<40} {:>9} {:>9} {:>10}",
        "call", "p50 ms", "p99 ms", "target"
    );
    println!(
        "{:<40} {:>9.2} {:>9.2} {:>10}",
        "Top(24 h, cpu, 10)", top50, top99, "p99 ≤ 50"
    );
    println!(
        "{:<40} {:>9.2} {:>9.2} {:>10}",
        format!("History({days} d at 1 min: {points} points)"),
        hist50,
        hist99,
        "-"
    );
    println!(
        "{:<40} {:>9.2} {:>9.2} {:>10}",
        "`ebpfstatctl top` wall time", ctl50, ctl99, "-"
    );
    println!("api: top24h_p99_ms={top99:.2} history_p99_ms={hist99:.2} ctl_top_ms={ctl50:.2}");
}
