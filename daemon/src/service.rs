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
    let interval = cfg.interval;
    let sampler = std::thread::Builder::new()
        .name("sampler".into())
        .spawn(move || {
            sample_loop(
                sampler_cfg,
                interval,
                &sampler_tx,
                &sampler_shared,
                &sampler_stop_rx,
            )
        })
        .map_err(|e| ServiceError::Thread("sampler", e))?;
    let storage = std::thread::Builder::new()
        .name("store".into())
        .spawn(move || store_loop(store, rx, jobs_rx))
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

/// Takes a pass at every slot of a fixed-rate schedule; slots missed by a slow pass are skipped.
pub fn sample_loop(
    cfg: SamplerConfig,
    interval: Duration,
    tx: &mpsc::Sender<StoreMsg>,
    shared: &Shared,
    stop: &std_mpsc::Receiver<()>,
) {
    let stats = &shared.sampler;
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

fn store_loop(store: Store, rx: mpsc::Receiver<StoreMsg>, jobs: mpsc::Receiver<StoreJob>) {
    // A tiny runtime of its own, only to wait on two queues at once; ticks go first.
    let rt = match tokio::runtime::Builder::new_current_thread().build() {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!("storage thread cannot start: {e}");
            return;
        }
    };
    rt.block_on(store_queues(store, rx, jobs));
}

async fn store_queues(
    mut store: Store,
    mut rx: mpsc::Receiver<StoreMsg>,
    mut jobs: mpsc::Receiver<StoreJob>,
) {
    let mut failing = false;
    loop {
        tokio::select! {
            biased;
            msg = rx.recv() => match msg {
                Some(StoreMsg::Tick(tick)) => {
                    if let Err(e) = store.ingest(&tick) {
                        tracing::error!("storing a pass failed: {e}");
                    }
                }
                Some(StoreMsg::Flush) => flush(&mut store, &mut failing),
                Some(StoreMsg::Stop) | None => {
                    flush(&mut store, &mut failing);
                    return;
                }
            },
            Some(job) = jobs.recv() => job(&mut store),
        }
    }
}

fn flush(store: &mut Store, failing: &mut bool) {
    match store.flush(SystemTime::now()) {
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
}
