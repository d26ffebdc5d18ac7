//! Turning ticks into buffered rows: per-program open segments, the tick window, series births
//! and ends, clock anchors, and recovery of series a previous run left open.

use std::collections::hash_map::Entry;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use super::codec::{self, Delta, RawChunk, TickChunk};
use super::{Boot, CLOCK_STEP_NS, Store, StoreError, Tick, read, wall_ns};
use crate::sampler::ProgramMeta;
use crate::sampler::maps::MapMemory;
use crate::sampler::metrics::Counters;

/// A program's samples in the open flush window.
#[derive(Debug, Clone)]
pub struct OpenSegment {
    pub start_tick: u64,
    /// Cumulative counters before the first delta.
    pub base: Counters,
    pub deltas: Vec<Delta>,
    /// Idle ticks after the last non-zero delta, materialised only if activity follows.
    pub zeros_after: u32,
}

/// A program being sampled.
#[derive(Debug, Clone)]
pub struct Live {
    pub series_id: i64,
    pub last: Counters,
    pub last_tick: u64,
    pub last_bt_ns: u64,
    pub map_memory: MapMemory,
    pub segment: Option<OpenSegment>,
}

impl Live {
    fn observe(&mut self, tick: u64, bt_ns: u64, now: Counters) {
        // A single identity's counters never go back; saturate rather than invent activity.
        let delta = Delta {
            cnt: now.run_cnt.saturating_sub(self.last.run_cnt),
            rt: now.run_time_ns.saturating_sub(self.last.run_time_ns),
        };
        if delta != Delta::default() {
            match &mut self.segment {
                Some(seg) => {
                    let n = seg.deltas.len() + seg.zeros_after as usize;
                    seg.deltas.resize(n, Delta::default());
                    seg.deltas.push(delta);
                    seg.zeros_after = 0;
                }
                None => {
                    self.segment = Some(OpenSegment {
                        start_tick: tick,
                        base: self.last,
                        deltas: vec![delta],
                        zeros_after: 0,
                    });
                }
            }
        } else if let Some(seg) = &mut self.segment {
            seg.zeros_after += 1;
        }
        self.last = now;
        self.last_tick = tick;
        self.last_bt_ns = bt_ns;
    }
}

#[derive(Debug, Clone)]
pub struct RawRow {
    pub start_tick: u64,
    pub series_id: i64,
    pub base: Counters,
    pub data: Vec<u8>,
}

#[derive(Debug, Clone)]
pub struct TickRow {
    pub first_tick: u64,
    pub boot_seq: i64,
    pub first_bt_us: u64,
    pub last_bt_us: u64,
    pub n: u64,
    pub data: Vec<u8>,
}

#[derive(Debug, Clone)]
pub struct NewSeries {
    pub series_id: i64,
    pub boot_seq: i64,
    pub meta: Arc<ProgramMeta>,
    pub first_tick: u64,
    pub first_bt_ns: u64,
    pub base: Counters,
    pub map_memory: MapMemory,
}

#[derive(Debug, Clone)]
pub struct SeriesEnd {
    pub series_id: i64,
    pub end_tick: u64,
    pub end_bt_ns: u64,
    pub end: Counters,
}

/// The open tick window: time stamps and stats states of ticks not yet sealed.
#[derive(Debug, Clone, Default)]
pub struct Window {
    pub boot_seq: i64,
    pub start_tick: u64,
    /// (boottime µs, stats state, coverage per mille) per tick.
    pub points: Vec<(u64, u8, u16)>,
}

/// Everything not yet committed.
#[derive(Debug, Default)]
pub struct Pending {
    pub boots: Vec<Boot>,
    pub series: Vec<NewSeries>,
    pub ends: Vec<SeriesEnd>,
    pub map_memory: Vec<(i64, MapMemory)>,
    pub raws: Vec<RawRow>,
    pub ticks: Vec<TickRow>,
    pub window: Window,
    pub max_span_changed: bool,
}

impl Pending {
    pub fn buffered_ticks(&self) -> usize {
        self.ticks.iter().map(|t| t.n as usize).sum::<usize>() + self.window.points.len()
    }

    pub fn is_empty(&self) -> bool {
        self.boots.is_empty()
            && self.series.is_empty()
            && self.ends.is_empty()
            && self.map_memory.is_empty()
            && self.raws.is_empty()
            && self.ticks.is_empty()
    }

    /// Drops the oldest sealed ticks (and their segments) beyond `max_ticks`; returns how many
    /// ticks were dropped. Series births and ends are small and always kept.
    pub fn bound(&mut self, max_ticks: usize) -> usize {
        let mut dropped = 0;
        while self.buffered_ticks() > max_ticks && !self.ticks.is_empty() {
            let oldest = self.ticks.remove(0);
            dropped += oldest.n as usize;
            let end = oldest.first_tick + oldest.n;
            self.raws.retain(|r| r.start_tick >= end);
        }
        if dropped > 0 {
            tracing::warn!("dropped {dropped} buffered ticks: writes keep failing");
        }
        dropped
    }

    pub fn clear_written(&mut self) {
        self.boots.clear();
        self.series.clear();
        self.ends.clear();
        self.map_memory.clear();
        self.raws.clear();
        self.ticks.clear();
    }
}

/// The sealed form of an open segment: trailing idle ticks are implicit.
pub fn seal_segment(series_id: i64, seg: &OpenSegment) -> RawRow {
    RawRow {
        start_tick: seg.start_tick,
        series_id,
        base: seg.base,
        data: codec::to_bytes(&RawChunk::from_deltas(&seg.deltas)),
    }
}

impl Store {
    /// Buffers one tick. Nothing is written until [`Store::flush`].
    pub fn ingest(&mut self, tick: &Tick) -> Result<(), StoreError> {
        if !self.recovered {
            self.recover(&tick.boot_id)?;
            self.recovered = true;
        }
        let boot_seq = self.enter_boot(tick);
        let t = self.next_tick;
        self.next_tick += 1;
        let window = &mut self.pending.window;
        if window.points.is_empty() {
            window.boot_seq = boot_seq;
            window.start_tick = t;
        }
        let coverage_pm = (tick.coverage.clamp(0.0, 1.0) * 1000.0).round() as u16;
        window
            .points
            .push((tick.boottime_ns / 1000, tick.stats as u8, coverage_pm));

        for p in &tick.programs {
            let key = (p.meta.id, p.meta.load_boottime_ns);
            if let Some(live) = self.live.get_mut(&key) {
                live.observe(t, tick.boottime_ns, p.counters);
                if live.map_memory != p.map_memory {
                    live.map_memory = p.map_memory;
                    self.pending.map_memory.push((live.series_id, p.map_memory));
                }
                continue;
            }
            let series_id = self.next_series_id;
            self.next_series_id += 1;
            self.pending.series.push(NewSeries {
                series_id,
                boot_seq,
                meta: Arc::clone(&p.meta),
                first_tick: t,
                first_bt_ns: tick.boottime_ns,
                base: p.counters,
                map_memory: p.map_memory,
            });
            self.live.insert(
                key,
                Live {
                    series_id,
                    last: p.counters,
                    last_tick: t,
                    last_bt_ns: tick.boottime_ns,
                    map_memory: p.map_memory,
                    segment: None,
                },
            );
        }
        if tick.complete {
            self.end_missing(t);
        }
        Ok(())
    }

    /// Ends series not seen at tick `t` (their programs were unloaded).
    fn end_missing(&mut self, t: u64) {
        let pending = &mut self.pending;
        self.live.retain(|_, live| {
            if live.last_tick == t {
                return true;
            }
            if let Some(seg) = &live.segment {
                pending.raws.push(seal_segment(live.series_id, seg));
            }
            pending.ends.push(SeriesEnd {
                series_id: live.series_id,
                end_tick: live.last_tick,
                end_bt_ns: live.last_bt_ns,
                end: live.last,
            });
            false
        });
    }

    /// Finds or creates the tick's boot, ends the previous boot's series on a reboot, and
    /// re-anchors the wall clock when it stepped.
    fn enter_boot(&mut self, tick: &Tick) -> i64 {
        let offset = wall_ns(tick.wall).saturating_sub(tick.boottime_ns as i64);
        let same = self
            .current_boot
            .is_some_and(|i| *self.boots[i].boot_id == *tick.boot_id);
        if !same {
            if self.current_boot.is_some() {
                // A reboot seen while running: ids restart, nothing continues.
                self.seal_window();
                self.end_missing(u64::MAX);
            }
            let idx = match self.boots.iter().position(|b| *b.boot_id == *tick.boot_id) {
                Some(i) => i,
                None => {
                    let seq = self.boots.iter().map(|b| b.seq).max().unwrap_or(0) + 1;
                    self.boots.push(Boot {
                        seq,
                        boot_id: tick.boot_id.to_string(),
                        wall_offset_ns: offset,
                        clock_steps: 0,
                        stats_cost_ps: 0,
                    });
                    self.pending
                        .boots
                        .push(self.boots[self.boots.len() - 1].clone());
                    self.boots.len() - 1
                }
            };
            self.current_boot = Some(idx);
        }
        let Some(idx) = self.current_boot else {
            return 0;
        };
        let boot = &mut self.boots[idx];
        let cost_ps = (tick.stats_cost_ns * 1000.0).round() as i64;
        if cost_ps != boot.stats_cost_ps {
            boot.stats_cost_ps = cost_ps;
            let updated = boot.clone();
            self.pending.boots.retain(|b| b.seq != updated.seq);
            self.pending.boots.push(updated);
        }
        let boot = &mut self.boots[idx];
        let drift = offset.saturating_sub(boot.wall_offset_ns);
        if drift.abs() > CLOCK_STEP_NS {
            tracing::warn!(
                "wall clock stepped by {:.3} s; re-anchoring boot {} (series stay ordered by \
                 boot time)",
                drift as f64 / 1e9,
                boot.boot_id
            );
            boot.wall_offset_ns = offset;
            boot.clock_steps += 1;
            let updated = boot.clone();
            self.pending.boots.retain(|b| b.seq != updated.seq);
            self.pending.boots.push(updated);
        }
        self.boots[idx].seq
    }

    /// Seals the open window: one raw segment per program with activity, one tick row.
    pub(super) fn seal_window(&mut self) {
        let window = std::mem::take(&mut self.pending.window);
        let Some(&(last_bt_us, _, _)) = window.points.last() else {
            return;
        };
        for live in self.live.values_mut() {
            if let Some(seg) = live.segment.take() {
                if seg.deltas.len() as u64 > self.max_span {
                    self.max_span = seg.deltas.len() as u64;
                    self.pending.max_span_changed = true;
                }
                self.pending.raws.push(seal_segment(live.series_id, &seg));
            }
        }
        let mut states = Vec::new();
        for (i, &(_, s, _)) in window.points.iter().enumerate() {
            if states.last().is_none_or(|&(_, prev)| prev != s) {
                states.push((i as u32, s));
            }
        }
        let chunk = TickChunk {
            boottime_us: codec::dod_encode(window.points.iter().map(|&(bt, _, _)| bt as i64)),
            states,
            coverage_pm: codec::delta_encode(window.points.iter().map(|&(_, _, c)| i64::from(c))),
        };
        self.pending.ticks.push(TickRow {
            first_tick: window.start_tick,
            boot_seq: window.boot_seq,
            first_bt_us: window.points[0].0,
            last_bt_us,
            n: window.points.len() as u64,
            data: codec::to_bytes(&chunk),
        });
    }

    /// Reads boots, counters and the rollup positions from the database.
    pub(super) fn load_state(&mut self) -> Result<(), StoreError> {
        self.boots = read::boots(&self.conn)?;
        let meta = |key: &str| read::meta(&self.conn, key);
        self.max_span = meta("max_span")?.unwrap_or(0) as u64;
        self.min1_done_tick = meta("min1_done_tick")?.unwrap_or(0) as u64;
        self.hour1_done = (
            meta("hour1_done_boot")?.unwrap_or(0),
            meta("hour1_done_chunk")?.unwrap_or(0),
        );
        // Ticks are numbered for good: never reuse a number a rollup already covers.
        self.next_tick = read::next_tick(&self.conn)?.max(self.min1_done_tick);
        self.next_series_id = self.conn.query_row(
            "SELECT coalesce(max(series_id), 0) + 1 FROM series",
            [],
            |r| r.get(0),
        )?;
        Ok(())
    }

    /// Series a previous run left open: those of this boot continue from their last stored
    /// counters (activity during the gap lands in the first tick after it); those of earlier
    /// boots end where their data ends.
    fn recover(&mut self, boot_id: &str) -> Result<(), StoreError> {
        let open = read::open_series(&self.conn)?;
        if open.is_empty() {
            return Ok(());
        }
        let ids: HashSet<i64> = open.iter().map(|s| s.series_id).collect();
        let latest = read::latest_cumulative(&self.conn, &ids)?;
        let current = self
            .boots
            .iter()
            .find(|b| b.boot_id == boot_id)
            .map(|b| b.seq);
        // The last stored tick depends on the boot only; many series share a few boots.
        let mut last_of_boot: HashMap<i64, Option<(u64, u64)>> = HashMap::new();
        for s in open {
            let last = latest.get(&s.series_id).copied().unwrap_or(s.base);
            let last_of = match last_of_boot.entry(s.boot_seq) {
                Entry::Occupied(e) => *e.get(),
                Entry::Vacant(e) => *e.insert(read::last_tick_of_boot(&self.conn, s.boot_seq)?),
            };
            let (last_tick, last_bt_us) = last_of.unwrap_or((s.first_tick, 0));
            let last_bt_ns = (last_bt_us * 1000).max(s.first_bt_ns);
            if Some(s.boot_seq) == current {
                self.live.insert(
                    (s.prog_id, s.load_bt_ns),
                    Live {
                        series_id: s.series_id,
                        last,
                        last_tick,
                        last_bt_ns,
                        map_memory: s.map_memory,
                        segment: None,
                    },
                );
            } else {
                self.pending.ends.push(SeriesEnd {
                    series_id: s.series_id,
                    end_tick: last_tick,
                    end_bt_ns: last_bt_ns,
                    end: last,
                });
            }
        }
        Ok(())
    }
}
