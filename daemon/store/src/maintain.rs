//! After each flush: rollups of completed periods, per-tier retention, and the byte cap.

use std::collections::{BTreeMap, HashSet};
use std::time::{Duration, SystemTime};

use rusqlite::params;

use crate::buffer::Buffer;
use crate::clock::{Boots, wall_ns};
use crate::codec::{self, Bucket, RollupChunk};
use crate::config::StoreConfig;
use crate::db::Db;
use crate::error::StoreError;
use crate::fold::{self, Life};
use crate::model::Counters;
use crate::read;
use crate::tier::{MIN1_BUCKETS_PER_HOUR1, MIN1_PER_HOUR1, Tier};
use crate::write;
use ebpfstat_numbers::WallNs;
use ebpfstat_numbers::time::{ns_of_us_signed, us_of_ns_signed};

/// A series as the rollups need it.
#[derive(Debug, Clone, Copy)]
struct SeriesLife {
    series_id: i64,
    life: Life,
    /// Latest known cumulative counters (live, or at its end).
    total: Counters,
}

/// Rolls up what is complete, then applies retention and the cap.
pub(crate) fn run(
    db: &mut Db,
    boots: &Boots,
    buffer: &Buffer,
    cfg: &StoreConfig,
    now: SystemTime,
) -> Result<(), StoreError> {
    let mut m = Maintenance {
        db,
        boots,
        buffer,
        cfg,
    };
    while m.roll_min1()? {}
    while m.roll_hour1()? {}
    m.retire(now)?;
    m.enforce_cap()
}

struct Maintenance<'a> {
    db: &'a mut Db,
    boots: &'a Boots,
    buffer: &'a Buffer,
    cfg: &'a StoreConfig,
}

impl Maintenance<'_> {
    /// Series of `boot` alive at some tick of `[t0, t1]`, with their latest totals.
    fn series_lives(&self, boot: i64, t0: u64, t1: u64) -> Result<Vec<SeriesLife>, StoreError> {
        let live = self.buffer.live_by_series();
        let mut stmt = self.db.conn.prepare_cached(
            "SELECT series_id, first_tick, end_tick, base_cnt, base_rt, end_cnt, end_rt
             FROM series WHERE boot_seq = ?1 AND first_tick < ?3
               AND (end_tick IS NULL OR end_tick >= ?2)",
        )?;
        let rows = stmt.query_map(params![boot, t0, t1], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                Life {
                    first: r.get(1)?,
                    end: r.get(2)?,
                },
                read::counters(r, 3, 4)?,
                read::opt_counters(r, 5, 6)?,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (series_id, life, base, end_counters) = row?;
            let total = live
                .get(&series_id)
                .map(|l| l.last)
                .or(end_counters)
                .unwrap_or(base);
            out.push(SeriesLife {
                series_id,
                life,
                total,
            });
        }
        // Series born but not yet written (disk full) are alive too.
        for s in self.buffer.unwritten_series() {
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
                    total: live.get(&s.series_id).map_or(s.base, |l| l.last),
                });
            }
        }
        Ok(out)
    }

    /// Rolls the oldest complete hour of raw ticks into 1-minute chunks. Returns whether it did.
    fn roll_min1(&mut self) -> Result<bool, StoreError> {
        let done = self.db.min1_done_tick;
        let mut ticks = read::ticks_from(&self.db.conn, done.saturating_sub(1))?;
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
        let segs = read::segments_from(
            &self.db.conn,
            (t0, None),
            self.buffer.max_span(),
            Some(&ids),
            &self.db.reads,
        )?;
        let by_series = fold::segments_by_series(&segs);
        let hour_key = i64::try_from(hour)
            .map_err(|_| StoreError::OutOfRange(format!("hour {hour} of boot time")))?;

        let tx = self.db.conn.transaction()?;
        for l in &lives {
            let segs = by_series
                .get(&l.series_id)
                .map(Vec::as_slice)
                .unwrap_or(&[]);
            let buckets =
                fold::fold_ticks(hour_ticks, prev_bt, l.life, segs, Tier::Min1.bucket_us());
            if buckets.is_empty() {
                continue;
            }
            let base = fold::cumulative_before(t0, segs, l.total);
            let data = codec::to_bytes(&RollupChunk::from_buckets(&buckets))?;
            write::insert_chunk(
                &tx,
                Tier::Min1.table(),
                (first.boot_seq, hour_key, l.series_id),
                base,
                &fold::summarise(&buckets),
                &data,
            )?;
        }
        write::set_meta(&tx, "min1_done_tick", t1 + 1)?;
        tx.commit()?;
        self.db.min1_done_tick = t1 + 1;
        Ok(true)
    }

    /// Rolls the oldest complete day of 1-minute chunks into 1-hour chunks.
    fn roll_hour1(&mut self) -> Result<bool, StoreError> {
        let conn = &self.db.conn;
        let Some((boot, hour)) =
            read::first_chunk_from(conn, Tier::Min1.table(), self.db.hour1_done)?
        else {
            return Ok(false);
        };
        let day = hour.div_euclid(MIN1_PER_HOUR1);
        let (lo, hi) = (day * MIN1_PER_HOUR1, (day + 1) * MIN1_PER_HOUR1 - 1);
        if read::first_chunk_from(conn, Tier::Min1.table(), (boot, hi + 1))?.is_none() {
            return Ok(false); // the day is still open
        }
        let rows = read::chunks_between(conn, Tier::Min1.table(), boot, lo, hi)?;
        let mut per_series: BTreeMap<i64, (Counters, Vec<Bucket>)> = BTreeMap::new();
        for row in &rows {
            let entry = per_series
                .entry(row.series_id)
                .or_insert_with(|| (row.base, Vec::new()));
            for m in row.buckets()? {
                fold::fold_into(&mut entry.1, &m, MIN1_BUCKETS_PER_HOUR1);
            }
        }
        let tx = self.db.conn.transaction()?;
        for (series, (base, buckets)) in &per_series {
            let data = codec::to_bytes(&RollupChunk::from_buckets(buckets))?;
            write::insert_chunk(
                &tx,
                Tier::Hour1.table(),
                (boot, day, *series),
                *base,
                &fold::summarise(buckets),
                &data,
            )?;
        }
        write::set_meta(&tx, "hour1_done_boot", boot)?;
        write::set_meta(&tx, "hour1_done_chunk", hi + 1)?;
        tx.commit()?;
        self.db.hour1_done = (boot, hi + 1);
        Ok(true)
    }

    /// Deletes what is older than each tier's age (never what is not rolled up yet).
    fn retire(&mut self, now: SystemTime) -> Result<(), StoreError> {
        let now_ns = wall_ns(now);
        let age = |d: Duration| WallNs::from_ns(now_ns).minus(d).ns();
        let ret = self.cfg.retention;
        self.delete_raw_before_wall(age(ret.raw))?;
        for (tier, cutoff) in [(Tier::Min1, age(ret.min1)), (Tier::Hour1, age(ret.hour1))] {
            let limit = self.db.unrolled_from(tier);
            let chunk_us = i64::try_from(tier.chunk_us()).unwrap_or(i64::MAX);
            // One statement per table, cached: this runs after every flush.
            let mut delete = self.db.conn.prepare_cached(&format!(
                "DELETE FROM {} WHERE boot_seq = ?1 AND chunk < ?2
                   AND (boot_seq, chunk) < (?3, ?4)",
                tier.table()
            ))?;
            for boot in self.boots.iter() {
                let cut_us = us_of_ns_signed(cutoff.saturating_sub(boot.wall_offset_ns));
                // Chunks that end before the cutoff.
                let chunk_cut = cut_us.div_euclid(chunk_us);
                delete.execute(params![boot.seq, chunk_cut, limit.0, limit.1])?;
            }
        }
        // Series whose data is gone from every tier.
        let mut delete = self.db.conn.prepare_cached(
            "DELETE FROM series WHERE boot_seq = ?1 AND end_bt_ns IS NOT NULL
               AND end_bt_ns < ?2",
        )?;
        for boot in self.boots.iter() {
            let cut_ns = age(ret.hour1).saturating_sub(boot.wall_offset_ns);
            delete.execute(params![boot.seq, cut_ns])?;
        }
        Ok(())
    }

    /// Deletes raw ticks (and their segments) whose tick row ended before `cutoff_wall_ns`,
    /// but none that are not rolled up.
    fn delete_raw_before_wall(&mut self, cutoff_wall_ns: i64) -> Result<(), StoreError> {
        let mut cut = None;
        {
            let mut stmt = self.db.conn.prepare_cached(
                "SELECT first_tick, n, boot_seq, last_bt_us FROM ticks ORDER BY first_tick",
            )?;
            let mut rows = stmt.query([])?;
            while let Some(r) = rows.next()? {
                let end = r.get::<_, u64>(0)? + r.get::<_, u64>(1)?;
                let boot: i64 = r.get(2)?;
                let last_bt_us: i64 = r.get(3)?;
                let wall = ns_of_us_signed(last_bt_us).saturating_add(self.boots.offset_ns(boot));
                if wall >= cutoff_wall_ns || end > self.db.min1_done_tick {
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
        let tx = self.db.conn.transaction()?;
        tx.execute("DELETE FROM raw WHERE key < (?1 << 32)", [cut])?;
        tx.execute("DELETE FROM ticks WHERE first_tick + n <= ?1", [cut])?;
        // The tick counter lives in the ticks table; keep it when that empties.
        write::set_meta(&tx, "next_tick", self.buffer.next_tick())?;
        tx.commit()?;
        Ok(())
    }

    /// Keeps the used size under the cap minus headroom for the next flush: oldest raw ticks
    /// first, then oldest 1-minute chunks, then oldest 1-hour chunks. Shrinks the file if the
    /// cap was lowered below it.
    fn enforce_cap(&mut self) -> Result<(), StoreError> {
        let cap = self.cfg.max_bytes;
        let headroom = (cap / 16).max(64 << 10);
        let target = cap.saturating_sub(headroom);
        while self.db.used_bytes()? > target {
            let evicted = self.evict_oldest()?;
            self.trim_maps()?;
            if !evicted {
                return Err(StoreError::CapTooSmall {
                    cap,
                    used: self.db.used_bytes()?,
                });
            }
        }
        let page_size = self.db.pragma("page_size")?;
        let file = self.db.pragma("page_count")?.saturating_mul(page_size);
        if file > cap {
            let excess_pages = (file - target) / page_size.max(1);
            self.db
                .conn
                .execute_batch(&format!("PRAGMA incremental_vacuum({excess_pages})"))?;
        }
        Ok(())
    }

    /// Deletes map points older than the programs' oldest data in the same tier: the cap
    /// takes both from the oldest end.
    fn trim_maps(&mut self) -> Result<(), StoreError> {
        let spans = self.db.tier_spans(self.boots, false)?;
        for (tier, span) in Tier::ALL.into_iter().zip(&spans) {
            if let Some(oldest) = span.oldest {
                let oldest_s = crate::maps::wall_s(oldest);
                crate::maps::delete_before(&self.db.conn, tier, oldest_s)?;
            }
        }
        Ok(())
    }

    /// Deletes one batch of the oldest data; false when nothing may be deleted.
    fn evict_oldest(&mut self) -> Result<bool, StoreError> {
        // Raw: the oldest tick rows (a tenth of what is rolled up, at least one row).
        let rows: Vec<(u64, u64)> = {
            let mut stmt = self
                .db
                .conn
                .prepare_cached("SELECT first_tick, n FROM ticks ORDER BY first_tick")?;
            let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
            rows.collect::<Result<_, _>>()?
        };
        let rolled: Vec<u64> = rows
            .iter()
            .map(|(f, n)| f + n)
            .take_while(|&end| end <= self.db.min1_done_tick)
            .collect();
        if let Some(&cut) = rolled.get(rolled.len() / 10) {
            self.delete_raw_before_tick(cut)?;
            return Ok(true);
        }
        // Rolled 1-minute chunks, then 1-hour chunks, then (a cap too small for a day of
        // 1-minute chunks) 1-minute chunks not rolled into hours yet.
        for (tier, limit) in [
            (Tier::Min1, self.db.unrolled_from(Tier::Min1)),
            (Tier::Hour1, self.db.unrolled_from(Tier::Hour1)),
            (Tier::Min1, (i64::MAX, i64::MAX)),
        ] {
            let table = tier.table();
            if let Some((boot, chunk)) = read::first_chunk_before(&self.db.conn, table, limit)? {
                self.db.conn.execute(
                    &format!("DELETE FROM {table} WHERE boot_seq = ?1 AND chunk = ?2"),
                    params![boot, chunk],
                )?;
                return Ok(true);
            }
        }
        Ok(false)
    }
}
