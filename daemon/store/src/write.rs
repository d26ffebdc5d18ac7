//! The flush transaction: everything buffered goes in one commit, or nothing does.

use rusqlite::{Connection, Transaction, params};

use super::StoreError;
use super::codec::Bucket;
use super::ingest::Pending;
use crate::sampler::metrics::Counters;

/// Writes and clears `pending`; on error nothing is written and `pending` is untouched.
pub fn commit(
    conn: &mut Connection,
    pending: &mut Pending,
    max_span: u64,
) -> Result<(), StoreError> {
    if pending.is_empty() {
        return Ok(());
    }
    let tx = conn.transaction()?;
    write_pending(&tx, pending)?;
    // Meta rows only when they change: each is a page rewritten per commit on flash.
    if pending.max_span_changed {
        set_meta(&tx, "max_span", max_span as i64)?;
    }
    tx.commit()?;
    pending.max_span_changed = false;
    pending.clear_written();
    Ok(())
}

pub fn set_meta(tx: &Transaction<'_>, key: &str, value: i64) -> Result<(), StoreError> {
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
            m.load_boottime_ns as i64,
            m.name,
            m.full_name,
            m.prog_type,
            m.tag,
            m.created_by_uid,
            m.btf_id,
            m.jited_size,
            m.xlated_size,
            m.verified_insns,
            s.first_tick as i64,
            s.first_bt_ns as i64,
            s.base.run_cnt as i64,
            s.base.run_time_ns as i64,
            s.map_memory.total as i64,
            s.map_memory.own as i64,
            s.map_memory.shared as i64,
        ])?;
    }
    for (id, mm) in &p.map_memory {
        tx.prepare_cached(
            "UPDATE series SET map_mem = ?2, map_mem_own = ?3, map_mem_shared = ?4
             WHERE series_id = ?1",
        )?
        .execute(params![
            id,
            mm.total as i64,
            mm.own as i64,
            mm.shared as i64
        ])?;
    }
    for r in &p.raws {
        tx.prepare_cached(
            "INSERT OR REPLACE INTO raw (key, base_cnt, base_rt, data)
             VALUES ((?1 << 32) | ?2, ?3, ?4, ?5)",
        )?
        .execute(params![
            r.start_tick as i64,
            r.series_id,
            r.base.run_cnt as i64,
            r.base.run_time_ns as i64,
            r.data,
        ])?;
    }
    for t in &p.ticks {
        tx.prepare_cached(
            "INSERT OR REPLACE INTO ticks (first_tick, boot_seq, first_bt_us, last_bt_us, n, data)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )?
        .execute(params![
            t.first_tick as i64,
            t.boot_seq,
            t.first_bt_us as i64,
            t.last_bt_us as i64,
            t.n as i64,
            t.data,
        ])?;
    }
    // Ends last: a series born and ended within one flush is inserted first.
    for e in &p.ends {
        tx.prepare_cached(
            "UPDATE series SET end_tick = ?2, end_bt_ns = ?3, end_cnt = ?4, end_rt = ?5
             WHERE series_id = ?1",
        )?
        .execute(params![
            e.series_id,
            e.end_tick as i64,
            e.end_bt_ns as i64,
            e.end.run_cnt as i64,
            e.end.run_time_ns as i64,
        ])?;
    }
    Ok(())
}

/// Inserts one rollup chunk row.
pub fn insert_chunk(
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
        base.run_cnt as i64,
        base.run_time_ns as i64,
        summary.samples,
        summary.cnt as i64,
        summary.rt as i64,
        summary.peak_cnt_rate as i64,
        summary.peak_rt_rate as i64,
        summary.covered as i64,
        data,
    ])?;
    Ok(())
}
