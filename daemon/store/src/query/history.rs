//! History of a program at a step, from the finest tier that covers the range.

use std::collections::HashSet;
use std::time::{Duration, SystemTime};

use super::{
    History, HistoryPoint, MAX_POINTS, ProgramRef, QueryError, Rates, Reader, SeriesRow, Tier,
    choose_tier, validate_range,
};
use ebpfstat_numbers::rates::{Totals, avg_ns_per_run, cpu_pct_of_rate, overhead_ns};
use ebpfstat_numbers::text::round_u64;
use ebpfstat_numbers::time::ns_of_us;

use crate::clock::{signed, wall_ns};
use crate::codec::{Bucket, Delta};
use crate::error::StoreError;
use crate::fold::{self, cumulative_before};
use crate::model::Counters;
use crate::read;
use crate::rows::{self, Segment};

/// One tier value of one series: a tick or a bucket, on its boot's time line.
#[derive(Debug, Clone, Copy)]
struct Slice {
    /// Where the value sits for bucketing: a tick's time, a bucket's start (µs of boot time).
    at_us: u64,
    b: Bucket,
    /// Cumulative counters after this value.
    cum: Counters,
}

impl Reader<'_> {
    /// A series' ticks in `[lo, hi]` µs of `boot`, each with its cumulative counters after it.
    /// `known` is its cumulative counters before `lo` when the caller knows them (the page
    /// before ended there): only the segments covering the range are read then. Otherwise
    /// they are found from the segments covering the range when the series was active in it,
    /// and from the first activity after it (or its total) when not, which reads on to there.
    fn raw_slices(
        &self,
        boot: i64,
        s: &SeriesRow,
        (lo, hi): (u64, u64),
        known: Option<Counters>,
    ) -> Result<Vec<Slice>, StoreError> {
        let ticks = self.ticks_in(boot, lo, hi)?;
        let Some(start) = ticks.iter().position(|p| p.bt_us >= lo) else {
            return Ok(Vec::new());
        };
        let first_tick = ticks[start].tick;
        let last_tick = ticks.last().map_or(first_tick, |t| t.tick);
        let wanted = HashSet::from([s.series_id]);
        let mut segs = self.segments((first_tick, Some(last_tick)), Some(&wanted))?;
        ebpfstat_numbers::order::sort_by_key(&mut segs, Segment::start_key);
        let mut cum = match known {
            Some(c) => c,
            None if segs.iter().any(|g| g.end_tick() > first_tick) => {
                cumulative_before(first_tick, &segs.iter().collect::<Vec<_>>(), s.total)
            }
            // Idle over the range: its counters are those before its next activity.
            None => {
                let mut after = self.segments((last_tick + 1, None), Some(&wanted))?;
                ebpfstat_numbers::order::sort_by_key(&mut after, Segment::start_key);
                cumulative_before(first_tick, &after.iter().collect::<Vec<_>>(), s.total)
            }
        };
        let refs: Vec<&Segment> = segs.iter().collect();
        let prev_bt = (start > 0).then(|| ticks[start - 1].bt_us);
        let buckets = fold::fold_ticks(
            &ticks[start..],
            prev_bt,
            s.life,
            &refs,
            Tier::Raw.bucket_us(),
        );
        Ok(buckets
            .into_iter()
            .map(|b| {
                rows::add(
                    &mut cum,
                    Delta {
                        cnt: b.cnt,
                        rt: b.rt,
                    },
                );
                Slice {
                    at_us: fold::bucket_start(b.index, 1),
                    b,
                    cum,
                }
            })
            .collect())
    }

    fn chunk_slices(
        &self,
        table: &str,
        boot: i64,
        s: &SeriesRow,
        chunks: std::ops::Range<i64>,
        width_us: u64,
        (lo, hi): (u64, u64),
    ) -> Result<Vec<Slice>, StoreError> {
        let mut out = Vec::new();
        for c in chunks {
            let Some(row) = read::chunk(&self.db.conn, table, boot, c, s.series_id)? else {
                continue;
            };
            let mut cum = row.base;
            for b in row.buckets()? {
                rows::add(
                    &mut cum,
                    Delta {
                        cnt: b.cnt,
                        rt: b.rt,
                    },
                );
                let at_us = fold::bucket_start(b.index, width_us);
                if at_us.saturating_add(width_us) > lo && at_us <= hi {
                    out.push(Slice { at_us, b, cum });
                }
            }
        }
        Ok(out)
    }

    /// Buckets of a rollup tier: stored chunks, then the not-rolled-up part folded from the
    /// finer tier.
    fn rollup_slices(
        &self,
        tier: Tier,
        boot: i64,
        s: &SeriesRow,
        lo: u64,
        hi: u64,
    ) -> Result<Vec<Slice>, StoreError> {
        let span = self.rollup_span(tier, boot, lo, hi)?;
        let mut out = self.chunk_slices(
            span.table,
            boot,
            s,
            span.first..span.rolled_end,
            span.bucket_us,
            (lo, hi),
        )?;
        if span.rolled_end <= span.last {
            let tail_lo = lo.max(span.start_us(span.rolled_end));
            let finer = self.slices(span.finer, boot, s, (tail_lo, hi), None)?;
            out.extend(fold_slices(&finer, span.bucket_us));
        }
        Ok(out)
    }

    /// `known`: the series' cumulative counters before `lo`, when known (raw tier only: a
    /// rollup's chunks carry their own).
    fn slices(
        &self,
        tier: Tier,
        boot: i64,
        s: &SeriesRow,
        (lo, hi): (u64, u64),
        known: Option<Counters>,
    ) -> Result<Vec<Slice>, StoreError> {
        match tier {
            Tier::Raw => self.raw_slices(boot, s, (lo, hi), known),
            Tier::Min1 | Tier::Hour1 => self.rollup_slices(tier, boot, s, lo, hi),
        }
    }

    /// A page of the history of `target`: `[from, to)` clipped to when it was seen (its first
    /// sample to its last, or the newest tick while it is loaded), on the grid of `step` from
    /// `from` (raised to the tier's resolution), at most `max_points` points; when cut, the
    /// time to continue from. `known_start`: the cumulative counters of a single series at
    /// `from`, when the caller knows them (the page before ended there), so that only what
    /// the page covers is read.
    pub fn history_page(
        &self,
        target: &ProgramRef,
        (from, to): (SystemTime, SystemTime),
        (step, tier): (Duration, Option<Tier>),
        max_points: u64,
        known_start: Option<Counters>,
    ) -> Result<(History, Option<SystemTime>), QueryError> {
        let (series, tier, step) = self.plan(target, (from, to), step, tier)?;
        let step_ns = u64::try_from(step.as_nanos()).unwrap_or(u64::MAX).max(1);
        let newest = self.newest_time()?;
        let seen_from = series.iter().filter_map(|s| s.first_seen).min();
        let seen_to = series
            .iter()
            .filter_map(|s| if s.alive { newest } else { s.last_seen })
            .max();
        let empty = || History {
            series: series.clone(),
            tier,
            step_ns,
            points: Vec::new(),
        };
        let (Some(seen_from), Some(seen_to)) = (seen_from, seen_to) else {
            return Ok((empty(), None));
        };
        // Whole steps before it was first seen are skipped; the grid stays where `from` put it.
        let before = seen_from.duration_since(from).unwrap_or_default();
        let skipped = u32::try_from(before.as_nanos() / u128::from(step_ns)).unwrap_or(u32::MAX);
        let start = from + Duration::from_nanos(step_ns).saturating_mul(skipped);
        // Up to its last sample, included: the last point ends there (partial when short).
        let end = to.min(seen_to + Duration::from_nanos(1));
        if end <= start {
            return Ok((empty(), None));
        }
        let span = end.duration_since(start).unwrap_or_default();
        let n = u64::try_from(span.as_nanos().div_ceil(u128::from(step_ns))).unwrap_or(u64::MAX);
        let (end, next) = if n > max_points {
            let cut = start
                + Duration::from_nanos(step_ns)
                    .saturating_mul(u32::try_from(max_points).unwrap_or(u32::MAX));
            (cut, Some(cut))
        } else {
            (end, None)
        };
        Ok((
            self.points_of(series, (tier, step), (start, end), known_start)?,
            next,
        ))
    }

    /// What a history query needs first: its range checked, its series, the tier (given, or
    /// the finest covering `from`) and the step raised to that tier's resolution.
    fn plan(
        &self,
        target: &ProgramRef,
        (from, to): (SystemTime, SystemTime),
        step: Duration,
        tier: Option<Tier>,
    ) -> Result<(Vec<SeriesRow>, Tier, Duration), QueryError> {
        validate_range(from, to)?;
        if step.is_zero() {
            return Err(QueryError::InvalidArgument("step must be positive".into()));
        }
        let series = in_range(self.resolve(target)?, (from, to));
        let tier = match tier {
            Some(t) => t,
            None => choose_tier(&self.tier_oldest()?, from, step),
        };
        Ok((series, tier, raised(step, tier)))
    }

    /// History of `target` over `[from, to)` in points of `step`, from `tier` or else the
    /// finest tier covering `from`.
    pub fn history(
        &self,
        target: &ProgramRef,
        from: SystemTime,
        to: SystemTime,
        step: Duration,
        tier: Option<Tier>,
    ) -> Result<History, QueryError> {
        let (series, tier, step) = self.plan(target, (from, to), step, tier)?;
        self.points_of(series, (tier, step), (from, to), None)
    }

    /// The points of `series` over `[from, to)` at `step` from `tier`; `known_start`: a single
    /// series' cumulative counters at `from`, when known.
    fn points_of(
        &self,
        series: Vec<SeriesRow>,
        (tier, step): (Tier, Duration),
        (from, to): (SystemTime, SystemTime),
        known_start: Option<Counters>,
    ) -> Result<History, QueryError> {
        let span = to.duration_since(from).unwrap_or_default();
        let n_points = u64::try_from(span.as_nanos().div_ceil(step.as_nanos())).unwrap_or(u64::MAX);
        if n_points > MAX_POINTS {
            return Err(QueryError::InvalidArgument(format!(
                "{n_points} points requested ({} at a {} step); at most {MAX_POINTS} per \
                 answer: use a larger step or a shorter range",
                humantime::format_duration(span),
                humantime::format_duration(step)
            )));
        }
        let step_ns = u64::try_from(step.as_nanos()).unwrap_or(u64::MAX).max(1);
        // At most MAX_POINTS, checked above.
        let mut grid = Grid {
            from,
            to,
            step_ns,
            loads: vec![Vec::new(); usize::try_from(n_points).unwrap_or(0)],
            overhead: vec![0.0; usize::try_from(n_points).unwrap_or(0)],
            known_start: known_start.filter(|_| series.len() == 1),
        };
        // Per series: cumulative at the end of each point it has data in.
        let mut cum_per_series: Vec<Vec<Option<Counters>>> = Vec::new();
        for s in &series {
            cum_per_series.push(self.place(s, tier, &mut grid)?);
        }
        // Cumulative per point: each series' latest value so far (carried), summed.
        let mut cums: Vec<Option<Counters>> = vec![None; grid.loads.len()];
        for (i, s) in series.iter().enumerate() {
            let mut carried = self.cumulative_at_start(s, from)?;
            for (k, slot) in cums.iter_mut().enumerate() {
                if let Some(c) = cum_per_series[i][k] {
                    carried = Some(c);
                }
                if let Some(c) = carried {
                    let slot = slot.get_or_insert_with(Counters::default);
                    slot.run_cnt += c.run_cnt;
                    slot.run_time_ns += c.run_time_ns;
                }
            }
        }
        let points = (0..grid.loads.len())
            .map(|k| {
                let (start, end) = grid.bounds(k);
                let width = end.duration_since(start).unwrap_or_default();
                let b = merge_loads(&grid.loads[k]);
                point(
                    start,
                    end,
                    width,
                    &b,
                    cums[k].unwrap_or_default(),
                    grid.overhead[k],
                )
            })
            .collect();
        Ok(History {
            series,
            tier,
            step_ns,
            points,
        })
    }

    /// Puts the values of series `s` into the grid's points, each with the time the series was
    /// there in that point; its cumulative counters at the end of each point it has data in.
    fn place(
        &self,
        s: &SeriesRow,
        tier: Tier,
        grid: &mut Grid,
    ) -> Result<Vec<Option<Counters>>, QueryError> {
        let from_ns = wall_ns(grid.from);
        let n = grid.loads.len();
        let mut cums = vec![None; n];
        let mut buckets: Vec<Option<Bucket>> = vec![None; n];
        let ranges = self.boots.ranges(grid.from, grid.to);
        for (i, &(boot, lo, hi)) in ranges.iter().enumerate() {
            if boot != s.boot_seq {
                continue;
            }
            let offset = self.boots.offset_ns(boot);
            let cost = self.boots.stats_cost_ns(boot);
            // Known where the grid starts: at the start of its first boot's range.
            let known = grid.known_start.filter(|_| i == 0);
            for sl in self.slices(tier, boot, s, (lo, hi), known)? {
                let wall = signed(ns_of_us(sl.at_us)).saturating_add(offset);
                let Some(k) = wall
                    .checked_sub(from_ns)
                    .and_then(|d| u64::try_from(d).ok())
                    .and_then(|d| usize::try_from(d / grid.step_ns).ok())
                    .filter(|&k| k < n)
                else {
                    continue;
                };
                buckets[k].get_or_insert_with(Bucket::default).absorb(&sl.b);
                grid.overhead[k] += overhead_ns(sl.b.cnt, cost);
                cums[k] = Some(sl.cum);
            }
        }
        // Where the series was, on the wall clock: from its first sample (its load, when
        // counted from there) to its last.
        let there = (
            s.first_seen.map_or(i64::MIN, wall_ns),
            s.last_seen.map_or(i64::MAX, wall_ns),
        );
        for (k, b) in buckets.into_iter().enumerate() {
            if let Some(b) = b {
                let (start, end) = grid.bounds(k);
                let present = (there.0.max(wall_ns(start)), there.1.min(wall_ns(end)));
                grid.loads[k].push(Load { b, present });
            }
        }
        Ok(cums)
    }

    /// A series' cumulative counters at `from`: its baseline if it was loaded later, its total if
    /// it ended earlier, else unknown until its first value in range.
    fn cumulative_at_start(
        &self,
        s: &SeriesRow,
        from: SystemTime,
    ) -> Result<Option<Counters>, StoreError> {
        if s.last_seen.is_some_and(|l| l < from) && !s.alive {
            return Ok(Some(s.total));
        }
        Ok(None)
    }
}

/// The points of a history being built: per point, the values of each load seen in it.
struct Grid {
    from: SystemTime,
    to: SystemTime,
    step_ns: u64,
    loads: Vec<Vec<Load>>,
    /// What stats cost the point's runs, ns.
    overhead: Vec<f64>,
    /// The one series' cumulative counters at `from`, when the caller knows them.
    known_start: Option<Counters>,
}

impl Grid {
    /// Where point `k` starts and ends (the last ends at `to`).
    fn bounds(&self, k: usize) -> (SystemTime, SystemTime) {
        let offset = self
            .step_ns
            .saturating_mul(u64::try_from(k).unwrap_or(u64::MAX));
        let start = self.from + Duration::from_nanos(offset);
        (
            start,
            (start + Duration::from_nanos(self.step_ns)).min(self.to),
        )
    }
}

/// One load's values in one point, and when it was there (wall ns, within the point).
#[derive(Debug, Clone, Copy)]
struct Load {
    b: Bucket,
    present: (i64, i64),
}

/// One point's loads as one: runs and run time add up; the time observed, and the samples and
/// coverage measured over it, are those of the union of the loads' times, never their sum: two
/// loads side by side are observed by the same passes over the same time, two loads one after
/// the other over the sum of their times. Where loads overlap, the one whose samples cover the
/// most time per time present counts (a late pass that both saw covers its stall once).
fn merge_loads(loads: &[Load]) -> Bucket {
    if let [one] = loads {
        return one.b;
    }
    let mut out = Bucket::default();
    for l in loads {
        out.cnt += l.b.cnt;
        out.rt += l.b.rt;
        out.peak_cnt_rate = out.peak_cnt_rate.max(l.b.peak_cnt_rate);
        out.peak_rt_rate = out.peak_rt_rate.max(l.b.peak_rt_rate);
    }
    // Observed quantities as densities over the time each load was present.
    let density = |l: &Load| -> Option<[f64; 4]> {
        let len = l.present.1.checked_sub(l.present.0).filter(|&d| d > 0)? as f64;
        Some(observed_of(&l.b).map(|v| v / len))
    };
    let mut observed = [0.0f64; 4];
    let mut cuts: Vec<i64> = loads
        .iter()
        .flat_map(|l| [l.present.0, l.present.1])
        .collect();
    cuts.sort_unstable();
    cuts.dedup();
    for w in cuts.windows(2) {
        let (a, z) = (w[0], w[1]);
        let densest = loads
            .iter()
            .filter(|l| l.present.0 <= a && l.present.1 >= z)
            .filter_map(density)
            .max_by(|x, y| x[0].total_cmp(&y[0]));
        if let Some(d) = densest {
            for (o, v) in observed.iter_mut().zip(d) {
                *o += v * (z - a) as f64;
            }
        }
    }
    // A load seen no time at all in the point (its sample at the point's edge) adds its own.
    for l in loads.iter().filter(|l| density(l).is_none()) {
        for (o, v) in observed.iter_mut().zip(observed_of(&l.b)) {
            *o += v;
        }
    }
    let [span_us, samples, frozen, covered] = observed.map(round_u64);
    out.span_us = span_us;
    out.samples = u32::try_from(samples).unwrap_or(u32::MAX);
    out.frozen = u32::try_from(frozen).unwrap_or(u32::MAX);
    out.covered = covered;
    out
}

/// What a bucket observed, as opposed to what it counted: the time its samples cover, the
/// samples, those while stats were off, and their coverage summed.
fn observed_of(b: &Bucket) -> [f64; 4] {
    [
        b.span_us as f64,
        f64::from(b.samples),
        f64::from(b.frozen),
        b.covered as f64,
    ]
}

/// `step` raised to what `tier` resolves.
fn raised(step: Duration, tier: Tier) -> Duration {
    let res = tier.resolution();
    if res.is_zero() {
        return step;
    }
    let n = step.as_nanos().div_ceil(res.as_nanos()).max(1);
    res * u32::try_from(n).unwrap_or(u32::MAX)
}

/// Folds finer slices into buckets of `width_us` (by their position), keeping the last
/// cumulative value of each.
fn fold_slices(fine: &[Slice], width_us: u64) -> Vec<Slice> {
    let mut out: Vec<Slice> = Vec::new();
    for s in fine {
        let index = fold::bucket_index(s.at_us, width_us);
        match out.last_mut() {
            Some(last) if last.b.index == index => {
                last.b.absorb(&s.b);
                last.cum = s.cum;
            }
            _ => {
                let mut b = s.b;
                b.index = index;
                out.push(Slice {
                    at_us: fold::bucket_start(index, width_us),
                    b,
                    cum: s.cum,
                });
            }
        }
    }
    out
}

fn point(
    start: SystemTime,
    end: SystemTime,
    width: Duration,
    b: &Bucket,
    cum: Counters,
    overhead_ns: f64,
) -> HistoryPoint {
    // Counts are over the time their samples measured; the width stands in for rollups
    // written before spans were kept.
    let span = if b.span_us > 0 {
        Duration::from_micros(b.span_us)
    } else if b.samples > 0 {
        width
    } else {
        Duration::ZERO
    };
    HistoryPoint {
        start,
        end,
        span_ns: u64::try_from(span.as_nanos()).unwrap_or(u64::MAX),
        samples: b.samples,
        frozen: b.frozen,
        run_cnt: b.cnt,
        run_time_ns: b.rt,
        cum_run_cnt: cum.run_cnt,
        cum_run_time_ns: cum.run_time_ns,
        avg_ns_per_run: avg_ns_per_run(b.rt, b.cnt),
        rates: Rates::over(&Totals {
            run_cnt: b.cnt,
            run_time_ns: b.rt,
            coverage: b.coverage(),
            observed: span,
            stats_overhead_ns: overhead_ns,
        }),
        peak_runs_per_sec: b.peak_cnt_rate,
        peak_cpu_pct: cpu_pct_of_rate(b.peak_rt_rate as f64),
    }
}

/// The loads whose life meets `[from, to)`: a name or a version may have had hundreds of loads,
/// and each one placed reads the range again. None meets it: the newest, which names what was
/// asked in an answer without points.
fn in_range(mut series: Vec<SeriesRow>, (from, to): (SystemTime, SystemTime)) -> Vec<SeriesRow> {
    let meets = |s: &SeriesRow| {
        s.first_seen.is_none_or(|f| f < to) && (s.alive || s.last_seen.is_none_or(|l| l >= from))
    };
    if series.iter().any(meets) {
        series.retain(meets);
    } else {
        let newest = series.iter().map(|s| s.series_id).max();
        series.retain(|s| Some(s.series_id) == newest);
    }
    series
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEC_US: u64 = 1_000_000;
    const SEC_NS: i64 = 1_000_000_000;

    /// A load sampled every second between `a` and `z` (s): `runs` runs, stats on all along.
    fn load(a: i64, z: i64, runs: u64) -> Load {
        let secs = u64::try_from(z - a).unwrap_or(0);
        let samples = u32::try_from(secs).unwrap_or(0);
        Load {
            b: Bucket {
                samples,
                cnt: runs,
                rt: runs * 100,
                covered: u64::from(samples) * 1000,
                span_us: secs * SEC_US,
                ..Bucket::default()
            },
            present: (a * SEC_NS, z * SEC_NS),
        }
    }

    #[test]
    fn loads_side_by_side_are_observed_once() {
        // Two copies of one script over a whole minute: 59 passes saw both.
        let b = merge_loads(&[load(0, 59, 100), load(0, 59, 80)]);
        assert_eq!((b.cnt, b.rt), (180, 18_000));
        assert_eq!((b.span_us, b.samples), (59 * SEC_US, 59));
        assert_eq!(b.coverage(), 1.0);
    }

    #[test]
    fn loads_one_after_another_add_their_times() {
        // A reload at 20 s: the old load until then, the new one after.
        let b = merge_loads(&[load(0, 20, 10), load(20, 60, 30)]);
        assert_eq!((b.cnt, b.span_us, b.samples), (40, 60 * SEC_US, 60));
        // Overlapping by 10 s: the union, 60 s.
        let b = merge_loads(&[load(0, 30, 10), load(20, 60, 30)]);
        assert_eq!((b.span_us, b.samples), (60 * SEC_US, 60));
    }

    #[test]
    fn a_stall_both_loads_saw_counts_once() {
        // One late pass: each load's samples cover 120 s of a 60 s step.
        let mut a = load(0, 60, 10);
        a.b.span_us = 120 * SEC_US;
        let mut b = a;
        b.b.cnt = 5;
        let m = merge_loads(&[a, b]);
        assert_eq!((m.cnt, m.span_us), (15, 120 * SEC_US));
    }
}
