//! What the next flush writes, and the flush transaction: everything buffered goes in one
//! commit, or nothing does.

use std::sync::Arc;

use rusqlite::{Connection, Transaction, params};

use crate::clock::Boot;
use crate::codec::Bucket;
use crate::error::StoreError;
use crate::maps::MapBuffer;
use crate::model::{Counters, MapMemory, ProgramMeta};

/// A sealed raw segment.
#[derive(Debug, Clone)]
pub(crate) struct RawRow {
    pub start_tick: u64,
    pub series_id: i64,
    pub base: Counters,
    pub data: Vec<u8>,
}

/// A sealed tick window.
#[derive(Debug, Clone)]
pub(crate) struct TickRow {
    pub first_tick: u64,
    pub boot_seq: i64,
    pub first_bt_us: u64,
    pub last_bt_us: u64,
    pub n: u64,
    pub data: Vec<u8>,
}

/// A series born since the last flush.
#[derive(Debug, Clone)]
pub(crate) struct NewSeries {
    pub series_id: i64,
    pub boot_seq: i64,
    pub meta: Arc<ProgramMeta>,
    pub first_tick: u64,
    pub first_bt_ns: u64,
    pub base: Counters,
    pub map_memory: MapMemory,
}

/// A series ended since the last flush.
#[derive(Debug, Clone)]
pub(crate) struct SeriesEnd {
    pub series_id: i64,
    pub end_tick: u64,
    pub end_bt_ns: u64,
    pub end: Counters,
}

/// Everything sealed and not yet committed.
#[derive(Debug, Default)]
pub(crate) struct Pending {
    pub boots: Vec<Boot>,
    pub series: Vec<NewSeries>,
    pub ends: Vec<SeriesEnd>,
    pub map_memory: Vec<(i64, MapMemory)>,
    /// Series whose full name became known after they were born (series id, full name).
    pub renames: Vec<(i64, String)>,
    pub raws: Vec<RawRow>,
    pub ticks: Vec<TickRow>,
    /// The longest segment span, when it grew (queries look that far back for segments).
    pub max_span: Option<u64>,
    /// Where each push target's receiver has acknowledged up to (ns), when it moved.
    pub pushed: std::collections::BTreeMap<String, i64>,
}

impl Pending {
    pub fn is_empty(&self) -> bool {
        self.boots.is_empty()
            && self.series.is_empty()
            && self.ends.is_empty()
            && self.map_memory.is_empty()
            && self.renames.is_empty()
            && self.raws.is_empty()
            && self.ticks.is_empty()
            && self.pushed.is_empty()
    }

    /// Ticks in sealed windows.
    pub fn sealed_ticks(&self) -> usize {
        self.ticks
            .iter()
            .map(|t| usize::try_from(t.n).unwrap_or(usize::MAX))
            .fold(0, usize::saturating_add)
    }

    /// Replaces the row of a boot written with the next flush.
    pub fn save_boot(&mut self, boot: Boot) {
        self.boots.retain(|b| b.seq != boot.seq);
        self.boots.push(boot);
    }

    /// Drops the oldest sealed ticks (and their segments) while more than `max_ticks` ticks
    /// (`open` of them not sealed yet) are buffered; returns how many were dropped. Series
    /// births and ends are small and always kept.
    pub fn bound(&mut self, max_ticks: usize, open: usize) -> u64 {
        let mut dropped = 0;
        while self.sealed_ticks().saturating_add(open) > max_ticks && !self.ticks.is_empty() {
            let oldest = self.ticks.remove(0);
            dropped += oldest.n;
            let end = oldest.first_tick + oldest.n;
            self.raws.retain(|r| r.start_tick >= end);
        }
        if dropped > 0 {
            tracing::warn!("dropped {dropped} buffered ticks: writes keep failing");
        }
        dropped
    }

    /// Empties what was written, room included: after a burst of programs that came and went,
    /// a minute's rows are not kept allocated for the next.
    fn clear_written(&mut self) {
        *self = Self::default();
    }
}

/// Writes and clears `pending` and the maps' buffer; on error nothing is written and both are
/// untouched.
pub(crate) fn commit(
    conn: &mut Connection,
    pending: &mut Pending,
    maps: &mut MapBuffer,
) -> Result<(), StoreError> {
    if pending.is_empty() && maps.is_empty() {
        return Ok(());
    }
    let tx = conn.transaction()?;
    write_pending(&tx, pending)?;
    maps.write(&tx)?;
    // Meta rows only when they change: each is a page rewritten per commit on flash.
    if let Some(span) = pending.max_span {
        set_meta(&tx, "max_span", span)?;
    }
    for (target, at) in &pending.pushed {
        set_meta(&tx, &pushed_key(target), at)?;
    }
    tx.commit()?;
    pending.clear_written();
    maps.written();
    Ok(())
}

/// Writes and clears the push positions alone; on error they stay pending.
pub(crate) fn commit_pushed(
    conn: &mut Connection,
    pushed: &mut std::collections::BTreeMap<String, i64>,
) -> Result<(), StoreError> {
    let tx = conn.transaction()?;
    for (target, at) in pushed.iter() {
        set_meta(&tx, &pushed_key(target), at)?;
    }
    tx.commit()?;
    pushed.clear();
    Ok(())
}

/// The meta row of a push target's position.
pub(crate) fn pushed_key(target: &str) -> String {
    format!("pushed:{target}")
}

pub(crate) fn set_meta(
    tx: &Transaction<'_>,
    key: &str,
    value: impl rusqlite::ToSql,
) -> Result<(), StoreError> {
    tx.prepare_cached("INSERT OR REPLACE INTO meta (key, value) VALUES (?1, ?2)")?
        .execute(params![key, value])?;
    Ok(())
}

fn write_pending(tx: &Transaction<'_>, p: &Pending) -> Result<(), StoreError> {
    for b in &p.boots {
        tx.prepare_cached(
            "INSERT INTO boots (boot_seq, boot_id, wall_offset_ns, clock_steps, stats_cost_ps)
             VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT (boot_seq) DO UPDATE
             SET wall_offset_ns = ?3, clock_steps = ?4, stats_cost_ps = ?5",
        )?
        .execute(params![
            b.seq,
            b.boot_id,
            b.wall_offset_ns,
            b.clock_steps,
            b.stats_cost_ps
        ])?;
    }
    for s in &p.series {
        insert_series(tx, s)?;
    }
    for (id, full_name) in &p.renames {
        tx.prepare_cached("UPDATE series SET full_name = ?2 WHERE series_id = ?1")?
            .execute(params![id, full_name])?;
    }
    for (id, mm) in &p.map_memory {
        tx.prepare_cached(
            "UPDATE series SET map_mem = ?2, map_mem_own = ?3, map_mem_shared = ?4
             WHERE series_id = ?1",
        )?
        .execute(params![id, mm.total, mm.own, mm.shared])?;
    }
    write_samples(tx, p)?;
    // Ends last: a series born and ended within one flush is inserted first.
    for e in &p.ends {
        tx.prepare_cached(
            "UPDATE series SET end_tick = ?2, end_bt_ns = ?3, end_cnt = ?4, end_rt = ?5
             WHERE series_id = ?1",
        )?
        .execute(params![
            e.series_id,
            e.end_tick,
            e.end_bt_ns,
            e.end.run_cnt,
            e.end.run_time_ns,
        ])?;
    }
    Ok(())
}

fn insert_series(tx: &Transaction<'_>, s: &NewSeries) -> Result<(), StoreError> {
    let m = &s.meta;
    tx.prepare_cached(
        "INSERT INTO series (series_id, boot_seq, prog_id, load_bt_ns, name, full_name, type,
             tag, created_by_uid, btf_id, jited_size, xlated_size, verified_insns, first_tick,
             first_bt_ns, base_cnt, base_rt, map_mem, map_mem_own, map_mem_shared)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17,
             ?18, ?19, ?20)",
    )?
    .execute(params![
        s.series_id,
        s.boot_seq,
        m.id,
        m.load_boottime_ns,
        m.name,
        m.full_name,
        m.prog_type,
        m.tag,
        m.created_by_uid,
        m.btf_id,
        m.jited_size,
        m.xlated_size,
        m.verified_insns,
        s.first_tick,
        s.first_bt_ns,
        s.base.run_cnt,
        s.base.run_time_ns,
        s.map_memory.total,
        s.map_memory.own,
        s.map_memory.shared,
    ])?;
    Ok(())
}

/// The sealed raw segments and tick windows.
fn write_samples(tx: &Transaction<'_>, p: &Pending) -> Result<(), StoreError> {
    for r in &p.raws {
        tx.prepare_cached(
            "INSERT OR REPLACE INTO raw (key, base_cnt, base_rt, data)
             VALUES ((?1 << 32) | ?2, ?3, ?4, ?5)",
        )?
        .execute(params![
            r.start_tick,
            r.series_id,
            r.base.run_cnt,
            r.base.run_time_ns,
            r.data,
        ])?;
    }
    for t in &p.ticks {
        tx.prepare_cached(
            "INSERT OR REPLACE INTO ticks (first_tick, boot_seq, first_bt_us, last_bt_us, n, data)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )?
        .execute(params![
            t.first_tick,
            t.boot_seq,
            t.first_bt_us,
            t.last_bt_us,
            t.n,
            t.data,
        ])?;
    }
    Ok(())
}

/// Inserts one rollup chunk row.
pub(crate) fn insert_chunk(
    tx: &Transaction<'_>,
    table: &str,
    key: (i64, i64, i64),
    base: Counters,
    summary: &Bucket,
    data: &[u8],
) -> Result<(), StoreError> {
    tx.prepare_cached(&format!(
        "INSERT OR REPLACE INTO {table} (boot_seq, chunk, series_id, base_cnt, base_rt, samples,
             sum_cnt, sum_rt, peak_cnt_rate, peak_rt_rate, covered, data)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)"
    ))?
    .execute(params![
        key.0,
        key.1,
        key.2,
        base.run_cnt,
        base.run_time_ns,
        summary.samples,
        summary.cnt,
        summary.rt,
        summary.peak_cnt_rate,
        summary.peak_rt_rate,
        summary.covered,
        data,
    ])?;
    Ok(())
}
