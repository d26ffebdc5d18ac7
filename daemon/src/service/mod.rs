//! The running daemon: a sampling thread, a storage thread, and the async side (signals,
//! flush timer; the API later) on a small tokio runtime.
//!
//! The sampler never waits on anything else: it hands each pass to the store with `try_send`,
//! so a slow disk or a burst of queries delays only the store, never a tick.

use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::mpsc as std_mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ebpfstat_store::{Store, StoreConfig, StoreError};
use tokio::sync::{mpsc, watch};

mod sampling;
mod schedule;
mod storage;

pub use sampling::Schedule;

use crate::api::{self, Stats1};
use crate::config::Bus;
use crate::sampler::SamplerConfig;
use crate::sampler::host::KernelInfo;
use crate::shared::{Published, SamplerCmd, SamplerStats, Shared, StoreJob, StoreMsg};

#[derive(Debug, Clone)]
pub struct ServiceConfig {
    pub interval: Duration,
    pub flush_interval: Duration,
    pub sampler: SamplerConfig,
    pub store: StoreConfig,
    pub bus: Bus,
    /// The private socket, or `None` for none.
    pub socket: Option<PathBuf>,
    /// How run-time stats are held (always, within a budget, fixed duty cycle).
    pub stats_mode: crate::observer::Mode,
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
    let (sampler_cmds, sampler_cmds_rx) = std_mpsc::channel::<SamplerCmd>();
    let (published, _) = watch::channel(Published {
        stats_state: None,
        database_bytes: store.brief()?.file_bytes,
    });
    let shared = Arc::new(Shared {
        jobs: jobs_tx,
        sampler_cmds: sampler_cmds.clone(),
        latest: Mutex::new(None),
        sampler: Arc::new(SamplerStats::default()),
        published,
        interval: cfg.interval,
        retention: cfg.store.retention,
        cap_bytes: cfg.store.max_bytes,
        started: Instant::now(),
        stats_mode: cfg.stats_mode,
        kernel: KernelInfo::current(),
    });
    let bound = match &cfg.socket {
        Some(path) => {
            let _guard = runtime.enter();
            Some(api::socket::bind(path)?)
        }
        None => None,
    };
    // The socket file goes when `socket_file` does, at the end of a clean exit.
    let (listener, socket_file) = bound.unzip();
    let sampler_tx = tx.clone();
    let sampler_shared = Arc::clone(&shared);
    let sampler_cfg = cfg.sampler.clone();
    let schedule = Schedule {
        interval: cfg.interval,
        mode: cfg.stats_mode,
        stall_after: cfg.stall_after,
    };
    let sampler = std::thread::Builder::new()
        .name("sampler".into())
        .spawn(move || {
            sampling::sample_loop(
                sampler_cfg,
                schedule,
                &sampler_tx,
                &sampler_shared,
                &sampler_cmds_rx,
            )
        })
        .map_err(|e| ServiceError::Thread("sampler", e))?;
    let (stored_tx, stored_rx) = tokio::sync::oneshot::channel::<()>();
    let storage_shared = Arc::clone(&shared);
    let storage = std::thread::Builder::new()
        .name("store".into())
        .spawn(move || storage::store_loop(store, rx, jobs_rx, stored_tx, &storage_shared))
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
        let bus_conn = serve_bus(&bus, iface.clone()).await;
        if let Some(conn) = &bus_conn {
            tokio::spawn(api::signal_changes(conn.clone(), iface.clone()));
        }
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
        let _ = sampler_cmds.send(SamplerCmd::Stop);
        let _ = tx.send(StoreMsg::Stop).await;
    });
    let _ = sampler.join();
    let _ = storage.join();
    drop(socket_file);
    tracing::info!(
        "stopped after {} passes ({} not stored: queue full)",
        shared.sampler.passes.load(Ordering::Relaxed),
        shared.sampler.dropped.load(Ordering::Relaxed)
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
pub(super) fn notify(states: &[sd_notify::NotifyState<'_>]) {
    if let Err(e) = sd_notify::notify(states) {
        tracing::debug!("sd_notify: {e}");
    }
}
