//! ebpfstat's history store: compact per-program time series in one SQLite file, in three
//! tiers (raw ticks, 1-minute and 1-hour rollups) with per-tier ages and a hard byte cap.
//!
//! It consumes plain values ([`model`]: what one sampling pass hands to storage) and knows
//! nothing of how they were sampled. Layout (see docs/design.md): every pass is a *tick*,
//! numbered in the order stored; ticks keep `CLOCK_BOOTTIME` time stamps and each boot keeps a
//! wall-clock anchor, so series stay ordered however the wall clock steps. A program's samples
//! in one flush window form one raw segment, written once; ticks without a segment are zero
//! deltas (idle programs cost nothing per tick). Rollup chunks hold an hour of minutes or a day
//! of hours per program and are derived from the finer tier once their period is complete;
//! until then queries derive them on the fly.
//!
//! Inside, from the bottom: `codec` (pure encodings), `tier` (layout), `rows` (decoded rows),
//! `fold` (bucket arithmetic), `clock` (boots and wall anchors), `schema`/`read`/`write`
//! (SQLite), `buffer` (what is not written yet), `db` (the connection and rollup positions),
//! then `maintain` (rollups, retention, cap) and `query`, which both build on all of these and
//! not on each other. Only [`Store`] and the types of its answers are public.

pub mod alerts;
mod buffer;
mod clock;
mod codec;
mod config;
mod db;
mod error;
pub mod events;
mod fold;
pub mod idmap;
mod maintain;
pub mod maps;
pub mod model;
mod query;
mod read;
mod rows;
mod runs;
mod schema;
mod tier;
mod write;

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use serde::Serialize;

pub use alerts::{AlertRecord, MAX_ALERTS};
use buffer::Buffer;
use clock::Boots;
pub use config::{DEFAULT_MAX_BUFFERED_TICKS, Retention, StoreConfig};
pub use db::TierSpan;
use db::{Db, FileCheck};
pub use error::{CodecError, QueryError, StoreError};
pub use events::{Event, KIND_UNCLEAN_STOP, KIND_VERSION, MAX_EVENTS};
pub use maps::{MapHistory, MapPoint, MapReading, MapSeries, MapTarget};
pub use model::{Counters, MapMemory, ProgramMeta, ProgramTick, StatsCode, Tick};
use query::Reader;
pub use query::{
    History, HistoryPoint, MAX_POINTS, ProgramRef, Ranking, Rates, SeriesRow, SortKey, TopRow,
};
pub use runs::UncleanStop;
pub use tier::{Tier, UnknownTier};

/// Cheap figures for a status line.
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
    #[serde(serialize_with = "model::opt_rfc3339")]
    pub last_flush: Option<SystemTime>,
    pub last_error: Option<String>,
    pub clock_steps: i64,
    /// The run before this one did not stop cleanly (found when this one began).
    pub unclean_stop: Option<UncleanStop>,
    /// Rows queries have read since the store was opened ([`Store::rows_read`]).
    pub rows_read: u64,
}

/// The history store. One owner (the daemon's storage thread) feeds it ticks, flushes it and
/// asks it questions.
#[derive(Debug)]
pub struct Store {
    cfg: StoreConfig,
    db: Db,
    boots: Boots,
    buffer: Buffer,
    last_flush: Option<SystemTime>,
    last_error: Option<String>,
    /// The failure of the last maintenance, logged once per run of identical failures.
    maintenance_error: Option<String>,
    /// What is wrong with the database file itself (deleted, replaced), likewise.
    file_error: Option<String>,
    ticks_dropped: u64,
    /// How the run before ended, when not cleanly (`begin_run`).
    unclean: Option<UncleanStop>,
    /// Maps seen by rescans since the last write.
    maps: maps::MapBuffer,
}

/// The size of a file; a file that does not exist (a WAL not made yet) has none.
fn file_size(path: &Path) -> Result<u64, StoreError> {
    match std::fs::metadata(path) {
        Ok(m) => Ok(m.len()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(0),
        Err(source) => Err(StoreError::Size {
            path: path.to_owned(),
            source,
        }),
    }
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
        let boots = Boots::new(read::boots(&conn)?);
        let db = Db::new(conn, &cfg.path)?;
        // Ticks are numbered for good: never reuse a number a rollup already covers.
        let next_tick = read::next_tick(&db.conn)?.max(db.min1_done_tick);
        let buffer = Buffer::new(
            next_tick,
            read::next_series_id(&db.conn)?,
            read::meta_count(&db.conn, "max_span")?,
        );
        Ok(Self {
            cfg,
            db,
            boots,
            buffer,
            last_flush: None,
            last_error: None,
            maintenance_error: None,
            file_error: None,
            ticks_dropped: 0,
            unclean: None,
            maps: maps::MapBuffer::default(),
        })
    }

    /// The path of the database in use.
    pub fn path(&self) -> &Path {
        &self.cfg.path
    }

    /// Buffers one tick. Nothing is written until [`Store::flush`].
    pub fn ingest(&mut self, tick: &Tick) -> Result<(), StoreError> {
        if !self.buffer.recovered() {
            let current = self.boots.seq_of(&tick.boot_id);
            if let Err(e) = self.buffer.recover(&self.db.conn, current) {
                // Storing goes on (see `Buffer::recover`); the error is named once.
                let text = format!("cannot resolve the series a previous run left open: {e}");
                tracing::error!(
                    "{text}; programs still loaded continue their series from their next pass \
                     (the runs while ebpfstatd was down are not counted)"
                );
                self.last_error = Some(text);
            }
        }
        let entered = self.boots.enter(
            &tick.boot_id,
            tick.boottime_ns,
            tick.wall,
            tick.stats_cost_ns,
        );
        if entered.rebooted {
            // A reboot seen while running: the old boot's series all end.
            self.buffer.seal_window()?;
            self.buffer.end_missing(u64::MAX)?;
        }
        if let Some(boot) = entered.changed {
            self.buffer.save_boot(boot);
        }
        self.buffer.push(tick, entered.seq)?;
        Ok(())
    }

    /// Writes everything buffered in one transaction, then runs rollups, retention and the
    /// cap. On failure (disk full) the data stays buffered, within `max_buffered_ticks`.
    pub fn flush(&mut self, now: SystemTime) -> Result<(), StoreError> {
        self.buffer.seal_window()?;
        match write::commit(&mut self.db.conn, self.buffer.pending_mut(), &mut self.maps) {
            Ok(()) => {
                self.last_flush = Some(now);
                self.last_error = None;
            }
            Err(e) => {
                self.ticks_dropped += self.buffer.bound(self.cfg.max_buffered_ticks);
                self.last_error = Some(e.to_string());
                return Err(e);
            }
        }
        self.check_file();
        // The samples are safe; rollup, retention or cap trouble is reported, not fatal.
        match self.maintain(now) {
            Ok(()) => {
                if self.maintenance_error.take().is_some() {
                    tracing::info!("history maintenance works again");
                }
            }
            Err(e) => {
                let text = e.to_string();
                if self.maintenance_error.as_deref() != Some(&text) {
                    tracing::warn!("history maintenance: {text}");
                }
                self.maintenance_error = Some(text.clone());
                self.last_error = Some(text);
            }
        }
        Ok(())
    }

    /// Notices a database file deleted (or replaced) while open, and says so loudly once; a
    /// deleted one is written back whole.
    fn check_file(&mut self) {
        let path = &self.cfg.path;
        let text = match self.db.check_file(path) {
            Ok(FileCheck::Same) => {
                self.file_error = None;
                return;
            }
            Ok(FileCheck::Recreated) => {
                tracing::error!(
                    "the database {} was deleted while in use; it is written back from the \
                     open copy, nothing lost",
                    path.display()
                );
                self.file_error = None;
                return;
            }
            Ok(FileCheck::Replaced) => format!(
                "{} names another file now: history goes on in the file opened at start, \
                 which the next start will not find",
                path.display()
            ),
            Err(e) => format!(
                "the database {} was deleted while in use and cannot be written back yet: {e}",
                path.display()
            ),
        };
        if self.file_error.as_deref() != Some(&text) {
            tracing::error!("{text}");
        }
        self.last_error = Some(text.clone());
        self.file_error = Some(text);
    }

    /// Rollups of completed periods, per-tier retention and the byte cap (run by every
    /// flush); `now` dates retention.
    pub fn maintain(&mut self, now: SystemTime) -> Result<(), StoreError> {
        maintain::run(&mut self.db, &self.boots, &self.buffer, &self.cfg, now)?;
        maps::retire(&self.db.conn, &self.cfg.retention, now)
    }

    /// Keeps each tier for `retention` and the file within `max_bytes` from the next flush on
    /// (a configuration reload).
    pub fn set_limits(&mut self, retention: Retention, max_bytes: u64) {
        self.cfg.retention = retention;
        self.cfg.max_bytes = max_bytes;
    }

    /// The series of a program being sampled (kernel id, load time on CLOCK_BOOTTIME).
    pub fn series_id_of(&self, prog_id: u32, load_boottime_ns: u64) -> Option<i64> {
        self.buffer.series_id_of(prog_id, load_boottime_ns)
    }

    /// Cheap figures for a status line (no table scans).
    pub fn brief(&self) -> Result<Brief, StoreError> {
        Ok(Brief {
            live_programs: self.buffer.live_count(),
            file_bytes: file_size(&self.cfg.path)?,
            cap_bytes: self.cfg.max_bytes,
        })
    }

    /// SQLite's full integrity check: `"ok"` when the file is sound.
    pub fn integrity_check(&self) -> Result<String, StoreError> {
        Ok(self
            .db
            .conn
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))?)
    }

    pub fn status(&self) -> Result<StoreStatus, StoreError> {
        let mut wal = self.cfg.path.as_os_str().to_owned();
        wal.push("-wal");
        let series: u64 = self
            .db
            .conn
            .query_row("SELECT count(*) FROM series", [], |r| r.get(0))?;
        Ok(StoreStatus {
            path: self.cfg.path.clone(),
            file_bytes: file_size(&self.cfg.path)?,
            wal_bytes: file_size(Path::new(&wal))?,
            used_bytes: self.db.used_bytes()?,
            cap_bytes: self.cfg.max_bytes,
            tiers: self.db.tier_spans(&self.boots, true)?,
            series,
            live_programs: self.buffer.live_count(),
            ticks_buffered: self.buffer.buffered_ticks(),
            ticks_dropped: self.ticks_dropped,
            last_flush: self.last_flush,
            last_error: self.last_error.clone(),
            clock_steps: self.boots.clock_steps(),
            unclean_stop: self.unclean,
            rows_read: self.rows_read(),
        })
    }

    fn reader(&self) -> Reader<'_> {
        Reader {
            db: &self.db,
            boots: &self.boots,
            buffer: &self.buffer,
        }
    }

    /// History of `target` over `[from, to)` in points of `step`, from `tier` or else the
    /// finest tier covering `from`.
    pub fn history(
        &self,
        target: &ProgramRef,
        from: SystemTime,
        to: SystemTime,
        step: Duration,
        tier: Option<Tier>,
    ) -> Result<History, QueryError> {
        self.reader().history(target, from, to, step, tier)
    }

    /// A page of history: `[from, to)` clipped to when `target` was seen, at most
    /// `max_points` points; when cut, the time to continue from.
    pub fn history_page(
        &self,
        target: &ProgramRef,
        range: (SystemTime, SystemTime),
        step: Duration,
        tier: Option<Tier>,
        max_points: u64,
    ) -> Result<(History, Option<SystemTime>), QueryError> {
        self.reader()
            .history_page(target, range, (step, tier), max_points, None)
    }

    /// A page of one series' history, as [`Store::history_page`]; `known_start` is its
    /// cumulative counters at the range's start when the caller knows them (the page before
    /// ended there): the page then reads only what it covers.
    pub fn series_page(
        &self,
        series_id: i64,
        range: (SystemTime, SystemTime),
        step: Duration,
        max_points: u64,
        known_start: Option<Counters>,
    ) -> Result<(History, Option<SystemTime>), QueryError> {
        self.reader().history_page(
            &ProgramRef::Series(series_id),
            range,
            (step, None),
            max_points,
            known_start,
        )
    }

    /// Rows read by queries since the store was opened (raw segments stepped over, tick rows
    /// decoded, series rows): what answers cost the database, counted rather than timed.
    pub fn rows_read(&self) -> u64 {
        self.db.reads.get()
    }

    /// Top `n` programs over `[from, to)` by `key`, unloaded ones included.
    pub fn top(
        &self,
        from: SystemTime,
        to: SystemTime,
        key: SortKey,
        n: usize,
    ) -> Result<Vec<TopRow>, QueryError> {
        Ok(self.ranking(from, to, (key, n), &|_| true)?.rows)
    }

    /// The programs over `[from, to)` that `keep` keeps: the first `n` by `key`, and what all
    /// of them add up to (the time observed, what stats cost them).
    pub fn ranking(
        &self,
        from: SystemTime,
        to: SystemTime,
        (key, n): (SortKey, usize),
        keep: &dyn Fn(&TopRow) -> bool,
    ) -> Result<Ranking, QueryError> {
        self.reader().ranking(from, to, (key, n), keep)
    }

    /// The stored series `target` names (several for an identity across reloads).
    pub fn resolve(&self, target: &ProgramRef) -> Result<Vec<SeriesRow>, QueryError> {
        self.reader().resolve(target)
    }

    /// The newest series whose full name is `name`, else the newest whose kernel name (cut to
    /// 15 bytes) is: what a caller naming a program most likely means.
    pub fn newest_named(&self, name: &str) -> Result<Option<SeriesRow>, QueryError> {
        self.reader().newest_named(name)
    }

    /// Every (full name, kernel name) ever seen: what a caller may name.
    pub fn known_names(&self) -> Result<Vec<(String, String)>, QueryError> {
        self.reader().known_names()
    }

    /// The versions of one program (loads of one full name and type, grouped by tag), oldest
    /// first.
    pub fn versions(
        &self,
        full_name: &str,
        prog_type: &str,
    ) -> Result<Vec<Vec<SeriesRow>>, QueryError> {
        self.reader().versions(full_name, prog_type)
    }

    /// At most `limit` series with ids at or above `first`, in id order.
    pub fn series_from(&self, first: i64, limit: u32) -> Result<Vec<SeriesRow>, QueryError> {
        self.reader().series_from(first, limit)
    }

    /// Every series known, newest first (for listing).
    pub fn all_series(&self) -> Result<Vec<SeriesRow>, QueryError> {
        self.reader().all_series()
    }

    /// Where push target `target` was acknowledged up to (ns since the epoch): written with
    /// the next flush, so a crash goes back at most to the flush before; or at once (`now`),
    /// in a transaction of its own, while a target catches up and sends batch after batch.
    pub fn set_pushed(&mut self, target: &str, at_ns: i64, now: bool) -> Result<(), StoreError> {
        let pushed = &mut self.buffer.pending_mut().pushed;
        pushed.insert(target.to_owned(), at_ns);
        if now {
            write::commit_pushed(&mut self.db.conn, pushed)?;
        }
        Ok(())
    }

    /// Where push target `target` was acknowledged up to, as last set; `None` for a target
    /// never acknowledged.
    pub fn pushed(&self, target: &str) -> Result<Option<i64>, StoreError> {
        if let Some(&at) = self.buffer.pending().pushed.get(target) {
            return Ok(Some(at));
        }
        read::meta(&self.db.conn, &write::pushed_key(target))
    }

    /// Wall time of the oldest data any tier holds.
    pub fn oldest_time(&self) -> Result<Option<SystemTime>, StoreError> {
        let spans = self.db.tier_spans(&self.boots, false)?;
        Ok(spans.iter().filter_map(|s| s.oldest).min())
    }

    /// Wall time of the newest tick (the store's "now").
    pub fn newest_time(&self) -> Result<Option<SystemTime>, StoreError> {
        self.reader().newest_time()
    }
}
