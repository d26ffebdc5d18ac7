//! From counters to what people read: runs per second, CPU % of one core, the average cost of
//! a run and what run-time statistics cost, over an interval between two passes, since a
//! program was loaded, or over a window of stored history. Each is defined here once.

use std::time::Duration;

use serde::Serialize;

/// Nanoseconds in a second.
const NS_PER_SEC: f64 = 1e9;

/// Cumulative counters as the kernel reports them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Counters {
    pub run_time_ns: u64,
    pub run_cnt: u64,
}

/// A share of one CPU core (or of an interval) as a fraction: 1 is one core busy all along.
/// Written for people and on the wire as percent ([`Share::percent`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, PartialOrd, Serialize)]
#[serde(transparent)]
pub struct Share(pub f64);

impl Share {
    /// From percent (100 is one core).
    pub fn from_percent(pct: f64) -> Self {
        Self(pct / 100.0)
    }

    /// As percent (100 is one core).
    pub fn percent(self) -> f64 {
        self.0 * 100.0
    }
}

/// A ratio of two values (after / before) as a change in percent: 1.35 is +35 %.
pub fn change_pct(ratio: f64) -> f64 {
    (ratio - 1.0) * 100.0
}

/// Runs (or any count) per second over `elapsed_ns`; 0 over no time.
pub fn per_sec(count: f64, elapsed_ns: f64) -> f64 {
    if elapsed_ns > 0.0 {
        count * NS_PER_SEC / elapsed_ns
    } else {
        0.0
    }
}

/// The share of one core, in percent, that `busy_ns` of run time takes of `elapsed_ns` of wall
/// time (100 % is one core busy); 0 over no time.
pub fn cpu_pct(busy_ns: f64, elapsed_ns: f64) -> f64 {
    if elapsed_ns > 0.0 {
        busy_ns * 100.0 / elapsed_ns
    } else {
        0.0
    }
}

/// The share of one core, in percent, of a rate of run time (ns of run time per second).
pub fn cpu_pct_of_rate(busy_ns_per_sec: f64) -> f64 {
    busy_ns_per_sec / (NS_PER_SEC / 100.0)
}

/// Mean run time per run; `None` when the program did not run.
pub fn avg_ns_per_run(run_time_ns: u64, run_cnt: u64) -> Option<f64> {
    (run_cnt > 0).then(|| run_time_ns as f64 / run_cnt as f64)
}

/// How full a map is: its entries as a percentage of its max entries (0 for a map that can
/// hold none).
pub fn fill_pct(entries: u64, max_entries: u32) -> f64 {
    if max_entries == 0 {
        return 0.0;
    }
    entries as f64 * 100.0 / f64::from(max_entries)
}

/// What stats cost: `runs` observed at `cost_ns` each, ns.
pub fn overhead_ns(runs: u64, cost_ns: f64) -> f64 {
    runs as f64 * cost_ns
}

/// What stats cost over `elapsed_ns`, as a share of one core: `runs` at `cost_ns` each.
pub fn overhead_share(runs: u64, cost_ns: f64, elapsed_ns: u64) -> Share {
    if elapsed_ns == 0 {
        return Share(0.0);
    }
    Share(overhead_ns(runs, cost_ns) / elapsed_ns as f64)
}

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

/// The interval between `prev` and `now` over `elapsed_ns` with stats costing `cost_ns` a
/// run; `None` when there is none to report: no time elapsed, or counters went backwards (not
/// the same program: `now` is a new baseline).
pub fn interval(
    prev: Counters,
    now: Counters,
    elapsed_ns: u64,
    online_cpus: u32,
    cost_ns: f64,
) -> Option<Interval> {
    if elapsed_ns == 0 {
        return None;
    }
    let delta_run_time_ns = now.run_time_ns.checked_sub(prev.run_time_ns)?;
    let delta_run_cnt = now.run_cnt.checked_sub(prev.run_cnt)?;
    let elapsed = elapsed_ns as f64;
    let cpu = cpu_pct(delta_run_time_ns as f64, elapsed);
    Some(Interval {
        delta_run_time_ns,
        delta_run_cnt,
        elapsed_ns,
        avg_ns_per_run: avg_ns_per_run(delta_run_time_ns, delta_run_cnt),
        runs_per_sec: per_sec(delta_run_cnt as f64, elapsed),
        cpu_pct: cpu,
        cpu_pct_all_cores: cpu / f64::from(online_cpus.max(1)),
        stats_overhead_ns: overhead_ns(delta_run_cnt, cost_ns),
    })
}

/// Values since the program was loaded.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct SinceLoad {
    #[serde(rename = "avg_ns_per_run_since_load")]
    pub avg_ns_per_run: Option<f64>,
    /// Share of one core since load, percent; a lower bound when stats were not on all along.
    pub cpu_pct_since_load: Option<f64>,
    /// Runs per second since load.
    #[serde(skip)]
    pub runs_per_sec: Option<f64>,
}

/// The values since load of a program loaded at `load_ns` on a clock that reads `now_ns`
/// (the boot clock, or the wall clock: the same clock for both).
pub fn since_load(now: Counters, load_ns: i128, now_ns: i128) -> SinceLoad {
    let alive = u64::try_from(now_ns.saturating_sub(load_ns)).unwrap_or(0);
    let alive = (alive > 0).then_some(alive as f64);
    SinceLoad {
        avg_ns_per_run: avg_ns_per_run(now.run_time_ns, now.run_cnt),
        cpu_pct_since_load: alive.map(|a| cpu_pct(now.run_time_ns as f64, a)),
        runs_per_sec: alive.map(|a| per_sec(now.run_cnt as f64, a)),
    }
}

/// What was summed over a window of history for one program (or one step of its history).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Totals {
    pub run_cnt: u64,
    pub run_time_ns: u64,
    /// The share of the observed time stats were on, 0..=1.
    pub coverage: f64,
    /// The time the samples cover: the rates' denominator.
    pub observed: Duration,
    /// What stats cost those runs, ns.
    pub stats_overhead_ns: f64,
}

/// Rates of a window over its observed time: as observed, and extrapolated to the whole time
/// when stats were on for only part of it (duty-cycling); and what stats cost while on.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Rates {
    pub runs_per_sec: f64,
    /// Of one core (100 = one core busy).
    pub cpu_pct: f64,
    /// Share of the time stats were on (1: everything was observed).
    pub coverage: f64,
    /// True when the `est_*` values are extrapolated from partial coverage.
    pub estimated: bool,
    pub est_run_cnt: u64,
    pub est_run_time_ns: u64,
    pub est_runs_per_sec: f64,
    pub est_cpu_pct: f64,
    /// What stats cost the observed runs: runs × calibrated cost per run.
    pub stats_overhead_ns: f64,
    /// The same as a share of one core over the time, percent.
    pub stats_overhead_pct: f64,
}

/// Coverage below this is partial: the window's values are extrapolated.
const FULL_COVERAGE: f64 = 0.999;

/// A non-negative float rounded to a count (`as` saturates; NaN is 0).
#[expect(
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss,
    reason = "float to integer `as` saturates, which is what a count wants"
)]
fn round_count(v: f64) -> u64 {
    v.round() as u64
}

impl Rates {
    /// The rates of `t` over its observed time.
    pub fn over(t: &Totals) -> Self {
        let secs = t.observed.as_secs_f64();
        let per_sec = |v: f64| if secs > 0.0 { v / secs } else { 0.0 };
        let pct = |ns: f64| cpu_pct_of_rate(per_sec(ns));
        let scale = if t.coverage > 0.0 {
            1.0 / t.coverage
        } else {
            0.0
        };
        let (cnt, rt) = (t.run_cnt as f64, t.run_time_ns as f64);
        Self {
            runs_per_sec: per_sec(cnt),
            cpu_pct: pct(rt),
            coverage: t.coverage,
            estimated: t.coverage < FULL_COVERAGE,
            est_run_cnt: round_count(cnt * scale),
            est_run_time_ns: round_count(rt * scale),
            est_runs_per_sec: per_sec(cnt * scale),
            est_cpu_pct: pct(rt * scale),
            stats_overhead_ns: t.stats_overhead_ns,
            stats_overhead_pct: pct(t.stats_overhead_ns),
        }
    }
}

/// What a ranking over a window adds up to, over every program it matched (not only those
/// shown): the time observed (the longest any of them was seen) and what stats cost them all.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Overall {
    pub programs: u64,
    pub observed_ns: u64,
    pub stats_overhead_ns: f64,
    /// Of one core over the time observed, percent.
    pub stats_overhead_pct: f64,
}

impl Overall {
    /// Over `(observed_ns, stats_overhead_ns)` of each program.
    pub fn of(programs: impl IntoIterator<Item = (u64, f64)>) -> Self {
        let mut o = Self::default();
        for (observed_ns, overhead_ns) in programs {
            o.programs += 1;
            o.observed_ns = o.observed_ns.max(observed_ns);
            o.stats_overhead_ns += overhead_ns;
        }
        o.stats_overhead_pct = o.stats_overhead_ns / (o.observed_ns as f64).max(1.0) * 100.0;
        o
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEC: u64 = 1_000_000_000;

    #[test]
    fn fill_of_a_map() {
        assert_eq!(fill_pct(900, 1000), 90.0);
        assert_eq!(fill_pct(0, 1000), 0.0);
        assert_eq!(fill_pct(5, 0), 0.0);
    }

    fn c(run_time_ns: u64, run_cnt: u64) -> Counters {
        Counters {
            run_time_ns,
            run_cnt,
        }
    }

    #[test]
    fn interval_uses_measured_elapsed_time() {
        // 1.5 s measured, not the 1 s configured: 300 runs → 200 runs/s.
        let i = interval(c(1_000, 100), c(31_000, 400), 3 * SEC / 2, 4, 80.0).expect("interval");
        assert_eq!(i.delta_run_cnt, 300);
        assert_eq!(i.delta_run_time_ns, 30_000);
        assert_eq!(i.avg_ns_per_run, Some(100.0));
        assert!((i.runs_per_sec - 200.0).abs() < 1e-9);
        assert!((i.cpu_pct - 0.002).abs() < 1e-12);
        assert!((i.cpu_pct_all_cores - 0.0005).abs() < 1e-12);
        assert_eq!(i.stats_overhead_ns, 24_000.0);
    }

    #[test]
    fn half_a_core_is_fifty_percent() {
        let i = interval(c(0, 0), c(SEC / 2, 10), SEC, 2, 0.0).expect("interval");
        assert_eq!(i.cpu_pct, 50.0);
        assert_eq!(i.cpu_pct_all_cores, 25.0);
    }

    #[test]
    fn idle_interval_has_no_average() {
        let i = interval(c(5, 1), c(5, 1), SEC, 1, 0.0).expect("interval");
        assert_eq!(i.avg_ns_per_run, None);
        assert_eq!(i.runs_per_sec, 0.0);
        assert_eq!(i.cpu_pct, 0.0);
    }

    #[test]
    fn no_interval_without_time_or_with_counters_going_back() {
        assert_eq!(interval(c(0, 0), c(10, 1), 0, 1, 0.0), None);
        assert_eq!(interval(c(10, 5), c(5, 6), SEC, 1, 0.0), None);
        assert_eq!(interval(c(10, 5), c(50, 4), SEC, 1, 0.0), None);
    }

    #[test]
    fn overhead_is_runs_times_cost() {
        // A million runs a second at 80 ns: 8 % of one core.
        let share = overhead_share(1_000_000, 80.0, SEC);
        assert!((share.0 - 0.08).abs() < 1e-12);
        assert!((share.percent() - 8.0).abs() < 1e-9);
        assert_eq!(overhead_share(5, 80.0, 0), Share(0.0));
    }

    #[test]
    fn since_load_values() {
        let s = since_load(c(SEC, 4), 10 * i128::from(SEC), 14 * i128::from(SEC));
        assert_eq!(s.avg_ns_per_run, Some(250_000_000.0));
        assert_eq!(s.cpu_pct_since_load, Some(25.0));
        assert_eq!(s.runs_per_sec, Some(1.0));
        let s = since_load(c(0, 0), 5, 5);
        assert_eq!(s.avg_ns_per_run, None);
        assert_eq!(s.cpu_pct_since_load, None);
        // A clock that reads before the load (a wall clock set back) says nothing.
        assert_eq!(since_load(c(9, 3), 5, 4).cpu_pct_since_load, None);
    }

    #[test]
    fn window_rates_extrapolate_partial_coverage() {
        let r = Rates::over(&Totals {
            run_cnt: 500,
            run_time_ns: SEC / 20,
            coverage: 0.5,
            observed: Duration::from_secs(10),
            stats_overhead_ns: 40_000.0,
        });
        assert_eq!(r.runs_per_sec, 50.0);
        assert!((r.cpu_pct - 0.5).abs() < 1e-12);
        assert!(r.estimated);
        assert_eq!((r.est_run_cnt, r.est_run_time_ns), (1000, SEC / 10));
        assert!((r.est_cpu_pct - 1.0).abs() < 1e-12);
        assert!((r.stats_overhead_pct - 0.0004).abs() < 1e-12);
        let none = Rates::over(&Totals::default());
        assert_eq!((none.runs_per_sec, none.est_run_cnt), (0.0, 0));
    }

    #[test]
    fn overall_is_the_longest_observed_and_the_sum_of_costs() {
        let o = Overall::of([(2 * SEC, 1e6), (SEC, 3e6)]);
        assert_eq!(
            (o.programs, o.observed_ns, o.stats_overhead_ns),
            (2, 2 * SEC, 4e6)
        );
        assert!((o.stats_overhead_pct - 0.2).abs() < 1e-12);
        assert_eq!(Overall::of([]).stats_overhead_pct, 0.0);
    }

    #[test]
    fn a_rate_of_run_time_is_a_share_of_one_core() {
        assert_eq!(cpu_pct_of_rate(1e7), 1.0);
        assert_eq!(per_sec(10.0, 0.0), 0.0);
        assert_eq!(Share::from_percent(50.0), Share(0.5));
    }
}
