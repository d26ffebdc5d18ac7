//! The running daemon: a sampling thread, a storage thread, and the async side (signals,
//! flush timer; the API later) on a small tokio runtime.
//!
//! The sampler never waits on anything else: it hands each pass to the store with `try_send`,
//! so a slow disk or a burst of queries delays only the store, never a tick.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc as std_mpsc;
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::mpsc;

use crate::sampler::{Pass, Sampler, SamplerConfig};
use crate::store::{Store, StoreConfig, StoreError, Tick};

#[derive(Debug, Clone)]
pub struct ServiceConfig {
    pub interval: Duration,
    pub flush_interval: Duration,
    pub sampler: SamplerConfig,
    pub store: StoreConfig,
}

#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("cannot start the async runtime: {0}")]
    Runtime(std::io::Error),
    #[error("cannot start the {0} thread: {1}")]
    Thread(&'static str, std::io::Error),
}

/// Messages to the storage thread.
#[derive(Debug)]
pub enum StoreMsg {
    Tick(Box<Tick>, Arc<Pass>),
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
    let (tx, rx) = mpsc::channel::<StoreMsg>(64);
    let stats = Arc::new(SamplerStats::default());
    let (stop_sampler, sampler_stop_rx) = std_mpsc::channel::<()>();

    let sampler_tx = tx.clone();
    let sampler_stats = Arc::clone(&stats);
    let sampler_cfg = cfg.sampler.clone();
    let interval = cfg.interval;
    let sampler = std::thread::Builder::new()
        .name("sampler".into())
        .spawn(move || {
            sample_loop(
                sampler_cfg,
                interval,
                &sampler_tx,
                &sampler_stats,
                &sampler_stop_rx,
            )
        })
        .map_err(|e| ServiceError::Thread("sampler", e))?;
    let storage = std::thread::Builder::new()
        .name("store".into())
        .spawn(move || store_loop(store, rx))
        .map_err(|e| ServiceError::Thread("store", e))?;

    tracing::info!(
        "sampling every {} into {} (flush every {})",
        humantime::format_duration(cfg.interval),
        cfg.store.path.display(),
        humantime::format_duration(cfg.flush_interval)
    );
    let flush_interval = cfg.flush_interval;
    runtime.block_on(async move {
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
    stats: &SamplerStats,
    stop: &std_mpsc::Receiver<()>,
) {
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
        if tx.try_send(StoreMsg::Tick(tick, pass)).is_err() {
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

fn store_loop(mut store: Store, mut rx: mpsc::Receiver<StoreMsg>) {
    let mut failing = false;
    while let Some(msg) = rx.blocking_recv() {
        match msg {
            StoreMsg::Tick(tick, _pass) => {
                if let Err(e) = store.ingest(&tick) {
                    tracing::error!("storing a pass failed: {e}");
                }
            }
            StoreMsg::Flush => flush(&mut store, &mut failing),
            StoreMsg::Stop => {
                flush(&mut store, &mut failing);
                return;
            }
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
