//! What run-time statistics cost the host: calibration, the overhead estimate, duty-cycling
//! within a budget, extrapolated rates, and another holder of stats — with real programs.
//!
//! The tests here take turns (a lock): each decides who holds stats on.

use std::os::fd::AsFd;
use std::process::Command;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use ebpfstat_tests::bus::{self, ApiDaemon, by_name};
use ebpfstat_tests::*;
use ebpfstatd::observer::{self, Probe};
use ebpfstatd::sampler::stats::{StatsCost, StatsSwitch};
use ebpfstatd::sampler::{Sampler, SamplerConfig};

static TURN: Mutex<()> = Mutex::new(());

fn turn() -> std::sync::MutexGuard<'static, ()> {
    TURN.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[test]
fn calibration_is_positive_and_stable() {
    require_bpf!();
    let _turn = turn();
    let mut switch = StatsSwitch::acquire(std::path::Path::new("/proc"));
    let probe = Probe::load().expect("probe");
    let a = observer::calibrate(&mut switch, &probe, 7, 200_000);
    let b = observer::calibrate(&mut switch, &probe, 7, 200_000);
    assert!(a.measured() && b.measured(), "{a:?} {b:?}");
    assert!(a.ns_per_run > 5.0 && b.ns_per_run > 5.0, "{a:?} {b:?}");
    let mean = (a.ns_per_run + b.ns_per_run) / 2.0;
    assert!(
        (a.ns_per_run - b.ns_per_run).abs() <= (0.35 * mean).max(20.0),
        "unstable: {a:?} {b:?}"
    );
    assert!(switch.held(), "the hold is given back");
    eprintln!(
        "stats cost {:.1} and {:.1} ns per run",
        a.ns_per_run, b.ns_per_run
    );
}

#[test]
fn the_overhead_estimate_is_runs_times_cost() {
    require_bpf!();
    let _turn = turn();
    let fleet = Fleet::load(&format!("oh{}_", tag()), 2);
    let mut sampler = Sampler::new(SamplerConfig {
        rescan_every: ebpfstatd::config::Effective::default().rescan_every,
    });
    let cost = StatsCost {
        ns_per_run: 80.0,
        spread_ns: 0.0,
        rounds: 1,
        source: "measured".into(),
    };
    sampler.set_cost(cost);
    sampler.pass();
    fleet.drive(0, 40);
    fleet.drive(1, 7);
    let pass = sampler.pass();
    let mut runs = 0;
    for p in &pass.programs {
        let i = p.interval.expect("interval");
        assert_eq!(i.stats_overhead_ns, i.delta_run_cnt as f64 * 80.0);
        runs += i.delta_run_cnt;
    }
    let ours: Vec<u64> = fleet
        .programs
        .iter()
        .map(|f| {
            let p = pass
                .programs
                .iter()
                .find(|p| p.meta.id == f.id)
                .expect("ours");
            p.interval.expect("interval").delta_run_cnt
        })
        .collect();
    assert_eq!(ours, vec![40, 7]);
    let elapsed = pass.elapsed_ns.expect("elapsed") as f64;
    let share = pass.stats_overhead.expect("overhead").0;
    assert!((share - runs as f64 * 80.0 / elapsed).abs() < 1e-12);
}

fn wait_for(what: &str, secs: u64, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !ok() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn a_tiny_budget_duty_cycles_extrapolates_and_recovers() {
    require_bpf!();
    let _turn = turn();
    // Nobody else holds stats: this fleet does not, and the other tests wait their turn.
    let fleet = Fleet::load_unheld(&format!("dc{}_", tag()), 1);
    let name = fleet.programs[0].name.clone();
    let daemon = ApiDaemon::start_with(
        None,
        "500ms",
        &["--stats-mode", "budget", "--stats-overhead-budget", "0.1%"],
    );
    // 200 000 runs a second (200 every millisecond): about 1.5 % of a core at ~75 ns a run,
    // far over a 0.1 % budget.
    let load = PacedLoad::start(fleet.programs[0].prog.as_fd(), 200);
    wait_for("duty-cycling", 15, || {
        let st = daemon.ctl_json(&["status"]);
        st["stats_state"]
            .as_str()
            .is_some_and(|s| s.starts_with("duty-cycled"))
    });
    // Let it settle, then compare the extrapolated rate with the true one over 5 s.
    std::thread::sleep(Duration::from_secs(2));
    let before = load.runs();
    let t0 = Instant::now();
    let since = humantime::format_rfc3339_nanos(std::time::SystemTime::now()).to_string();
    std::thread::sleep(Duration::from_secs(5));
    let truth = (load.runs() - before) as f64 / t0.elapsed().as_secs_f64();
    let top = daemon.ctl_json(&["top", "--since", &since, "--sort", "runs", "-n", "10000"]);
    let row = by_name(&top, &name);
    let rates = &row["rates"];
    assert_eq!(rates["estimated"], true, "{row}");
    let coverage = rates["coverage"].as_f64().expect("coverage");
    assert!(coverage > 0.01 && coverage < 0.5, "coverage {coverage}");
    let est = rates["est_runs_per_sec"].as_f64().expect("estimate");
    eprintln!("true {truth:.0} runs/s, extrapolated {est:.0} runs/s at coverage {coverage:.3}");
    assert!(
        (est - truth).abs() / truth < 0.20,
        "true {truth:.0}, extrapolated {est:.0}"
    );
    // The cost of stats stays near the budget: what they cost while on.
    let st = daemon.ctl_json(&["status"]);
    assert!(st["stats_cost_source"] == "measured", "{st}");
    // Stored: the raw history of the window carries its coverage.
    let h = daemon.ctl_json(&["history", &name, "--since", "20s", "--step", "1s"]);
    let partial = h["points"]
        .as_array()
        .expect("points")
        .iter()
        .filter(|p| p["samples"].as_u64() > Some(0))
        .filter(|p| p["rates"]["estimated"] == true)
        .count();
    assert!(partial >= 5, "{partial} estimated points");

    // The load stops: stats are held all the time again.
    load.stop();
    wait_for("always-on again", 15, || {
        let st = daemon.ctl_json(&["status"]);
        st["stats_state"] == "enabled" && st["stats_coverage"].as_f64() == Some(1.0)
    });
    assert!(daemon.stop());
}

#[test]
fn another_holder_of_stats_is_detected() {
    require_bpf!();
    let _turn = turn();
    let fleet = Fleet::load_unheld(&format!("ho{}_", tag()), 1);
    let daemon = ApiDaemon::start_with(None, "500ms", &["--stats-overhead-budget", "0.1%"]);
    let load = PacedLoad::start(fleet.programs[0].prog.as_fd(), 200);
    wait_for("duty-cycling", 15, || {
        daemon.ctl_json(&["status"])["stats_state"]
            .as_str()
            .is_some_and(|s| s.starts_with("duty-cycled"))
    });
    // A separate process holds stats on with its own fd: `ebpfstatd sample` does.
    let mut other = Command::new(bin("ebpfstatd"))
        .args(["sample", "--count", "60", "--interval", "1s"])
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("another holder");
    wait_for("the other holder to be seen", 15, || {
        let st = daemon.ctl_json(&["status"]);
        st["stats_state"] == "enabled-by-other-holder" && st["stats_other_holder"] == true
    });
    let _ = other.kill();
    let _ = other.wait();
    wait_for("duty-cycling again", 15, || {
        daemon.ctl_json(&["status"])["stats_state"]
            .as_str()
            .is_some_and(|s| s.starts_with("duty-cycled"))
    });
    load.stop();
    assert!(daemon.stop());
}

#[test]
fn calibrate_over_the_api_measures_and_the_daemon_keeps_sampling() {
    require_bpf!();
    let _turn = turn();
    let daemon = ApiDaemon::start_with(None, "200ms", &[]);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let (_conn, p) = bus::proxy_on_socket(&daemon.socket).await;
        let (ns_per_run, spread_ns, source) = p.calibrate().await.expect("Calibrate");
        assert_eq!(source, "measured");
        assert!(ns_per_run > 5.0, "{ns_per_run}");
        assert!(spread_ns >= 0.0, "{spread_ns}");
        let passes = || async {
            let st = p.status().await.expect("Status");
            u64::try_from(st.get("passes").expect("passes")).expect("u64")
        };
        let before = passes().await;
        tokio::time::sleep(Duration::from_millis(600)).await;
        assert!(passes().await > before, "sampling stopped after Calibrate");
    });
}

/// Polls `read` (up to `secs`) until it returns a value `ok` accepts; that value.
async fn eventually<F: Future<Output = String>>(
    what: &str,
    secs: u64,
    mut read: impl FnMut() -> F,
    ok: impl Fn(&str) -> bool,
) -> String {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let v = read().await;
        if ok(&v) {
            return v;
        }
        assert!(Instant::now() < deadline, "{what}: still {v:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[test]
fn caching_proxies_never_read_a_stale_stats_state() {
    require_bpf!();
    let _turn = turn();
    let fleet = Fleet::load_unheld(&format!("ps{}_", tag()), 1);
    let test_bus = bus::TestBus::start();
    let daemon = ApiDaemon::start_with(
        Some(&test_bus),
        "500ms",
        &["--stats-mode", "budget", "--stats-overhead-budget", "0.1%"],
    );
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        // zbus proxies cache properties and keep the cache current from PropertiesChanged
        // alone: one on the bus, one on the private socket.
        let (_bus_conn, on_bus) = bus::proxy_on(&test_bus.address).await;
        let (_peer_conn, on_socket) = bus::proxy_on_socket(&daemon.socket).await;
        for p in [&on_bus, &on_socket] {
            assert_eq!(p.stats_state().await.expect("StatsState"), "enabled");
            assert!(
                p.cached_stats_state().expect("cache").is_some(),
                "the proxy caches StatsState"
            );
        }
        // The truth, from a method call (never cached): the state the newest pass reports.
        let truth = || async {
            let st = on_socket.status().await.expect("Status");
            <&str>::try_from(st.get("stats_state").expect("stats_state"))
                .expect("a string")
                .to_owned()
        };
        let load = PacedLoad::start(fleet.programs[0].prog.as_fd(), 200);
        eventually("the daemon to duty-cycle", 15, truth, |s| {
            s.starts_with("duty-cycled")
        })
        .await;
        for p in [&on_bus, &on_socket] {
            let cached = || async { p.stats_state().await.expect("StatsState") };
            eventually("the cached StatsState to follow", 2, cached, |s| {
                s.starts_with("duty-cycled")
            })
            .await;
        }
        load.stop();
        eventually("stats held all the time again", 15, truth, |s| {
            s == "enabled"
        })
        .await;
        for p in [&on_bus, &on_socket] {
            let cached = || async { p.stats_state().await.expect("StatsState") };
            eventually("the cached StatsState to come back", 2, cached, |s| {
                s == "enabled"
            })
            .await;
        }
        // Fixed for the daemon's life, so cached as they are: the kernel and its memlock.
        let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").expect("release");
        assert_eq!(on_bus.kernel().await.expect("Kernel"), kernel.trim());
    });
    assert!(daemon.stop());
}
