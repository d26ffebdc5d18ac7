//! Stored rows in decoded form: ticks, raw segments and rollup chunks. Pure: decoding a blob
//! that is malformed is an error, never a panic.

use crate::codec::{self, Bucket, CodecError, Delta, RawChunk, RollupChunk, TickChunk};
use crate::model::Counters;

/// Adds a per-tick delta to cumulative counters.
pub(crate) fn add(c: &mut Counters, d: Delta) {
    c.run_cnt += d.cnt;
    c.run_time_ns += d.rt;
}

/// One stored tick.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TickPoint {
    pub tick: u64,
    pub boot_seq: i64,
    pub bt_us: u64,
    pub state: u8,
    /// Share of the interval before the tick with stats on, per mille.
    pub coverage_pm: u16,
}

/// The ticks of one stored tick row.
pub(crate) fn decode_ticks(
    first_tick: u64,
    boot_seq: i64,
    data: &[u8],
) -> Result<Vec<TickPoint>, CodecError> {
    let chunk: TickChunk = codec::from_bytes(data)?;
    let times = codec::dod_decode(&chunk.boottime_us);
    let coverage = codec::delta_decode(&chunk.coverage_pm);
    let mut state = 0;
    let mut changes = chunk.states.iter().peekable();
    let mut out = Vec::with_capacity(times.len());
    for (i, &bt) in times.iter().enumerate() {
        while let Some(&&(at, s)) = changes.peek() {
            if usize::try_from(at).is_ok_and(|at| at > i) {
                break;
            }
            state = s;
            changes.next();
        }
        out.push(TickPoint {
            tick: first_tick + i as u64,
            boot_seq,
            bt_us: u64::try_from(bt)
                .map_err(|_| CodecError::new(format!("negative tick time stamp {bt}")))?,
            state,
            // Files written before coverage was stored: fully covered.
            coverage_pm: coverage
                .get(i)
                .map_or(1000, |&c| u16::try_from(c.clamp(0, 1000)).unwrap_or(1000)),
        });
    }
    Ok(out)
}

/// A decoded raw segment.
#[derive(Debug, Clone)]
pub(crate) struct Segment {
    pub start_tick: u64,
    pub series_id: i64,
    pub base: Counters,
    pub deltas: Vec<Delta>,
}

impl Segment {
    /// Its start, as a key of `ebpfstat_numbers::order` (one series' segments never start on
    /// one tick).
    pub fn start_key(&self) -> ebpfstat_numbers::order::Key {
        (i64::try_from(self.start_tick).unwrap_or(i64::MAX), 0)
    }

    pub fn end_tick(&self) -> u64 {
        self.start_tick + self.deltas.len() as u64
    }

    pub fn delta_at(&self, tick: u64) -> Delta {
        tick.checked_sub(self.start_tick)
            .and_then(|i| usize::try_from(i).ok())
            .and_then(|i| self.deltas.get(i).copied())
            .unwrap_or_default()
    }
}

pub(crate) fn decode_segment(
    start_tick: u64,
    series_id: i64,
    base: Counters,
    data: &[u8],
) -> Result<Segment, CodecError> {
    let chunk: RawChunk = codec::from_bytes(data)?;
    Ok(Segment {
        start_tick,
        series_id,
        base,
        deltas: chunk.deltas()?,
    })
}

/// A stored rollup chunk: its baseline and encoded buckets.
#[derive(Debug, Clone)]
pub(crate) struct ChunkRow {
    pub series_id: i64,
    pub base: Counters,
    pub data: Vec<u8>,
}

impl ChunkRow {
    pub fn buckets(&self) -> Result<Vec<Bucket>, CodecError> {
        RollupChunk::decode(&self.data)?.buckets()
    }
}
