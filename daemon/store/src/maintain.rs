//! After each flush: rollups of completed periods, per-tier retention, and the byte cap.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::{Duration, SystemTime};

use rusqlite::params;

use super::codec::{self, Bucket, RollupChunk};
use super::query::MIN1_PER_HOUR1;
use super::read::{self, Segment, TickPoint};
use super::{Store, StoreError, Tier, TierSpan, wall_ns, write};
use crate::sampler::metrics::Counters;

/// Lifetime of a series in ticks: samples are the ticks in `(first, end]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Life {
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
pub fn cumulative_before(tick: u64, segs: &[&Segment], total: Counters) -> Counters {
    for seg in segs {
        if seg.end_tick() <= tick {
            continue;
        }
        let mut cum = seg.base;
        for d in seg
            .deltas
            .iter()
            .take(tick.saturating_sub(seg.start_tick) as usize)
        {
            read::add(&mut cum, *d);
        }
        return cum;
    }
    total
}

/// Folds a series' per-tick samples over `ticks` (one boot, in order) into buckets of
/// `width_us` of boot time. `prev_bt_us` is the tick before the first, for its elapsed time.
pub fn fold_ticks(
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
        let index = (p.bt_us / width_us) as i64;
        if out.last().is_none_or(|b| b.index != index) {
            out.push(Bucket {
                index,
                ..Bucket::default()
            });
        }
        let mut sample = Bucket {
            index,
            samples: 1,
            frozen: u32::from(p.state == super::StatsCode::Unavailable as u8),
            cnt: d.cnt,
            rt: d.rt,
            covered: u64::from(p.coverage_pm),
            ..Bucket::default()
        };
        if let Some(e) = elapsed_us.filter(|&e| e > 0) {
            sample.peak_cnt_rate = (u128::from(d.cnt) * 1_000_000 / u128::from(e)) as u64;
            sample.peak_rt_rate = (u128::from(d.rt) * 1_000_000 / u128::from(e)) as u64;
        }
        if let Some(b) = out.last_mut() {
            b.absorb(&sample);
        }
    }
    out
}

/// Sum of buckets (index of the first).
pub fn summarise(buckets: &[Bucket]) -> Bucket {
    let mut s = Bucket {
        index: buckets.first().map_or(0, |b| b.index),
        ..Bucket::default()
    };
    for b in buckets {
        s.absorb(b);
    }
    s
}

pub fn segments_by_series(segs: &[Segment]) -> HashMap<i64, Vec<&Segment>> {
    let mut by: HashMap<i64, Vec<&Segment>> = HashMap::new();
    for s in segs {
        by.entry(s.series_id).or_default().push(s);
    }
    for v in by.values_mut() {
        v.sort_by_key(|s| s.start_tick);
    }
    by
}

/// A series as the rollups need it.
#[derive(Debug, Clone, Copy)]
pub struct SeriesLife {
    pub series_id: i64,
    pub life: Life,
    /// Latest known cumulative counters (live, or at its end).
    pub total: Counters,
}

impl Store {
    pub(super) fn maintain(&mut self, now: SystemTime) -> Result<(), StoreError> {
        while self.roll_min1()? {}
        while self.roll_hour1()? {}
        self.retire(now)?;
        self.enforce_cap()
    }

    /// Series of `boot` alive at some tick of `[t0, t1]`, with their latest totals.
    pub(super) fn series_lives(
        &self,
        boot: i64,
        t0: u64,
        t1: u64,
    ) -> Result<Vec<SeriesLife>, StoreError> {
        let live: HashMap<i64, Counters> =
            self.live.values().map(|l| (l.series_id, l.last)).collect();
        let mut stmt = self.conn.prepare_cached(
            "SELECT series_id, first_tick, end_tick, base_cnt, base_rt, end_cnt, end_rt
             FROM series WHERE boot_seq = ?1 AND first_tick < ?3
               AND (end_tick IS NULL OR end_tick >= ?2)",
        )?;
        let rows = stmt.query_map(params![boot, t0 as i64, t1 as i64], |r| {
            let id: i64 = r.get(0)?;
            let end: Option<i64> = r.get(2)?;
            let base = read::counters(r.get(3)?, r.get(4)?);
            let end_counters = read::opt_counters(r, 5, 6)?;
            Ok((
                id,
                r.get::<_, i64>(1)? as u64,
                end.map(|e| e as u64),
                base,
                end_counters,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (series_id, first, end, base, end_counters) = row?;
            let total = live
                .get(&series_id)
                .copied()
                .or(end_counters)
                .unwrap_or(base);
            out.push(SeriesLife {
                series_id,
                life: Life { first, end },
                total,
            });
        }
        // Series born but not yet written (disk full) are alive too.
        for s in &self.pending.series {
            if s.boot_seq == boot
                && s.first_tick < t1
                && !out.iter().any(|o| o.series_id == s.series_id)
            {
                out.push(SeriesLife {
                    series_id: s.series_id,
                    life: Life {
                        first: s.first_tick,
                        end: None,
                    },
                    total: live.get(&s.series_id).copied().unwrap_or(s.base),
                });
            }
        }
        Ok(out)
    }

    /// Rolls the oldest complete hour of raw ticks into 1-minute chunks. Returns whether it did.
    fn roll_min1(&mut self) -> Result<bool, StoreError> {
        let done = self.min1_done_tick;
        let mut ticks = read::ticks_from(&self.conn, done.saturating_sub(1))?;
        let prev = match ticks.first() {
            Some(p) if p.tick + 1 == done => Some(ticks.remove(0)),
            _ => None,
        };
        let Some(first) = ticks.first().copied() else {
            return Ok(false);
        };
        let chunk_us = Tier::Min1.chunk_us();
        let hour = first.bt_us / chunk_us;
        let n = ticks
            .iter()
            .take_while(|p| p.boot_seq == first.boot_seq && p.bt_us / chunk_us == hour)
            .count();
        if n == ticks.len() {
            return Ok(false); // the hour is still open
        }
        let hour_ticks = &ticks[..n];
        let (t0, t1) = (first.tick, hour_ticks[n - 1].tick);
        let prev_bt = prev
            .filter(|p| p.boot_seq == first.boot_seq)
            .map(|p| p.bt_us);
        let lives = self.series_lives(first.boot_seq, t0, t1)?;
        let ids: HashSet<i64> = lives.iter().map(|l| l.series_id).collect();
        let segs = read::segments_from(&self.conn, t0, self.max_span, Some(&ids))?;
        let by_series = segments_by_series(&segs);

        let tx = self.conn.transaction()?;
        for l in &lives {
            let segs = by_series
                .get(&l.series_id)
                .map(Vec::as_slice)
                .unwrap_or(&[]);
            let buckets = fold_ticks(hour_ticks, prev_bt, l.life, segs, Tier::Min1.bucket_us());
            if buckets.is_empty() {
                continue;
            }
            let base = cumulative_before(t0, segs, l.total);
            let data = codec::to_bytes(&RollupChunk::from_buckets(&buckets));
            write::insert_chunk(
                &tx,
                Tier::Min1.table(),
                (first.boot_seq, hour as i64, l.series_id),
                base,
                &summarise(&buckets),
                &data,
            )?;
        }
        write::set_meta(&tx, "min1_done_tick", (t1 + 1) as i64)?;
        tx.commit()?;
        self.min1_done_tick = t1 + 1;
        Ok(true)
    }

    /// Rolls the oldest complete day of 1-minute chunks into 1-hour chunks.
    fn roll_hour1(&mut self) -> Result<bool, StoreError> {
        let (b, c) = self.hour1_done;
        let next: Option<(i64, i64)> = self
            .conn
            .query_row(
                "SELECT boot_seq, chunk FROM min1 WHERE (boot_seq, chunk) >= (?1, ?2)
                 ORDER BY boot_seq, chunk LIMIT 1",
                params![b, c],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .ok();
        let Some((boot, hour)) = next else {
            return Ok(false);
        };
        let day = hour.div_euclid(MIN1_PER_HOUR1);
        let (lo, hi) = (day * MIN1_PER_HOUR1, (day + 1) * MIN1_PER_HOUR1 - 1);
        let later: i64 = self.conn.query_row(
            "SELECT count(*) FROM (SELECT 1 FROM min1 WHERE (boot_seq, chunk) > (?1, ?2) LIMIT 1)",
            params![boot, hi],
            |r| r.get(0),
        )?;
        if later == 0 {
            return Ok(false); // the day is still open
        }
        let rows = read::chunks_between(&self.conn, Tier::Min1.table(), boot, lo, hi)?;
        let ratio = (Tier::Hour1.bucket_us() / Tier::Min1.bucket_us()) as i64;
        let mut per_series: BTreeMap<i64, (Counters, Vec<Bucket>)> = BTreeMap::new();
        for row in &rows {
            let entry = per_series
                .entry(row.series_id)
                .or_insert_with(|| (row.base, Vec::new()));
            for m in row.buckets()? {
                fold_into(&mut entry.1, &m, ratio);
            }
        }
        let tx = self.conn.transaction()?;
        for (series, (base, buckets)) in &per_series {
            let data = codec::to_bytes(&RollupChunk::from_buckets(buckets));
            write::insert_chunk(
                &tx,
                Tier::Hour1.table(),
                (boot, day, *series),
                *base,
                &summarise(buckets),
                &data,
            )?;
        }
        write::set_meta(&tx, "hour1_done_boot", boot)?;
        write::set_meta(&tx, "hour1_done_chunk", hi + 1)?;
        tx.commit()?;
        self.hour1_done = (boot, hi + 1);
        Ok(true)
    }

    /// Deletes what is older than each tier's age (never what is not rolled up yet).
    fn retire(&mut self, now: SystemTime) -> Result<(), StoreError> {
        let now_ns = wall_ns(now);
        let age =
            |d: Duration| now_ns.saturating_sub(i64::try_from(d.as_nanos()).unwrap_or(i64::MAX));
        let ret = self.cfg.retention;
        self.delete_raw_before_wall(age(ret.raw))?;
        for (tier, cutoff) in [(Tier::Min1, age(ret.min1)), (Tier::Hour1, age(ret.hour1))] {
            let limit = self.unrolled_from(tier);
            // One statement per table, cached: this runs after every flush.
            let mut delete = self.conn.prepare_cached(&format!(
                "DELETE FROM {} WHERE boot_seq = ?1 AND chunk < ?2
                   AND (boot_seq, chunk) < (?3, ?4)",
                tier.table()
            ))?;
            for boot in &self.boots {
                let cut_us = cutoff.saturating_sub(boot.wall_offset_ns) / 1000;
                // Chunks that end before the cutoff.
                let chunk_cut = cut_us.div_euclid(tier.chunk_us() as i64);
                delete.execute(params![boot.seq, chunk_cut, limit.0, limit.1])?;
            }
        }
        // Series whose data is gone from every tier.
        let mut delete = self.conn.prepare_cached(
            "DELETE FROM series WHERE boot_seq = ?1 AND end_bt_ns IS NOT NULL
               AND end_bt_ns < ?2",
        )?;
        for boot in &self.boots {
            let cut_ns = age(ret.hour1).saturating_sub(boot.wall_offset_ns);
            delete.execute(params![boot.seq, cut_ns])?;
        }
        Ok(())
    }

    /// Key `(boot, chunk)` from which `tier`'s chunks are not rolled into the next coarser tier
    /// yet: retention and the cap keep them.
    fn unrolled_from(&self, tier: Tier) -> (i64, i64) {
        match tier {
            Tier::Min1 => self.hour1_done,
            Tier::Raw | Tier::Hour1 => (i64::MAX, i64::MAX),
        }
    }

    /// Deletes raw ticks (and their segments) whose tick row ended before `cutoff_wall_ns`,
    /// but none that are not rolled up.
    fn delete_raw_before_wall(&mut self, cutoff_wall_ns: i64) -> Result<(), StoreError> {
        let mut cut = None;
        {
            let mut stmt = self.conn.prepare_cached(
                "SELECT first_tick, n, boot_seq, last_bt_us FROM ticks ORDER BY first_tick",
            )?;
            let mut rows = stmt.query([])?;
            while let Some(r) = rows.next()? {
                let end = (r.get::<_, i64>(0)? + r.get::<_, i64>(1)?) as u64;
                let boot: i64 = r.get(2)?;
                let last_bt_us: i64 = r.get(3)?;
                let offset = self.boot(boot).map_or(0, |b| b.wall_offset_ns);
                let wall = last_bt_us.saturating_mul(1000).saturating_add(offset);
                if wall >= cutoff_wall_ns || end > self.min1_done_tick {
                    break;
                }
                cut = Some(end);
            }
        }
        if let Some(cut) = cut {
            self.delete_raw_before_tick(cut)?;
        }
        Ok(())
    }

    fn delete_raw_before_tick(&mut self, cut: u64) -> Result<(), StoreError> {
        let tx = self.conn.transaction()?;
        tx.execute("DELETE FROM raw WHERE key < (?1 << 32)", [cut as i64])?;
        tx.execute("DELETE FROM ticks WHERE first_tick + n <= ?1", [cut as i64])?;
        // The tick counter lives in the ticks table; keep it when that empties.
        write::set_meta(&tx, "next_tick", self.next_tick as i64)?;
        tx.commit()?;
        Ok(())
    }

    fn pragma(&self, name: &str) -> Result<u64, StoreError> {
        Ok(self
            .conn
            .query_row(&format!("PRAGMA {name}"), [], |r| r.get::<_, i64>(0))? as u64)
    }

    pub(super) fn used_bytes(&self) -> Result<u64, StoreError> {
        Ok(
            (self.pragma("page_count")? - self.pragma("freelist_count")?)
                * self.pragma("page_size")?,
        )
    }

    /// Keeps the used size under the cap minus headroom for the next flush: oldest raw ticks
    /// first, then oldest 1-minute chunks, then oldest 1-hour chunks. Shrinks the file if the
    /// cap was lowered below it.
    fn enforce_cap(&mut self) -> Result<(), StoreError> {
        let cap = self.cfg.max_bytes;
        let headroom = (cap / 16).max(64 << 10);
        let target = cap.saturating_sub(headroom);
        while self.used_bytes()? > target {
            if !self.evict_oldest()? {
                return Err(StoreError::CapTooSmall {
                    cap,
                    used: self.used_bytes()?,
                });
            }
        }
        let file = self.pragma("page_count")? * self.pragma("page_size")?;
        if file > cap {
            let excess_pages = (file - target) / self.pragma("page_size")?;
            self.conn
                .execute_batch(&format!("PRAGMA incremental_vacuum({excess_pages})"))?;
        }
        Ok(())
    }

    /// Deletes one batch of the oldest data; false when nothing may be deleted.
    fn evict_oldest(&mut self) -> Result<bool, StoreError> {
        // Raw: the oldest tick rows (a tenth of what is rolled up, at least one row).
        let rows: Vec<(u64, u64)> = {
            let mut stmt = self
                .conn
                .prepare_cached("SELECT first_tick, n FROM ticks ORDER BY first_tick")?;
            let rows = stmt.query_map([], |r| {
                Ok((r.get::<_, i64>(0)? as u64, r.get::<_, i64>(1)? as u64))
            })?;
            rows.collect::<Result<_, _>>()?
        };
        let rolled: Vec<u64> = rows
            .iter()
            .map(|(f, n)| f + n)
            .take_while(|&end| end <= self.min1_done_tick)
            .collect();
        if let Some(&cut) = rolled.get(rolled.len() / 10) {
            self.delete_raw_before_tick(cut)?;
            return Ok(true);
        }
        // Rolled 1-minute chunks, then 1-hour chunks, then (a cap too small for a day of
        // 1-minute chunks) 1-minute chunks not rolled into hours yet.
        for (tier, limit) in [
            (Tier::Min1, self.unrolled_from(Tier::Min1)),
            (Tier::Hour1, self.unrolled_from(Tier::Hour1)),
            (Tier::Min1, (i64::MAX, i64::MAX)),
        ] {
            let table = tier.table();
            let oldest: Option<(i64, i64)> = self
                .conn
                .query_row(
                    &format!(
                        "SELECT boot_seq, chunk FROM {table} WHERE (boot_seq, chunk) < (?1, ?2)
                         ORDER BY boot_seq, chunk LIMIT 1"
                    ),
                    params![limit.0, limit.1],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .ok();
            if let Some((boot, chunk)) = oldest {
                self.conn.execute(
                    &format!("DELETE FROM {table} WHERE boot_seq = ?1 AND chunk = ?2"),
                    params![boot, chunk],
                )?;
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// On-disk bytes of tables (their pages, from SQLite's dbstat).
    fn table_bytes(&self, tables: &[&str]) -> Result<u64, StoreError> {
        let mut total = 0;
        for t in tables {
            let b: i64 = self.conn.query_row(
                "SELECT coalesce(sum(pgsize), 0) FROM dbstat WHERE name = ?1",
                [t],
                |r| r.get(0),
            )?;
            total += b as u64;
        }
        Ok(total)
    }

    /// Time spans and row counts per tier; with `bytes`, their on-disk size too (a page scan).
    pub(super) fn tier_spans(&self, bytes: bool) -> Result<Vec<TierSpan>, StoreError> {
        let mut spans = Vec::new();
        // Counting rows scans a table: only for status, never on the query path.
        let count = |table: &str| {
            if bytes {
                format!("(SELECT count(*) FROM {table})")
            } else {
                "0".to_owned()
            }
        };
        let raw: (Option<i64>, Option<i64>, Option<i64>, Option<i64>, i64) = self.conn.query_row(
            &format!(
                "SELECT (SELECT boot_seq FROM ticks ORDER BY first_tick LIMIT 1),
                        (SELECT first_bt_us FROM ticks ORDER BY first_tick LIMIT 1),
                        (SELECT boot_seq FROM ticks ORDER BY first_tick DESC LIMIT 1),
                        (SELECT last_bt_us FROM ticks ORDER BY first_tick DESC LIMIT 1),
                        {}",
                count(Tier::Raw.table())
            ),
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
        )?;
        let at = |boot: Option<i64>, us: Option<i64>| {
            boot.zip(us)
                .and_then(|(b, us)| self.wall_of(b, us.saturating_mul(1000)))
        };
        spans.push(TierSpan {
            tier: Tier::Raw.as_str(),
            oldest: at(raw.0, raw.1),
            newest: at(raw.2, raw.3),
            rows: raw.4 as u64,
            bytes: if bytes {
                self.table_bytes(&[Tier::Raw.table(), "ticks"])?
            } else {
                0
            },
        });
        for tier in [Tier::Min1, Tier::Hour1] {
            let table = tier.table();
            let r: (Option<i64>, Option<i64>, Option<i64>, Option<i64>, i64) = self.conn.query_row(
                &format!(
                    "SELECT (SELECT boot_seq FROM {table} ORDER BY boot_seq, chunk LIMIT 1),
                            (SELECT chunk FROM {table} ORDER BY boot_seq, chunk LIMIT 1),
                            (SELECT boot_seq FROM {table} ORDER BY boot_seq DESC, chunk DESC LIMIT 1),
                            (SELECT chunk FROM {table} ORDER BY boot_seq DESC, chunk DESC LIMIT 1),
                            {}",
                    count(table)
                ),
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
            )?;
            let w = tier.chunk_us() as i64;
            spans.push(TierSpan {
                tier: tier.as_str(),
                oldest: at(r.0, r.1.map(|c| c * w)),
                newest: at(r.2, r.3.map(|c| (c + 1) * w)),
                rows: r.4 as u64,
                bytes: if bytes {
                    self.table_bytes(&[table])?
                } else {
                    0
                },
            });
        }
        Ok(spans)
    }
}

/// Adds a finer bucket into the coarser bucket list (`ratio` finer buckets per coarse one).
pub fn fold_into(out: &mut Vec<Bucket>, fine: &Bucket, ratio: i64) {
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
