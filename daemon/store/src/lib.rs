//! History store: compact per-program time series in one SQLite file, in three tiers (raw
//! ticks, 1-minute and 1-hour rollups) with per-tier ages and a hard byte cap.
//!
//! Layout (see docs/design.md): every pass is a *tick*, numbered in the order stored; ticks keep
//! `CLOCK_BOOTTIME` time stamps and each boot keeps a wall-clock anchor, so series stay ordered
//! however the wall clock steps. A program's samples in one flush window form one raw segment,
//! written once; ticks without a segment are zero deltas (idle programs cost nothing per tick).
//! Rollup chunks hold an hour of minutes or a day of hours per program and are derived from the
//! finer tier once their period is complete; until then queries derive them on the fly.

mod codec;
mod ingest;
mod maintain;
mod query;
mod read;
mod schema;
mod write;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use rusqlite::Connection;
use serde::Serialize;

pub use codec::CodecError;
use ingest::{Live, Pending};
pub use query::{
    History, HistoryPoint, ProgramRef, QueryError, Rates, SeriesRow, SortKey, Tier, TopRow,
    UnknownTier,
};

use crate::sampler::maps::MapMemory;
use crate::sampler::metrics::Counters;
use crate::sampler::stats::StatsState;
use crate::sampler::{Pass, ProgramMeta};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot use database directory {path}: {source}")]
    Directory {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot open database {path}: {why}")]
    Open { path: PathBuf, why: String },
    #[error("cannot move the damaged database {path} aside: {source}")]
    MoveAside {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the disk holding the database is full ({0})")]
    DiskFull(rusqlite::Error),
    #[error("database error: {0}")]
    Sqlite(rusqlite::Error),
    #[error(transparent)]
    Codec(#[from] CodecError),
    #[error(
        "the byte cap ({cap} bytes) is too small: {used} bytes are in use and only data not yet \
         rolled up is left"
    )]
    CapTooSmall { cap: u64, used: u64 },
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        if e.sqlite_error_code() == Some(rusqlite::ErrorCode::DiskFull) {
            Self::DiskFull(e)
        } else {
            Self::Sqlite(e)
        }
    }
}

/// Maximum age per tier.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    pub raw: Duration,
    pub min1: Duration,
    pub hour1: Duration,
}

impl Default for Retention {
    fn default() -> Self {
        Self {
            raw: Duration::from_secs(6 * 3600),
            min1: Duration::from_secs(7 * 86_400),
            hour1: Duration::from_secs(90 * 86_400),
        }
    }
}

#[derive(Debug, Clone)]
pub struct StoreConfig {
    pub path: PathBuf,
    pub retention: Retention,
    /// Hard cap on the database file; the oldest data goes first when it is reached.
    pub max_bytes: u64,
    /// Ticks held in memory while writes fail (disk full); older ones are dropped beyond it.
    pub max_buffered_ticks: usize,
}

impl StoreConfig {
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self {
            path: path.into(),
            retention: Retention::default(),
            max_bytes: 64 << 20,
            max_buffered_ticks: 3600,
        }
    }
}

/// Stats state of a tick, as stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum StatsCode {
    Enabled = 0,
    EnabledBySysctl = 1,
    Unavailable = 2,
    DutyCycled = 3,
    EnabledByOther = 4,
}

impl StatsCode {
    /// How the service status line names the state.
    pub fn label(self) -> &'static str {
        match self {
            Self::Enabled => "enabled",
            Self::EnabledBySysctl => "enabled by sysctl",
            Self::Unavailable => "UNAVAILABLE",
            Self::DutyCycled => "duty-cycled",
            Self::EnabledByOther => "enabled by another holder",
        }
    }
}

impl From<&StatsState> for StatsCode {
    fn from(s: &StatsState) -> Self {
        match s {
            StatsState::Enabled => Self::Enabled,
            StatsState::EnabledBySysctl => Self::EnabledBySysctl,
            StatsState::Unavailable(_) => Self::Unavailable,
            StatsState::DutyCycled { .. } => Self::DutyCycled,
            StatsState::EnabledByOther => Self::EnabledByOther,
        }
    }
}

/// What the store needs of one program in one pass.
#[derive(Debug, Clone)]
pub struct ProgramTick {
    pub meta: Arc<ProgramMeta>,
    pub counters: Counters,
    pub map_memory: MapMemory,
}

/// What the store needs of one pass; tests and benchmarks build these with their own clock.
#[derive(Debug, Clone)]
pub struct Tick {
    pub boot_id: Arc<str>,
    pub boottime_ns: u64,
    pub wall: SystemTime,
    pub stats: StatsCode,
    /// False when the pass could not read every program: missing programs are then not ended.
    pub complete: bool,
    /// Share of the interval with stats on (duty-cycling), 0..=1.
    pub coverage: f64,
    /// What stats cost each program run, ns (calibrated).
    pub stats_cost_ns: f64,
    pub programs: Vec<ProgramTick>,
}

impl Tick {
    pub fn from_pass(pass: &Pass) -> Self {
        Self {
            boot_id: Arc::clone(&pass.boot_id),
            boottime_ns: pass.boottime_ns,
            wall: pass.time,
            stats: StatsCode::from(&pass.stats_state),
            complete: pass.errors.is_empty(),
            coverage: pass.coverage,
            stats_cost_ns: pass.stats_cost.ns_per_run,
            programs: pass
                .programs
                .iter()
                .map(|p| ProgramTick {
                    meta: Arc::clone(&p.meta),
                    counters: p.counters,
                    map_memory: p.context.map_memory,
                })
                .collect(),
        }
    }
}

/// Wall-clock anchor of one boot: wall = boottime + offset (the latest anchor wins).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Boot {
    pub seq: i64,
    pub boot_id: String,
    pub wall_offset_ns: i64,
    pub clock_steps: i64,
    /// Latest calibrated cost of stats per program run, in picoseconds.
    pub stats_cost_ps: i64,
}

/// A wall clock that moves by more than this against `CLOCK_BOOTTIME` has stepped.
const CLOCK_STEP_NS: i64 = 2_000_000_000;

/// Oldest and newest time held by a tier.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct TierSpan {
    pub tier: &'static str,
    #[serde(serialize_with = "opt_rfc3339")]
    pub oldest: Option<SystemTime>,
    #[serde(serialize_with = "opt_rfc3339")]
    pub newest: Option<SystemTime>,
    pub rows: u64,
    /// Pages the tier's tables occupy (raw: segments and tick time stamps).
    pub bytes: u64,
}

/// `rfc3339` for optional times (absent: null).
fn opt_rfc3339<S: serde::Serializer>(t: &Option<SystemTime>, s: S) -> Result<S::Ok, S::Error> {
    match t {
        Some(t) => crate::sampler::model::rfc3339(t, s),
        None => s.serialize_none(),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Brief {
    pub live_programs: usize,
    pub file_bytes: u64,
    pub cap_bytes: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct StoreStatus {
    pub path: PathBuf,
    pub file_bytes: u64,
    pub wal_bytes: u64,
    pub used_bytes: u64,
    pub cap_bytes: u64,
    pub tiers: Vec<TierSpan>,
    pub series: u64,
    pub live_programs: usize,
    pub ticks_buffered: usize,
    pub ticks_dropped: u64,
    #[serde(serialize_with = "opt_rfc3339")]
    pub last_flush: Option<SystemTime>,
    pub last_error: Option<String>,
    pub clock_steps: i64,
}

#[derive(Debug)]
pub struct Store {
    cfg: StoreConfig,
    conn: Connection,
    boots: Vec<Boot>,
    /// Index into `boots` of the boot being sampled, once the first tick arrived.
    current_boot: Option<usize>,
    next_tick: u64,
    next_series_id: i64,
    max_span: u64,
    min1_done_tick: u64,
    hour1_done: (i64, i64),
    live: HashMap<(u32, u64), Live>,
    pending: Pending,
    last_flush: Option<SystemTime>,
    last_error: Option<String>,
    ticks_dropped: u64,
    /// Set once the first tick ran recovery of series left open by a previous run.
    recovered: bool,
}

impl Store {
    /// Opens or creates the database; a damaged file is moved aside (logged) and replaced.
    pub fn open(cfg: StoreConfig) -> Result<Self, StoreError> {
        let (conn, opened) = schema::open(&cfg.path)?;
        if let Some((aside, why)) = &opened.moved_aside {
            tracing::error!(
                "database {} was unreadable ({why}); moved it to {} and started a new one",
                cfg.path.display(),
                aside.display()
            );
        }
        let mut store = Self {
            cfg,
            conn,
            boots: Vec::new(),
            current_boot: None,
            next_tick: 0,
            next_series_id: 1,
            max_span: 0,
            min1_done_tick: 0,
            hour1_done: (0, 0),
            live: HashMap::new(),
            pending: Pending::default(),
            last_flush: None,
            last_error: None,
            ticks_dropped: 0,
            recovered: false,
        };
        store.load_state()?;
        Ok(store)
    }

    /// Whether an earlier open moved a damaged file aside is logged by `open`; this is the
    /// path of the database in use.
    pub fn path(&self) -> &std::path::Path {
        &self.cfg.path
    }

    /// Writes everything buffered in one transaction, then runs rollups, retention and the
    /// cap. On failure (disk full) the data stays buffered, within `max_buffered_ticks`.
    pub fn flush(&mut self, now: SystemTime) -> Result<(), StoreError> {
        self.seal_window();
        match write::commit(&mut self.conn, &mut self.pending, self.max_span) {
            Ok(()) => {
                self.last_flush = Some(now);
                self.last_error = None;
            }
            Err(e) => {
                self.ticks_dropped += self.pending.bound(self.cfg.max_buffered_ticks) as u64;
                self.last_error = Some(e.to_string());
                return Err(e);
            }
        }
        // The samples are safe; rollup, retention or cap trouble is reported, not fatal.
        if let Err(e) = self.maintain(now) {
            if self.last_error.as_deref() != Some(&e.to_string()) {
                tracing::warn!("history maintenance: {e}");
            }
            self.last_error = Some(e.to_string());
        }
        Ok(())
    }

    /// The series of a program being sampled (kernel id, load time on CLOCK_BOOTTIME).
    pub fn series_id_of(&self, prog_id: u32, load_boottime_ns: u64) -> Option<i64> {
        self.live
            .get(&(prog_id, load_boottime_ns))
            .map(|l| l.series_id)
    }

    /// Cheap figures for a status line (no table scans).
    pub fn brief(&self) -> Brief {
        Brief {
            live_programs: self.live.len(),
            file_bytes: std::fs::metadata(&self.cfg.path).map_or(0, |m| m.len()),
            cap_bytes: self.cfg.max_bytes,
        }
    }

    /// SQLite's full integrity check: `"ok"` when the file is sound.
    pub fn integrity_check(&self) -> Result<String, StoreError> {
        Ok(self
            .conn
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))?)
    }

    pub fn status(&self) -> Result<StoreStatus, StoreError> {
        let file_len = |suffix: &str| {
            let mut p = self.cfg.path.as_os_str().to_owned();
            p.push(suffix);
            std::fs::metadata(p).map(|m| m.len()).unwrap_or(0)
        };
        let series: i64 = self
            .conn
            .query_row("SELECT count(*) FROM series", [], |r| r.get(0))?;
        Ok(StoreStatus {
            path: self.cfg.path.clone(),
            file_bytes: file_len(""),
            wal_bytes: file_len("-wal"),
            used_bytes: self.used_bytes()?,
            cap_bytes: self.cfg.max_bytes,
            tiers: self.tier_spans(true)?,
            series: series as u64,
            live_programs: self.live.len(),
            ticks_buffered: self.pending.buffered_ticks(),
            ticks_dropped: self.ticks_dropped,
            last_flush: self.last_flush,
            last_error: self.last_error.clone(),
            clock_steps: self.boots.iter().map(|b| b.clock_steps).sum(),
        })
    }

    fn boot(&self, seq: i64) -> Option<&Boot> {
        self.boots.iter().find(|b| b.seq == seq)
    }

    /// Wall-clock time of a boottime instant in boot `seq`.
    fn wall_of(&self, seq: i64, bt_ns: i64) -> Option<SystemTime> {
        let boot = self.boot(seq)?;
        let wall_ns = bt_ns.checked_add(boot.wall_offset_ns)?;
        u64::try_from(wall_ns)
            .ok()
            .map(|ns| SystemTime::UNIX_EPOCH + Duration::from_nanos(ns))
    }
}

/// Nanoseconds since the epoch (negative before it) of a wall-clock time.
pub fn wall_ns(t: SystemTime) -> i64 {
    match t.duration_since(SystemTime::UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_nanos()).unwrap_or(i64::MAX),
        Err(e) => -i64::try_from(e.duration().as_nanos()).unwrap_or(i64::MAX),
    }
}
