//! Stores as the product opens them, and finding what they hold.

use std::path::PathBuf;

use ebpfstat_store::{Retention, SeriesRow, Store, StoreConfig};
use ebpfstatd::config::Effective;

/// The retention the daemon keeps by default.
pub fn default_retention() -> Retention {
    Effective::default().retention()
}

/// A store at `path` configured as the daemon's defaults configure it.
pub fn store_config(path: impl Into<PathBuf>) -> StoreConfig {
    StoreConfig::new(path, default_retention(), Effective::default().max_db_size)
}

/// The series stored for the program named `name` (the newest, if it was loaded more than once).
pub fn stored_series(store: &Store, name: &str) -> SeriesRow {
    store
        .all_series()
        .expect("series")
        .into_iter()
        .find(|s| s.full_name == name)
        .unwrap_or_else(|| panic!("no series {name} stored"))
}
