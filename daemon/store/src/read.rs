//! Reading rows back: boots, meta, series, ticks, raw segments and rollup chunks.

use std::collections::{HashMap, HashSet};

use rusqlite::{Connection, OptionalExtension, params};

use super::codec::{self, Bucket, Delta, RawChunk, RollupChunk, TickChunk};
use super::{Boot, StoreError, Tier};
use crate::sampler::maps::MapMemory;
use crate::sampler::metrics::Counters;

pub fn boots(conn: &Connection) -> Result<Vec<Boot>, StoreError> {
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

pub fn meta(conn: &Connection, key: &str) -> Result<Option<i64>, StoreError> {
    Ok(conn
        .query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0))
        .optional()?)
}

pub fn next_tick(conn: &Connection) -> Result<u64, StoreError> {
    let from_ticks: i64 = conn.query_row(
        "SELECT coalesce(max(first_tick + n), 0) FROM ticks",
        [],
        |r| r.get(0),
    )?;
    Ok(from_ticks.max(meta(conn, "next_tick")?.unwrap_or(0)) as u64)
}

/// Counters from two nullable columns (a series' end, unknown while it lives).
pub fn opt_counters(
    r: &rusqlite::Row<'_>,
    cnt: usize,
    rt: usize,
) -> rusqlite::Result<Option<Counters>> {
    Ok(
        match (r.get::<_, Option<i64>>(cnt)?, r.get::<_, Option<i64>>(rt)?) {
            (Some(c), Some(t)) => Some(counters(c, t)),
            _ => None,
        },
    )
}

pub fn counters(cnt: i64, rt: i64) -> Counters {
    Counters {
        run_cnt: cnt as u64,
        run_time_ns: rt as u64,
    }
}

#[derive(Debug, Clone)]
pub struct OpenSeries {
    pub series_id: i64,
    pub boot_seq: i64,
    pub prog_id: u32,
    pub load_bt_ns: u64,
    pub first_tick: u64,
    pub first_bt_ns: u64,
    pub base: Counters,
    pub map_memory: MapMemory,
}

pub fn open_series(conn: &Connection) -> Result<Vec<OpenSeries>, StoreError> {
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
            load_bt_ns: r.get::<_, i64>(3)? as u64,
            first_tick: r.get::<_, i64>(4)? as u64,
            first_bt_ns: r.get::<_, i64>(5)? as u64,
            base: counters(r.get(6)?, r.get(7)?),
            map_memory: MapMemory {
                total: r.get::<_, i64>(8)? as u64,
                own: r.get::<_, i64>(9)? as u64,
                shared: r.get::<_, i64>(10)? as u64,
            },
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// The last tick stored for a boot and its boottime (µs).
pub fn last_tick_of_boot(conn: &Connection, boot: i64) -> Result<Option<(u64, u64)>, StoreError> {
    Ok(conn
        .prepare_cached(
            "SELECT first_tick + n - 1, last_bt_us FROM ticks WHERE boot_seq = ?1
             ORDER BY first_tick DESC LIMIT 1",
        )?
        .query_row([boot], |r| {
            Ok((r.get::<_, i64>(0)? as u64, r.get::<_, i64>(1)? as u64))
        })
        .optional()?)
}

/// The newest stored cumulative counters of each wanted series: from its newest raw segment,
/// else its newest rollup chunk. Series with neither are absent (their baseline holds).
pub fn latest_cumulative(
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
        let chunk: RawChunk = codec::from_bytes(r.get_ref(3)?.as_blob().unwrap_or(&[]))?;
        let mut cum = counters(r.get(1)?, r.get(2)?);
        for d in chunk.deltas()? {
            add(&mut cum, d);
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
                found.insert(id, counters(r.get(1)?, r.get(2)?));
            }
        }
    }
    Ok(found)
}

pub fn add(c: &mut Counters, d: Delta) {
    c.run_cnt += d.cnt;
    c.run_time_ns += d.rt;
}

/// One stored tick.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TickPoint {
    pub tick: u64,
    pub boot_seq: i64,
    pub bt_us: u64,
    pub state: u8,
    /// Share of the interval before the tick with stats on, per mille.
    pub coverage_pm: u16,
}

pub fn decode_ticks(
    first_tick: u64,
    boot_seq: i64,
    data: &[u8],
) -> Result<Vec<TickPoint>, StoreError> {
    let chunk: TickChunk = codec::from_bytes(data)?;
    let times = codec::dod_decode(&chunk.boottime_us);
    let coverage = codec::delta_decode(&chunk.coverage_pm);
    let mut state = 0;
    let mut changes = chunk.states.iter().peekable();
    Ok(times
        .iter()
        .enumerate()
        .map(|(i, &bt)| {
            while let Some(&&(at, s)) = changes.peek() {
                if at as usize > i {
                    break;
                }
                state = s;
                changes.next();
            }
            TickPoint {
                tick: first_tick + i as u64,
                boot_seq,
                bt_us: bt as u64,
                state,
                // Files written before coverage was stored: fully covered.
                coverage_pm: coverage.get(i).map_or(1000, |&c| c.clamp(0, 1000) as u16),
            }
        })
        .collect())
}

/// Stored ticks with number ≥ `from_tick`, in order.
pub fn ticks_from(conn: &Connection, from_tick: u64) -> Result<Vec<TickPoint>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT first_tick, boot_seq, data FROM ticks WHERE first_tick + n > ?1
         ORDER BY first_tick",
    )?;
    let mut rows = stmt.query([from_tick as i64])?;
    let mut out = Vec::new();
    while let Some(r) = rows.next()? {
        let first: i64 = r.get(0)?;
        let points = decode_ticks(
            first as u64,
            r.get(1)?,
            r.get_ref(2)?.as_blob().unwrap_or(&[]),
        )?;
        out.extend(points.into_iter().filter(|p| p.tick >= from_tick));
    }
    Ok(out)
}

/// The first stored tick with number ≥ `from_tick`: only the row holding it is decoded.
pub fn first_tick_from(conn: &Connection, from_tick: u64) -> Result<Option<TickPoint>, StoreError> {
    let row: Option<(i64, i64, Vec<u8>)> = conn
        .prepare_cached(
            // Rows never overlap: the one holding the tick starts at or after the last row
            // starting at or before it, which the rowid finds without a scan.
            "SELECT first_tick, boot_seq, data FROM ticks
             WHERE first_tick >= coalesce((SELECT max(first_tick) FROM ticks
                                           WHERE first_tick <= ?1), 0)
               AND first_tick + n > ?1
             ORDER BY first_tick LIMIT 1",
        )?
        .query_row([from_tick as i64], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })
        .optional()?;
    let Some((first, boot, data)) = row else {
        return Ok(None);
    };
    Ok(decode_ticks(first as u64, boot, &data)?
        .into_iter()
        .find(|p| p.tick >= from_tick))
}

/// One stored tick by number.
pub fn tick_at(conn: &Connection, tick: u64) -> Result<Option<TickPoint>, StoreError> {
    let row: Option<(i64, i64, Vec<u8>)> = conn
        .prepare_cached(
            "SELECT first_tick, boot_seq, data FROM ticks WHERE first_tick <= ?1
             ORDER BY first_tick DESC LIMIT 1",
        )?
        .query_row([tick as i64], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .optional()?;
    let Some((first, boot, data)) = row else {
        return Ok(None);
    };
    Ok(decode_ticks(first as u64, boot, &data)?
        .into_iter()
        .find(|p| p.tick == tick))
}

/// Stored ticks of `boot` with boottime in `[lo_us, hi_us]`, plus the one just before (for
/// the elapsed time of the first).
pub fn ticks_between(
    conn: &Connection,
    boot: i64,
    lo_us: u64,
    hi_us: u64,
) -> Result<Vec<TickPoint>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT first_tick, data FROM ticks
         WHERE boot_seq = ?1 AND last_bt_us >= ?2 AND first_bt_us <= ?3 ORDER BY first_tick",
    )?;
    let mut rows = stmt.query(params![boot, lo_us as i64, hi_us as i64])?;
    let mut out: Vec<TickPoint> = Vec::new();
    while let Some(r) = rows.next()? {
        let first: i64 = r.get(0)?;
        let points = decode_ticks(first as u64, boot, r.get_ref(1)?.as_blob().unwrap_or(&[]))?;
        for p in points {
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

/// A decoded raw segment.
#[derive(Debug, Clone)]
pub struct Segment {
    pub start_tick: u64,
    pub series_id: i64,
    pub base: Counters,
    pub deltas: Vec<Delta>,
}

impl Segment {
    pub fn end_tick(&self) -> u64 {
        self.start_tick + self.deltas.len() as u64
    }

    pub fn delta_at(&self, tick: u64) -> Delta {
        tick.checked_sub(self.start_tick)
            .and_then(|i| self.deltas.get(i as usize).copied())
            .unwrap_or_default()
    }
}

pub fn decode_segment(
    start_tick: u64,
    series_id: i64,
    base: Counters,
    data: &[u8],
) -> Result<Segment, StoreError> {
    let chunk: RawChunk = codec::from_bytes(data)?;
    Ok(Segment {
        start_tick,
        series_id,
        base,
        deltas: chunk.deltas()?,
    })
}

/// Stored raw segments that may hold ticks ≥ `from_tick` (segments span at most `max_span`
/// ticks), of the wanted series only when `wanted` is given.
pub fn segments_from(
    conn: &Connection,
    from_tick: u64,
    max_span: u64,
    wanted: Option<&HashSet<i64>>,
) -> Result<Vec<Segment>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT key >> 32, key & 4294967295, base_cnt, base_rt, data FROM raw
         WHERE key >= (?1 << 32) ORDER BY key",
    )?;
    let lo = from_tick.saturating_sub(max_span) as i64;
    let mut rows = stmt.query([lo])?;
    let mut out = Vec::new();
    while let Some(r) = rows.next()? {
        let series_id: i64 = r.get(1)?;
        if wanted.is_some_and(|w| !w.contains(&series_id)) {
            continue;
        }
        let seg = decode_segment(
            r.get::<_, i64>(0)? as u64,
            series_id,
            counters(r.get(2)?, r.get(3)?),
            r.get_ref(4)?.as_blob().unwrap_or(&[]),
        )?;
        if seg.end_tick() > from_tick {
            out.push(seg);
        }
    }
    Ok(out)
}

/// A stored rollup chunk: its baseline and encoded buckets.
#[derive(Debug, Clone)]
pub struct ChunkRow {
    pub series_id: i64,
    pub base: Counters,
    pub data: Vec<u8>,
}

impl ChunkRow {
    pub fn buckets(&self) -> Result<Vec<Bucket>, StoreError> {
        let chunk: RollupChunk = codec::from_bytes(&self.data)?;
        Ok(chunk.buckets()?)
    }
}

fn chunk_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<ChunkRow> {
    Ok(ChunkRow {
        series_id: r.get(0)?,
        base: counters(r.get(1)?, r.get(2)?),
        data: r.get(3)?,
    })
}

const CHUNK_COLUMNS: &str = "series_id, base_cnt, base_rt, data";

/// One series' chunk, by primary key.
pub fn chunk(
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
pub fn chunks_between(
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
pub fn chunk_sums_between(
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
                samples: r.get::<_, i64>(2)? as u32,
                frozen: 0,
                cnt: r.get::<_, i64>(3)? as u64,
                rt: r.get::<_, i64>(4)? as u64,
                peak_cnt_rate: r.get::<_, i64>(5)? as u64,
                peak_rt_rate: r.get::<_, i64>(6)? as u64,
                covered: r.get::<_, i64>(7)? as u64,
            },
        ))
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}
