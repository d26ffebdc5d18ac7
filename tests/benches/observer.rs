//! `observer` benchmark: what run-time stats cost a busy program, with the daemon stopped, in
//! `always` mode and in `budget` mode, measured in the same run; and how close the daemon's
//! extrapolated rates come to the truth while it duty-cycles.
//!
//! Run as root: `cargo build --release --workspace && cargo bench -p ebpfstat-tests --bench observer`

use std::os::fd::AsFd;
use std::time::{Duration, Instant, SystemTime};

use ebpfstat_tests::bus::{ApiDaemon, find_by_name};
use ebpfstat_tests::{Fleet, PacedLoad, is_root};
use ebpfstatd::bpf::sys;
use serde_json::Value;

const MEASURE: Duration = Duration::from_secs(5);

/// Runs the program flat out for `MEASURE`: (mean ns per run as the kernel timed it, runs/s).
fn busy(fleet: &Fleet) -> (f64, f64) {
    let prog = fleet.programs[0].prog.as_fd();
    let packet = [0u8; 64];
    let (mut runs, mut ns) = (0u64, 0f64);
    let start = Instant::now();
    while start.elapsed() < MEASURE {
        let r = sys::prog_test_run(prog, &packet, 10_000).expect("test run");
        runs += 10_000;
        ns += f64::from(r.duration_ns) * 10_000.0;
    }
    (
        ns / runs as f64,
        runs as f64 / start.elapsed().as_secs_f64(),
    )
}

/// Runs the program at `rate` runs/s for `MEASURE`; returns the runs/s achieved.
fn paced(fleet: &Fleet, rate: u32) -> f64 {
    let load = PacedLoad::start(fleet.programs[0].prog.as_fd(), rate / 1000);
    std::thread::sleep(MEASURE);
    let (runs, took) = load.stop();
    runs as f64 / took.as_secs_f64()
}

/// The daemon's extrapolated runs/s of our program since `since`.
fn extrapolated(daemon: &ApiDaemon, since: SystemTime, name: &str) -> (f64, f64) {
    let since = humantime::format_rfc3339_nanos(since).to_string();
    let rows = daemon.ctl_json(&["top", "--since", &since, "-n", "10000", "--sort", "runs"]);
    let row = find_by_name(&rows, name).cloned().unwrap_or(Value::Null);
    (
        row["rates"]["est_runs_per_sec"].as_f64().unwrap_or(0.0),
        row["rates"]["coverage"].as_f64().unwrap_or(0.0),
    )
}

struct Row {
    mode: &'static str,
    ns_per_run: f64,
    runs_per_sec: f64,
    paced_truth: f64,
    paced_estimate: Option<(f64, f64)>,
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    if !is_root() {
        eprintln!("observer benchmark: needs root; skipped");
        return;
    }
    // Nothing of ours holds stats: the fleet is unheld.
    let fleet = Fleet::load_unheld("obs_", 1);
    let name = fleet.programs[0].name.clone();
    let paced_rate = 500_000;
    let mut rows = Vec::new();
    for mode in ["stopped", "always", "budget 1%"] {
        let daemon = match mode {
            "stopped" => None,
            "always" => Some(ApiDaemon::start_with(
                None,
                "1s",
                &["--stats-mode", "always"],
            )),
            _ => Some(ApiDaemon::start_with(
                None,
                "1s",
                &["--stats-mode", "budget"],
            )),
        };
        std::thread::sleep(Duration::from_secs(2));
        let (ns_per_run, runs_per_sec) = busy(&fleet);
        // A steady load the daemon's extrapolation can be checked against, measured once the
        // duty cycle has settled on it.
        paced(&fleet, paced_rate);
        let since = SystemTime::now();
        let paced_truth = paced(&fleet, paced_rate);
        let paced_estimate = daemon.as_ref().map(|d| extrapolated(d, since, &name));
        if let Some(d) = daemon {
            d.stop();
        }
        rows.push(Row {
            mode,
            ns_per_run,
            runs_per_sec,
            paced_truth,
            paced_estimate,
        });
    }
    let base = rows[0].ns_per_run;
    println!("\nobserver: one socket filter run flat out with BPF_PROG_TEST_RUN for 5 s per mode");
    println!(
        "{:<10} {:>10} {:>12} {:>12} | {:>14} {:>14} {:>9} {:>7}",
        "mode",
        "ns/run",
        "overhead ns",
        "runs/s",
        "paced true/s",
        "extrapolated/s",
        "coverage",
        "error"
    );
    for r in &rows {
        let (est, cov) = r.paced_estimate.unwrap_or((f64::NAN, f64::NAN));
        println!(
            "{:<10} {:>10.1} {:>12.1} {:>12.0} | {:>14.0} {:>14.0} {:>9.3} {:>6.1}%",
            r.mode,
            r.ns_per_run,
            r.ns_per_run - base,
            r.runs_per_sec,
            r.paced_truth,
            est,
            cov,
            (est - r.paced_truth) / r.paced_truth * 100.0
        );
    }
    let always = rows[1].ns_per_run - base;
    let budget = rows[2].ns_per_run - base;
    println!(
        "observer: stats_cost_always_ns={always:.1} stats_cost_budget_ns={budget:.1} \
         (the budget mode keeps a program that would pay {:.1} % of a core at the 1 % budget)",
        always / (always + base) * 100.0
    );
}
