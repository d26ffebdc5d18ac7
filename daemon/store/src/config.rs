//! How a store is configured: where it lives, how long each tier keeps data, its byte cap.
//! The daemon settles the values (its defaults are in `ebpfstat_dbus::defaults`).

use std::path::PathBuf;
use std::time::Duration;

/// Maximum age per tier.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    pub raw: Duration,
    pub min1: Duration,
    pub hour1: Duration,
}

/// Ticks held in memory while writes fail (disk full) unless configured otherwise: an hour at
/// the default interval.
pub const DEFAULT_MAX_BUFFERED_TICKS: usize = 3600;

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
    pub fn new(path: impl Into<PathBuf>, retention: Retention, max_bytes: u64) -> Self {
        Self {
            path: path.into(),
            retention,
            max_bytes,
            max_buffered_ticks: DEFAULT_MAX_BUFFERED_TICKS,
        }
    }
}
