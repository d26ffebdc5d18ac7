//! What links the daemon's threads: the messages the sampling thread, the storage thread and
//! the API send each other, and the state they share. Both sides import it; it imports
//! neither, so the API and the service never import each other both ways.

use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use ebpfstat_store::{Retention, Tick};
use tokio::sync::{oneshot, watch};

use crate::observer::Mode;
use crate::sampler::Pass;
use crate::sampler::host::KernelInfo;
use crate::sampler::stats::StatsCost;

/// Locks `m`; a thread that panicked while holding it left a whole value behind (every value
/// here is replaced whole, never half-updated), so it is read anyway.
pub fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Messages to the storage thread (the API's questions travel on their own channel, behind
/// these).
#[derive(Debug)]
pub enum StoreMsg {
    Tick(Box<Tick>),
    /// A rescan's maps (sent after the same pass's tick, only when they were read again).
    Maps(Box<MapsSeen>),
    /// Alerts raised or cleared by a pass, to record.
    Alerts(Vec<ebpfstat_store::AlertRecord>),
    Flush,
    Stop,
}

/// What the store keeps of a rescan's maps.
#[derive(Debug)]
pub struct MapsSeen {
    pub boot_id: Arc<str>,
    pub wall: SystemTime,
    pub maps: Vec<ebpfstat_store::MapReading>,
}

/// What the sampling thread runs with, and a reload may change.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SamplerSettings {
    pub interval: Duration,
    /// How run-time stats are held: always, within a budget, or on a fixed duty cycle.
    pub mode: Mode,
    /// Rescan owners, pins, links and map memory at least every this many passes.
    pub rescan_every: u64,
    /// Share of one core the passes may take before the interval stretches.
    pub sampler_budget: f64,
}

/// Requests to the sampling thread.
#[derive(Debug)]
pub enum SamplerCmd {
    Stop,
    /// Measure again what stats cost; the answer goes back.
    Calibrate(oneshot::Sender<StatsCost>),
    /// Run with these settings from now on (a reload).
    Configure(SamplerSettings),
    /// Judge these alert rules from now on (a reload).
    Alerts(Vec<crate::alerts::Rule>),
}

/// Counters kept by the sampling thread, for status and tests.
#[derive(Debug, Default)]
pub struct SamplerStats {
    pub passes: AtomicU64,
    /// Passes the store could not take (its queue was full).
    pub dropped: AtomicU64,
    /// Passes that started later than their slot by more than half an interval.
    pub late: AtomicU64,
    /// Slots skipped: a pass (with what follows it: storing, alerts) ran past them.
    pub missed: AtomicU64,
    /// Passes that could not read the programs (out of descriptors, say): not stored.
    pub failed: AtomicU64,
    /// The newest failed pass: when, and why. Kept after passes succeed again.
    pub last_failure: Mutex<Option<(SystemTime, String)>>,
    /// Whether the newest pass failed.
    pub failing: AtomicBool,
    /// The interval in use: the configured one, or a multiple when passes were too slow.
    pub pace_interval_ns: AtomicU64,
    /// Mean time of the recent passes, from reading the programs to judging their alerts: wall
    /// time, and the sampling thread's CPU time (what pacing goes by).
    pub pass_ns: AtomicU64,
    pub pass_cpu_ns: AtomicU64,
}

/// How the exports fare, for status.
#[derive(Debug, Default)]
pub struct ExportStats {
    /// When the textfile was last written (ns since the epoch; 0: not yet).
    pub textfile_written_ns: AtomicU64,
    /// Why the newest write of the textfile failed; empty when it succeeded.
    pub textfile_error: Mutex<String>,
    /// Where `/metrics` is served.
    pub metrics_addresses: Mutex<Vec<String>>,
    /// Why it could not be served on the configured address; empty when it is.
    pub metrics_error: Mutex<String>,
    /// `/metrics` connections closed at once: every place was answering a request.
    pub metrics_refused: AtomicU64,
    /// `/metrics` connections let go before sending their request, to make room for new ones.
    pub metrics_evicted: AtomicU64,
    /// Each push target, in the configuration's order.
    pub pushes: Mutex<Vec<ebpfstat_dbus::RemoteWrite>>,
}

/// What changes while the daemon runs and the API shows: the threads that change it (the
/// sampler, the store, a reload) publish it here; each API connection signals
/// `PropertiesChanged` for the properties among it when they change.
#[derive(Debug, Clone, PartialEq)]
pub struct Published {
    /// The stats state of the newest pass.
    pub stats_state: Option<String>,
    /// Size of the database file after the last flush.
    pub database_bytes: u64,
    pub interval: Duration,
    pub retention: Retention,
    pub cap_bytes: u64,
    pub stats_mode: Mode,
    pub sampler_budget: f64,
    /// `stats_overhead_budget`: also what a profile's tracing may cost (share of one core).
    pub stats_budget: f64,
}

/// State the API reads, shared with the sampling and storage threads.
#[derive(Debug)]
pub struct Shared {
    /// Requests to the sampling thread (calibration).
    pub sampler_cmds: std::sync::mpsc::Sender<SamplerCmd>,
    /// The newest pass, set by the sampling thread.
    pub latest: Mutex<Option<Arc<Pass>>>,
    /// The newest pass that read every program, which exports show: a failed pass would make
    /// every program's series vanish from one scrape.
    pub exported: Mutex<Option<Arc<Pass>>>,
    pub sampler: Arc<SamplerStats>,
    pub exports: ExportStats,
    pub published: watch::Sender<Published>,
    pub started: Instant,
    /// The running kernel: fixed for the daemon's life.
    pub kernel: KernelInfo,
    /// New versions compared by the storage thread, for the API to signal on each connection.
    pub versions: tokio::sync::broadcast::Sender<crate::compare::Comparison>,
    /// The alerts raised now, as the sampling thread last published them (it judges passes
    /// with the rules on its own): the lock is held only to swap or clone the `Arc`.
    pub alerts: Mutex<Arc<crate::alerts::Raised>>,
    /// Alerts raised and cleared, for the API to signal on each connection.
    pub alert_changes: tokio::sync::broadcast::Sender<ebpfstat_store::AlertRecord>,
}
