//! The arithmetic of per-interval and since-load values: small pure functions.

use ebpfstat_store::model::{Counters, avg_ns_per_run};
use serde::Serialize;

/// What happened between two passes, against the measured elapsed time.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Interval {
    pub delta_run_time_ns: u64,
    pub delta_run_cnt: u64,
    pub elapsed_ns: u64,
    /// `None` when the program did not run in the interval.
    pub avg_ns_per_run: Option<f64>,
    pub runs_per_sec: f64,
    /// 100 % is one core fully busy.
    pub cpu_pct: f64,
    /// 100 % is every online core fully busy.
    pub cpu_pct_all_cores: f64,
    /// What stats cost this program's runs in the interval (runs × calibrated cost), ns.
    pub stats_overhead_ns: f64,
}

/// Values since the program was loaded.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct SinceLoad {
    #[serde(rename = "avg_ns_per_run_since_load")]
    pub avg_ns_per_run: Option<f64>,
    /// Share of one core since load; a lower bound when stats were not on all along.
    pub cpu_pct_since_load: Option<f64>,
}

/// Share of one core, in percent, that `busy_ns` takes out of `elapsed_ns`.
pub fn cpu_pct(busy_ns: u64, elapsed_ns: u64) -> f64 {
    if elapsed_ns == 0 {
        return 0.0;
    }
    busy_ns as f64 * 100.0 / elapsed_ns as f64
}

/// The interval between `prev` and `now`; `None` when there is none to report: no time
/// elapsed, or counters went backwards (not the same program: treat `now` as a new baseline).
pub fn interval(
    prev: Counters,
    now: Counters,
    elapsed_ns: u64,
    online_cpus: u32,
) -> Option<Interval> {
    if elapsed_ns == 0 {
        return None;
    }
    let delta_run_time_ns = now.run_time_ns.checked_sub(prev.run_time_ns)?;
    let delta_run_cnt = now.run_cnt.checked_sub(prev.run_cnt)?;
    let cpu = cpu_pct(delta_run_time_ns, elapsed_ns);
    Some(Interval {
        delta_run_time_ns,
        delta_run_cnt,
        elapsed_ns,
        avg_ns_per_run: avg_ns_per_run(delta_run_time_ns, delta_run_cnt),
        runs_per_sec: delta_run_cnt as f64 * 1e9 / elapsed_ns as f64,
        cpu_pct: cpu,
        cpu_pct_all_cores: cpu / f64::from(online_cpus.max(1)),
        stats_overhead_ns: 0.0,
    })
}

/// The share of one core stats cost over an interval: `runs` observed, `cost_ns` each.
pub fn overhead_share(runs: u64, cost_ns: f64, elapsed_ns: u64) -> f64 {
    if elapsed_ns == 0 {
        return 0.0;
    }
    runs as f64 * cost_ns / elapsed_ns as f64
}

pub fn since_load(now: Counters, load_boot_ns: u64, now_boot_ns: u64) -> SinceLoad {
    let alive = now_boot_ns.saturating_sub(load_boot_ns);
    SinceLoad {
        avg_ns_per_run: avg_ns_per_run(now.run_time_ns, now.run_cnt),
        cpu_pct_since_load: (alive > 0).then(|| cpu_pct(now.run_time_ns, alive)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEC: u64 = 1_000_000_000;

    fn c(run_time_ns: u64, run_cnt: u64) -> Counters {
        Counters {
            run_time_ns,
            run_cnt,
        }
    }

    #[test]
    fn interval_uses_measured_elapsed_time() {
        // 1.5 s measured, not the 1 s configured: 300 runs → 200 runs/s.
        let i = interval(c(1_000, 100), c(31_000, 400), 3 * SEC / 2, 4).expect("interval");
        assert_eq!(i.delta_run_cnt, 300);
        assert_eq!(i.delta_run_time_ns, 30_000);
        assert_eq!(i.avg_ns_per_run, Some(100.0));
        assert!((i.runs_per_sec - 200.0).abs() < 1e-9);
        assert!((i.cpu_pct - 0.002).abs() < 1e-12);
        assert!((i.cpu_pct_all_cores - 0.0005).abs() < 1e-12);
    }

    #[test]
    fn half_a_core_is_fifty_percent() {
        let i = interval(c(0, 0), c(SEC / 2, 10), SEC, 2).expect("interval");
        assert_eq!(i.cpu_pct, 50.0);
        assert_eq!(i.cpu_pct_all_cores, 25.0);
    }

    #[test]
    fn idle_interval_has_no_average() {
        let i = interval(c(5, 1), c(5, 1), SEC, 1).expect("interval");
        assert_eq!(i.avg_ns_per_run, None);
        assert_eq!(i.runs_per_sec, 0.0);
        assert_eq!(i.cpu_pct, 0.0);
    }

    #[test]
    fn no_interval_without_time_or_with_counters_going_back() {
        assert_eq!(interval(c(0, 0), c(10, 1), 0, 1), None);
        assert_eq!(interval(c(10, 5), c(5, 6), SEC, 1), None);
        assert_eq!(interval(c(10, 5), c(50, 4), SEC, 1), None);
    }

    #[test]
    fn overhead_is_runs_times_cost() {
        // A million runs a second at 80 ns: 8 % of one core.
        let share = overhead_share(1_000_000, 80.0, SEC);
        assert!((share - 0.08).abs() < 1e-12);
        assert_eq!(overhead_share(5, 80.0, 0), 0.0);
    }

    #[test]
    fn since_load_values() {
        let s = since_load(c(SEC, 4), 10 * SEC, 14 * SEC);
        assert_eq!(s.avg_ns_per_run, Some(250_000_000.0));
        assert_eq!(s.cpu_pct_since_load, Some(25.0));
        let s = since_load(c(0, 0), 5, 5);
        assert_eq!(s.avg_ns_per_run, None);
        assert_eq!(s.cpu_pct_since_load, None);
    }
}
