//! The settings ebpfstatd runs with when neither its configuration file nor a flag says
//! otherwise: written here once, for the daemon (its configuration, its flags' help, its man
//! page) and for clients (what an agent may assume of a device left at its defaults). Choices
//! that only the daemon knows (bus, log level, stats mode) are the `#[default]` of their types
//! there; `ebpfstatd --check-config` prints them all.

use std::time::Duration;

/// The configuration file, read when it exists and no `--config` is given.
pub const CONFIG_PATH: &str = "/etc/ebpfstat/ebpfstatd.toml";
/// Time between sampling passes.
pub const INTERVAL: Duration = Duration::from_secs(1);
/// The history database (created with its directory).
pub const DB_PATH: &str = "/var/lib/ebpfstat/history.db";
/// Buffered samples are written at least this often: a crash loses at most this window.
pub const FLUSH_INTERVAL: Duration = Duration::from_secs(60);
/// Age kept at full resolution.
pub const RAW_RETENTION: Duration = Duration::from_secs(6 * 3600);
/// Age kept as 1-minute rollups.
pub const MINUTE_RETENTION: Duration = Duration::from_secs(7 * 86_400);
/// Age kept as 1-hour rollups.
pub const HOUR_RETENTION: Duration = Duration::from_secs(90 * 86_400);
/// Hard cap on the database file.
pub const MAX_DB_BYTES: u64 = 64 << 20;
/// Owners, pins, links and map memory are rescanned at least every this many passes.
pub const RESCAN_EVERY: u64 = 30;
/// The daemon's private peer-to-peer socket (used when no bus is reachable).
pub const SOCKET: &str = "/run/ebpfstat/private";
/// The most that stats may cost the host in `budget` mode, as a share of one core.
pub const STATS_OVERHEAD_BUDGET: f64 = 0.01;
/// Share of one core the sampler's passes may take; slower passes stretch the interval.
pub const SAMPLER_BUDGET: f64 = 0.5;
/// How often the node_exporter textfile is rewritten, when one is configured.
pub const TEXTFILE_INTERVAL: Duration = Duration::from_secs(15);
