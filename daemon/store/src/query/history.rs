//! History of a program at a step, from the finest tier that covers the range.

use std::collections::HashSet;
use std::time::{Duration, SystemTime};

use super::{
    History, HistoryPoint, MAX_POINTS, ProgramRef, QueryError, Rates, Reader, SeriesRow, Tier,
    choose_tier, validate_range,
};
use ebpfstat_numbers::rates::{Totals, avg_ns_per_run, cpu_pct_of_rate, overhead_ns};
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
    fn raw_slices(
        &self,
        boot: i64,
        s: &SeriesRow,
        lo: u64,
        hi: u64,
    ) -> Result<Vec<Slice>, StoreError> {
        let ticks = self.ticks_in(boot, lo, hi)?;
        let Some(start) = ticks.iter().position(|p| p.bt_us >= lo) else {
            return Ok(Vec::new());
        };
        let first_tick = ticks[start].tick;
        let wanted = HashSet::from([s.series_id]);
        let mut segs = self.segments(first_tick, Some(&wanted))?;
        segs.sort_by_key(|g| g.start_tick);
        let refs: Vec<&Segment> = segs.iter().collect();
        let mut cum = cumulative_before(first_tick, &refs, s.total);
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
            let finer = self.slices(span.finer, boot, s, tail_lo, hi)?;
            out.extend(fold_slices(&finer, span.bucket_us));
        }
        Ok(out)
    }

    fn slices(
        &self,
        tier: Tier,
        boot: i64,
        s: &SeriesRow,
        lo: u64,
        hi: u64,
    ) -> Result<Vec<Slice>, StoreError> {
        match tier {
            Tier::Raw => self.raw_slices(boot, s, lo, hi),
            Tier::Min1 | Tier::Hour1 => self.rollup_slices(tier, boot, s, lo, hi),
        }
    }

    /// A page of the history of `target`: `[from, to)` clipped to when it was seen (its first
    /// sample to its last, or the newest tick while it is loaded), on the grid of `step` from
    /// `from` (raised to the tier's resolution), at most `max_points` points; when cut, the
    /// time to continue from.
    pub fn history_page(
        &self,
        target: &ProgramRef,
        (from, to): (SystemTime, SystemTime),
        step: Duration,
        tier: Option<Tier>,
        max_points: u64,
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
        Ok((self.points_of(series, tier, step, start, end)?, next))
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
        let series = self.resolve(target)?;
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
        self.points_of(series, tier, step, from, to)
    }

    /// The points of `series` over `[from, to)` at `step` from `tier`.
    fn points_of(
        &self,
        series: Vec<SeriesRow>,
        tier: Tier,
        step: Duration,
        from: SystemTime,
        to: SystemTime,
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
        let from_ns = wall_ns(from);
        // At most MAX_POINTS, checked above.
        let n = usize::try_from(n_points).unwrap_or(0);
        let mut points: Vec<(Bucket, Option<Counters>)> = vec![(Bucket::default(), None); n];
        let mut overhead = vec![0.0f64; n];
        // Per series: cumulative at the end of each point it has data in.
        let mut cum_per_series: Vec<Vec<Option<Counters>>> = Vec::new();
        for s in &series {
            let mut cums = vec![None; n];
            for (boot, lo, hi) in self.boots.ranges(from, to) {
                if boot != s.boot_seq {
                    continue;
                }
                let offset = self.boots.offset_ns(boot);
                let cost = self.boots.stats_cost_ns(boot);
                for sl in self.slices(tier, boot, s, lo, hi)? {
                    let wall = signed(ns_of_us(sl.at_us)).saturating_add(offset);
                    let Some(k) = wall
                        .checked_sub(from_ns)
                        .and_then(|d| u64::try_from(d).ok())
                        .and_then(|d| usize::try_from(d / step_ns).ok())
                        .filter(|&k| k < points.len())
                    else {
                        continue;
                    };
                    points[k].0.absorb(&sl.b);
                    overhead[k] += overhead_ns(sl.b.cnt, cost);
                    cums[k] = Some(sl.cum);
                }
            }
            cum_per_series.push(cums);
        }
        // Cumulative per point: each series' latest value so far (carried), summed.
        for (i, s) in series.iter().enumerate() {
            let mut carried = self.cumulative_at_start(s, from)?;
            for k in 0..points.len() {
                if let Some(c) = cum_per_series[i][k] {
                    carried = Some(c);
                }
                if let Some(c) = carried {
                    let slot = points[k].1.get_or_insert_with(Counters::default);
                    slot.run_cnt += c.run_cnt;
                    slot.run_time_ns += c.run_time_ns;
                }
            }
        }
        let points = points
            .into_iter()
            .enumerate()
            .map(|(k, (b, cum))| {
                let start = from + Duration::from_nanos(step_ns.saturating_mul(k as u64));
                let end = (start + Duration::from_nanos(step_ns)).min(to);
                let width = end.duration_since(start).unwrap_or_default();
                point(start, end, width, &b, cum.unwrap_or_default(), overhead[k])
            })
            .collect();
        Ok(History {
            series,
            tier,
            step_ns,
            points,
        })
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
