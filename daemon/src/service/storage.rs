//! The storage thread: ticks before queries, flushes, the service status line.

use std::sync::Arc;
use std::time::SystemTime;

use std::collections::HashSet;

use ebpfstat_store::{Brief, Store, StoreError};
use tokio::sync::mpsc;

use super::notify;
use crate::alerts;
use crate::api::queries::Query;
use crate::compare::{self, Needs};
use crate::shared::{Shared, StoreMsg, lock};

pub(super) fn store_loop(
    store: Store,
    rx: mpsc::Receiver<StoreMsg>,
    jobs: mpsc::Receiver<Query>,
    stored: tokio::sync::oneshot::Sender<()>,
    shared: &Shared,
    needs: Needs,
) {
    // A tiny runtime of its own, only to wait on two queues at once; ticks go first.
    let rt = match tokio::runtime::Builder::new_current_thread().build() {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!("storage thread cannot start: {e}");
            return;
        }
    };
    rt.block_on(store_queues(store, rx, jobs, stored, shared, needs));
}

async fn store_queues(
    mut store: Store,
    mut rx: mpsc::Receiver<StoreMsg>,
    mut jobs: mpsc::Receiver<Query>,
    stored: tokio::sync::oneshot::Sender<()>,
    shared: &Shared,
    needs: Needs,
) {
    let mut flusher = Flusher {
        failing: false,
        stats: "",
        shared,
        versions: Versions::new(needs),
        alerts_saved: 0,
    };
    let mut first = Some(stored);
    loop {
        tokio::select! {
            biased;
            msg = rx.recv() => match msg {
                Some(StoreMsg::Tick(tick)) => {
                    flusher.stats = tick.stats.label();
                    if let Err(e) = store.ingest(&tick) {
                        tracing::error!("storing a pass failed: {e}");
                    }
                    // The first pass is written at once: readiness means it is on disk.
                    if let Some(ready) = first.take() {
                        flusher.flush(&mut store);
                        let _ = ready.send(());
                    }
                }
                Some(StoreMsg::Maps(seen)) => {
                    if let Err(e) = store.ingest_maps(&seen.boot_id, seen.wall, &seen.maps) {
                        tracing::warn!("storing {} maps failed: {e}", seen.maps.len());
                    }
                }
                Some(StoreMsg::Alerts(records)) => {
                    if let Err(e) = store.record_alerts(&records) {
                        tracing::warn!("recording {} alert changes failed: {e}", records.len());
                    }
                }
                Some(StoreMsg::Flush) => flusher.flush(&mut store),
                Some(StoreMsg::Stop) => {
                    flusher.flush(&mut store);
                    // An orderly stop: the next run finds it so.
                    if let Err(e) = store.end_run() {
                        tracing::warn!("marking the run stopped failed: {e}");
                    }
                    return;
                }
                // Every sender is gone without a stop: not an orderly end.
                None => {
                    flusher.flush(&mut store);
                    return;
                }
            },
            Some(query) = jobs.recv() => query.answer(&mut store, &flusher.versions.needs),
        }
    }
}

/// Flushes, and says how it went: in the log (once per run of failures), in the service
/// status line, and in the published database size.
struct Flusher<'a> {
    failing: bool,
    /// The newest tick's stats state, for the status line.
    stats: &'static str,
    shared: &'a Shared,
    versions: Versions,
    /// The evaluator's generation whose alerts raised are saved (see `save_alerts`).
    alerts_saved: u64,
}

impl Flusher<'_> {
    fn flush(&mut self, store: &mut Store) {
        let result = store.flush(SystemTime::now());
        match &result {
            Ok(()) => {
                if self.failing {
                    tracing::info!("writes to {} work again", store.path().display());
                }
                self.failing = false;
            }
            Err(e) => {
                // Log the first failure of a run of them, not every retry.
                if !self.failing {
                    tracing::error!("writing history failed, keeping it in memory: {e}");
                }
                self.failing = true;
            }
        }
        let brief = store.brief();
        if let Ok(b) = &brief {
            self.shared.published.send_if_modified(|p| {
                let changed = p.database_bytes != b.file_bytes;
                p.database_bytes = b.file_bytes;
                changed
            });
        }
        notify(&[sd_notify::NotifyState::Status(&status_line(
            &brief, self.stats, &result,
        ))]);
        if result.is_ok() {
            self.versions.conclude(store, self.shared);
            self.save_alerts(store);
        }
        give_back_free_memory();
    }
}

impl Flusher<'_> {
    /// Saves the alerts raised now when they changed since the last flush: what a restart
    /// carries on (the ring of changes may miss some: at most 100 a pass are recorded).
    fn save_alerts(&mut self, store: &mut Store) {
        let raised = Arc::clone(&lock(&self.shared.alerts));
        let generation = raised.generation;
        if generation == self.alerts_saved {
            return;
        }
        let records: Vec<_> = raised
            .active
            .iter()
            .map(|c| alerts::record_of(c, alerts::text(c)))
            .collect();
        match store.save_open_alerts(&records) {
            Ok(()) => self.alerts_saved = generation,
            Err(e) => tracing::warn!("saving the alerts raised now failed: {e}"),
        }
    }
}

/// New versions of programs, compared with the one before once they ran enough: an event in
/// the store (which marks the version concluded, across restarts), a log line, and a signal
/// (through `Shared::versions`).
struct Versions {
    needs: Needs,
    /// What needs no more look among the programs loaded now (see `compare::due`).
    settled: HashSet<(String, String, String)>,
    /// The last failure, logged once per run of identical failures.
    failing: Option<String>,
}

impl Versions {
    fn new(needs: Needs) -> Self {
        Self {
            needs,
            settled: HashSet::new(),
            failing: None,
        }
    }

    fn conclude(&mut self, store: &mut Store, shared: &Shared) {
        // Read each time: a reload may change it.
        let interval = shared.published.borrow().interval;
        let round = match compare::due(store, &self.needs, interval, &mut self.settled) {
            Ok(round) => {
                self.failing = None;
                round
            }
            Err(e) => {
                let e = e.to_string();
                if self.failing.as_ref() != Some(&e) {
                    tracing::warn!("comparing new versions failed: {e}");
                }
                self.failing = Some(e);
                return;
            }
        };
        for why in &round.failed {
            // Once each: a failed version is settled and not tried again.
            tracing::warn!("comparing a new version failed: {why}");
        }
        for c in round.concluded {
            tracing::info!("{}", c.verdict);
            if let Err(e) = store.record_event(&compare::event_of(&c, SystemTime::now())) {
                tracing::warn!("keeping the comparison of {} failed: {e}", c.full_name);
            }
            // No receiver (no connection yet) is not an error: the event is stored.
            let _ = shared.versions.send(c);
        }
    }
}

/// Returns the allocator's free pages to the system, once a flush. glibc keeps what threads
/// freed in their arenas: after thousands of programs came and went, or a large query, the
/// daemon would otherwise keep that peak resident (3.3 MB of 13.4 MB after 3000 programs came
/// and went, in the daemon benchmark's churn run).
fn give_back_free_memory() {
    #[cfg(target_env = "gnu")]
    // SAFETY: malloc_trim takes no pointers and only releases pages glibc's allocator holds
    // free; it is safe to call from any thread at any time.
    unsafe {
        libc::malloc_trim(0);
    }
}

fn status_line(
    brief: &Result<Brief, StoreError>,
    stats: &str,
    flushed: &Result<(), StoreError>,
) -> String {
    let (programs, database) = match brief {
        Ok(b) => (
            b.live_programs.to_string(),
            format!(
                "{} of {}",
                human_bytes(b.file_bytes),
                human_bytes(b.cap_bytes)
            ),
        ),
        Err(e) => ("?".to_owned(), format!("unknown ({e})")),
    };
    format!(
        "{programs} programs · last pass {} · database {database} · stats {stats}{}",
        humantime::format_rfc3339_seconds(SystemTime::now()),
        match flushed {
            Ok(()) => String::new(),
            Err(e) => format!(" · writes failing: {e}"),
        }
    )
}

fn human_bytes(b: u64) -> String {
    format!("{:.1} MiB", b as f64 / 1_048_576.0)
}
