//! The running daemon: a sampling thread, a storage thread, and the async side (signals,
//! flush timer; the API later) on a small tokio runtime.
//!
//! The sampler never waits on anything else: it hands each pass to the store with `try_send`,
//! so a slow disk or a burst of queries delays only the store, never a tick.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc as std_mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::mpsc;

use crate::api::{self, Shared, Stats1, StoreJob};
use crate::sampler::{Sampler, SamplerConfig};
use crate::store::{Store, StoreConfig, StoreError, Tick};

/// Which message bus to serve the API on (besides the private socket).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Bus {
    System,
    Session,
    Address(String),
    None,
}

impl std::str::FromStr for Bus {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Ok(match s {
            "system" => Self::System,
            "session" => Self::Session,
            "none" => Self::None,
            a if a.contains(':') => Self::Address(a.to_owned()),
            other => {
                return Err(format!(
                    "{other:?}: expected system, session, none or a D-Bus address (unix:path=...)"
                ));
            }
        })
    }
}

#[derive(Debug, Clone)]
pub struct ServiceConfig {
    pub interval: Duration,
    pub flush_interval: Duration,
    pub sampler: SamplerConfig,
    pub store: StoreConfig,
    pub bus: Bus,
    /// The private socket, or `None` for none.
    pub socket: Option<PathBuf>,
    /// Testing aid: the sampler stops after this many passes.
    pub stall_after: Option<u64>,
}

#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("cannot start the async runtime: {0}")]
    Runtime(std::io::Error),
    #[error("cannot start the {0} thread: {1}")]
    Thread(&'static str, std::io::Error),
    #[error(transparent)]
    Socket(#[from] api::socket::SocketError),
}

/// Messages to the storage thread (queries travel on their own channel, behind these).
#[derive(Debug)]
pub enum StoreMsg {
    Tick(Box<Tick>),
    Flush,
    Stop,
}

/// Counters shared with the sampling thread, for status and tests.
#[derive(Debug, Default)]
pub struct SamplerStats {
    pub passes: AtomicU64,
    /// Passes the store could not take (its queue was full).
    pub dropped: AtomicU64,
    /// Passes that started later than their slot by more than half an interval.
    pub late: AtomicU64,
}

/// Runs until SIGTERM or SIGINT, then flushes and returns.
pub fn run(cfg: ServiceConfig) -> Result<(), ServiceError> {
    // Open the database before anything else: a bad path fails fast, touching nothing.
    let store = Store::open(cfg.store.clone())?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(ServiceError::Runtime)?;
    // Ticks have a deep queue of their own (4 minutes at 1 s) so queries never push one out.
    let (tx, rx) = mpsc::channel::<StoreMsg>(256);
    let (jobs_tx, jobs_rx) = mpsc::channel::<StoreJob>(64);
    let stats = Arc::new(SamplerStats::default());
    let shared = Arc::new(Shared {
        jobs: jobs_tx,
        latest: Mutex::new(None),
        sampler: Arc::clone(&stats),
        interval: cfg.interval,
        retention: cfg.store.retention,
        cap_bytes: cfg.store.max_bytes,
        db_path: cfg.store.path.clone(),
        started: Instant::now(),
    });
    let listener = match &cfg.socket {
        Some(path) => {
            let _guard = runtime.enter();
            Some(api::socket::bind(path)?)
        }
        None => None,
    };
    let (stop_sampler, sampler_stop_rx) = std_mpsc::channel::<()>();

    let sampler_tx = tx.clone();
    let sampler_shared = Arc::clone(&shared);
    let sampler_cfg = cfg.sampler.clone();
    let schedule = Schedule {
        interval: cfg.interval,
        stall_after: cfg.stall_after,
    };
    let sampler = std::thread::Builder::new()
        .name("sampler".into())
        .spawn(move || {
            sample_loop(
                sampler_cfg,
                schedule,
                &sampler_tx,
                &sampler_shared,
                &sampler_stop_rx,
            )
        })
        .map_err(|e| ServiceError::Thread("sampler", e))?;
    let (stored_tx, stored_rx) = tokio::sync::oneshot::channel::<()>();
    let storage = std::thread::Builder::new()
        .name("store".into())
        .spawn(move || store_loop(store, rx, jobs_rx, stored_tx))
        .map_err(|e| ServiceError::Thread("store", e))?;

    tracing::info!(
        "sampling every {} into {} (flush every {})",
        humantime::format_duration(cfg.interval),
        cfg.store.path.display(),
        humantime::format_duration(cfg.flush_interval)
    );
    let flush_interval = cfg.flush_interval;
    let iface = Stats1::new(Arc::clone(&shared));
    let bus = cfg.bus.clone();
    runtime.block_on(async move {
        let _bus_conn = serve_bus(&bus, iface.clone()).await;
        if let Some(listener) = listener {
            tokio::spawn(api::socket::serve(listener, iface));
        }
        // Ready once the API is served (above) and the first pass is stored.
        tokio::spawn(async move {
            if stored_rx.await.is_ok() {
                notify(&[sd_notify::NotifyState::Ready]);
            }
        });
        let flush_tx = tx.clone();
        let flusher = tokio::spawn(async move {
            let mut timer = tokio::time::interval(flush_interval);
            timer.tick().await;
            loop {
                timer.tick().await;
                if flush_tx.send(StoreMsg::Flush).await.is_err() {
                    break;
                }
            }
        });
        wait_for_signal().await;
        notify(&[
            sd_notify::NotifyState::Stopping,
            sd_notify::NotifyState::Status("stopping: writing buffered history"),
        ]);
        flusher.abort();
        let _ = stop_sampler.send(());
        let _ = tx.send(StoreMsg::Stop).await;
    });
    let _ = sampler.join();
    let _ = storage.join();
    tracing::info!(
        "stopped after {} passes ({} not stored: queue full)",
        stats.passes.load(Ordering::Relaxed),
        stats.dropped.load(Ordering::Relaxed)
    );
    Ok(())
}

/// Takes the well-known name on the chosen bus; without a bus the private socket still serves.
async fn serve_bus(bus: &Bus, iface: Stats1) -> Option<zbus::Connection> {
    let builder = match bus {
        Bus::None => return None,
        Bus::System => zbus::connection::Builder::system(),
        Bus::Session => zbus::connection::Builder::session(),
        Bus::Address(a) => zbus::connection::Builder::address(a.as_str()),
    };
    match builder
        .name(ebpfstat_dbus::BUS_NAME)
        .serve_at(ebpfstat_dbus::OBJECT_PATH, iface)
        .build()
        .await
    {
        Ok(conn) => {
            tracing::info!("serving {} on the {bus:?} bus", ebpfstat_dbus::BUS_NAME);
            Some(conn)
        }
        Err(e) => {
            tracing::warn!("not on the {bus:?} bus ({e}); serving on the private socket only");
            None
        }
    }
}

async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        tracing::error!("cannot install signal handlers; stopping");
        return;
    };
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM: flushing and stopping"),
        _ = int.recv() => tracing::info!("SIGINT: flushing and stopping"),
    }
}

/// Tells the service manager (a no-op without `NOTIFY_SOCKET`).
fn notify(states: &[sd_notify::NotifyState<'_>]) {
    if let Err(e) = sd_notify::notify(states) {
        tracing::debug!("sd_notify: {e}");
    }
}

/// When the sampler runs.
#[derive(Debug, Clone, Copy)]
pub struct Schedule {
    pub interval: Duration,
    /// Testing aid: stop sampling (and so pinging the watchdog) after this many passes.
    pub stall_after: Option<u64>,
}

/// Takes a pass at every slot of a fixed-rate schedule; slots missed by a slow pass are skipped.
/// It pings the systemd watchdog itself, at half its period: a stalled sampler stops the pings.
pub fn sample_loop(
    cfg: SamplerConfig,
    schedule: Schedule,
    tx: &mpsc::Sender<StoreMsg>,
    shared: &Shared,
    stop: &std_mpsc::Receiver<()>,
) {
    let interval = schedule.interval;
    let stats = &shared.sampler;
    let watchdog = sd_notify::watchdog_enabled().map(|d| d / 2);
    let mut pinged: Option<Instant> = None;
    let mut sampler = Sampler::new(cfg);
    let start = Instant::now();
    let mut slot: u32 = 0;
    loop {
        let due = start + interval * slot;
        if Instant::now() > due + interval / 2 {
            stats.late.fetch_add(1, Ordering::Relaxed);
        }
        let pass = Arc::new(sampler.pass());
        stats.passes.fetch_add(1, Ordering::Relaxed);
        let tick = Box::new(Tick::from_pass(&pass));
        if let Ok(mut latest) = shared.latest.lock() {
            *latest = Some(pass);
        }
        if tx.try_send(StoreMsg::Tick(tick)).is_err() {
            stats.dropped.fetch_add(1, Ordering::Relaxed);
        }
        if let Some(period) = watchdog
            && pinged.is_none_or(|p| p.elapsed() >= period)
        {
            notify(&[sd_notify::NotifyState::Watchdog]);
            pinged = Some(Instant::now());
        }
        if schedule.stall_after == Some(stats.passes.load(Ordering::Relaxed)) {
            tracing::warn!("testing aid: the sampler stalls now");
            let _ = stop.recv();
            return;
        }
        // Next slot in the future (skipping any a slow pass overran).
        let elapsed = start.elapsed();
        slot = (elapsed.as_nanos() / interval.as_nanos().max(1)) as u32 + 1;
        let wait = (start + interval * slot).saturating_duration_since(Instant::now());
        match stop.recv_timeout(wait) {
            Err(std_mpsc::RecvTimeoutError::Timeout) => {}
            _ => return,
        }
    }
}

fn store_loop(
    store: Store,
    rx: mpsc::Receiver<StoreMsg>,
    jobs: mpsc::Receiver<StoreJob>,
    stored: tokio::sync::oneshot::Sender<()>,
) {
    // A tiny runtime of its own, only to wait on two queues at once; ticks go first.
    let rt = match tokio::runtime::Builder::new_current_thread().build() {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!("storage thread cannot start: {e}");
            return;
        }
    };
    rt.block_on(store_queues(store, rx, jobs, stored));
}

async fn store_queues(
    mut store: Store,
    mut rx: mpsc::Receiver<StoreMsg>,
    mut jobs: mpsc::Receiver<StoreJob>,
    stored: tokio::sync::oneshot::Sender<()>,
) {
    let mut failing = false;
    let mut first = Some(stored);
    let mut stats = String::new();
    loop {
        tokio::select! {
            biased;
            msg = rx.recv() => match msg {
                Some(StoreMsg::Tick(tick)) => {
                    stats = StatsState::name_of(tick.stats).to_owned();
                    if let Err(e) = store.ingest(&tick) {
                        tracing::error!("storing a pass failed: {e}");
                    }
                    // The first pass is written at once: readiness means it is on disk.
                    if let Some(ready) = first.take() {
                        flush(&mut store, &mut failing, &stats);
                        let _ = ready.send(());
                    }
                }
                Some(StoreMsg::Flush) => flush(&mut store, &mut failing, &stats),
                Some(StoreMsg::Stop) | None => {
                    flush(&mut store, &mut failing, &stats);
                    return;
                }
            },
            Some(job) = jobs.recv() => job(&mut store),
        }
    }
}

/// Names for the service status line.
struct StatsState;

impl StatsState {
    fn name_of(code: crate::store::StatsCode) -> &'static str {
        match code {
            crate::store::StatsCode::Enabled => "enabled",
            crate::store::StatsCode::EnabledBySysctl => "enabled by sysctl",
            crate::store::StatsCode::Unavailable => "UNAVAILABLE",
        }
    }
}

fn flush(store: &mut Store, failing: &mut bool, stats: &str) {
    let result = store.flush(SystemTime::now());
    match &result {
        Ok(()) => {
            if *failing {
                tracing::info!("writes to {} work again", store.path().display());
            }
            *failing = false;
        }
        Err(e) => {
            // Log the first failure of a run of them, not every retry.
            if !*failing {
                tracing::error!("writing history failed, keeping it in memory: {e}");
            }
            *failing = true;
        }
    }
    let brief = store.brief();
    let line = format!(
        "{} programs · last pass {} · database {} of {} · stats {}{}",
        brief.live_programs,
        humantime::format_rfc3339_seconds(SystemTime::now()),
        human_bytes(brief.file_bytes),
        human_bytes(brief.cap_bytes),
        stats,
        match &result {
            Ok(()) => String::new(),
            Err(e) => format!(" · writes failing: {e}"),
        }
    );
    notify(&[sd_notify::NotifyState::Status(&line)]);
}

fn human_bytes(b: u64) -> String {
    format!("{:.1} MiB", b as f64 / 1_048_576.0)
}
