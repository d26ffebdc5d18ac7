//! `Status()`: daemon and store health, as the API crate's typed [`Status`] (sent as its map;
//! the keys are in `ebpfstat_dbus::Status`).

use std::sync::atomic::{AtomicU64, Ordering};

use ebpfstat_dbus::{Error, Status};
use ebpfstat_numbers::rates::cpu_pct;
use ebpfstat_numbers::time::duration_ns;
use ebpfstat_numbers::{Share, WallNs};
use ebpfstat_store::{StoreStatus, Tier};

use super::Stats1;
use super::queries::Query;
use super::usage::mode_text;
use crate::observer;
use crate::sampler::Pass;
use crate::sampler::procfs::own_usage;
use crate::shared::lock;

impl Stats1 {
    pub(super) async fn health(&self) -> Result<Status, Error> {
        let st = self
            .ask(Query::Status)
            .await?
            .map_err(|e| Error::Unavailable(format!("the history store failed: {e}")))?;
        let mut status = Status {
            version: env!("CARGO_PKG_VERSION").to_owned(),
            uptime_ns: duration_ns(self.shared.started.elapsed()),
            ..Status::default()
        };
        if let Some(p) = self.latest_pass() {
            self.pass_status(&p, &mut status);
        }
        self.sampler_status(&mut status);
        store_status(st, &mut status);
        self.export_status(&mut status);
        // Unreadable (out of descriptors, say): left out rather than said to be 0.
        if let Ok(u) = own_usage() {
            status.daemon_cpu_ns = Some(u.cpu_ns);
            status.daemon_cpu_pct = Some(cpu_pct(u.cpu_ns as f64, status.uptime_ns as f64));
            status.daemon_rss_bytes = Some(u.rss_bytes);
            status.daemon_peak_rss_bytes = Some(u.peak_rss_bytes);
        }
        let (raised, rules) = {
            let alerts = lock(&self.shared.alerts);
            (alerts.total, alerts.rules)
        };
        status.alerts_active = Some(u32::try_from(raised).unwrap_or(u32::MAX));
        status.alert_rules = Some(u32::try_from(rules).unwrap_or(u32::MAX));
        Ok(status)
    }

    fn pass_status(&self, p: &Pass, s: &mut Status) {
        s.stats_cost_ns = Some(p.stats_cost.ns_per_run);
        s.stats_cost_spread_ns = Some(p.stats_cost.spread_ns);
        s.stats_cost_source = Some(p.stats_cost.source.clone());
        s.stats_coverage = Some(p.coverage);
        s.stats_overhead_pct = Some(p.stats_overhead.unwrap_or_default().percent());
        s.stats_other_holder = p.stats_other_holder;
        s.kernel = Some(p.kernel.release.clone());
        s.stats_state = Some(self.published_state());
        s.memlock_meaning = Some(p.kernel.memlock.as_str().to_owned());
        // Counted as `list` shows them: ebpfstatd's probes left out.
        let shown = observer::shown(&p.programs).count();
        s.programs = Some(u32::try_from(shown).unwrap_or(u32::MAX));
        s.last_pass_ns = Some(WallNs::of(p.time).ns());
        s.programs_unread = Some(p.unread);
    }

    fn sampler_status(&self, s: &mut Status) {
        let sampler = &self.shared.sampler;
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let published = self.shared.published.borrow();
        s.interval_ns = duration_ns(published.interval);
        // Passes slower than the sampler budget stretch the interval in use.
        s.paced_interval_ns = Some(load(&sampler.pace_interval_ns));
        s.pass_ns = Some(load(&sampler.pass_ns));
        s.pass_cpu_ns = Some(load(&sampler.pass_cpu_ns));
        s.sampler_budget_pct = Share(published.sampler_budget).percent();
        s.stats_mode = mode_text(published.stats_mode);
        s.passes = load(&sampler.passes);
        s.late_passes = load(&sampler.late);
        s.missed_passes = load(&sampler.missed);
        s.dropped_passes = load(&sampler.dropped);
        s.failed_passes = load(&sampler.failed);
        if let Some((t, why)) = lock(&sampler.last_failure).clone() {
            s.last_failed_pass_ns = WallNs::of(t).ns();
            s.last_failure = why;
        }
    }

    fn export_status(&self, s: &mut Status) {
        let exports = &self.shared.exports;
        s.textfile_written_ns = exports.textfile_written_ns.load(Ordering::Relaxed);
        s.textfile_error = lock(&exports.textfile_error).clone();
        s.metrics_listen = lock(&exports.metrics_addresses).join(" ");
        s.metrics_error = lock(&exports.metrics_error).clone();
        s.metrics_refused = exports.metrics_refused.load(Ordering::Relaxed);
        s.metrics_evicted = exports.metrics_evicted.load(Ordering::Relaxed);
        s.remote_write = crate::export::pushes(&self.shared);
        let pushing = s
            .remote_write
            .iter()
            .filter(|r| !r.last_error.is_empty())
            .map(|r| format!("remote_write {}: {}", r.url, r.last_error))
            .collect::<Vec<_>>()
            .join("; ");
        // What is wrong now: the newest pass failing, the store's last write, the exports.
        let failing = self.shared.sampler.failing.load(Ordering::Relaxed);
        let now_wrong = [
            failing.then(|| format!("sampling: {}", s.last_failure)),
            (!s.last_error.is_empty()).then(|| s.last_error.clone()),
            (!s.textfile_error.is_empty()).then(|| s.textfile_error.clone()),
            (!s.metrics_error.is_empty()).then(|| s.metrics_error.clone()),
            (!pushing.is_empty()).then_some(pushing),
        ];
        s.last_error = now_wrong
            .into_iter()
            .flatten()
            .collect::<Vec<_>>()
            .join("; ");
    }
}

/// The store's part: the file against its cap, what is buffered, each tier's span.
fn store_status(st: StoreStatus, s: &mut Status) {
    s.db_path = st.path.display().to_string();
    s.db_bytes = st.file_bytes;
    s.wal_bytes = st.wal_bytes;
    s.used_bytes = st.used_bytes;
    s.cap_bytes = st.cap_bytes;
    s.used_pct = Some(Share(st.used_bytes as f64 / st.cap_bytes.max(1) as f64).percent());
    s.series = st.series;
    s.ticks_buffered = u64::try_from(st.ticks_buffered).unwrap_or(u64::MAX);
    s.ticks_dropped = st.ticks_dropped;
    s.clock_steps = st.clock_steps;
    s.last_flush_ns = WallNs::of_known(st.last_flush).ns();
    s.last_error = st.last_error.unwrap_or_default();
    s.store_rows_read = st.rows_read;
    s.previous_run_unclean = Some(st.unclean_stop.is_some());
    s.previous_run_last_written_ns = st
        .unclean_stop
        .and_then(|u| u.last_written)
        .map_or(0, |t| WallNs::of(t).ns());
    for t in &st.tiers {
        let (oldest, newest) = (
            WallNs::of_known(t.oldest).ns(),
            WallNs::of_known(t.newest).ns(),
        );
        let (o, n, b) = match t.tier {
            Tier::Raw => (
                &mut s.tier_raw_oldest_ns,
                &mut s.tier_raw_newest_ns,
                &mut s.tier_raw_bytes,
            ),
            Tier::Min1 => (
                &mut s.tier_1m_oldest_ns,
                &mut s.tier_1m_newest_ns,
                &mut s.tier_1m_bytes,
            ),
            Tier::Hour1 => (
                &mut s.tier_1h_oldest_ns,
                &mut s.tier_1h_newest_ns,
                &mut s.tier_1h_bytes,
            ),
        };
        (*o, *n, *b) = (oldest, newest, t.bytes);
    }
}
