//! The storage thread: ticks before queries, flushes, the service status line.

use std::time::SystemTime;

use tokio::sync::mpsc;

use super::{StoreMsg, notify};
use crate::api::StoreJob;
use crate::store::Store;

pub(super) fn store_loop(
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
    let mut stats = "";
    loop {
        tokio::select! {
            biased;
            msg = rx.recv() => match msg {
                Some(StoreMsg::Tick(tick)) => {
                    stats = tick.stats.label();
                    if let Err(e) = store.ingest(&tick) {
                        tracing::error!("storing a pass failed: {e}");
                    }
                    // The first pass is written at once: readiness means it is on disk.
                    if let Some(ready) = first.take() {
                        flush(&mut store, &mut failing, stats);
                        let _ = ready.send(());
                    }
                }
                Some(StoreMsg::Flush) => flush(&mut store, &mut failing, stats),
                Some(StoreMsg::Stop) | None => {
                    flush(&mut store, &mut failing, stats);
                    return;
                }
            },
            Some(job) = jobs.recv() => job(&mut store),
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
