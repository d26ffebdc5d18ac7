//! Top-N programs over a window, unloaded ones included.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, SystemTime};

use super::{
    QueryError, Ranking, Rates, Reader, SeriesRow, SortKey, Tier, TopRow, choose_tier,
    validate_range,
};
use crate::codec::Bucket;
use crate::error::StoreError;
use crate::fold;
use ebpfstat_numbers::Overall;
use ebpfstat_numbers::rank;
use ebpfstat_numbers::rates::{Totals, avg_ns_per_run, cpu_pct_of_rate, overhead_ns};
use ebpfstat_numbers::time::{ns_of_us, us_of_ns};

use crate::read;
use crate::rows::TickPoint;

impl Reader<'_> {
    /// The programs over `[from, to)` that `keep` keeps, unloaded ones included: what they
    /// add up to, and the first `n` by `key`.
    pub fn ranking(
        &self,
        from: SystemTime,
        to: SystemTime,
        (key, n): (SortKey, usize),
        keep: &dyn Fn(&TopRow) -> bool,
    ) -> Result<Ranking, QueryError> {
        validate_range(from, to)?;
        if n == 0 {
            return Err(QueryError::InvalidArgument("n must be at least 1".into()));
        }
        let window = to.duration_since(from).unwrap_or_default();
        let oldest = self.tier_oldest()?;
        let tier = choose_tier(&oldest, from, window);
        let mut rows = Vec::new();
        for (boot, lo, hi) in self.boots.ranges(from, to) {
            // Series alive at some point of the range.
            let (lo_ns, hi_ns) = (ns_of_us(lo), ns_of_us(hi));
            let series = self.series_where(
                "boot_seq = ?1 AND first_bt_ns <= ?3 AND (end_bt_ns IS NULL OR end_bt_ns >= ?2)",
                &[&boot, &lo_ns, &hi_ns],
                |s| {
                    s.boot_seq == boot
                        && s.first_bt_ns <= hi_ns
                        && s.end_bt_ns.is_none_or(|e| e >= lo_ns)
                },
            )?;
            // A series ended in memory before the window (its end not written yet) is not in it.
            let series: Vec<SeriesRow> = series
                .into_iter()
                .filter(|s| s.end_bt_ns.is_none_or(|e| e >= lo_ns))
                .collect();
            if series.is_empty() {
                continue;
            }
            // Raw ticks serve both the sums and the time they cover.
            let (sums, covered) = if tier == Tier::Raw {
                let ticks = self.ticks_in(boot, lo, hi)?;
                (self.raw_sums(&ticks, lo, &series)?, raw_covered(&ticks))
            } else {
                let sums = self.tier_sums(tier, boot, lo, hi, &series)?;
                let oldest = oldest[tier.index()];
                (sums, self.rollup_covered(tier, boot, (lo, hi), oldest)?)
            };
            let cost = self.boots.stats_cost_ns(boot);
            for s in series {
                let b = sums.get(&s.series_id).copied().unwrap_or_default();
                let observed = observed_us(&s, &b, tier, covered);
                rows.push(TopRow {
                    tier,
                    span_ns: ns_of_us(observed),
                    samples: b.samples,
                    run_cnt: b.cnt,
                    run_time_ns: b.rt,
                    avg_ns_per_run: avg_ns_per_run(b.rt, b.cnt),
                    rates: Rates::over(&Totals {
                        run_cnt: b.cnt,
                        run_time_ns: b.rt,
                        coverage: b.coverage(),
                        observed: Duration::from_micros(observed),
                        stats_overhead_ns: overhead_ns(b.cnt, cost),
                    }),
                    peak_runs_per_sec: b.peak_cnt_rate,
                    peak_cpu_pct: cpu_pct_of_rate(b.peak_rt_rate as f64),
                    series: s,
                });
            }
        }
        rows.retain(|r| keep(r));
        let overall = Overall::of(rows.iter().map(|r| (r.span_ns, r.rates.stats_overhead_ns)));
        rank::rank(&mut rows, key, n, TopRow::ranked, |r| r.series.series_id);
        Ok(Ranking { overall, rows })
    }

    /// The span (µs of boot time) rollup sums over `[lo, hi]` of `boot` actually cover:
    /// buckets start on their boundaries, and nothing is known past the newest tick. `oldest` is
    /// the oldest time the tier holds.
    fn rollup_covered(
        &self,
        tier: Tier,
        boot: i64,
        (lo, hi): (u64, u64),
        oldest: Option<SystemTime>,
    ) -> Result<(u64, u64), StoreError> {
        let newest = self.newest_time()?;
        let to_bt = |t: SystemTime| self.boots.boottime_us(boot, t);
        let bucket = tier.bucket_us();
        let start = oldest
            .map_or(lo, |o| lo.max(to_bt(o)))
            .div_ceil(bucket)
            .saturating_mul(bucket);
        let end = newest.map_or(hi, |n| hi.min(to_bt(n)));
        Ok((start, end.max(start)))
    }

    /// Sums per series over `[lo, hi]` µs of `boot` from `tier`.
    fn tier_sums(
        &self,
        tier: Tier,
        boot: i64,
        lo: u64,
        hi: u64,
        series: &[SeriesRow],
    ) -> Result<HashMap<i64, Bucket>, StoreError> {
        if tier == Tier::Raw {
            let ticks = self.ticks_in(boot, lo, hi)?;
            return self.raw_sums(&ticks, lo, series);
        }
        let span = self.rollup_span(tier, boot, lo, hi)?;
        let (table, width, fine) = (span.table, span.chunk_us, span.bucket_us);
        let (first, last, rolled) = (span.first, span.last, span.rolled_end);
        let mut sums: HashMap<i64, Bucket> = HashMap::new();
        if rolled > first {
            let (a, b) = (first, rolled - 1);
            let whole = |c: i64| {
                let chunk_lo = span.start_us(c);
                chunk_lo >= lo && chunk_lo.saturating_add(width) <= hi
            };
            // Only the end chunks can stick out of the window: those are read bucket by
            // bucket, the ones inside by their summary columns, without their blobs.
            let (inner_a, inner_b) = (a + i64::from(!whole(a)), b - i64::from(!whole(b)));
            if inner_a <= inner_b {
                for (id, summary) in
                    read::chunk_sums_between(&self.db.conn, table, boot, inner_a, inner_b)?
                {
                    sums.entry(id).or_default().absorb(&summary);
                }
            }
            let edges = if a == b { &[a][..] } else { &[a, b][..] };
            for &c in edges.iter().filter(|&&c| !whole(c)) {
                for row in read::chunks_between(&self.db.conn, table, boot, c, c)? {
                    let entry = sums.entry(row.series_id).or_default();
                    for bucket in row.buckets()? {
                        let at = fold::bucket_start(bucket.index, fine);
                        if at >= lo && at <= hi {
                            entry.absorb(&bucket);
                        }
                    }
                }
            }
        }
        if rolled <= last {
            let tail_lo = lo.max(span.start_us(rolled));
            for (id, b) in self.tier_sums(span.finer, boot, tail_lo, hi, series)? {
                sums.entry(id).or_default().absorb(&b);
            }
        }
        Ok(sums)
    }

    /// Sums per series over the ticks from `lo` on; `ticks` come from `ticks_in`, so the tick
    /// before `lo` (for the first one's elapsed time) leads when there is one.
    fn raw_sums(
        &self,
        ticks: &[TickPoint],
        lo: u64,
        series: &[SeriesRow],
    ) -> Result<HashMap<i64, Bucket>, StoreError> {
        let Some(start) = ticks.iter().position(|p| p.bt_us >= lo) else {
            return Ok(HashMap::new());
        };
        let wanted: HashSet<i64> = series.iter().map(|s| s.series_id).collect();
        // Only what covers the window's ticks: folding needs no later activity.
        let until = ticks.last().map(|t| t.tick);
        let segs = self.segments((ticks[start].tick, until), Some(&wanted))?;
        let by_series = fold::segments_by_series(&segs);
        let prev_bt = start.checked_sub(1).map(|i| ticks[i].bt_us);
        Ok(series
            .iter()
            .map(|s| {
                let segs = by_series
                    .get(&s.series_id)
                    .map(Vec::as_slice)
                    .unwrap_or(&[]);
                // One bucket as wide as time itself: the whole window.
                let buckets = fold::fold_ticks(&ticks[start..], prev_bt, s.life, segs, u64::MAX);
                (s.series_id, fold::summarise(&buckets))
            })
            .collect())
    }
}

/// The span (µs of boot time) raw sums over `ticks` (from `ticks_in`) cover: deltas reach back
/// to the tick before the first in range, and nothing is known past the last.
fn raw_covered(ticks: &[TickPoint]) -> (u64, u64) {
    match (ticks.first(), ticks.last()) {
        (Some(first), Some(last)) => (first.bt_us, last.bt_us),
        _ => (0, 0),
    }
}

/// The time a series was observed in the window (µs), the denominator of its rates, as in
/// history: the measured intervals of its samples (raw ticks), else the part of the covered
/// span its life overlaps. Rollup sums keep no per-sample intervals; their window's newest part,
/// not rolled up yet, is summed from raw ticks, whose intervals cover only that part (taken for
/// the whole window, they made rates of hours' runs over a second).
fn observed_us(s: &SeriesRow, b: &Bucket, tier: Tier, (start, end): (u64, u64)) -> u64 {
    if tier == Tier::Raw && b.span_us > 0 {
        return b.span_us;
    }
    let born = us_of_ns(s.first_bt_ns);
    let ended = s.end_bt_ns.map_or(u64::MAX, us_of_ns);
    end.min(ended).saturating_sub(start.max(born))
}
