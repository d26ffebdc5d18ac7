//! SIGHUP (`systemctl reload`): the configuration is read again; what can change while the
//! daemon runs changes now (sampling interval, stats mode and budget, rescans, flush interval,
//! retention, the byte cap, the log level, the alert rules), what cannot (the database, the bus, the socket)
//! is logged as waiting for the next start; everything buffered is written. A configuration
//! that does not parse changes nothing.

use std::time::Duration;

use tokio::sync::{mpsc, oneshot, watch};

use super::{ServiceConfig, notify, sampler_settings};
use crate::api::queries::Query;
use crate::config::{Effective, LogLevel, Reload, defs};
use crate::shared::{SamplerCmd, Shared, StoreMsg};

/// Sets the log level (the logging is set up by the binary).
pub type SetLogLevel = Box<dyn Fn(LogLevel) -> Result<(), String> + Send + Sync>;

pub(super) struct Reloader {
    cfg: ServiceConfig,
    set_log_level: SetLogLevel,
    flush_interval: watch::Sender<Duration>,
    /// Where the store's new limits go.
    store: mpsc::Sender<Query>,
}

impl std::fmt::Debug for Reloader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reloader").field("cfg", &self.cfg).finish()
    }
}

impl Reloader {
    pub fn new(
        cfg: ServiceConfig,
        set_log_level: SetLogLevel,
        flush_interval: watch::Sender<Duration>,
        store: mpsc::Sender<Query>,
    ) -> Self {
        Self {
            cfg,
            set_log_level,
            flush_interval,
            store,
        }
    }

    pub async fn reload(&mut self, shared: &Shared, tx: &mpsc::Sender<StoreMsg>) {
        let reloading = sd_notify::NotifyState::monotonic_usec_now()
            .map(|now| vec![sd_notify::NotifyState::Reloading, now])
            .unwrap_or_else(|_| vec![sd_notify::NotifyState::Reloading]);
        notify(&reloading);
        // Whatever else happens, what is buffered is written, before READY=1: the store takes
        // its messages before its jobs, so this job runs once the flush is done.
        let (flushed, done) = oneshot::channel();
        if tx.send(StoreMsg::Flush).await.is_err()
            || self.store.send(Query::Done(flushed)).await.is_err()
            || done.await.is_err()
        {
            tracing::warn!("SIGHUP: the store is stopping; nothing reloaded");
            return;
        }
        match self.cfg.sources.resolve() {
            Ok((new, path)) => {
                let from = path.map_or("the embedded defaults".to_owned(), |p| {
                    p.display().to_string()
                });
                self.apply(new, &from, shared).await;
            }
            Err(e) => tracing::error!(
                "SIGHUP: configuration not reloaded, the settings in effect stay: {e}"
            ),
        }
        notify(&[sd_notify::NotifyState::Ready]);
    }

    async fn apply(&mut self, mut new: Effective, from: &str, shared: &Shared) {
        let old = &self.cfg.settings;
        let mut at_restart: Vec<&str> = defs()
            .into_iter()
            .filter(|d| d.reload == Reload::AtRestart)
            .map(|d| d.key)
            .collect();
        // Each target is a thread started with the daemon.
        at_restart.push("remote_write");
        let mut now = Vec::new();
        let mut later = Vec::new();
        for (key, was, is) in old.changes(&new) {
            let change = format!("{key} {was} → {is}");
            if at_restart.contains(&key) {
                later.push(change);
            } else {
                now.push(change);
            }
        }
        // What waits for a restart stays as it is until then.
        new.keep_until_restart(old);

        if new.log_level != old.log_level {
            if std::env::var_os("RUST_LOG").is_some() {
                later.push("log_level (RUST_LOG is set, and wins)".to_owned());
            } else if let Err(e) = (self.set_log_level)(new.log_level) {
                tracing::warn!("SIGHUP: the log level stays: {e}");
            }
        }
        if new.alerts != old.alerts
            && shared
                .sampler_cmds
                .send(SamplerCmd::Alerts(new.alerts.clone()))
                .is_err()
        {
            tracing::warn!("SIGHUP: the sampler is stopping; alert rules not changed");
        }
        let sampler = sampler_settings(&new);
        if sampler != sampler_settings(old)
            && shared
                .sampler_cmds
                .send(SamplerCmd::Configure(sampler))
                .is_err()
        {
            tracing::warn!("SIGHUP: the sampler is stopping");
        }
        let (retention, cap) = (new.retention(), new.max_db_size);
        if (retention != old.retention() || cap != old.max_db_size)
            && self
                .store
                .send(Query::SetLimits(retention, cap))
                .await
                .is_err()
        {
            tracing::warn!("SIGHUP: the store is stopping");
        }
        self.flush_interval.send_if_modified(|p| {
            let changed = *p != new.flush_interval;
            *p = new.flush_interval;
            changed
        });
        shared.published.send_modify(|p| {
            p.interval = new.interval;
            p.retention = retention;
            p.cap_bytes = cap;
            p.stats_mode = new.mode();
            p.sampler_budget = new.sampler_budget;
            p.stats_budget = new.stats_overhead_budget;
        });
        say_reloaded(from, &now, &later);
        self.cfg.settings = new;
    }
}

/// The reload's line in the log: what changed now, and what waits for a restart.
fn say_reloaded(from: &str, now: &[String], later: &[String]) {
    match (now.is_empty(), later.is_empty()) {
        (true, true) => tracing::info!("SIGHUP: {from} read again: nothing changed"),
        (_, true) => tracing::info!("SIGHUP: {from} read again: {}", now.join(", ")),
        (true, _) => tracing::warn!(
            "SIGHUP: {from} read again; needs a restart to take effect: {}",
            later.join(", ")
        ),
        (false, false) => tracing::warn!(
            "SIGHUP: {from} read again: {}; needs a restart to take effect: {}",
            now.join(", "),
            later.join(", ")
        ),
    }
}
