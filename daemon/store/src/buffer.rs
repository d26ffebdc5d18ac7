//! The write buffer: per-program open segments, the open tick window and the rows sealed for
//! the next flush. Ingest writes it; maintenance and queries read it through its methods.

use std::collections::hash_map::Entry;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use ebpfstat_numbers::time::{ns_of_us, us_of_ns};
use rusqlite::Connection;

use crate::clock::Boot;
use crate::codec::{self, CodecError, Delta, RawChunk, TickChunk};
use crate::error::StoreError;
use crate::idmap::IdMap;
use crate::model::{Counters, MapMemory, ProgramMeta, ProgramTick, Tick};
use crate::read;
use crate::rows::{Segment, TickPoint, decode_segment, decode_ticks};
use crate::write::{NewSeries, Pending, RawRow, SeriesEnd, TickRow};

/// A program's samples in the open flush window.
#[derive(Debug, Clone)]
struct OpenSegment {
    start_tick: u64,
    /// Cumulative counters before the first delta.
    base: Counters,
    deltas: Vec<Delta>,
    /// Idle ticks after the last non-zero delta, materialised only if activity follows.
    zeros_after: usize,
}

impl OpenSegment {
    /// The sealed form: trailing idle ticks are implicit.
    fn seal(&self, series_id: i64) -> Result<RawRow, CodecError> {
        Ok(RawRow {
            start_tick: self.start_tick,
            series_id,
            base: self.base,
            data: codec::to_bytes(&RawChunk::from_deltas(&self.deltas))?,
        })
    }
}

/// What is known of a program being sampled, as of its last tick.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct LiveState {
    pub last: Counters,
    pub last_tick: u64,
    pub last_bt_ns: u64,
    pub map_memory: MapMemory,
}

/// A program being sampled.
#[derive(Debug, Clone)]
struct Live {
    series_id: i64,
    /// Its metadata as last handed over (`None` for a series resumed from a previous run
    /// until a tick brings it): a new full name is written when it changes.
    meta: Option<Arc<ProgramMeta>>,
    state: LiveState,
    /// Boxed: most programs are idle in a window, and the live map holds every program.
    segment: Option<Box<OpenSegment>>,
}

impl Live {
    fn observe(&mut self, tick: u64, bt_ns: u64, now: Counters) {
        let last = self.state.last;
        // A single identity's counters never go back; saturate rather than invent activity.
        let delta = Delta {
            cnt: now.run_cnt.saturating_sub(last.run_cnt),
            rt: now.run_time_ns.saturating_sub(last.run_time_ns),
        };
        if delta != Delta::default() {
            match &mut self.segment {
                Some(seg) => {
                    let n = seg.deltas.len() + seg.zeros_after;
                    seg.deltas.resize(n, Delta::default());
                    seg.deltas.push(delta);
                    seg.zeros_after = 0;
                }
                None => {
                    self.segment = Some(Box::new(OpenSegment {
                        start_tick: tick,
                        base: last,
                        deltas: vec![delta],
                        zeros_after: 0,
                    }));
                }
            }
        } else if let Some(seg) = &mut self.segment {
            seg.zeros_after += 1;
        }
        self.state.last = now;
        self.state.last_tick = tick;
        self.state.last_bt_ns = bt_ns;
    }

    fn end(&self) -> SeriesEnd {
        SeriesEnd {
            series_id: self.series_id,
            end_tick: self.state.last_tick,
            end_bt_ns: self.state.last_bt_ns,
            end: self.state.last,
        }
    }
}

/// One tick of the open window: boottime µs, stats state, coverage per mille.
#[derive(Debug, Clone, Copy)]
struct WindowPoint {
    bt_us: u64,
    state: u8,
    coverage_pm: u16,
}

/// The open tick window: time stamps and stats states of ticks not yet sealed.
#[derive(Debug, Clone, Default)]
struct Window {
    boot_seq: i64,
    start_tick: u64,
    points: Vec<WindowPoint>,
}

/// A series born but not written yet, as queries see it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Unwritten<'a> {
    pub series_id: i64,
    pub boot_seq: i64,
    pub meta: &'a ProgramMeta,
    pub first_tick: u64,
    pub first_bt_ns: u64,
    pub base: Counters,
    pub map_memory: MapMemory,
    /// When it ended before it was written: its last tick and boottime.
    pub end: Option<(u64, u64)>,
}

/// Everything not yet written, and the programs being sampled.
#[derive(Debug, Default)]
pub(crate) struct Buffer {
    live: IdMap<(u32, u64), Live>,
    window: Window,
    pending: Pending,
    next_tick: u64,
    next_series_id: i64,
    /// The longest raw segment, in ticks.
    max_span: u64,
    /// Set once the first tick ran recovery of series left open by a previous run.
    recovered: bool,
    /// Series of this boot left open whose last counters could not be read: they continue,
    /// from their next sample on (series id, map memory).
    resume: IdMap<(u32, u64), (i64, MapMemory)>,
    /// The metadata of the newest tick: while a tick hands over the same, no program's
    /// metadata changed.
    metas: Option<Arc<Vec<Arc<ProgramMeta>>>>,
}

/// Takes `meta` as `live`'s metadata; a full name that changed (the daemon could read it from
/// BTF only after the program was first seen) is written with the next flush, so a series is
/// named by its full name however late it was learnt.
fn renamed(live: &mut Live, meta: &Arc<ProgramMeta>, pending: &mut Pending) {
    if live.meta.as_ref().is_some_and(|m| Arc::ptr_eq(m, meta)) {
        return;
    }
    let old = live.meta.replace(Arc::clone(meta));
    // A series resumed from a previous run has no metadata in memory: its stored name may be
    // the kernel's 15 bytes, so the name is written (the same name again costs one update).
    if old.is_none_or(|m| m.full_name != meta.full_name) {
        match pending
            .series
            .iter_mut()
            .find(|s| s.series_id == live.series_id)
        {
            Some(unwritten) => unwritten.meta = Arc::clone(meta),
            None => pending
                .renames
                .push((live.series_id, meta.full_name.clone())),
        }
    }
}

/// Share of an interval as per mille, clamped to `0..=1000`.
#[expect(
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss,
    reason = "the value is clamped to 0..=1000 first"
)]
fn per_mille(share: f64) -> u16 {
    (share.clamp(0.0, 1.0) * 1000.0).round() as u16
}

impl Buffer {
    /// Ticks are numbered from `next_tick`, series from `next_series_id`.
    pub fn new(next_tick: u64, next_series_id: i64, max_span: u64) -> Self {
        Self {
            next_tick,
            next_series_id,
            max_span,
            ..Self::default()
        }
    }

    /// Buffers one tick of boot `boot_seq`.
    pub fn push(&mut self, tick: &Tick, boot_seq: i64) -> Result<(), CodecError> {
        let t = self.next_tick;
        self.next_tick += 1;
        if self.window.points.is_empty() {
            self.window.boot_seq = boot_seq;
            self.window.start_tick = t;
        }
        self.window.points.push(WindowPoint {
            bt_us: us_of_ns(tick.boottime_ns),
            state: tick.stats as u8,
            coverage_pm: per_mille(tick.coverage),
        });

        let metas_changed = !self
            .metas
            .as_ref()
            .is_some_and(|m| Arc::ptr_eq(m, &tick.metas));
        if metas_changed {
            self.metas = Some(Arc::clone(&tick.metas));
        }
        for (index, p) in tick.programs.iter().enumerate() {
            let key = (p.id, p.load_boottime_ns);
            if !self.resume.is_empty() {
                self.resume(key, p.counters, (t, tick.boottime_ns));
            }
            if let Some(live) = self.live.get_mut(&key) {
                if metas_changed && let Some(meta) = tick.meta_of(index) {
                    renamed(live, meta, &mut self.pending);
                }
                live.observe(t, tick.boottime_ns, p.counters);
                if live.state.map_memory != p.map_memory {
                    live.state.map_memory = p.map_memory;
                    self.pending.map_memory.push((live.series_id, p.map_memory));
                }
                continue;
            }
            let Some(meta) = tick.meta_of(index) else {
                tracing::warn!("program {} came without its metadata: not stored", p.id);
                continue;
            };
            self.born(meta, p, boot_seq, (t, tick.boottime_ns));
        }
        if tick.complete {
            self.end_missing(t)?;
        }
        Ok(())
    }

    /// A series left open whose last counters could not be read continues from tick `t` at
    /// boot time `bt_ns`, with these counters.
    fn resume(&mut self, key: (u32, u64), counters: Counters, (t, bt_ns): (u64, u64)) {
        if self.live.contains_key(&key) {
            return;
        }
        let Some((series_id, map_memory)) = self.resume.remove(&key) else {
            return;
        };
        let state = LiveState {
            last: counters,
            last_tick: t,
            last_bt_ns: bt_ns,
            map_memory,
        };
        let live = Live {
            series_id,
            meta: None,
            state,
            segment: None,
        };
        self.live.insert(key, live);
    }

    /// A new series for the program `p` first seen at tick `t`, boot time `bt_ns`. Its
    /// counters then are its baseline; but when they were counted from its load on (see
    /// [`ProgramMeta::counted_from_load`]), the series starts at its load, at the tick before,
    /// from zero, and what it ran so far is tick `t`'s sample: its first interval.
    fn born(
        &mut self,
        meta: &Arc<ProgramMeta>,
        p: &ProgramTick,
        boot_seq: i64,
        (t, bt_ns): (u64, u64),
    ) {
        let series_id = self.next_series_id;
        self.next_series_id += 1;
        let from_load = meta.counted_from_load && t > 0;
        let (first_tick, first_bt_ns, base) = if from_load {
            (t - 1, meta.load_boottime_ns, Counters::default())
        } else {
            (t, bt_ns, p.counters)
        };
        self.pending.series.push(NewSeries {
            series_id,
            boot_seq,
            meta: Arc::clone(meta),
            first_tick,
            first_bt_ns,
            base,
            map_memory: p.map_memory,
        });
        let state = LiveState {
            last: base,
            last_tick: first_tick,
            last_bt_ns: first_bt_ns,
            map_memory: p.map_memory,
        };
        let mut live = Live {
            series_id,
            meta: Some(Arc::clone(meta)),
            state,
            segment: None,
        };
        live.observe(t, bt_ns, p.counters);
        self.live.insert((p.id, p.load_boottime_ns), live);
    }

    /// The boot's row is written with the next flush.
    pub fn save_boot(&mut self, boot: Boot) {
        self.pending.save_boot(boot);
    }

    /// Ends series not seen at tick `t` (their programs were unloaded); `u64::MAX` ends all.
    pub fn end_missing(&mut self, t: u64) -> Result<(), CodecError> {
        let ended: Vec<(u32, u64)> = self
            .live
            .iter()
            .filter(|(_, live)| live.state.last_tick != t)
            .map(|(key, _)| *key)
            .collect();
        for key in ended {
            let Some(live) = self.live.get(&key) else {
                continue;
            };
            // Sealed before it leaves the live set: a failure loses nothing.
            let raw = live
                .segment
                .as_ref()
                .map(|s| s.seal(live.series_id))
                .transpose()?;
            let end = live.end();
            self.live.remove(&key);
            self.pending.raws.extend(raw);
            self.pending.ends.push(end);
        }
        crate::idmap::shrink_after_removals(&mut self.live);
        Ok(())
    }

    /// Seals the open window: one raw segment per program with activity, one tick row. Every
    /// row is encoded before anything moves, so a failure leaves the buffer as it was.
    pub fn seal_window(&mut self) -> Result<(), CodecError> {
        let w = &self.window;
        let (Some(first), Some(last)) = (w.points.first(), w.points.last()) else {
            return Ok(());
        };
        let mut states: Vec<(u32, u8)> = Vec::new();
        for (i, p) in w.points.iter().enumerate() {
            if states.last().is_none_or(|&(_, prev)| prev != p.state) {
                // A window holds at most `max_buffered_ticks` ticks, far below u32::MAX.
                states.push((u32::try_from(i).unwrap_or(u32::MAX), p.state));
            }
        }
        let chunk = TickChunk {
            boottime_us: codec::dod_encode(w.points.iter().map(|p| signed_us(p.bt_us))),
            states,
            coverage_pm: codec::delta_encode(w.points.iter().map(|p| i64::from(p.coverage_pm))),
        };
        let row = TickRow {
            first_tick: w.start_tick,
            boot_seq: w.boot_seq,
            first_bt_us: first.bt_us,
            last_bt_us: last.bt_us,
            n: w.points.len() as u64,
            data: codec::to_bytes(&chunk)?,
        };
        let mut raws = Vec::new();
        for live in self.live.values() {
            if let Some(seg) = &live.segment {
                raws.push((seg.deltas.len() as u64, seg.seal(live.series_id)?));
            }
        }
        for live in self.live.values_mut() {
            live.segment = None;
        }
        for (span, raw) in raws {
            if span > self.max_span {
                self.max_span = span;
                self.pending.max_span = Some(span);
            }
            self.pending.raws.push(raw);
        }
        self.pending.ticks.push(row);
        self.window = Window::default();
        Ok(())
    }

    /// The rows for the next flush.
    pub fn pending(&self) -> &Pending {
        &self.pending
    }

    pub fn pending_mut(&mut self) -> &mut Pending {
        &mut self.pending
    }

    /// Drops the oldest sealed ticks beyond `max_ticks`; returns how many.
    pub fn bound(&mut self, max_ticks: usize) -> u64 {
        self.pending.bound(max_ticks, self.window.points.len())
    }

    /// Whether series left open by a previous run were looked at (resolved, or given up on).
    pub fn recovered(&self) -> bool {
        self.recovered
    }

    /// Series a previous run left open: those of this boot (`current`) continue from their
    /// last stored counters (activity during the gap lands in the first tick after it); those
    /// of earlier boots end where their data ends. Everything is read before anything
    /// changes. When the open series are known but their last counters cannot be read (a
    /// damaged page), those of this boot still continue, from their first tick after the
    /// restart (the gap's runs are lost, not invented), and those of earlier boots stay open;
    /// the error is returned, and recovery is not tried again.
    pub fn recover(&mut self, conn: &Connection, current: Option<i64>) -> Result<(), StoreError> {
        let open = read::open_series(conn)?;
        self.recovered = true;
        let ids: HashSet<i64> = open.iter().map(|s| s.series_id).collect();
        let lasts = read::latest_cumulative(conn, &ids).and_then(|latest| {
            // The last stored tick depends on the boot only; many series share a few boots.
            let mut last_of_boot: HashMap<i64, Option<(u64, u64)>> = HashMap::new();
            for s in &open {
                if let Entry::Vacant(e) = last_of_boot.entry(s.boot_seq) {
                    e.insert(read::last_tick_of_boot(conn, s.boot_seq)?);
                }
            }
            Ok((latest, last_of_boot))
        });
        let (latest, last_of_boot) = match lasts {
            Ok(found) => found,
            Err(e) => {
                for s in open.into_iter().filter(|s| Some(s.boot_seq) == current) {
                    self.resume
                        .insert((s.prog_id, s.load_bt_ns), (s.series_id, s.map_memory));
                }
                return Err(e);
            }
        };
        for s in open {
            let last = latest.get(&s.series_id).copied().unwrap_or(s.base);
            let last_of = last_of_boot.get(&s.boot_seq).copied().flatten();
            let (last_tick, last_bt_us) = last_of.unwrap_or((s.first_tick, 0));
            let last_bt_ns = ns_of_us(last_bt_us).max(s.first_bt_ns);
            let live = Live {
                series_id: s.series_id,
                meta: None,
                state: LiveState {
                    last,
                    last_tick,
                    last_bt_ns,
                    map_memory: s.map_memory,
                },
                segment: None,
            };
            if Some(s.boot_seq) == current {
                self.live.insert((s.prog_id, s.load_bt_ns), live);
            } else {
                self.pending.ends.push(live.end());
            }
        }
        Ok(())
    }

    // What maintenance and queries read.

    /// The number the next tick gets.
    pub fn next_tick(&self) -> u64 {
        self.next_tick
    }

    /// The longest raw segment, in ticks.
    pub fn max_span(&self) -> u64 {
        self.max_span
    }

    pub fn live_count(&self) -> usize {
        self.live.len()
    }

    /// Ticks held in memory (sealed or not).
    pub fn buffered_ticks(&self) -> usize {
        self.pending.sealed_ticks() + self.window.points.len()
    }

    /// The series of a program being sampled (kernel id, load time on CLOCK_BOOTTIME).
    pub fn series_id_of(&self, prog_id: u32, load_boottime_ns: u64) -> Option<i64> {
        self.live
            .get(&(prog_id, load_boottime_ns))
            .map(|l| l.series_id)
    }

    /// Programs being sampled, by series.
    /// Series ended in memory whose end is not written yet: (end tick, end boot time, counters).
    pub fn pending_ends(&self) -> HashMap<i64, (u64, u64, Counters)> {
        self.pending
            .ends
            .iter()
            .map(|e| (e.series_id, (e.end_tick, e.end_bt_ns, e.end)))
            .collect()
    }

    pub fn live_by_series(&self) -> HashMap<i64, LiveState> {
        self.live.values().map(|l| (l.series_id, l.state)).collect()
    }

    /// Series born but not written yet, oldest first.
    pub fn unwritten_series(&self) -> impl Iterator<Item = Unwritten<'_>> {
        self.pending.series.iter().map(|s| Unwritten {
            series_id: s.series_id,
            boot_seq: s.boot_seq,
            meta: &s.meta,
            first_tick: s.first_tick,
            first_bt_ns: s.first_bt_ns,
            base: s.base,
            map_memory: s.map_memory,
            end: self
                .pending
                .ends
                .iter()
                .find(|e| e.series_id == s.series_id)
                .map(|e| (e.end_tick, e.end_bt_ns)),
        })
    }

    /// Ticks of `boot` not written yet, in order.
    pub fn ticks_of(&self, boot: i64) -> Result<Vec<TickPoint>, StoreError> {
        let mut out = Vec::new();
        for t in self.pending.ticks.iter().filter(|t| t.boot_seq == boot) {
            out.extend(decode_ticks(t.first_tick, boot, &t.data)?);
        }
        let w = &self.window;
        if w.boot_seq == boot {
            out.extend(
                w.points
                    .iter()
                    .zip(w.start_tick..)
                    .map(|(p, tick)| TickPoint {
                        tick,
                        boot_seq: boot,
                        bt_us: p.bt_us,
                        state: p.state,
                        coverage_pm: p.coverage_pm,
                    }),
            );
        }
        Ok(out)
    }

    /// The oldest tick not written yet: (boot, boottime µs).
    pub fn oldest_tick(&self) -> Option<(i64, u64)> {
        self.pending
            .ticks
            .first()
            .map(|t| (t.boot_seq, t.first_bt_us))
            .or_else(|| {
                let w = &self.window;
                w.points.first().map(|p| (w.boot_seq, p.bt_us))
            })
    }

    /// Boottime (µs) of the newest tick not written yet.
    pub fn newest_tick_us(&self) -> Option<u64> {
        self.window
            .points
            .last()
            .map(|p| p.bt_us)
            .or_else(|| self.pending.ticks.last().map(|t| t.last_bt_us))
    }

    /// Segments not written yet (sealed and open), of the wanted series when given.
    pub fn segments(&self, wanted: Option<&HashSet<i64>>) -> Result<Vec<Segment>, StoreError> {
        let want = |id: i64| wanted.is_none_or(|w| w.contains(&id));
        let mut segs = Vec::new();
        for r in self.pending.raws.iter().filter(|r| want(r.series_id)) {
            segs.push(decode_segment(r.start_tick, r.series_id, r.base, &r.data)?);
        }
        for l in self.live.values().filter(|l| want(l.series_id)) {
            if let Some(open) = &l.segment {
                segs.push(Segment {
                    start_tick: open.start_tick,
                    series_id: l.series_id,
                    base: open.base,
                    deltas: open.deltas.clone(),
                });
            }
        }
        Ok(segs)
    }
}

/// A boottime in µs as the signed value tick chunks encode.
fn signed_us(us: u64) -> i64 {
    i64::try_from(us).unwrap_or(i64::MAX)
}
