//! `Status()`: daemon and store health as a map; the keys are documented in the README.

use std::sync::atomic::{AtomicU64, Ordering};

use ebpfstat_dbus::{Error, Options};
use ebpfstat_numbers::WallNs;
use ebpfstat_numbers::time::duration_ns;
use zbus::OwnedVariant;

use super::usage::{mode_text, var};
use super::{Stats1, convert};
use crate::sampler::procfs::own_usage;
use crate::shared::lock;
use ebpfstat_numbers::Share;

impl Stats1 {
    pub(super) async fn status_map(&self) -> Result<Options, Error> {
        let st = self
            .with_store(|s| s.status())
            .await?
            .map_err(|e| Error::Unavailable(format!("the history store failed: {e}")))?;
        let latest = self.latest_pass();
        let sampler = &self.shared.sampler;
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let usage = own_usage();
        let mut m = Options::new();
        m.insert("version".into(), var(env!("CARGO_PKG_VERSION")));
        if let Some(p) = &latest {
            m.insert(
                "stats_cost_ns".into(),
                OwnedVariant::from(p.stats_cost.ns_per_run),
            );
            m.insert(
                "stats_cost_spread_ns".into(),
                OwnedVariant::from(p.stats_cost.spread_ns),
            );
            m.insert("stats_cost_source".into(), var(p.stats_cost.source.clone()));
            m.insert("stats_coverage".into(), OwnedVariant::from(p.coverage));
            m.insert(
                "stats_overhead_pct".into(),
                OwnedVariant::from(p.stats_overhead.unwrap_or_default().percent()),
            );
            if let Some(other) = p.stats_other_holder {
                m.insert("stats_other_holder".into(), OwnedVariant::from(other));
            }
            m.insert("kernel".into(), var(p.kernel.release.clone()));
            m.insert("stats_state".into(), var(self.published_state()));
            m.insert("memlock_meaning".into(), var(p.kernel.memlock.as_str()));
            m.insert(
                "programs".into(),
                OwnedVariant::from(u32::try_from(p.programs.len()).unwrap_or(u32::MAX)),
            );
            m.insert(
                "last_pass_ns".into(),
                OwnedVariant::from(WallNs::of(p.time).ns()),
            );
            m.insert("programs_unread".into(), OwnedVariant::from(p.unread));
        }
        m.insert(
            "interval_ns".into(),
            OwnedVariant::from(duration_ns(self.shared.published.borrow().interval)),
        );
        // Passes slower than the sampler budget stretch the interval in use.
        m.insert(
            "paced_interval_ns".into(),
            OwnedVariant::from(load(&sampler.pace_interval_ns)),
        );
        m.insert("pass_ns".into(), OwnedVariant::from(load(&sampler.pass_ns)));
        m.insert(
            "sampler_budget_pct".into(),
            OwnedVariant::from(Share(self.shared.published.borrow().sampler_budget).percent()),
        );
        m.insert(
            "stats_mode".into(),
            var(mode_text(self.shared.published.borrow().stats_mode)),
        );
        m.insert("passes".into(), OwnedVariant::from(load(&sampler.passes)));
        m.insert(
            "late_passes".into(),
            OwnedVariant::from(load(&sampler.late)),
        );
        m.insert(
            "dropped_passes".into(),
            OwnedVariant::from(load(&sampler.dropped)),
        );
        m.insert(
            "failed_passes".into(),
            OwnedVariant::from(load(&sampler.failed)),
        );
        let failure = lock(&sampler.last_failure).clone();
        let (failed_at, why) =
            failure.map_or((0, String::new()), |(t, why)| (WallNs::of(t).ns(), why));
        m.insert("last_failed_pass_ns".into(), OwnedVariant::from(failed_at));
        m.insert("last_failure".into(), var(why.clone()));
        m.insert(
            "uptime_ns".into(),
            OwnedVariant::from(duration_ns(self.shared.started.elapsed())),
        );
        // Unreadable (out of descriptors, say): left out rather than said to be 0.
        if let Ok(u) = usage {
            m.insert("daemon_cpu_ns".into(), OwnedVariant::from(u.cpu_ns));
            m.insert("daemon_rss_bytes".into(), OwnedVariant::from(u.rss_bytes));
            m.insert(
                "daemon_peak_rss_bytes".into(),
                OwnedVariant::from(u.peak_rss_bytes),
            );
        }
        m.insert("db_path".into(), var(st.path.display().to_string()));
        m.insert("db_bytes".into(), OwnedVariant::from(st.file_bytes));
        m.insert("wal_bytes".into(), OwnedVariant::from(st.wal_bytes));
        m.insert("used_bytes".into(), OwnedVariant::from(st.used_bytes));
        m.insert("cap_bytes".into(), OwnedVariant::from(st.cap_bytes));
        m.insert("series".into(), OwnedVariant::from(st.series));
        m.insert(
            "ticks_buffered".into(),
            OwnedVariant::from(st.ticks_buffered as u64),
        );
        m.insert("ticks_dropped".into(), OwnedVariant::from(st.ticks_dropped));
        m.insert("clock_steps".into(), OwnedVariant::from(st.clock_steps));
        m.insert(
            "last_flush_ns".into(),
            OwnedVariant::from(convert::ns(st.last_flush)),
        );
        let textfile_error = lock(&self.shared.exports.textfile_error).clone();
        m.insert(
            "textfile_written_ns".into(),
            OwnedVariant::from(load(&self.shared.exports.textfile_written_ns)),
        );
        m.insert("textfile_error".into(), var(textfile_error.clone()));
        let exports = &self.shared.exports;
        let (served, metrics_error) = (
            lock(&exports.metrics_addresses).join(" "),
            lock(&exports.metrics_error).clone(),
        );
        m.insert("metrics_listen".into(), var(served));
        m.insert("metrics_error".into(), var(metrics_error.clone()));
        // What is wrong now: the newest pass failing, the store's last write, the textfile.
        let now_wrong = [
            sampler
                .failing
                .load(Ordering::Relaxed)
                .then(|| format!("sampling: {why}")),
            st.last_error,
            (!textfile_error.is_empty()).then_some(textfile_error),
            (!metrics_error.is_empty()).then_some(metrics_error),
        ];
        m.insert(
            "last_error".into(),
            var(now_wrong
                .into_iter()
                .flatten()
                .collect::<Vec<_>>()
                .join("; ")),
        );
        for t in &st.tiers {
            let key = |what: &str| format!("tier_{}_{what}", t.tier);
            m.insert(key("oldest_ns"), OwnedVariant::from(convert::ns(t.oldest)));
            m.insert(key("newest_ns"), OwnedVariant::from(convert::ns(t.newest)));
            m.insert(key("bytes"), OwnedVariant::from(t.bytes));
        }
        let (raised, rules) = {
            let alerts = lock(&self.shared.alerts);
            (alerts.raised(), alerts.rules().len())
        };
        let count = |n: usize| OwnedVariant::from(u32::try_from(n).unwrap_or(u32::MAX));
        m.insert("alerts_active".into(), count(raised));
        m.insert("alert_rules".into(), count(rules));
        Ok(m)
    }
}
