//! The database and what is known of its contents without reading them: the rollup
//! positions, its size in pages, and the time each tier spans.

use std::cell::Cell;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use ebpfstat_numbers::time::ns_of_us_signed;
use rusqlite::Connection;
use serde::Serialize;

use crate::clock::Boots;
use crate::error::StoreError;
use crate::model::opt_rfc3339;
use crate::read;
use crate::schema;
use crate::tier::Tier;

/// What [`Db::check_file`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FileCheck {
    Same,
    /// The file had been deleted; it is back, whole.
    Recreated,
    /// The path names another file now; the open one is still written.
    Replaced,
}

/// The inode `path` names, if it exists.
fn inode_of(path: &Path) -> Result<Option<u64>, StoreError> {
    use std::os::unix::fs::MetadataExt;
    match std::fs::metadata(path) {
        Ok(m) => Ok(Some(m.ino())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(StoreError::Size {
            path: path.to_owned(),
            source,
        }),
    }
}

fn remove_if_there(path: &Path) -> Result<(), StoreError> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(StoreError::Directory {
            path: path.to_owned(),
            source,
        }),
    }
}

/// Oldest and newest time held by a tier.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TierSpan {
    pub tier: Tier,
    #[serde(serialize_with = "opt_rfc3339")]
    pub oldest: Option<SystemTime>,
    #[serde(serialize_with = "opt_rfc3339")]
    pub newest: Option<SystemTime>,
    pub rows: u64,
    /// Pages the tier's tables occupy (raw: segments and tick time stamps).
    pub bytes: u64,
}

/// The connection and the rollup positions (kept in `meta`).
#[derive(Debug)]
pub(crate) struct Db {
    pub conn: Connection,
    /// The inode of the open file, to notice when its path names it no more.
    inode: u64,
    /// Ticks before this one are rolled into 1-minute chunks.
    pub min1_done_tick: u64,
    /// `(boot, 1-minute chunk)` from which 1-minute chunks are not rolled into hours yet.
    pub hour1_done: (i64, i64),
    /// Rows read so far (raw segments stepped over, tick rows decoded, series rows), for
    /// [`crate::Store::rows_read`].
    pub reads: Cell<u64>,
}

impl Db {
    /// Reads the rollup positions of the database just opened at `path`.
    pub fn new(conn: Connection, path: &Path) -> Result<Self, StoreError> {
        let inode = inode_of(path)?.ok_or_else(|| StoreError::Size {
            path: path.to_owned(),
            source: std::io::Error::from(std::io::ErrorKind::NotFound),
        })?;
        let min1_done_tick = read::meta_count(&conn, "min1_done_tick")?;
        let hour1_done = (
            read::meta(&conn, "hour1_done_boot")?.unwrap_or(0),
            read::meta(&conn, "hour1_done_chunk")?.unwrap_or(0),
        );
        Ok(Self {
            conn,
            inode,
            min1_done_tick,
            hour1_done,
            reads: Cell::new(0),
        })
    }

    /// Whether `path` still names the open file. A file deleted while open lives on for this
    /// connection alone (which SQLite no longer lets write) and would be gone at the next
    /// start: it is written back at `path` whole (`VACUUM INTO`), and reopened. A path now
    /// naming another file is left alone.
    pub fn check_file(&mut self, path: &Path) -> Result<FileCheck, StoreError> {
        match inode_of(path)? {
            Some(i) if i == self.inode => return Ok(FileCheck::Same),
            Some(_) => return Ok(FileCheck::Replaced),
            None => {}
        }
        // SQLite refuses to write to a file that was unlinked, but reads it (and our WAL, also
        // open) still: copy it all to a new file beside the path.
        let mut partial = path.as_os_str().to_owned();
        partial.push(".recreating");
        let partial = PathBuf::from(partial);
        remove_if_there(&partial)?;
        let target = partial.to_str().ok_or_else(|| StoreError::Open {
            path: partial.clone(),
            why: "the path is not UTF-8".into(),
        })?;
        self.conn.execute("VACUUM INTO ?1", [target])?;
        // Close the old connection before the new file has a WAL: closing may remove a WAL by
        // its path. Whatever WAL or shm is left at the path is the old one's, copied already.
        let old = std::mem::replace(&mut self.conn, Connection::open_in_memory()?);
        if let Err((_, e)) = old.close() {
            tracing::warn!("closing the deleted database: {e}");
        }
        for suffix in ["-wal", "-shm"] {
            let mut side = path.as_os_str().to_owned();
            side.push(suffix);
            remove_if_there(Path::new(&side))?;
        }
        let live = match std::fs::rename(&partial, path) {
            Ok(()) => path,
            // Keep writing somewhere: the copy, where it is (the next check tries again).
            Err(e) => {
                tracing::error!(
                    "cannot move {} to {}: {e}",
                    partial.display(),
                    path.display()
                );
                partial.as_path()
            }
        };
        let (conn, _) = schema::open(live)?;
        self.conn = conn;
        self.inode = inode_of(live)?.unwrap_or(0);
        Ok(FileCheck::Recreated)
    }

    /// Key `(boot, chunk)` from which `tier`'s chunks are not rolled into the next coarser
    /// tier yet: retention and the cap keep them.
    pub fn unrolled_from(&self, tier: Tier) -> (i64, i64) {
        match tier {
            Tier::Min1 => self.hour1_done,
            Tier::Raw | Tier::Hour1 => (i64::MAX, i64::MAX),
        }
    }

    pub fn pragma(&self, name: &str) -> Result<u64, StoreError> {
        Ok(self
            .conn
            .query_row(&format!("PRAGMA {name}"), [], |r| r.get(0))?)
    }

    /// Pages in use (not free) times the page size.
    pub fn used_bytes(&self) -> Result<u64, StoreError> {
        let pages = self
            .pragma("page_count")?
            .saturating_sub(self.pragma("freelist_count")?);
        Ok(pages.saturating_mul(self.pragma("page_size")?))
    }

    /// On-disk bytes of tables (their pages, from SQLite's dbstat).
    fn table_bytes(&self, tables: &[&str]) -> Result<u64, StoreError> {
        let mut total = 0u64;
        for t in tables {
            let b: u64 = self.conn.query_row(
                "SELECT coalesce(sum(pgsize), 0) FROM dbstat WHERE name = ?1",
                [t],
                |r| r.get(0),
            )?;
            total = total.saturating_add(b);
        }
        Ok(total)
    }

    /// Time spans and row counts per tier; with `bytes`, their on-disk size too (a page scan).
    pub fn tier_spans(&self, boots: &Boots, bytes: bool) -> Result<Vec<TierSpan>, StoreError> {
        let mut spans = Vec::new();
        // Counting rows scans a table: only for status, never on the query path.
        let count = |table: &str| {
            if bytes {
                format!("(SELECT count(*) FROM {table})")
            } else {
                "0".to_owned()
            }
        };
        type Ends = (Option<i64>, Option<i64>, Option<i64>, Option<i64>, u64);
        // Cached: queries ask for the spans on every history page.
        let raw: Ends = self
            .conn
            .prepare_cached(&format!(
                "SELECT (SELECT boot_seq FROM ticks ORDER BY first_tick LIMIT 1),
                        (SELECT first_bt_us FROM ticks ORDER BY first_tick LIMIT 1),
                        (SELECT boot_seq FROM ticks ORDER BY first_tick DESC LIMIT 1),
                        (SELECT last_bt_us FROM ticks ORDER BY first_tick DESC LIMIT 1),
                        {}",
                count(Tier::Raw.table())
            ))?
            .query_row([], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
            })?;
        let at = |boot: Option<i64>, us: Option<i64>| {
            boot.zip(us)
                .and_then(|(b, us)| boots.wall_of(b, ns_of_us_signed(us)))
        };
        spans.push(TierSpan {
            tier: Tier::Raw,
            oldest: at(raw.0, raw.1),
            newest: at(raw.2, raw.3),
            rows: raw.4,
            bytes: if bytes {
                self.table_bytes(&[Tier::Raw.table(), "ticks"])?
            } else {
                0
            },
        });
        for tier in [Tier::Min1, Tier::Hour1] {
            let table = tier.table();
            let r: Ends = self.conn.prepare_cached(
                &format!(
                    "SELECT (SELECT boot_seq FROM {table} ORDER BY boot_seq, chunk LIMIT 1),
                            (SELECT chunk FROM {table} ORDER BY boot_seq, chunk LIMIT 1),
                            (SELECT boot_seq FROM {table} ORDER BY boot_seq DESC, chunk DESC LIMIT 1),
                            (SELECT chunk FROM {table} ORDER BY boot_seq DESC, chunk DESC LIMIT 1),
                            {}",
                    count(table)
                ),
            )?
            .query_row([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)))?;
            let w = i64::try_from(tier.chunk_us()).unwrap_or(i64::MAX);
            spans.push(TierSpan {
                tier,
                oldest: at(r.0, r.1.map(|c| c.saturating_mul(w))),
                newest: at(r.2, r.3.map(|c| c.saturating_add(1).saturating_mul(w))),
                rows: r.4,
                bytes: if bytes {
                    self.table_bytes(&[table])?
                } else {
                    0
                },
            });
        }
        Ok(spans)
    }
}
