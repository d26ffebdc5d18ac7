//! The chart view's numbers: which range and step to ask for, and the lines (with gaps) and
//! reload marks drawn from a History answer. Pure, tested without a terminal.

use std::time::Duration;

use ebpfstat_dbus as wire;

/// How far back a chart reaches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Span {
    Last(Duration),
    /// Everything retained of the program (found from its first sample).
    All,
}

pub const SPANS: [Span; 7] = [
    Span::Last(Duration::from_secs(60)),
    Span::Last(Duration::from_secs(300)),
    Span::Last(Duration::from_secs(3600)),
    Span::Last(Duration::from_secs(6 * 3600)),
    Span::Last(Duration::from_secs(86_400)),
    Span::Last(Duration::from_secs(7 * 86_400)),
    Span::All,
];

/// The span a chart opens with.
pub const FIRST_SPAN: usize = 2;

impl Span {
    pub fn label(self) -> String {
        match self {
            Self::Last(d) => format!("last {}", humantime::format_duration(d)),
            Self::All => "all retained".into(),
        }
    }
}

/// The three charted metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Metric {
    RunsPerSec,
    AvgNs,
    Cpu,
}

pub const METRICS: [Metric; 3] = [Metric::RunsPerSec, Metric::AvgNs, Metric::Cpu];

impl Metric {
    pub fn title(self) -> &'static str {
        match self {
            Self::RunsPerSec => "runs/s",
            Self::AvgNs => "average per run",
            Self::Cpu => "CPU % of one core",
        }
    }

    /// The value of a step; `None` where there is none to draw (no samples, or no run for an
    /// average).
    fn of(self, p: &wire::HistoryPoint) -> Option<f64> {
        if p.samples == 0 {
            return None;
        }
        match self {
            Self::RunsPerSec => Some(p.rates.est_runs_per_sec),
            Self::AvgNs => (p.avg_ns_per_run >= 0.0).then_some(p.avg_ns_per_run),
            Self::Cpu => Some(p.rates.est_cpu_pct),
        }
    }
}

/// `[from, to)` in ns and the step to ask for, for `points` points ending at `now_ns`. `All`
/// starts at `first_seen_ns` (the oldest retained sample of the program).
pub fn range(span: Span, now_ns: i64, first_seen_ns: i64, points: u32) -> (i64, i64, u64) {
    let to = now_ns.saturating_add(1);
    let from = match span {
        Span::Last(d) => now_ns.saturating_sub(i64::try_from(d.as_nanos()).unwrap_or(i64::MAX)),
        Span::All => first_seen_ns.min(now_ns - 1_000_000_000),
    };
    let len = u64::try_from(to - from).unwrap_or(1);
    // Whole seconds: the daemon's steps are read by people (and raised to its interval anyway).
    let step = len
        .div_ceil(u64::from(points.max(1)))
        .div_ceil(1_000_000_000)
        .max(1)
        * 1_000_000_000;
    (from, to, step)
}

/// Points in chart coordinates: x in seconds relative to `now_ns` (negative), split into
/// segments where a step has no value, so a gap is not drawn as a line across it.
pub fn segments(
    points: &[wire::HistoryPoint],
    metric: Metric,
    now_ns: i64,
) -> Vec<Vec<(f64, f64)>> {
    let mut out: Vec<Vec<(f64, f64)>> = Vec::new();
    let mut current: Vec<(f64, f64)> = Vec::new();
    for p in points {
        match metric.of(p) {
            Some(v) => {
                // The middle of the step.
                let mid = (p.start_ns / 2 + p.end_ns / 2 - now_ns) as f64 / 1e9;
                current.push((mid, v));
            }
            None if !current.is_empty() => out.push(std::mem::take(&mut current)),
            None => {}
        }
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
}

/// The largest value drawn (at least a small positive number, so an idle program gets axes).
pub fn peak(segments: &[Vec<(f64, f64)>]) -> f64 {
    segments
        .iter()
        .flatten()
        .map(|(_, v)| *v)
        .fold(0.0, f64::max)
        .max(1e-9)
}

/// Whether the name's loads are not one program's reloads: the picked load is missing, or
/// another load overlaps it in time (two tools running one script, systemd's per-unit filters).
/// Those are other programs, not to be summed into its chart.
pub fn not_one_program(series: &[wire::SeriesInfo], picked: i64, now_ns: i64) -> bool {
    let end = |s: &wire::SeriesInfo| if s.alive { now_ns } else { s.last_seen_ns };
    let Some(p) = series.iter().find(|s| s.series_id == picked) else {
        return true;
    };
    series
        .iter()
        .any(|s| s.series_id != picked && s.first_seen_ns < end(p) && p.first_seen_ns < end(s))
}

/// Where the program was loaded again inside the chart: the first sample of every series but
/// the oldest, in seconds relative to `now_ns`, if at or after `from_ns`.
pub fn reloads(series: &[wire::SeriesInfo], from_ns: i64, now_ns: i64) -> Vec<f64> {
    let mut firsts: Vec<i64> = series
        .iter()
        .map(|s| s.first_seen_ns)
        .filter(|t| *t > 0)
        .collect();
    firsts.sort_unstable();
    firsts
        .iter()
        .skip(1)
        .filter(|t| **t >= from_ns)
        .map(|t| (t - now_ns) as f64 / 1e9)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: i64 = 1_000_000_000;

    fn point(start: i64, samples: u32, avg: f64, runs: f64) -> wire::HistoryPoint {
        let rates = wire::Rates {
            runs_per_sec: runs,
            cpu_pct: 0.0,
            coverage: 1.0,
            estimated: false,
            est_run_cnt: 0,
            est_run_time_ns: 0,
            est_runs_per_sec: runs,
            est_cpu_pct: runs / 100.0,
            stats_overhead_ns: 0.0,
            stats_overhead_pct: 0.0,
        };
        wire::HistoryPoint {
            start_ns: start,
            end_ns: start + 10 * S,
            span_ns: 10_000_000_000,
            samples,
            frozen: 0,
            run_cnt: 0,
            run_time_ns: 0,
            cum_run_cnt: 0,
            cum_run_time_ns: 0,
            avg_ns_per_run: avg,
            rates,
            peak_runs_per_sec: 0,
            peak_cpu_pct: 0.0,
        }
    }

    #[test]
    fn a_range_ends_now_and_asks_for_about_the_points_that_fit() {
        let now = 10_000 * S;
        let (from, to, step) = range(SPANS[1], now, 0, 100);
        assert_eq!((from, to), (now - 300 * S, now + 1));
        assert_eq!(step, 4 * S as u64);
        let (from, _, _) = range(Span::All, now, now - 42 * S, 100);
        assert_eq!(from, now - 42 * S);
        // A program first seen this instant still gets a second of range.
        let (from, _, step) = range(Span::All, now, now, 0);
        assert_eq!(from, now - S);
        assert_eq!(step, 2 * S as u64);
    }

    #[test]
    fn steps_without_samples_split_the_line_and_averages_need_runs() {
        let now = 100 * S;
        let pts = [
            point(0, 10, 50.0, 1.0),
            point(10 * S, 10, -1.0, 0.0),
            point(20 * S, 0, 0.0, 0.0),
            point(30 * S, 10, 70.0, 3.0),
        ];
        let runs = segments(&pts, Metric::RunsPerSec, now);
        assert_eq!(
            runs,
            vec![vec![(-95.0, 1.0), (-85.0, 0.0)], vec![(-65.0, 3.0)]]
        );
        let avg = segments(&pts, Metric::AvgNs, now);
        assert_eq!(avg, vec![vec![(-95.0, 50.0)], vec![(-65.0, 70.0)]]);
        assert_eq!(peak(&avg), 70.0);
        assert!(peak(&[]) > 0.0);
    }

    #[test]
    fn reloads_are_every_load_after_the_first_inside_the_chart() {
        let series = |first: i64| wire::SeriesInfo {
            series_id: first,
            boot_seq: 1,
            id: 1,
            name: "p".into(),
            full_name: "p".into(),
            prog_type: "kprobe".into(),
            tag: "t".into(),
            alive: false,
            first_seen_ns: first,
            last_seen_ns: first + S,
            runs_before_first_pass: 0,
        };
        let now = 1000 * S;
        let all = [series(900 * S), series(100 * S), series(950 * S), series(0)];
        assert_eq!(reloads(&all, 920 * S, now), vec![-50.0]);
        assert_eq!(reloads(&all, 0, now), vec![-100.0, -50.0]);
        // One after the other: one program. Side by side: not.
        assert!(!not_one_program(&all[..3], 950 * S, now));
        assert!(not_one_program(&all[..3], 7, now));
        let mut alive = series(900 * S + S / 2);
        alive.alive = true;
        assert!(not_one_program(&[series(900 * S), alive], 900 * S, now));
    }
}
