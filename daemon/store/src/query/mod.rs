//! The query engine: history of a program (or of an identity across reloads) at a step, and
//! top-N over a window. A query reads the finest tier that covers its range; the part of a
//! rollup tier not rolled up yet is derived on the fly from the finer tier, and the part not
//! flushed yet from memory, so answers are exact up to the last tick.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, SystemTime};

use serde::Serialize;

use super::codec::Bucket;
use super::ingest::Live;
use super::maintain::Life;
use super::read::{self, Segment, TickPoint};
use super::{Store, StoreError, wall_ns};
use crate::sampler::maps::MapMemory;
use crate::sampler::metrics::Counters;

/// Most points one history answer may hold; callers page beyond it.
pub const MAX_POINTS: u64 = 20_000;

#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    #[error("no such program: {0}")]
    NoSuchProgram(String),
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<rusqlite::Error> for QueryError {
    fn from(e: rusqlite::Error) -> Self {
        Self::Store(e.into())
    }
}

const MINUTE_US: u64 = 60_000_000;
const HOUR_US: u64 = 3_600_000_000;
const DAY_US: u64 = 86_400_000_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Tier {
    Raw,
    Min1,
    Hour1,
}

#[derive(Debug, thiserror::Error)]
#[error("unknown tier {0:?} (one of raw, 1m, 1h)")]
pub struct UnknownTier(pub String);

/// The layout of each tier, in one place: names, tables, widths and which tier feeds which.
impl Tier {
    /// Finest first.
    pub const ALL: [Tier; 3] = [Self::Raw, Self::Min1, Self::Hour1];

    /// Name on the wire and in status.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Raw => "raw",
            Self::Min1 => "1m",
            Self::Hour1 => "1h",
        }
    }

    /// Width of one stored value (raw: one tick, taken as zero).
    pub fn resolution(self) -> Duration {
        match self {
            Self::Raw => Duration::ZERO,
            Self::Min1 => Duration::from_secs(60),
            Self::Hour1 => Duration::from_secs(3600),
        }
    }

    /// The table of the tier's rows (raw: its segments; tick time stamps are in `ticks`).
    pub(crate) const fn table(self) -> &'static str {
        match self {
            Self::Raw => "raw",
            Self::Min1 => "min1",
            Self::Hour1 => "hour1",
        }
    }

    /// Boot time one rollup chunk spans, µs. Raw rows are flush windows, not time chunks; 1
    /// (as for its buckets) keeps arithmetic on it defined.
    pub(crate) const fn chunk_us(self) -> u64 {
        match self {
            Self::Raw => 1,
            Self::Min1 => HOUR_US,
            Self::Hour1 => DAY_US,
        }
    }

    /// Boot time one bucket spans, µs (raw: 1, so every tick is a bucket of its own).
    pub(crate) const fn bucket_us(self) -> u64 {
        match self {
            Self::Raw => 1,
            Self::Min1 => MINUTE_US,
            Self::Hour1 => HOUR_US,
        }
    }

    /// The tier a rollup tier is derived from.
    pub(crate) const fn finer(self) -> Option<Tier> {
        match self {
            Self::Raw => None,
            Self::Min1 => Some(Self::Raw),
            Self::Hour1 => Some(Self::Min1),
        }
    }
}

/// 1-minute chunks (hours) in one 1-hour chunk (a day).
pub(super) const MIN1_PER_HOUR1: i64 = (Tier::Hour1.chunk_us() / Tier::Min1.chunk_us()) as i64;

impl std::str::FromStr for Tier {
    type Err = UnknownTier;
    fn from_str(s: &str) -> Result<Self, UnknownTier> {
        Self::ALL
            .into_iter()
            .find(|t| t.as_str() == s)
            .ok_or_else(|| UnknownTier(s.to_owned()))
    }
}

impl Serialize for Tier {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// Which program(s) a history is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProgramRef {
    /// One stored series (one load of one program).
    Series(i64),
    /// The program with this kernel id in the current boot (the newest series with it).
    ProgramId(u32),
    /// Every load of a program with this name (full name), type and tag: reloads included.
    Identity {
        name: String,
        prog_type: String,
        tag: String,
    },
}

/// A stored series and what is known of it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SeriesRow {
    pub series_id: i64,
    pub boot_seq: i64,
    pub prog_id: u32,
    pub name: String,
    pub full_name: String,
    #[serde(rename = "type")]
    pub prog_type: String,
    pub tag: String,
    pub alive: bool,
    #[serde(serialize_with = "crate::store::opt_rfc3339")]
    pub first_seen: Option<SystemTime>,
    #[serde(serialize_with = "crate::store::opt_rfc3339")]
    pub last_seen: Option<SystemTime>,
    /// Cumulative counters at the latest point known (now, or when it was unloaded).
    pub total: Counters,
    #[serde(flatten)]
    pub map_memory: MapMemory,
    #[serde(skip)]
    life: Life,
    #[serde(skip)]
    first_bt_ns: u64,
    #[serde(skip)]
    end_bt_ns: Option<u64>,
}

/// Rates of a bucket over its time: as observed, and extrapolated to the whole time when stats
/// were on for only part of it (duty-cycling); and what stats cost while on.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Rates {
    pub runs_per_sec: f64,
    /// Of one core (100 = one core busy).
    pub cpu_pct: f64,
    /// Share of the time stats were on (1: everything was observed).
    pub coverage: f64,
    /// True when the `est_*` values are extrapolated from partial coverage.
    pub estimated: bool,
    pub est_run_cnt: u64,
    pub est_run_time_ns: u64,
    pub est_runs_per_sec: f64,
    pub est_cpu_pct: f64,
    /// What stats cost the observed runs: runs × calibrated cost per run.
    pub stats_overhead_ns: f64,
    /// The same as a share of one core over the time, percent.
    pub stats_overhead_pct: f64,
}

impl Rates {
    pub fn of(b: &Bucket, secs: f64, stats_overhead_ns: f64) -> Self {
        let per_sec = |v: f64| if secs > 0.0 { v / secs } else { 0.0 };
        let coverage = b.coverage();
        let scale = if coverage > 0.0 { 1.0 / coverage } else { 0.0 };
        Self {
            runs_per_sec: per_sec(b.cnt as f64),
            cpu_pct: per_sec(b.rt as f64) / 1e7,
            coverage,
            estimated: coverage < 0.999,
            est_run_cnt: (b.cnt as f64 * scale).round() as u64,
            est_run_time_ns: (b.rt as f64 * scale).round() as u64,
            est_runs_per_sec: per_sec(b.cnt as f64 * scale),
            est_cpu_pct: per_sec(b.rt as f64 * scale) / 1e7,
            stats_overhead_ns,
            stats_overhead_pct: per_sec(stats_overhead_ns) / 1e7,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HistoryPoint {
    #[serde(serialize_with = "crate::sampler::model::rfc3339")]
    pub start: SystemTime,
    #[serde(serialize_with = "crate::sampler::model::rfc3339")]
    pub end: SystemTime,
    /// Samples (passes) in the step; 0 means no data, not zero activity.
    pub samples: u32,
    /// Samples taken while stats were unavailable (their zeros may be frozen counters).
    pub frozen: u32,
    pub run_cnt: u64,
    pub run_time_ns: u64,
    /// Cumulative since load at the end of the step (for an identity: over its loads).
    pub cum_run_cnt: u64,
    pub cum_run_time_ns: u64,
    pub avg_ns_per_run: Option<f64>,
    #[serde(flatten)]
    pub rates: Rates,
    pub peak_runs_per_sec: u64,
    pub peak_cpu_pct: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct History {
    pub series: Vec<SeriesRow>,
    pub tier: Tier,
    pub step_ns: u64,
    pub points: Vec<HistoryPoint>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SortKey {
    RunTime,
    Runs,
    Avg,
    Cpu,
    MapMem,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TopRow {
    #[serde(flatten)]
    pub series: SeriesRow,
    pub tier: Tier,
    pub samples: u32,
    pub run_cnt: u64,
    pub run_time_ns: u64,
    pub avg_ns_per_run: Option<f64>,
    #[serde(flatten)]
    pub rates: Rates,
    pub peak_runs_per_sec: u64,
    pub peak_cpu_pct: f64,
}

const SERIES_COLUMNS: &str = "series_id, boot_seq, prog_id, name, full_name, type, tag, \
    first_tick, first_bt_ns, end_tick, end_bt_ns, base_cnt, base_rt, end_cnt, end_rt, map_mem, \
    map_mem_own, map_mem_shared";

mod history;
mod top;

impl Store {
    /// Live programs by series, built once per query rather than searched per row.
    fn lives_by_series(&self) -> HashMap<i64, &Live> {
        self.live.values().map(|l| (l.series_id, l)).collect()
    }

    fn series_from_row(
        &self,
        lives: &HashMap<i64, &Live>,
        r: &rusqlite::Row<'_>,
    ) -> rusqlite::Result<SeriesRow> {
        let id: i64 = r.get(0)?;
        let boot: i64 = r.get(1)?;
        let end_tick: Option<i64> = r.get(9)?;
        let end_bt: Option<i64> = r.get(10)?;
        let base = read::counters(r.get(11)?, r.get(12)?);
        let end = read::opt_counters(r, 13, 14)?;
        let live = lives.get(&id).copied();
        let first_bt_ns = r.get::<_, i64>(8)? as u64;
        Ok(SeriesRow {
            series_id: id,
            boot_seq: boot,
            prog_id: r.get(2)?,
            name: r.get(3)?,
            full_name: r.get(4)?,
            prog_type: r.get(5)?,
            tag: r.get(6)?,
            alive: live.is_some(),
            first_seen: self.wall_of(boot, first_bt_ns as i64),
            last_seen: match live {
                Some(l) => self.wall_of(boot, l.last_bt_ns as i64),
                None => end_bt.and_then(|e| self.wall_of(boot, e)),
            },
            total: live.map(|l| l.last).or(end).unwrap_or(base),
            map_memory: live.map(|l| l.map_memory).unwrap_or(MapMemory {
                total: r.get::<_, i64>(15)? as u64,
                own: r.get::<_, i64>(16)? as u64,
                shared: r.get::<_, i64>(17)? as u64,
            }),
            life: Life {
                first: r.get::<_, i64>(7)? as u64,
                end: if live.is_some() {
                    None
                } else {
                    end_tick.map(|e| e as u64)
                },
            },
            first_bt_ns,
            end_bt_ns: if live.is_some() {
                None
            } else {
                end_bt.map(|e| e as u64)
            },
        })
    }

    /// Stored series matching `where_sql` (which may end in `ORDER BY`/`LIMIT`), plus those
    /// born but not written yet that `pending` accepts. `pending` sees each such series as the
    /// row it will be stored as, so it can test the same columns `where_sql` does.
    fn series_where(
        &self,
        where_sql: &str,
        args: &[&dyn rusqlite::ToSql],
        pending: impl Fn(&SeriesRow) -> bool,
    ) -> Result<Vec<SeriesRow>, QueryError> {
        let mut stmt = self.conn.prepare_cached(&format!(
            "SELECT {SERIES_COLUMNS} FROM series WHERE {where_sql}"
        ))?;
        let mut rows = stmt.query(args)?;
        let lives = self.lives_by_series();
        let mut out = Vec::new();
        while let Some(r) = rows.next()? {
            out.push(self.series_from_row(&lives, r)?);
        }
        for s in &self.pending.series {
            let m = &s.meta;
            let live = lives.get(&s.series_id).copied();
            // Ended before it was written: its end is pending too.
            let end = live
                .is_none()
                .then(|| {
                    self.pending
                        .ends
                        .iter()
                        .find(|e| e.series_id == s.series_id)
                })
                .flatten();
            let row = SeriesRow {
                series_id: s.series_id,
                boot_seq: s.boot_seq,
                prog_id: m.id,
                name: m.name.clone(),
                full_name: m.full_name.clone(),
                prog_type: m.prog_type.to_string(),
                tag: m.tag.clone(),
                alive: live.is_some(),
                first_seen: self.wall_of(s.boot_seq, s.first_bt_ns as i64),
                last_seen: live.and_then(|l| self.wall_of(s.boot_seq, l.last_bt_ns as i64)),
                total: live.map_or(s.base, |l| l.last),
                map_memory: live.map_or(s.map_memory, |l| l.map_memory),
                life: Life {
                    first: s.first_tick,
                    end: live
                        .is_none()
                        .then(|| end.map_or(s.first_tick, |e| e.end_tick)),
                },
                first_bt_ns: s.first_bt_ns,
                end_bt_ns: end.map(|e| e.end_bt_ns),
            };
            if pending(&row) {
                out.push(row);
            }
        }
        Ok(out)
    }

    pub fn resolve(&self, target: &ProgramRef) -> Result<Vec<SeriesRow>, QueryError> {
        let found = match target {
            ProgramRef::Series(id) => {
                self.series_where("series_id = ?1", &[id], |s| s.series_id == *id)?
            }
            ProgramRef::ProgramId(id) => {
                let boot = self.current_boot.map_or(-1, |i| self.boots[i].seq);
                let mut all =
                    self.series_where("boot_seq = ?1 AND prog_id = ?2", &[&boot, id], |s| {
                        s.boot_seq == boot && s.prog_id == *id
                    })?;
                all.sort_by_key(|s| s.series_id);
                all.pop().into_iter().collect()
            }
            ProgramRef::Identity {
                name,
                prog_type,
                tag,
            } => self.series_where(
                "full_name = ?1 AND type = ?2 AND tag = ?3",
                &[name, prog_type, tag],
                |s| s.full_name == *name && s.prog_type == *prog_type && s.tag == *tag,
            )?,
        };
        if found.is_empty() {
            return Err(QueryError::NoSuchProgram(match target {
                ProgramRef::Series(id) => format!("no stored series {id}"),
                ProgramRef::ProgramId(id) => format!("no program with id {id} in this boot"),
                ProgramRef::Identity {
                    name,
                    prog_type,
                    tag,
                } => format!("no program named {name} of type {prog_type} with tag {tag}"),
            }));
        }
        Ok(found)
    }

    /// The newest series whose full name is `name`, else the newest whose kernel name (cut to
    /// 15 bytes) is: what a caller naming a program most likely means.
    pub fn newest_named(&self, name: &str) -> Result<Option<SeriesRow>, QueryError> {
        // Pending series are newer than any stored one; the newest of both wins.
        let newest = |found: Vec<SeriesRow>| found.into_iter().max_by_key(|s| s.series_id);
        let by_full_name = self.series_where(
            "full_name = ?1 ORDER BY series_id DESC LIMIT 1",
            &[&name],
            |s| s.full_name == name,
        )?;
        if let Some(s) = newest(by_full_name) {
            return Ok(Some(s));
        }
        // No index on `name`: a scan, but only when no full name matched.
        let by_name =
            self.series_where("name = ?1 ORDER BY series_id DESC LIMIT 1", &[&name], |s| {
                s.name == name
            })?;
        Ok(newest(by_name))
    }

    /// Every series known, newest first (for listing).
    pub fn all_series(&self) -> Result<Vec<SeriesRow>, QueryError> {
        let mut all = self.series_where("1", &[], |_| true)?;
        all.sort_by_key(|s| std::cmp::Reverse(s.series_id));
        Ok(all)
    }

    /// Wall time of the newest tick (the store's "now").
    pub fn newest_time(&self) -> Option<SystemTime> {
        let boot = self.boots.get(self.current_boot?)?;
        let bt = self
            .pending
            .window
            .points
            .last()
            .map(|p| p.0)
            .or_else(|| self.pending.ticks.last().map(|t| t.last_bt_us))
            // Everything is written: the newest stored tick.
            .or_else(|| {
                read::last_tick_of_boot(&self.conn, boot.seq)
                    .ok()
                    .flatten()
                    .map(|(_, bt)| bt)
            })?;
        self.wall_of(boot.seq, bt as i64 * 1000)
    }

    /// Ticks not written yet, of `boot`.
    fn pending_ticks(&self, boot: i64) -> Result<Vec<TickPoint>, StoreError> {
        let mut out = Vec::new();
        for t in self.pending.ticks.iter().filter(|t| t.boot_seq == boot) {
            out.extend(read::decode_ticks(t.first_tick, boot, &t.data)?);
        }
        let w = &self.pending.window;
        if w.boot_seq == boot {
            out.extend(
                w.points
                    .iter()
                    .enumerate()
                    .map(|(i, &(bt, s, c))| TickPoint {
                        tick: w.start_tick + i as u64,
                        boot_seq: boot,
                        bt_us: bt,
                        state: s,
                        coverage_pm: c,
                    }),
            );
        }
        Ok(out)
    }

    /// Ticks of `boot` in `[lo, hi]` µs, preceded by the tick before `lo` when there is one.
    fn ticks_in(&self, boot: i64, lo: u64, hi: u64) -> Result<Vec<TickPoint>, StoreError> {
        let mut all = read::ticks_between(&self.conn, boot, lo, hi)?;
        all.extend(
            self.pending_ticks(boot)?
                .into_iter()
                .filter(|p| p.bt_us <= hi),
        );
        let first_in = all.iter().position(|p| p.bt_us >= lo).unwrap_or(all.len());
        let mut out = all.split_off(first_in.saturating_sub(1));
        // The tick before may sit in an earlier row than the range touches.
        if let Some(first) = out.first().copied()
            && first.bt_us >= lo
            && first.tick > 0
            && let Some(prev) = read::tick_at(&self.conn, first.tick - 1)?
            && prev.boot_seq == boot
        {
            out.insert(0, prev);
        }
        Ok(out)
    }

    /// Segments (stored and in memory) that may hold ticks ≥ `from_tick`.
    fn segments(
        &self,
        from_tick: u64,
        wanted: Option<&HashSet<i64>>,
    ) -> Result<Vec<Segment>, StoreError> {
        let mut segs = read::segments_from(&self.conn, from_tick, self.max_span, wanted)?;
        let want = |id: i64| wanted.is_none_or(|w| w.contains(&id));
        for r in self.pending.raws.iter().filter(|r| want(r.series_id)) {
            segs.push(read::decode_segment(
                r.start_tick,
                r.series_id,
                r.base,
                &r.data,
            )?);
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
        segs.retain(|s| s.end_tick() > from_tick);
        Ok(segs)
    }

    /// Boot and hour of the first tick not rolled into 1-minute chunks.
    fn min1_boundary(&self) -> Result<(i64, u64), StoreError> {
        let first = read::first_tick_from(&self.conn, self.min1_done_tick)?.or_else(|| {
            self.current_boot
                .and_then(|i| self.pending_ticks(self.boots[i].seq).ok())
                .and_then(|t| t.first().copied())
        });
        Ok(first.map_or((i64::MAX, u64::MAX), |p| {
            (p.boot_seq, p.bt_us / Tier::Min1.chunk_us())
        }))
    }

    /// Oldest wall time each tier can answer for.
    fn tier_oldest(&self) -> Result<[Option<SystemTime>; 3], StoreError> {
        let spans = self.tier_spans(false)?;
        let pending_oldest = self
            .pending
            .ticks
            .first()
            .map(|t| (t.boot_seq, t.first_bt_us))
            .or_else(|| {
                let w = &self.pending.window;
                w.points.first().map(|p| (w.boot_seq, p.0))
            })
            .and_then(|(b, us)| self.wall_of(b, us as i64 * 1000));
        let raw = spans[0].oldest.or(pending_oldest);
        let min1 = spans[1].oldest.or(raw);
        let hour1 = spans[2].oldest.or(min1);
        Ok([raw, min1, hour1])
    }

    /// What stats cost each run in `boot`, ns (its latest calibration).
    fn stats_cost_ns(&self, boot: i64) -> f64 {
        self.boot(boot)
            .map_or(0.0, |b| b.stats_cost_ps as f64 / 1000.0)
    }

    /// Per-boot boot-time ranges (µs) of a wall-clock range.
    fn boot_ranges(&self, from: SystemTime, to: SystemTime) -> Vec<(i64, u64, u64)> {
        let (f, t) = (wall_ns(from), wall_ns(to));
        self.boots
            .iter()
            .filter_map(|b| {
                // Ranges are half-open: a tick exactly at `to` belongs to the next range.
                let hi = t.saturating_sub(b.wall_offset_ns).saturating_sub(1);
                if hi < 0 {
                    return None;
                }
                let lo = f.saturating_sub(b.wall_offset_ns).max(0);
                Some((b.seq, lo as u64 / 1000, hi as u64 / 1000))
            })
            .collect()
    }
}

/// Where a rollup tier's chunks covering `[lo, hi]` of a boot are, and how many are rolled up.
#[derive(Debug, Clone, Copy)]
pub(super) struct RollupSpan {
    pub table: &'static str,
    /// Width of a chunk and of a bucket in it (µs of boot time).
    pub chunk_us: u64,
    pub bucket_us: u64,
    /// The tier the not-yet-rolled part comes from.
    pub finer: Tier,
    pub first: i64,
    pub last: i64,
    /// First chunk in `[first, last + 1]` not rolled up.
    pub rolled_end: i64,
}

impl Store {
    pub(super) fn rollup_span(
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
                (b, hour as i64)
            }
            Tier::Hour1 => {
                // `hour1_done` counts 1-minute chunks.
                let (b, chunk) = self.hour1_done;
                (b, chunk.div_euclid(MIN1_PER_HOUR1))
            }
        };
        let chunk_us = tier.chunk_us();
        let (first, last) = ((lo / chunk_us) as i64, (hi / chunk_us) as i64);
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
