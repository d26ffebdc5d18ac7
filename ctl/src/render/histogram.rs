//! A profile's histogram for a person: the daemon's fine buckets gathered by powers of two
//! (as bpftrace's `hist()` shows them), each row with its share of the runs and a bar.

use std::time::Duration;

use ebpfstat_dbus::{Profile, ProfileBucket, ProfileEnd};
use ebpfstat_numbers::text::round_u64;

use crate::units;

/// One row: runs that took from `from_ns` to `to_ns` (both included).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Row {
    pub from_ns: u64,
    pub to_ns: u64,
    pub count: u64,
}

/// The power of two a duration falls in, as the lowest value of it (0 for 0).
fn octave_of(ns: u64) -> u64 {
    if ns == 0 {
        0
    } else {
        1 << (63 - ns.leading_zeros())
    }
}

/// The buckets gathered by power of two, shortest first; rows between the first and last
/// that hold runs are kept even when empty, so the gaps between modes show.
pub fn by_octave(buckets: &[ProfileBucket]) -> Vec<Row> {
    let mut rows: Vec<Row> = Vec::new();
    for b in buckets {
        let from = octave_of(b.le_ns);
        match rows.last_mut() {
            Some(r) if r.from_ns == from => r.count += b.count,
            _ => {
                // The empty octaves between the last row and this one.
                let mut next = rows.last().map(|r| r.to_ns + 1);
                while let Some(n) = next.filter(|n| *n < from) {
                    rows.push(Row {
                        from_ns: n,
                        to_ns: n * 2 - 1,
                        count: 0,
                    });
                    next = Some(n * 2);
                }
                rows.push(Row {
                    from_ns: from,
                    to_ns: from.saturating_mul(2).saturating_sub(1).max(from),
                    count: b.count,
                });
            }
        }
    }
    rows
}

/// A bar of `count` against `max` in at most `width` cells (one cell at least for a row
/// that has runs).
pub fn bar(count: u64, max: u64, width: usize) -> String {
    if count == 0 || max == 0 {
        return String::new();
    }
    #[expect(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        clippy::cast_precision_loss,
        reason = "a share of a few dozen cells, rounded"
    )]
    let cells = ((count as f64 / max as f64) * width as f64).round() as usize;
    "█".repeat(cells.clamp(1, width))
}

/// What was traced, how it ended, and what the tracing cost: two sentences.
pub fn summary(p: &Profile) -> [String; 2] {
    let ended = match p.ended() {
        Some(ProfileEnd::Time) => String::new(),
        Some(ProfileEnd::Budget) => {
            "; stopped early: the tracing had cost the daemon's stats budget".into()
        }
        Some(ProfileEnd::Client) => "; stopped: the caller went away".into(),
        None => format!("; ended: {}", p.ended),
    };
    let seconds = Duration::from_millis(round_u64(p.seconds * 1000.0));
    [
        format!(
            "{} (id {}, {}): {} runs traced over {}{ended}",
            p.full_name,
            p.id,
            p.prog_type,
            units::count(p.runs as f64),
            humantime::format_duration(seconds)
        ),
        format!(
            "tracing added {} to each run; {} of each duration is its own (what it records of \
             an empty program); the kernel counted {} runs meanwhile",
            units::ns(p.added_ns_per_run),
            units::ns(p.floor_ns as f64),
            units::count(p.kernel_runs as f64)
        ),
    ]
}

/// The percentiles' header and values: p50, p90, p99, p99.9, max, mean.
pub const PERCENTILES: [&str; 6] = ["P50", "P90", "P99", "P99.9", "MAX", "MEAN"];

pub fn percentiles(p: &Profile) -> [String; 6] {
    let ns = |v: u64| units::ns(v as f64);
    [
        ns(p.p50_ns),
        ns(p.p90_ns),
        ns(p.p99_ns),
        ns(p.p999_ns),
        ns(p.max_ns),
        units::ns(p.mean_ns),
    ]
}

/// The histogram's header and rows: from, to, runs, share, a bar of `width` cells at most.
pub const COLUMNS: [&str; 5] = ["FROM", "TO", "RUNS", "SHARE", ""];

pub fn rows(p: &Profile, width: usize) -> Vec<[String; 5]> {
    let rows = by_octave(&p.buckets);
    let max = rows.iter().map(|r| r.count).max().unwrap_or(0);
    rows.iter()
        .map(|r| {
            #[expect(clippy::cast_precision_loss, reason = "a share")]
            let share = r.count as f64 / p.runs.max(1) as f64 * 100.0;
            [
                units::ns(r.from_ns as f64),
                units::ns(r.to_ns as f64),
                units::count(r.count as f64),
                units::pct(share),
                bar(r.count, max, width),
            ]
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(le_ns: u64, count: u64) -> ProfileBucket {
        ProfileBucket { le_ns, count }
    }

    #[test]
    fn buckets_gather_by_power_of_two_keeping_the_gaps() {
        let rows = by_octave(&[b(100, 90), b(103, 5), b(130, 2), b(3000, 3)]);
        let spans: Vec<(u64, u64, u64)> =
            rows.iter().map(|r| (r.from_ns, r.to_ns, r.count)).collect();
        assert_eq!(
            spans,
            [
                (64, 127, 95),
                (128, 255, 2),
                (256, 511, 0),
                (512, 1023, 0),
                (1024, 2047, 0),
                (2048, 4095, 3)
            ]
        );
        assert_eq!(
            by_octave(&[b(0, 1)]),
            [Row {
                from_ns: 0,
                to_ns: 0,
                count: 1
            }]
        );
        assert!(by_octave(&[]).is_empty());
    }

    #[test]
    fn bars_scale_and_show_every_row_with_runs() {
        assert_eq!(bar(50, 100, 10).chars().count(), 5);
        assert_eq!(bar(1, 1_000_000, 10).chars().count(), 1);
        assert_eq!(bar(0, 100, 10), "");
        assert_eq!(bar(100, 100, 10).chars().count(), 10);
    }
}
