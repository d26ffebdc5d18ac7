//! The running daemon: a sampling thread, a storage thread, and the async side (signals,
//! flush timer; the API later) on a small tokio runtime.
//!
//! The sampler never waits on anything else: it hands each pass to the store with `try_send`,
//! so a slow disk or a burst of queries delays only the store, never a tick.

use std::sync::atomic::Ordering;
use std::sync::mpsc as std_mpsc;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use ebpfstat_store::{Store, StoreConfig, StoreError};
use tokio::sync::{mpsc, watch};

mod alerting;
mod pace;
mod reload;
mod sampling;
mod schedule;
mod storage;

pub use reload::SetLogLevel;

use crate::alerts;
use crate::api::{self, Stats1};
use crate::config::{Bus, Effective, Sources};
use crate::export;
use crate::sampler::host::KernelInfo;
use crate::shared::{
    ExportStats, Published, SamplerCmd, SamplerSettings, SamplerStats, Shared, StoreJob, StoreMsg,
    lock,
};

#[derive(Debug, Clone)]
pub struct ServiceConfig {
    /// The settings in effect.
    pub settings: Effective,
    /// Where they came from, to read them again on SIGHUP.
    pub sources: Sources,
    /// Testing aid: the sampler stops after this many passes.
    pub stall_after: Option<u64>,
}

impl ServiceConfig {
    fn sampler(&self) -> SamplerSettings {
        sampler_settings(&self.settings)
    }
}

/// The sampler's share of the settings.
fn sampler_settings(e: &Effective) -> SamplerSettings {
    SamplerSettings {
        interval: e.interval,
        mode: e.mode(),
        rescan_every: e.rescan_every,
        sampler_budget: e.sampler_budget,
    }
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

/// Runs until SIGTERM or SIGINT, then flushes and returns. SIGHUP reads the configuration
/// again (see `reload`); `set_log_level` changes the log level then.
pub fn run(cfg: ServiceConfig, set_log_level: SetLogLevel) -> Result<(), ServiceError> {
    let settings = &cfg.settings;
    // Open the database before anything else: a bad path fails fast, touching nothing.
    let store = Store::open(StoreConfig::new(
        &settings.db,
        settings.retention(),
        settings.max_db_size,
    ))?;
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
        interval: settings.interval,
        retention: settings.retention(),
        cap_bytes: settings.max_db_size,
        stats_mode: settings.mode(),
        sampler_budget: settings.sampler_budget,
    });
    // Alerts raised when the daemon stopped carry on, or are cleared on the first pass.
    let open = store.open_alerts()?;
    if !open.is_empty() {
        tracing::info!("{} alerts were raised when the daemon stopped", open.len());
    }
    let evaluator =
        alerts::Evaluator::new(settings.alerts.clone(), open, alerts::MAX_SAID_PER_PASS);
    let shared = Arc::new(Shared {
        jobs: jobs_tx,
        sampler_cmds: sampler_cmds.clone(),
        latest: Mutex::new(None),
        exported: Mutex::new(None),
        sampler: Arc::new(SamplerStats::default()),
        exports: ExportStats::default(),
        published,
        started: Instant::now(),
        kernel: KernelInfo::current(),
        // One round's worth (`due` concludes at most that many per flush); a connection that
        // lags further misses the oldest, which `Events` still has.
        versions: tokio::sync::broadcast::channel(crate::compare::MAX_PER_ROUND).0,
        alerts: Mutex::new(evaluator),
        // Two passes' worth of what a pass may say one by one.
        alert_changes: tokio::sync::broadcast::channel(2 * alerts::MAX_SAID_PER_PASS).0,
    });

    let bound = match &settings.socket {
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
    let sampler_settings = cfg.sampler();
    let stall_after = cfg.stall_after;
    let sampler = std::thread::Builder::new()
        .name("sampler".into())
        .spawn(move || {
            sampling::sample_loop(
                sampler_settings,
                stall_after,
                &sampler_tx,
                &sampler_shared,
                &sampler_cmds_rx,
            )
        })
        .map_err(|e| ServiceError::Thread("sampler", e))?;
    let (stored_tx, stored_rx) = tokio::sync::oneshot::channel::<()>();
    let storage_shared = Arc::clone(&shared);
    let needs = crate::compare::Needs {
        min_runs: settings.compare_min_runs,
        min_observed: settings.compare_min_time,
    };
    let storage = std::thread::Builder::new()
        .name("store".into())
        .spawn(move || storage::store_loop(store, rx, jobs_rx, stored_tx, &storage_shared, needs))
        .map_err(|e| ServiceError::Thread("store", e))?;

    tracing::info!(
        "sampling every {} into {} (flush every {})",
        humantime::format_duration(settings.interval),
        settings.db.display(),
        humantime::format_duration(settings.flush_interval)
    );
    let (flush_interval, mut flush_every) = watch::channel(settings.flush_interval);
    let iface = Stats1::new(Arc::clone(&shared));
    let bus = settings.bus.clone();
    let (textfile, textfile_interval) = (settings.textfile.clone(), settings.textfile_interval);
    let (metrics, metrics_error) = export::http::listeners(settings.metrics_listen);
    if let Some(e) = &metrics_error {
        tracing::error!("{e}; sampling goes on without it");
        *lock(&shared.exports.metrics_error) = e.clone();
    }
    let mut reloader = reload::Reloader::new(cfg.clone(), set_log_level, flush_interval);
    let reload_shared = Arc::clone(&shared);
    runtime.block_on(async move {
        let bus_conn = serve_bus(&bus, iface.clone()).await;
        if let Some(conn) = &bus_conn {
            tokio::spawn(api::signal_changes(conn.clone(), iface.clone()));
        }
        if let Some(listener) = listener {
            tokio::spawn(api::socket::serve(listener, iface));
        }
        for listener in metrics {
            let served = listener
                .set_nonblocking(true)
                .and_then(|()| listener.local_addr())
                .and_then(|addr| Ok((tokio::net::TcpListener::from_std(listener)?, addr)));
            match served {
                Ok((l, addr)) => {
                    tracing::info!("serving /metrics on {addr}");
                    lock(&reload_shared.exports.metrics_addresses).push(addr.to_string());
                    tokio::spawn(export::http::serve(l, Arc::clone(&reload_shared)));
                }
                Err(e) => tracing::error!("cannot serve /metrics: {e}"),
            }
        }
        if let Some(path) = &textfile {
            tokio::spawn(export::textfile::keep_writing(
                path.clone(),
                textfile_interval,
                Arc::clone(&reload_shared),
            ));
        }
        // Ready once the API is served (above) and the first pass is stored.
        tokio::spawn(async move {
            if stored_rx.await.is_ok() {
                notify(&[sd_notify::NotifyState::Ready]);
            }
        });
        let flush_tx = tx.clone();
        let flusher = tokio::spawn(async move {
            loop {
                let period = *flush_every.borrow_and_update();
                let mut timer = tokio::time::interval(period);
                timer.tick().await;
                loop {
                    tokio::select! {
                        _ = timer.tick() => {
                            if flush_tx.send(StoreMsg::Flush).await.is_err() {
                                return;
                            }
                        }
                        // A reload set another period: start again with it.
                        changed = flush_every.changed() => {
                            if changed.is_err() {
                                return;
                            }
                            break;
                        }
                    }
                }
            }
        });
        run_until_stopped(&mut reloader, &reload_shared, &tx).await;
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

/// Serves signals until SIGTERM or SIGINT: SIGHUP reloads the configuration and flushes.
async fn run_until_stopped(
    reloader: &mut reload::Reloader,
    shared: &Shared,
    tx: &mpsc::Sender<StoreMsg>,
) {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int), Ok(mut hup)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
        signal(SignalKind::hangup()),
    ) else {
        tracing::error!("cannot install signal handlers; stopping");
        return;
    };
    loop {
        tokio::select! {
            _ = term.recv() => {
                tracing::info!("SIGTERM: flushing and stopping");
                return;
            }
            _ = int.recv() => {
                tracing::info!("SIGINT: flushing and stopping");
                return;
            }
            _ = hup.recv() => reloader.reload(shared, tx).await,
        }
    }
}

/// Tells the service manager (a no-op without `NOTIFY_SOCKET`).
pub(super) fn notify(states: &[sd_notify::NotifyState<'_>]) {
    if let Err(e) = sd_notify::notify(states) {
        tracing::debug!("sd_notify: {e}");
    }
}
