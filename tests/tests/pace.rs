//! Pacing: passes slower than the sampler budget stretch the interval, say so in the log and
//! in status, and quick passes bring it back. A file of its own: its thousands of programs
//! would slow the passes of tests running beside it.

use std::time::{Duration, Instant};

use ebpfstat_tests::bus::ApiDaemon;
use ebpfstat_tests::terminal::{on_pty, visible};
use ebpfstat_tests::*;
use serde_json::Value;

fn ns(v: &Value, key: &str) -> u64 {
    v[key].as_u64().unwrap_or_else(|| panic!("{key} in {v}"))
}

/// Status, polled until `done` says yes (at most `limit`).
fn status_until(d: &ApiDaemon, limit: Duration, done: impl Fn(&Value) -> bool) -> Value {
    let until = Instant::now() + limit;
    loop {
        let s = d.ctl_json(&["status"]);
        if done(&s) {
            return s;
        }
        assert!(Instant::now() < until, "gave up waiting; status: {s}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn slow_passes_stretch_the_interval_and_quick_ones_bring_it_back() {
    require_bpf!();
    // Passes at 100 ms may take 1 % of one core: 1 ms each. A pass over 3000 programs makes
    // 12 000 syscalls (a microsecond or more each), so it cannot fit.
    let fleet = Fleet::load(&format!("pc{}_", tag()), 3000);
    let d = ApiDaemon::start_with(None, "100ms", &["--sampler-budget", "1%"]);
    let interval = 100_000_000;
    let s = status_until(&d, Duration::from_secs(60), |s| {
        ns(s, "paced_interval_ns") > interval
    });
    assert_eq!(
        ns(&s, "interval_ns"),
        interval,
        "the configured interval stays"
    );
    let paced = ns(&s, "paced_interval_ns");
    assert_eq!(paced % interval, 0, "a whole multiple: {s}");
    // The stretch fits the passes: they take at most 1 % of the interval in use.
    assert!(ns(&s, "pass_ns") > 1_000_000, "{s}");
    assert_eq!(s["sampler_budget_pct"].as_f64(), Some(1.0), "{s}");
    let log = d.log();
    assert!(
        log.contains(
            "more than the sampler budget (1% of one core) allows at 100ms: sampling every"
        ),
        "{log}"
    );
    // What a person sees.
    let socket = d.socket.to_str().expect("utf-8");
    let (screen, code) = on_pty(&bin("ebpfstatctl"), &["--socket", socket, "status"], 160);
    assert_eq!(code, 0, "{screen}");
    let screen = visible(&screen);
    let line = screen
        .lines()
        .find(|l| l.starts_with("sampling: every "))
        .unwrap_or_else(|| panic!("{screen}"));
    assert!(
        line.contains("(stretched from 100ms: passes take ")
            && line.contains("over the sampler budget of 1.00% of one core)"),
        "{line}"
    );

    // Without the programs, passes fit again and the interval comes back.
    drop(fleet);
    let s = status_until(&d, Duration::from_secs(90), |s| {
        ns(s, "paced_interval_ns") == interval
    });
    assert!(ns(&s, "pass_ns") < 1_000_000, "{s}");
    let log = d.log();
    assert!(log.contains("back to sampling every 100ms"), "{log}");
    assert!(d.stop());
}
