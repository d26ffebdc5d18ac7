//! The arithmetic of folding samples into buckets, shared by the rollups (maintenance) and by
//! queries that derive a tier's not-yet-rolled part on the fly: pure functions on decoded rows.

use std::collections::HashMap;

use crate::codec::Bucket;
use crate::model::{Counters, StatsCode};
use crate::rows::{self, Segment, TickPoint};

/// Lifetime of a series in ticks: samples are the ticks in `(first, end]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Life {
    pub first: u64,
    pub end: Option<u64>,
}

impl Life {
    pub fn samples_at(&self, tick: u64) -> bool {
        tick > self.first && self.end.is_none_or(|e| tick <= e)
    }
}

/// Cumulative counters just before `tick`, from the segments at or after it (sorted by start),
/// or `total` when no activity follows.
pub(crate) fn cumulative_before(tick: u64, segs: &[&Segment], total: Counters) -> Counters {
    for seg in segs {
        if seg.end_tick() <= tick {
            continue;
        }
        let mut cum = seg.base;
        let before = usize::try_from(tick.saturating_sub(seg.start_tick)).unwrap_or(usize::MAX);
        for d in seg.deltas.iter().take(before) {
            rows::add(&mut cum, *d);
        }
        return cum;
    }
    total
}

/// `value × 10⁶ / elapsed_us`: a per-second rate, saturating at what an INTEGER column holds.
fn per_second(value: u64, elapsed_us: u64) -> u64 {
    let rate = u128::from(value) * 1_000_000 / u128::from(elapsed_us);
    u64::try_from(rate).map_or(MAX_STORED, |r| r.min(MAX_STORED))
}

/// The largest value a summary column stores (SQLite integers are signed 64-bit).
const MAX_STORED: u64 = i64::MAX.cast_unsigned();

/// Where bucket `index` of `width_us` starts (µs of boot time); indexes are never negative.
pub(crate) fn bucket_start(index: i64, width_us: u64) -> u64 {
    u64::try_from(index).unwrap_or(0).saturating_mul(width_us)
}

/// The bucket index of a boot time: `bt_us / width_us`, saturating.
pub(crate) fn bucket_index(bt_us: u64, width_us: u64) -> i64 {
    i64::try_from(bt_us / width_us).unwrap_or(i64::MAX)
}

/// Folds a series' per-tick samples over `ticks` (one boot, in order) into buckets of
/// `width_us` of boot time. `prev_bt_us` is the tick before the first, for its elapsed time.
pub(crate) fn fold_ticks(
    ticks: &[TickPoint],
    prev_bt_us: Option<u64>,
    life: Life,
    segs: &[&Segment],
    width_us: u64,
) -> Vec<Bucket> {
    let mut out: Vec<Bucket> = Vec::new();
    let mut prev = prev_bt_us;
    let mut si = 0;
    for p in ticks {
        let elapsed_us = prev.map(|b| p.bt_us.saturating_sub(b));
        prev = Some(p.bt_us);
        if !life.samples_at(p.tick) {
            continue;
        }
        while si < segs.len() && segs[si].end_tick() <= p.tick {
            si += 1;
        }
        let d = segs.get(si).map(|s| s.delta_at(p.tick)).unwrap_or_default();
        let index = bucket_index(p.bt_us, width_us);
        if out.last().is_none_or(|b| b.index != index) {
            out.push(Bucket {
                index,
                ..Bucket::default()
            });
        }
        let mut sample = Bucket {
            index,
            samples: 1,
            frozen: u32::from(p.state == StatsCode::Unavailable as u8),
            cnt: d.cnt,
            rt: d.rt,
            covered: u64::from(p.coverage_pm),
            span_us: elapsed_us.unwrap_or(0),
            ..Bucket::default()
        };
        if let Some(e) = elapsed_us.filter(|&e| e > 0) {
            sample.peak_cnt_rate = per_second(d.cnt, e);
            sample.peak_rt_rate = per_second(d.rt, e);
        }
        if let Some(b) = out.last_mut() {
            b.absorb(&sample);
        }
    }
    out
}

/// Sum of buckets (index of the first).
pub(crate) fn summarise(buckets: &[Bucket]) -> Bucket {
    let mut s = Bucket {
        index: buckets.first().map_or(0, |b| b.index),
        ..Bucket::default()
    };
    for b in buckets {
        s.absorb(b);
    }
    s
}

/// Segments grouped by series, each group sorted by start.
pub(crate) fn segments_by_series(segs: &[Segment]) -> HashMap<i64, Vec<&Segment>> {
    let mut by: HashMap<i64, Vec<&Segment>> = HashMap::new();
    for s in segs {
        by.entry(s.series_id).or_default().push(s);
    }
    for v in by.values_mut() {
        ebpfstat_numbers::order::sort_by_key(v, |s| Segment::start_key(s));
    }
    by
}

/// Adds a finer bucket into the coarser bucket list (`ratio` finer buckets per coarse one).
pub(crate) fn fold_into(out: &mut Vec<Bucket>, fine: &Bucket, ratio: i64) {
    let index = fine.index.div_euclid(ratio);
    if out.last().is_none_or(|b| b.index != index) {
        out.push(Bucket {
            index,
            ..Bucket::default()
        });
    }
    if let Some(b) = out.last_mut() {
        b.absorb(fine);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::Delta;

    fn tick(tick: u64, bt_us: u64) -> TickPoint {
        TickPoint {
            tick,
            boot_seq: 1,
            bt_us,
            state: StatsCode::Enabled as u8,
            coverage_pm: 1000,
        }
    }

    #[test]
    fn ticks_fold_into_buckets_with_peaks() {
        // Ticks 1..=4 a second apart; the series was born at tick 0 and is alive.
        let ticks: Vec<TickPoint> = (1..=4).map(|t| tick(t, t * 1_000_000)).collect();
        let seg = Segment {
            start_tick: 2,
            series_id: 7,
            base: Counters::default(),
            deltas: vec![Delta { cnt: 10, rt: 100 }, Delta { cnt: 30, rt: 900 }],
        };
        let life = Life {
            first: 0,
            end: None,
        };
        // Buckets of 2 s: ticks 1 (idle) | 2, 3 | 4 (idle).
        let b = fold_ticks(&ticks, Some(0), life, &[&seg], 2_000_000);
        assert_eq!(b.len(), 3);
        assert_eq!((b[0].index, b[0].samples, b[0].cnt), (0, 1, 0));
        assert_eq!(
            (b[1].index, b[1].samples, b[1].cnt, b[1].rt),
            (1, 2, 40, 1000)
        );
        assert_eq!(b[1].peak_cnt_rate, 30);
        assert_eq!((b[2].index, b[2].samples, b[2].cnt), (2, 1, 0));
        let s = summarise(&b);
        assert_eq!((s.index, s.samples, s.cnt, s.rt), (0, 4, 40, 1000));
        // Before tick 3 the series had run 10 times; after the segment, no activity follows:
        // its latest total holds.
        let total = Counters {
            run_time_ns: 1000,
            run_cnt: 40,
        };
        assert_eq!(cumulative_before(3, &[&seg], total).run_cnt, 10);
        assert_eq!(cumulative_before(4, &[&seg], total), total);
    }

    #[test]
    fn a_late_tick_spans_its_stall_and_its_peak_is_over_it() {
        // A pass a second, then a 90 s stall: the late tick counts 450 runs made at 5/s.
        let at: [u64; 5] = [1, 2, 3, 93, 94];
        let ticks: Vec<TickPoint> = (1..).zip(at).map(|(t, s)| tick(t, s * 1_000_000)).collect();
        let seg = Segment {
            start_tick: 1,
            series_id: 7,
            base: Counters::default(),
            deltas: [5, 5, 5, 450, 5]
                .map(|cnt| Delta { cnt, rt: cnt * 100 })
                .to_vec(),
        };
        let life = Life {
            first: 0,
            end: None,
        };
        let b = fold_ticks(&ticks, Some(0), life, &[&seg], 1_000_000);
        let late = b
            .iter()
            .find(|b| b.index == 93)
            .expect("the late tick's bucket");
        assert_eq!(
            (late.cnt, late.span_us, late.peak_cnt_rate),
            (450, 90_000_000, 5)
        );
        assert!(b.iter().all(|b| b.peak_cnt_rate == 5));
        // A minute holding the stall: its counts over the time they cover.
        let m = fold_ticks(&ticks, Some(0), life, &[&seg], 60_000_000);
        assert_eq!((m[1].cnt, m[1].span_us), (455, 91_000_000));
    }

    #[test]
    fn a_series_samples_only_inside_its_life() {
        let ticks: Vec<TickPoint> = (0..6).map(|t| tick(t, t)).collect();
        let life = Life {
            first: 1,
            end: Some(3),
        };
        let b = fold_ticks(&ticks, None, life, &[], u64::MAX);
        assert_eq!(summarise(&b).samples, 2, "ticks 2 and 3 only");
    }

    #[test]
    fn finer_buckets_fold_into_coarser() {
        let mut out = Vec::new();
        for index in [58, 59, 60, 61, 125] {
            let fine = Bucket {
                index,
                samples: 1,
                cnt: 1,
                ..Bucket::default()
            };
            fold_into(&mut out, &fine, 60);
        }
        let got: Vec<(i64, u64)> = out.iter().map(|b| (b.index, b.cnt)).collect();
        assert_eq!(got, vec![(0, 2), (1, 2), (2, 1)]);
    }
}
