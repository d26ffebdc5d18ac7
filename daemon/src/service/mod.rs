//! The running daemon: a sampling thread, a storage thread, and the async side (signals, the
//! flush timer, the API, the exports) on a small tokio runtime.
//!
//! The sampler never waits on anything else: it hands each pass to the store with `try_send`,
//! so a slow disk or a burst of queries delays only the store, never a tick.

use std::sync::atomic::Ordering;
use std::sync::mpsc as std_mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use ebpfstat_store::{Store, StoreConfig, StoreError};
use tokio::sync::{mpsc, watch};

mod alerting;
mod pace;
mod push;
mod reload;
mod sampling;
mod schedule;
mod storage;

use alerting::Alerting;

pub use reload::SetLogLevel;

use crate::alerts;
use crate::api::queries::Query;
use crate::api::{self, Stats1};
use crate::config::{Bus, Effective, Sources};
use crate::export;
use crate::sampler::host::KernelInfo;
use crate::shared::{
    ExportStats, Published, SamplerCmd, SamplerSettings, SamplerStats, Shared, StoreMsg, lock,
};

#[derive(Debug, Clone)]
pub struct ServiceConfig {
    /// The settings in effect.
    pub settings: Effective,
    /// Where they came from, to read them again on SIGHUP.
    pub sources: Sources,
    pub aids: TestingAids,
}

/// Testing aids (hidden flags): the sampler stalls (stops feeding the watchdog), or panics,
/// after this many passes.
#[derive(Debug, Clone, Copy, Default)]
pub struct TestingAids {
    pub stall_after: Option<u64>,
    pub panic_after: Option<u64>,
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
    #[error("the {0} thread panicked: {1}")]
    Panicked(&'static str, String),
    #[error("the {0} thread ended before the daemon was stopped")]
    Ended(&'static str),
}

/// The threads of the running daemon, and how to reach them.
struct Running {
    shared: Arc<Shared>,
    /// Ticks and flushes to the store.
    tx: mpsc::Sender<StoreMsg>,
    /// The API's questions to the store.
    queries: mpsc::Sender<Query>,
    sampler: std::thread::JoinHandle<()>,
    storage: std::thread::JoinHandle<()>,
    /// Fires once the first pass is stored: the daemon is ready.
    stored: Option<tokio::sync::oneshot::Receiver<()>>,
}

/// The channels between the threads: the store's sender for ticks, and the receiving end
/// each thread owns; and the alert evaluator, which the sampling thread owns.
struct Ends {
    tx: mpsc::Sender<StoreMsg>,
    rx: mpsc::Receiver<StoreMsg>,
    queries: mpsc::Sender<Query>,
    jobs: mpsc::Receiver<Query>,
    cmds: std_mpsc::Receiver<SamplerCmd>,
    evaluator: alerts::Evaluator,
}

/// Runs until SIGTERM or SIGINT, then flushes and returns. SIGHUP reads the configuration
/// again (see `reload`); `set_log_level` changes the log level then. A thread that panics
/// ends the daemon with an error naming it (systemd restarts it).
pub fn run(cfg: ServiceConfig, set_log_level: SetLogLevel) -> Result<(), ServiceError> {
    let settings = &cfg.settings;
    // Open the database before anything else: a bad path fails fast, touching nothing.
    let mut store = Store::open(StoreConfig::new(
        &settings.db,
        settings.retention(),
        settings.max_db_size,
    ))?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(ServiceError::Runtime)?;
    let (shared, ends) = share(&store, settings)?;
    if let Some(why) = shared.kernel.unsupported() {
        tracing::warn!("{why}");
    }
    let bound = match &settings.socket {
        Some(path) => {
            let _guard = runtime.enter();
            Some(api::socket::bind(path)?)
        }
        None => None,
    };
    // The socket file goes when `socket_file` does, at the end of a clean exit.
    let (listener, socket_file) = bound.unzip();
    // Says (log, status, events) when the run before was killed; this one is running now. Not
    // sooner: a start that fails before this point (a bad socket path) is no crash next time.
    store.begin_run(SystemTime::now())?;
    let mut running = start_threads(&cfg, shared, store, ends)?;
    tracing::info!(
        "sampling every {} into {} (flush every {})",
        humantime::format_duration(settings.interval),
        settings.db.display(),
        humantime::format_duration(settings.flush_interval)
    );
    let shared = Arc::clone(&running.shared);
    let stopped = runtime.block_on(serve(&cfg, set_log_level, listener, &mut running));
    let ended = join(running).and(stopped);
    drop(socket_file);
    tracing::info!(
        "stopped after {} passes ({} not stored: queue full)",
        shared.sampler.passes.load(Ordering::Relaxed),
        shared.sampler.dropped.load(Ordering::Relaxed)
    );
    ended
}

/// The channels between the threads and the state they share; the threads are not started.
fn share(store: &Store, settings: &Effective) -> Result<(Shared, Ends), ServiceError> {
    // Ticks have a deep queue of their own (4 minutes at 1 s) so queries never push one out.
    let (tx, rx) = mpsc::channel::<StoreMsg>(256);
    let (queries, jobs_rx) = mpsc::channel::<Query>(64);
    let (sampler_cmds, sampler_cmds_rx) = std_mpsc::channel::<SamplerCmd>();
    let (published, _) = watch::channel(Published {
        stats_state: None,
        database_bytes: store.brief()?.file_bytes,
        interval: settings.interval,
        retention: settings.retention(),
        cap_bytes: settings.max_db_size,
        stats_mode: settings.mode(),
        sampler_budget: settings.sampler_budget,
        stats_budget: settings.stats_overhead_budget,
    });
    // Alerts raised when the daemon stopped carry on, or are cleared on the first pass.
    let open = store.open_alerts()?;
    if !open.is_empty() {
        tracing::info!("{} alerts were raised when the daemon stopped", open.len());
    }
    let evaluator =
        alerts::Evaluator::new(settings.alerts.clone(), open, alerts::MAX_SAID_PER_PASS);
    let shared = Shared {
        sampler_cmds,
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
        alerts: Mutex::default(),
        // Two passes' worth of what a pass may say one by one.
        alert_changes: tokio::sync::broadcast::channel(2 * alerts::MAX_SAID_PER_PASS).0,
    };
    let ends = Ends {
        tx,
        rx,
        queries,
        jobs: jobs_rx,
        cmds: sampler_cmds_rx,
        evaluator,
    };
    Ok((shared, ends))
}

/// Starts the sampling thread and the storage thread (which takes the store).
fn start_threads(
    cfg: &ServiceConfig,
    shared: Shared,
    store: Store,
    ends: Ends,
) -> Result<Running, ServiceError> {
    let shared = Arc::new(shared);
    let Ends {
        tx,
        rx,
        queries,
        jobs,
        cmds,
        evaluator,
    } = ends;
    let (sampler_shared, sampler_tx) = (Arc::clone(&shared), tx.clone());
    let (settings, aids) = (cfg.sampler(), cfg.aids);
    let sampler = std::thread::Builder::new()
        .name("sampler".into())
        .spawn(move || {
            let alerting = Alerting::new(evaluator, &sampler_shared);
            sampling::sample_loop(
                settings,
                aids,
                alerting,
                (&sampler_tx, &sampler_shared),
                &cmds,
            );
        })
        .map_err(|e| ServiceError::Thread("sampler", e))?;
    let (stored_tx, stored) = tokio::sync::oneshot::channel::<()>();
    let storage_shared = Arc::clone(&shared);
    let needs = crate::compare::Needs {
        min_runs: cfg.settings.compare_min_runs,
        min_observed: cfg.settings.compare_min_time,
    };
    let storage = std::thread::Builder::new()
        .name("store".into())
        .spawn(move || storage::store_loop(store, rx, jobs, stored_tx, &storage_shared, needs))
        .map_err(|e| ServiceError::Thread("store", e))?;
    Ok(Running {
        shared,
        tx,
        queries,
        sampler,
        storage,
        stored: Some(stored),
    })
}

/// Waits for both threads; one that panicked is an error naming it and what it said.
fn join(running: Running) -> Result<(), ServiceError> {
    let panicked = |name: &'static str, p: Box<dyn std::any::Any + Send>| {
        let said = p
            .downcast_ref::<&str>()
            .map(ToString::to_string)
            .or_else(|| p.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "no message".to_owned());
        tracing::error!("the {name} thread panicked: {said}");
        ServiceError::Panicked(name, said)
    };
    let sampler = running.sampler.join().map_err(|p| panicked("sampler", p));
    let storage = running.storage.join().map_err(|p| panicked("store", p));
    sampler.and(storage)
}

/// The async side, until a signal stops the daemon or a thread ends: the bus, the private
/// socket, `/metrics`, the textfile, the flush timer, readiness, reloads; then the stop.
async fn serve(
    cfg: &ServiceConfig,
    set_log_level: SetLogLevel,
    listener: Option<tokio::net::UnixListener>,
    running: &mut Running,
) -> Result<(), ServiceError> {
    let shared = &Arc::clone(&running.shared);
    let settings = &cfg.settings;
    let iface = Stats1::new(Arc::clone(shared), running.queries.clone());
    let bus_conn = serve_bus(&settings.bus, iface.clone()).await;
    if let Some(conn) = &bus_conn {
        tokio::spawn(api::signal_changes(conn.clone(), iface.clone()));
    }
    if let Some(listener) = listener {
        tokio::spawn(api::socket::serve(listener, iface));
    }
    serve_exports(settings, shared);
    let pushers = push::start(&settings.remote_write, &running.queries, shared);
    let (flush_interval, flush_every) = watch::channel(settings.flush_interval);
    let flusher = tokio::spawn(flush_every_period(flush_every, running.tx.clone()));
    let mut reloader = reload::Reloader::new(
        cfg.clone(),
        set_log_level,
        flush_interval,
        running.queries.clone(),
    );
    // Ready once the API is served (above) and the first pass is stored.
    if let Some(stored) = running.stored.take() {
        tokio::spawn(async move {
            if stored.await.is_ok() {
                notify(&[sd_notify::NotifyState::Ready]);
            }
        });
    }
    let stopped = run_until_stopped(&mut reloader, running).await;
    notify(&[
        sd_notify::NotifyState::Stopping,
        sd_notify::NotifyState::Status("stopping: writing buffered history"),
    ]);
    flusher.abort();
    // Before the store stops: their last positions are written with the last flush.
    pushers.stop();
    let _ = shared.sampler_cmds.send(SamplerCmd::Stop);
    let _ = running.tx.send(StoreMsg::Stop).await;
    stopped
}

/// `/metrics` on each configured address, and the textfile.
fn serve_exports(settings: &Effective, shared: &Arc<Shared>) {
    let (metrics, metrics_error) = export::http::listeners(settings.metrics_listen);
    if let Some(e) = &metrics_error {
        tracing::error!("{e}; sampling goes on without it");
        *lock(&shared.exports.metrics_error) = e.clone();
    }
    for listener in metrics {
        let served = listener
            .set_nonblocking(true)
            .and_then(|()| listener.local_addr())
            .and_then(|addr| Ok((tokio::net::TcpListener::from_std(listener)?, addr)));
        match served {
            Ok((l, addr)) => {
                tracing::info!("serving /metrics on {addr}");
                lock(&shared.exports.metrics_addresses).push(addr.to_string());
                tokio::spawn(export::http::serve(l, Arc::clone(shared)));
            }
            Err(e) => tracing::error!("cannot serve /metrics: {e}"),
        }
    }
    if let Some(path) = &settings.textfile {
        tokio::spawn(export::textfile::keep_writing(
            path.clone(),
            settings.textfile_interval,
            Arc::clone(shared),
        ));
    }
}

/// Asks the store to flush every period (a reload may change it).
async fn flush_every_period(mut every: watch::Receiver<Duration>, tx: mpsc::Sender<StoreMsg>) {
    loop {
        let period = *every.borrow_and_update();
        let mut timer = tokio::time::interval(period);
        timer.tick().await;
        loop {
            tokio::select! {
                _ = timer.tick() => {
                    if tx.send(StoreMsg::Flush).await.is_err() {
                        return;
                    }
                }
                // A reload set another period: start again with it.
                changed = every.changed() => {
                    if changed.is_err() {
                        return;
                    }
                    break;
                }
            }
        }
    }
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

/// Serves signals until SIGTERM or SIGINT, or until a thread ended before it was told to (the
/// daemon stops, with an error): SIGHUP reloads the configuration and flushes.
async fn run_until_stopped(
    reloader: &mut reload::Reloader,
    running: &Running,
) -> Result<(), ServiceError> {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int), Ok(mut hup)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
        signal(SignalKind::hangup()),
    ) else {
        tracing::error!("cannot install signal handlers; stopping");
        return Ok(());
    };
    let mut check = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            _ = term.recv() => {
                tracing::info!("SIGTERM: flushing and stopping");
                return Ok(());
            }
            _ = int.recv() => {
                tracing::info!("SIGINT: flushing and stopping");
                return Ok(());
            }
            _ = hup.recv() => reloader.reload(&running.shared, &running.tx).await,
            _ = check.tick() => {
                let ended = [("sampler", &running.sampler), ("store", &running.storage)]
                    .into_iter()
                    .find(|(_, t)| t.is_finished());
                if let Some((name, _)) = ended {
                    tracing::error!("the {name} thread ended; stopping");
                    return Err(ServiceError::Ended(name));
                }
            }
        }
    }
}

/// Tells the service manager (a no-op without `NOTIFY_SOCKET`).
pub(super) fn notify(states: &[sd_notify::NotifyState<'_>]) {
    if let Err(e) = sd_notify::notify(states) {
        tracing::debug!("sd_notify: {e}");
    }
}
