//! `top` benchmark: what one open interactive `ebpfstatctl top` costs the daemon, measured from
//! outside (the daemon's CPU time from /proc) against the same daemon with no view open in the
//! same run; and the view's own CPU and memory. The daemon holds 300 real socket filters (a
//! fifth of them run every 0.5 s) at 1 s passes, on a store prefilled with a day of 300
//! earlier programs (so the 1-day window and the charts read stored tiers).
//!
//! Run as root: `cargo build --release --workspace && cargo bench -p ebpfstat-tests --bench top`
//! (`-- --seconds S` per view, default 30; `-- --days D` of prefilled history, default 1).

use std::time::{Duration, Instant};

use ebpfstat_store::Store;
use ebpfstat_tests::bus::{ApiDaemon, open_tempdir};
use ebpfstat_tests::synthetic::Workload;
use ebpfstat_tests::terminal::Tmux;
use ebpfstat_tests::{Fleet, bin, cpu_ns, is_root, status_kb, store_config};

const PROGRAMS: usize = 300;
const DAY: u64 = 86_400;

fn arg(name: &str, default: u64) -> u64 {
    std::env::args()
        .skip_while(|a| a != name)
        .nth(1)
        .map_or(default, |v| v.parse().expect("a number"))
}

/// What the person does to reach a view, and what the screen shows once it is there.
struct View {
    label: &'static str,
    args: &'static str,
    keys: &'static [&'static str],
    shown: &'static str,
}

const VIEWS: [View; 5] = [
    View {
        label: "table, last interval",
        args: "",
        keys: &[],
        shown: "programs loaded",
    },
    View {
        label: "table, last 1m",
        args: "--window 1m",
        keys: &[],
        shown: "last 1m · sort",
    },
    View {
        label: "table, last 1d",
        args: "--window 1d",
        keys: &[],
        shown: "last 1day, ranked every 1m · sort",
    },
    View {
        label: "chart, last 1h",
        args: "--window 1d",
        keys: &["Enter"],
        shown: "average per run: now",
    },
    View {
        label: "chart, last 7d",
        args: "--window 1d",
        keys: &["Enter", "w", "w", "w"],
        shown: "· last 7days · step",
    },
];

struct Row {
    label: &'static str,
    daemon_pct: f64,
    ctl_pct: f64,
    ctl_rss_kib: u64,
}

/// The daemon's CPU % of one core over `secs`, while a fifth of the fleet runs every 0.5 s.
fn daemon_cpu(fleet: &Fleet, pid: i32, secs: u64) -> f64 {
    let start = (Instant::now(), cpu_ns(pid));
    while start.0.elapsed() < Duration::from_secs(secs) {
        for i in 0..PROGRAMS / 5 {
            fleet.drive(i, 1);
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    (cpu_ns(pid) - start.1) as f64 / start.0.elapsed().as_nanos() as f64 * 100.0
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
        eprintln!("top benchmark: needs root (the daemon samples real programs); skipped");
        return;
    }
    if !Tmux::available("top benchmark") {
        return;
    }
    let secs = arg("--seconds", 30);
    let days = arg("--days", 1);

    let dir = open_tempdir();
    let db = dir.path().join("history.db");
    {
        let mut store = Store::open(store_config(&db)).expect("open");
        let start = std::time::SystemTime::now() - Duration::from_secs(days * DAY + 60);
        let mut work = Workload::starting("bench", PROGRAMS, 0.2, start);
        store.ingest(work.host.tick()).expect("ingest");
        work.fill(&mut store, days * DAY, || {});
    }
    let fleet = Fleet::load("tb_", PROGRAMS);
    let d = ApiDaemon::start_on_with(None, "1s", &db, &["--flush-interval", "1m"]);
    let pid = d.pid();
    std::thread::sleep(Duration::from_secs(5));

    let mut rows = vec![Row {
        label: "no view (the floor)",
        daemon_pct: daemon_cpu(&fleet, pid, secs),
        ctl_pct: 0.0,
        ctl_rss_kib: 0,
    }];
    for v in &VIEWS {
        let t = Tmux::start(120, 40);
        t.type_line(&format!(
            "{} --socket {} top {}",
            bin("ebpfstatctl").display(),
            d.socket.display(),
            v.args
        ));
        t.wait_for("the table", |s| {
            s.contains("of ") && s.contains(" programs")
        });
        for k in v.keys {
            t.keys(&[k]);
            std::thread::sleep(Duration::from_millis(300));
        }
        t.wait_for(v.label, |s| s.contains(v.shown));
        let ctl = t.foreground_pid();
        std::thread::sleep(Duration::from_secs(2));
        let c0 = cpu_ns(ctl);
        let daemon_pct = daemon_cpu(&fleet, pid, secs);
        let ctl_pct = (cpu_ns(ctl) - c0) as f64 / (secs as f64 * 1e9) * 100.0;
        rows.push(Row {
            label: v.label,
            daemon_pct,
            ctl_pct,
            ctl_rss_kib: status_kb(ctl, "VmHWM:"),
        });
        t.keys(&["C-c"]);
    }
    assert!(d.stop());

    println!(
        "top: one interactive view open on a release ebpfstatd at 1 s, {PROGRAMS} programs \
         loaded (a fifth run every 0.5 s), {days} day(s) of {PROGRAMS} earlier programs stored; \
         {secs} s per view, CPU from /proc"
    );
    println!(
        "{:<22} {:>13} {:>14} {:>9} {:>11} {:>14}",
        "view", "daemon CPU %", "extra (pts)", "ratio", "view CPU %", "view HWM MiB"
    );
    let floor = rows[0].daemon_pct;
    for r in &rows {
        println!(
            "{:<22} {:>13.3} {:>14.3} {:>9.2} {:>11.3} {:>14.1}",
            r.label,
            r.daemon_pct,
            r.daemon_pct - floor,
            r.daemon_pct / floor,
            r.ctl_pct,
            r.ctl_rss_kib as f64 / 1024.0
        );
    }
}
