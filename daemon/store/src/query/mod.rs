//! The query engine: history of a program (or of an identity across reloads) at a step, and
//! top-N over a window. A query reads the finest tier that covers its range; the part of a
//! rollup tier not rolled up yet is derived on the fly from the finer tier, and the part not
//! flushed yet from the write buffer, so answers are exact up to the last tick.

mod history;
mod series;
mod top;
mod types;

use std::collections::HashSet;
use std::time::{Duration, SystemTime};

pub use types::{History, HistoryPoint, ProgramRef, Ranking, Rates, SeriesRow, SortKey, TopRow};

use crate::buffer::Buffer;
use crate::clock::Boots;
use crate::db::Db;
use crate::error::{QueryError, StoreError};
use crate::read;
use crate::rows::{Segment, TickPoint};
use crate::tier::{MIN1_PER_HOUR1, Tier};

/// Most points one history answer may hold; callers page beyond it.
pub const MAX_POINTS: u64 = 20_000;

/// A read-only view of the store for one query: the database, the boots' clocks and the write
/// buffer.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Reader<'a> {
    pub db: &'a Db,
    pub boots: &'a Boots,
    pub buffer: &'a Buffer,
}

impl Reader<'_> {
    /// Wall time of the newest tick (the store's "now").
    pub fn newest_time(&self) -> Result<Option<SystemTime>, StoreError> {
        let Some(boot) = self.boots.current_seq() else {
            return Ok(None);
        };
        let bt = match self.buffer.newest_tick_us() {
            Some(bt) => Some(bt),
            // Everything is written: the newest stored tick.
            None => read::last_tick_of_boot(&self.db.conn, boot)?.map(|(_, bt)| bt),
        };
        Ok(bt.and_then(|bt| self.boots.wall_of_us(boot, bt)))
    }

    /// Counts `n` rows read.
    fn read_rows(&self, n: usize) {
        let reads = &self.db.reads;
        reads.set(reads.get().saturating_add(n as u64));
    }

    /// Ticks of `boot` in `[lo, hi]` µs, preceded by the tick before `lo` when there is one.
    fn ticks_in(&self, boot: i64, lo: u64, hi: u64) -> Result<Vec<TickPoint>, StoreError> {
        let mut all = read::ticks_between(&self.db.conn, boot, lo, hi)?;
        self.read_rows(all.len());
        all.extend(
            self.buffer
                .ticks_of(boot)?
                .into_iter()
                .filter(|p| p.bt_us <= hi),
        );
        let first_in = all.iter().position(|p| p.bt_us >= lo).unwrap_or(all.len());
        let mut out = all.split_off(first_in.saturating_sub(1));
        // The tick before may sit in an earlier row than the range touches.
        if let Some(first) = out.first().copied()
            && first.bt_us >= lo
            && first.tick > 0
            && let Some(prev) = read::tick_at(&self.db.conn, first.tick - 1)?
            && prev.boot_seq == boot
        {
            out.insert(0, prev);
        }
        Ok(out)
    }

    /// Segments (stored and in memory) that may hold ticks ≥ `from_tick` and, with
    /// `until_tick`, start at or before it: a bounded range reads what it covers, not what
    /// was stored after it.
    fn segments(
        &self,
        (from_tick, until_tick): (u64, Option<u64>),
        wanted: Option<&HashSet<i64>>,
    ) -> Result<Vec<Segment>, StoreError> {
        let mut segs = read::segments_from(
            &self.db.conn,
            (from_tick, until_tick),
            self.buffer.max_span(),
            wanted,
            &self.db.reads,
        )?;
        segs.extend(self.buffer.segments(wanted)?);
        segs.retain(|s| s.end_tick() > from_tick && until_tick.is_none_or(|u| s.start_tick <= u));
        Ok(segs)
    }

    /// Boot and hour of the first tick not rolled into 1-minute chunks.
    fn min1_boundary(&self) -> Result<(i64, u64), StoreError> {
        let mut first = read::first_tick_from(&self.db.conn, self.db.min1_done_tick)?;
        if first.is_none()
            && let Some(boot) = self.boots.current_seq()
        {
            first = self.buffer.ticks_of(boot)?.first().copied();
        }
        Ok(first.map_or((i64::MAX, u64::MAX), |p| {
            (p.boot_seq, p.bt_us / Tier::Min1.chunk_us())
        }))
    }

    /// Oldest wall time each tier can answer for.
    fn tier_oldest(&self) -> Result<[Option<SystemTime>; 3], StoreError> {
        let spans = self.db.tier_spans(self.boots, false)?;
        let pending_oldest = self
            .buffer
            .oldest_tick()
            .and_then(|(b, us)| self.boots.wall_of_us(b, us));
        let raw = spans[0].oldest.or(pending_oldest);
        let min1 = spans[1].oldest.or(raw);
        let hour1 = spans[2].oldest.or(min1);
        Ok([raw, min1, hour1])
    }

    fn rollup_span(
        &self,
        tier: Tier,
        boot: i64,
        lo: u64,
        hi: u64,
    ) -> Result<RollupSpan, StoreError> {
        // The rolled-up boundary in the tier's own chunks.
        let (bb, bc) = match tier {
            Tier::Min1 | Tier::Raw => {
                let (b, hour) = self.min1_boundary()?;
                (b, i64::try_from(hour).unwrap_or(i64::MAX))
            }
            Tier::Hour1 => {
                // `hour1_done` counts 1-minute chunks.
                let (b, chunk) = self.db.hour1_done;
                (b, chunk.div_euclid(MIN1_PER_HOUR1))
            }
        };
        let chunk_us = tier.chunk_us();
        let chunk_of = |us: u64| i64::try_from(us / chunk_us).unwrap_or(i64::MAX);
        let (first, last) = (chunk_of(lo), chunk_of(hi));
        Ok(RollupSpan {
            table: tier.table(),
            chunk_us,
            bucket_us: tier.bucket_us(),
            finer: tier.finer().unwrap_or(Tier::Raw),
            first,
            last,
            rolled_end: rolled_end(boot, bb, bc, first, last),
        })
    }
}

/// Where a rollup tier's chunks covering `[lo, hi]` of a boot are, and how many are rolled up.
#[derive(Debug, Clone, Copy)]
struct RollupSpan {
    table: &'static str,
    /// Width of a chunk and of a bucket in it (µs of boot time).
    chunk_us: u64,
    bucket_us: u64,
    /// The tier the not-yet-rolled part comes from.
    finer: Tier,
    first: i64,
    last: i64,
    /// First chunk in `[first, last + 1]` not rolled up.
    rolled_end: i64,
}

impl RollupSpan {
    /// Boot time (µs) where chunk `c` starts.
    fn start_us(&self, c: i64) -> u64 {
        c.unsigned_abs().saturating_mul(self.chunk_us)
    }
}

/// The finest tier that covers `from` at `step`; the coarsest data there is otherwise.
/// `oldest` is what `tier_oldest` found.
fn choose_tier(oldest: &[Option<SystemTime>; 3], from: SystemTime, step: Duration) -> Tier {
    let tiers = Tier::ALL;
    let covers = |i: usize| oldest[i].is_some_and(|o| o <= from);
    if let Some(i) =
        (0..3).find(|&i| covers(i) && tiers[i].resolution() <= step.max(Duration::ZERO))
    {
        return tiers[i];
    }
    if let Some(i) = (0..3).find(|&i| covers(i)) {
        return tiers[i];
    }
    // Nothing reaches back to `from`: the tier holding the oldest data, finest on ties.
    let mut best = Tier::Raw;
    let mut best_time = oldest[0];
    for (i, t) in tiers.iter().enumerate().skip(1) {
        if let Some(o) = oldest[i]
            && best_time.is_none_or(|b| o < b)
        {
            best = *t;
            best_time = Some(o);
        }
    }
    best
}

/// First chunk index in `[first, last]` not rolled up, given the boundary `(bb, bc)`.
fn rolled_end(boot: i64, bb: i64, bc: i64, first: i64, last: i64) -> i64 {
    match boot.cmp(&bb) {
        std::cmp::Ordering::Less => last + 1,
        std::cmp::Ordering::Equal => bc.clamp(first, last + 1),
        std::cmp::Ordering::Greater => first,
    }
}

fn validate_range(from: SystemTime, to: SystemTime) -> Result<(), QueryError> {
    if to <= from {
        return Err(QueryError::InvalidArgument(format!(
            "the range ends ({}) before it starts ({})",
            humantime::format_rfc3339_seconds(to),
            humantime::format_rfc3339_seconds(from)
        )));
    }
    let earliest = SystemTime::UNIX_EPOCH + Duration::from_secs(86_400);
    if from < earliest || to > SystemTime::now() + Duration::from_secs(100 * 365 * 86_400) {
        return Err(QueryError::InvalidArgument(
            "the range lies outside any time this store can hold".into(),
        ));
    }
    Ok(())
}
