//! Reading rows back: boots, meta, series, ticks, raw segments and rollup chunks. Every lookup
//! that may find nothing says so with `Option`; every failure is an error.

use std::cell::Cell;
use std::collections::{HashMap, HashSet};

use rusqlite::types::Type;
use rusqlite::{Connection, OptionalExtension, Row, params};

use crate::clock::Boot;
use crate::codec::{self, Bucket, RawChunk};
use crate::error::StoreError;
use crate::model::{Counters, MapMemory};
use crate::rows::{self, ChunkRow, Segment, TickPoint, decode_segment, decode_ticks};
use crate::tier::Tier;

/// The blob in column `i`; another type is an error, not an empty blob.
fn blob<'r>(r: &'r Row<'_>, i: usize) -> rusqlite::Result<&'r [u8]> {
    r.get_ref(i)?
        .as_blob()
        .map_err(|e| rusqlite::Error::FromSqlConversionFailure(i, Type::Blob, Box::new(e)))
}

pub(crate) fn boots(conn: &Connection) -> Result<Vec<Boot>, StoreError> {
    let mut stmt = conn.prepare(
        "SELECT boot_seq, boot_id, wall_offset_ns, clock_steps, stats_cost_ps FROM boots
         ORDER BY boot_seq",
    )?;
    let rows = stmt.query_map([], |r| {
        Ok(Boot {
            seq: r.get(0)?,
            boot_id: r.get(1)?,
            wall_offset_ns: r.get(2)?,
            clock_steps: r.get(3)?,
            stats_cost_ps: r.get(4)?,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

pub(crate) fn meta(conn: &Connection, key: &str) -> Result<Option<i64>, StoreError> {
    Ok(conn
        .query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0))
        .optional()?)
}

/// A meta value that counts something (never negative).
pub(crate) fn meta_count(conn: &Connection, key: &str) -> Result<u64, StoreError> {
    match meta(conn, key)? {
        None => Ok(0),
        Some(v) => u64::try_from(v)
            .map_err(|_| StoreError::OutOfRange(format!("meta {key} is negative ({v})"))),
    }
}

pub(crate) fn next_tick(conn: &Connection) -> Result<u64, StoreError> {
    let from_ticks: u64 = conn.query_row(
        "SELECT coalesce(max(first_tick + n), 0) FROM ticks",
        [],
        |r| r.get(0),
    )?;
    Ok(from_ticks.max(meta_count(conn, "next_tick")?))
}

pub(crate) fn next_series_id(conn: &Connection) -> Result<i64, StoreError> {
    Ok(conn.query_row(
        "SELECT coalesce(max(series_id), 0) + 1 FROM series",
        [],
        |r| r.get(0),
    )?)
}

/// Counters from two nullable columns (a series' end, unknown while it lives).
pub(crate) fn opt_counters(
    r: &Row<'_>,
    cnt: usize,
    rt: usize,
) -> rusqlite::Result<Option<Counters>> {
    Ok(
        match (r.get::<_, Option<u64>>(cnt)?, r.get::<_, Option<u64>>(rt)?) {
            (Some(run_cnt), Some(run_time_ns)) => Some(Counters {
                run_time_ns,
                run_cnt,
            }),
            _ => None,
        },
    )
}

/// Counters from two columns.
pub(crate) fn counters(r: &Row<'_>, cnt: usize, rt: usize) -> rusqlite::Result<Counters> {
    Ok(Counters {
        run_cnt: r.get(cnt)?,
        run_time_ns: r.get(rt)?,
    })
}

/// Map memory from three columns (total, own, shared).
pub(crate) fn map_memory(r: &Row<'_>, first: usize) -> rusqlite::Result<MapMemory> {
    Ok(MapMemory {
        total: r.get(first)?,
        own: r.get(first + 1)?,
        shared: r.get(first + 2)?,
    })
}

#[derive(Debug, Clone)]
pub(crate) struct OpenSeries {
    pub series_id: i64,
    pub boot_seq: i64,
    pub prog_id: u32,
    pub load_bt_ns: u64,
    pub first_tick: u64,
    pub first_bt_ns: u64,
    pub base: Counters,
    pub map_memory: MapMemory,
}

pub(crate) fn open_series(conn: &Connection) -> Result<Vec<OpenSeries>, StoreError> {
    let mut stmt = conn.prepare(
        "SELECT series_id, boot_seq, prog_id, load_bt_ns, first_tick, first_bt_ns, base_cnt,
                base_rt, map_mem, map_mem_own, map_mem_shared
         FROM series WHERE end_tick IS NULL",
    )?;
    let rows = stmt.query_map([], |r| {
        Ok(OpenSeries {
            series_id: r.get(0)?,
            boot_seq: r.get(1)?,
            prog_id: r.get(2)?,
            load_bt_ns: r.get(3)?,
            first_tick: r.get(4)?,
            first_bt_ns: r.get(5)?,
            base: counters(r, 6, 7)?,
            map_memory: map_memory(r, 8)?,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// The last tick stored for a boot and its boottime (µs).
pub(crate) fn last_tick_of_boot(
    conn: &Connection,
    boot: i64,
) -> Result<Option<(u64, u64)>, StoreError> {
    Ok(conn
        .prepare_cached(
            "SELECT first_tick + n - 1, last_bt_us FROM ticks WHERE boot_seq = ?1
             ORDER BY first_tick DESC LIMIT 1",
        )?
        .query_row([boot], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?)
}

/// The newest stored tick of any boot: (boot, boottime µs).
pub(crate) fn last_tick(conn: &Connection) -> Result<Option<(i64, u64)>, StoreError> {
    Ok(conn
        .prepare_cached("SELECT boot_seq, last_bt_us FROM ticks ORDER BY first_tick DESC LIMIT 1")?
        .query_row([], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?)
}

/// The newest stored cumulative counters of each wanted series: from its newest raw segment,
/// else its newest rollup chunk. Series with neither are absent (their baseline holds).
pub(crate) fn latest_cumulative(
    conn: &Connection,
    wanted: &HashSet<i64>,
) -> Result<HashMap<i64, Counters>, StoreError> {
    let mut found = HashMap::new();
    let mut stmt = conn
        .prepare("SELECT key & 4294967295, base_cnt, base_rt, data FROM raw ORDER BY key DESC")?;
    let mut rows = stmt.query([])?;
    while found.len() < wanted.len()
        && let Some(r) = rows.next()?
    {
        let id: i64 = r.get(0)?;
        if !wanted.contains(&id) || found.contains_key(&id) {
            continue;
        }
        let chunk: RawChunk = codec::from_bytes(blob(r, 3)?)?;
        let mut cum = counters(r, 1, 2)?;
        for d in chunk.deltas()? {
            rows::add(&mut cum, d);
        }
        found.insert(id, cum);
    }
    for table in [Tier::Min1.table(), Tier::Hour1.table()] {
        if found.len() == wanted.len() {
            break;
        }
        let mut stmt = conn.prepare(&format!(
            "SELECT series_id, base_cnt + sum_cnt, base_rt + sum_rt FROM {table}
             ORDER BY boot_seq DESC, chunk DESC"
        ))?;
        let mut rows = stmt.query([])?;
        while found.len() < wanted.len()
            && let Some(r) = rows.next()?
        {
            let id: i64 = r.get(0)?;
            if wanted.contains(&id) && !found.contains_key(&id) {
                found.insert(id, counters(r, 1, 2)?);
            }
        }
    }
    Ok(found)
}

/// Stored ticks with number ≥ `from_tick`, in order.
pub(crate) fn ticks_from(conn: &Connection, from_tick: u64) -> Result<Vec<TickPoint>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT first_tick, boot_seq, data FROM ticks WHERE first_tick + n > ?1
         ORDER BY first_tick",
    )?;
    let mut rows = stmt.query([from_tick])?;
    let mut out = Vec::new();
    while let Some(r) = rows.next()? {
        let points = decode_ticks(r.get(0)?, r.get(1)?, blob(r, 2)?)?;
        out.extend(points.into_iter().filter(|p| p.tick >= from_tick));
    }
    Ok(out)
}

/// The first stored tick with number ≥ `from_tick`: only the row holding it is decoded.
pub(crate) fn first_tick_from(
    conn: &Connection,
    from_tick: u64,
) -> Result<Option<TickPoint>, StoreError> {
    let row: Option<(u64, i64, Vec<u8>)> = conn
        .prepare_cached(
            // Rows never overlap: the one holding the tick starts at or after the last row
            // starting at or before it, which the rowid finds without a scan.
            "SELECT first_tick, boot_seq, data FROM ticks
             WHERE first_tick >= coalesce((SELECT max(first_tick) FROM ticks
                                           WHERE first_tick <= ?1), 0)
               AND first_tick + n > ?1
             ORDER BY first_tick LIMIT 1",
        )?
        .query_row([from_tick], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .optional()?;
    let Some((first, boot, data)) = row else {
        return Ok(None);
    };
    Ok(decode_ticks(first, boot, &data)?
        .into_iter()
        .find(|p| p.tick >= from_tick))
}

/// One stored tick by number.
pub(crate) fn tick_at(conn: &Connection, tick: u64) -> Result<Option<TickPoint>, StoreError> {
    let row: Option<(u64, i64, Vec<u8>)> = conn
        .prepare_cached(
            "SELECT first_tick, boot_seq, data FROM ticks WHERE first_tick <= ?1
             ORDER BY first_tick DESC LIMIT 1",
        )?
        .query_row([tick], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .optional()?;
    let Some((first, boot, data)) = row else {
        return Ok(None);
    };
    Ok(decode_ticks(first, boot, &data)?
        .into_iter()
        .find(|p| p.tick == tick))
}

/// Stored ticks of `boot` with boottime in `[lo_us, hi_us]`, plus the one just before (for
/// the elapsed time of the first).
pub(crate) fn ticks_between(
    conn: &Connection,
    boot: i64,
    lo_us: u64,
    hi_us: u64,
) -> Result<Vec<TickPoint>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT first_tick, data FROM ticks
         WHERE boot_seq = ?1 AND last_bt_us >= ?2 AND first_bt_us <= ?3 ORDER BY first_tick",
    )?;
    let mut rows = stmt.query(params![boot, lo_us, hi_us])?;
    let mut out: Vec<TickPoint> = Vec::new();
    while let Some(r) = rows.next()? {
        for p in decode_ticks(r.get(0)?, boot, blob(r, 1)?)? {
            if p.bt_us < lo_us {
                out.clear();
                out.push(p); // the tick before the range
            } else if p.bt_us <= hi_us {
                out.push(p);
            }
        }
    }
    Ok(out)
}

/// Stored raw segments that may hold ticks ≥ `from_tick` (segments span at most `max_span`
/// ticks) and, with `until_tick`, that start at or before it; of the wanted series only when
/// `wanted` is given. Every row stepped over is counted in `reads` (rows of other series
/// included: the key orders rows by tick first).
pub(crate) fn segments_from(
    conn: &Connection,
    (from_tick, until_tick): (u64, Option<u64>),
    max_span: u64,
    wanted: Option<&HashSet<i64>>,
    reads: &Cell<u64>,
) -> Result<Vec<Segment>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT key >> 32, key & 4294967295, base_cnt, base_rt, data FROM raw
         WHERE key >= (?1 << 32) AND key < ?2 ORDER BY key",
    )?;
    // Keys are `tick << 32 | series`: the first key of the tick after `until_tick`.
    let end_key = until_tick
        .and_then(|t| t.checked_add(1))
        .and_then(|t| i64::try_from(t).ok())
        .and_then(|t| t.checked_mul(1 << 32))
        .unwrap_or(i64::MAX);
    let mut rows = stmt.query(params![from_tick.saturating_sub(max_span), end_key])?;
    let mut out = Vec::new();
    while let Some(r) = rows.next()? {
        reads.set(reads.get() + 1);
        let series_id: i64 = r.get(1)?;
        if wanted.is_some_and(|w| !w.contains(&series_id)) {
            continue;
        }
        let seg = decode_segment(r.get(0)?, series_id, counters(r, 2, 3)?, blob(r, 4)?)?;
        if seg.end_tick() > from_tick {
            out.push(seg);
        }
    }
    Ok(out)
}

fn chunk_row(r: &Row<'_>) -> rusqlite::Result<ChunkRow> {
    Ok(ChunkRow {
        series_id: r.get(0)?,
        base: counters(r, 1, 2)?,
        data: r.get(3)?,
    })
}

const CHUNK_COLUMNS: &str = "series_id, base_cnt, base_rt, data";

/// One series' chunk, by primary key.
pub(crate) fn chunk(
    conn: &Connection,
    table: &str,
    boot: i64,
    chunk: i64,
    series: i64,
) -> Result<Option<ChunkRow>, StoreError> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {CHUNK_COLUMNS} FROM {table} WHERE boot_seq = ?1 AND chunk = ?2 AND series_id = ?3"
    ))?;
    Ok(stmt
        .query_row(params![boot, chunk, series], chunk_row)
        .optional()?)
}

/// All chunks of `boot` with chunk index in `[lo, hi]`, in key order.
pub(crate) fn chunks_between(
    conn: &Connection,
    table: &str,
    boot: i64,
    lo: i64,
    hi: i64,
) -> Result<Vec<ChunkRow>, StoreError> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {CHUNK_COLUMNS} FROM {table}
         WHERE boot_seq = ?1 AND chunk BETWEEN ?2 AND ?3 ORDER BY chunk, series_id"
    ))?;
    let rows = stmt.query_map(params![boot, lo, hi], chunk_row)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// The summary columns (series, sums) of `boot`'s chunks with index in `[lo, hi]`: the data
/// blobs are not read.
pub(crate) fn chunk_sums_between(
    conn: &Connection,
    table: &str,
    boot: i64,
    lo: i64,
    hi: i64,
) -> Result<Vec<(i64, Bucket)>, StoreError> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT chunk, series_id, samples, sum_cnt, sum_rt, peak_cnt_rate, peak_rt_rate, covered
         FROM {table} WHERE boot_seq = ?1 AND chunk BETWEEN ?2 AND ?3"
    ))?;
    let rows = stmt.query_map(params![boot, lo, hi], |r| {
        Ok((
            r.get(1)?,
            Bucket {
                index: r.get(0)?,
                samples: r.get(2)?,
                frozen: 0,
                cnt: r.get(3)?,
                rt: r.get(4)?,
                peak_cnt_rate: r.get(5)?,
                peak_rt_rate: r.get(6)?,
                covered: r.get(7)?,
                // Summaries serve windows (top), whose rates are over the window's time.
                span_us: 0,
            },
        ))
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// The first `(boot, chunk)` of `table` at or after `from`, in key order: where the next
/// rollup starts.
pub(crate) fn first_chunk_from(
    conn: &Connection,
    table: &str,
    from: (i64, i64),
) -> Result<Option<(i64, i64)>, StoreError> {
    Ok(conn
        .prepare_cached(&format!(
            "SELECT boot_seq, chunk FROM {table} WHERE (boot_seq, chunk) >= (?1, ?2)
             ORDER BY boot_seq, chunk LIMIT 1"
        ))?
        .query_row(params![from.0, from.1], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?)
}

/// The oldest `(boot, chunk)` of `table` before `limit`, if any.
pub(crate) fn first_chunk_before(
    conn: &Connection,
    table: &str,
    limit: (i64, i64),
) -> Result<Option<(i64, i64)>, StoreError> {
    Ok(conn
        .prepare_cached(&format!(
            "SELECT boot_seq, chunk FROM {table} WHERE (boot_seq, chunk) < (?1, ?2)
             ORDER BY boot_seq, chunk LIMIT 1"
        ))?
        .query_row(params![limit.0, limit.1], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?)
}
