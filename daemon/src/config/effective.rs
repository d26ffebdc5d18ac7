//! Every setting settled, defaults filled in: what the daemon runs with, and how it prints it.

use std::path::PathBuf;
use std::time::Duration;

use ebpfstat_dbus::defaults;
use ebpfstat_store::Retention;

use super::{Bus, LogLevel, Settings, Span, size_text, span_text};
use crate::alerts::Rule;
use crate::observer::Mode;
use ebpfstat_numbers::Share;

/// Everything the daemon runs with, defaults filled in.
#[derive(Debug, Clone, PartialEq)]
pub struct Effective {
    pub interval: Duration,
    pub db: PathBuf,
    pub flush_interval: Duration,
    pub raw_retention: Duration,
    pub minute_retention: Duration,
    pub hour_retention: Duration,
    pub max_db_size: u64,
    pub rescan_every: u64,
    pub bus: Bus,
    pub socket: Option<PathBuf>,
    pub log_level: LogLevel,
    /// How stats are held; a budget mode carries the budget (share of one core).
    pub stats_mode: Mode,
    /// Share of one core the passes may take before the interval stretches.
    pub sampler_budget: f64,
    pub textfile: Option<PathBuf>,
    pub textfile_interval: Duration,
    pub metrics_listen: Option<std::net::SocketAddr>,
    pub compare_min_runs: u64,
    pub compare_min_time: Duration,
    pub alerts: Vec<Rule>,
}

/// Every setting filled in from [`ebpfstat_dbus::defaults`] and the types' own defaults: the
/// one place the daemon's defaults are settled (the flags' help prints these too).
impl From<Settings> for Effective {
    fn from(s: Settings) -> Self {
        let span = |v: Option<Span>, d: Duration| v.map_or(d, |s| s.0);
        let socket = s.socket.unwrap_or_else(|| PathBuf::from(defaults::SOCKET));
        Self {
            interval: span(s.interval, defaults::INTERVAL),
            db: s.db.unwrap_or_else(|| PathBuf::from(defaults::DB_PATH)),
            flush_interval: span(s.flush_interval, defaults::FLUSH_INTERVAL),
            raw_retention: span(s.raw_retention, defaults::RAW_RETENTION),
            minute_retention: span(s.minute_retention, defaults::MINUTE_RETENTION),
            hour_retention: span(s.hour_retention, defaults::HOUR_RETENTION),
            max_db_size: s.max_db_size.map_or(defaults::MAX_DB_BYTES, |s| s.0),
            rescan_every: s.rescan_every.unwrap_or(defaults::RESCAN_EVERY),
            bus: s.bus.unwrap_or_default(),
            socket: (socket.as_os_str() != "none").then_some(socket),
            log_level: s.log_level.unwrap_or_default(),
            sampler_budget: s.sampler_budget.map_or(defaults::SAMPLER_BUDGET, |b| b.0),
            textfile: s.textfile.filter(|p| p.as_os_str() != "none"),
            textfile_interval: span(s.textfile_interval, defaults::TEXTFILE_INTERVAL),
            // Checked by `out_of_range` when the settings were read.
            metrics_listen: s.metrics_listen.and_then(|v| v.parse().ok()),
            compare_min_runs: s
                .compare_min_runs
                .unwrap_or(u64::from(ebpfstat_dbus::DEFAULT_COMPARE_MIN_RUNS)),
            compare_min_time: span(
                s.compare_min_time,
                Duration::from_secs(u64::from(ebpfstat_dbus::DEFAULT_COMPARE_MIN_SECONDS)),
            ),
            alerts: s.alert.unwrap_or_default(),
            // Budget mode (the default) takes its budget from its own key.
            stats_mode: match s.stats_mode.map_or_else(Mode::default, |m| m.0) {
                Mode::Budget(b) => Mode::Budget(s.stats_overhead_budget.map_or(b, |b| b.0)),
                other => other,
            },
        }
    }
}

impl Default for Effective {
    fn default() -> Self {
        Self::from(Settings::default())
    }
}

impl Effective {
    /// The three tiers' ages.
    pub fn retention(&self) -> Retention {
        Retention {
            raw: self.raw_retention,
            min1: self.minute_retention,
            hour1: self.hour_retention,
        }
    }

    /// The settings that differ in `new`: `(key, value here, value there)`, as the file
    /// writes them.
    pub fn changes(&self, new: &Self) -> Vec<(&'static str, String, String)> {
        let mut changes: Vec<_> = self
            .entries()
            .into_iter()
            .zip(new.entries())
            .filter(|(a, b)| a.1 != b.1)
            .map(|((key, old), (_, new))| (key, old, new))
            .collect();
        if self.alerts != new.alerts {
            changes.push((
                "alert",
                format!("{} rules", self.alerts.len()),
                rule_changes(&self.alerts, &new.alerts),
            ));
        }
        changes
    }

    /// Each setting as `(key, value)`, the value as the configuration file writes it (without
    /// quotes); keys are the long flags' names with `_` for `-`.
    pub fn entries(&self) -> Vec<(&'static str, String)> {
        let d = |v: Duration| span_text(v);
        let bus = match &self.bus {
            Bus::System => "system".to_owned(),
            Bus::Session => "session".to_owned(),
            Bus::None => "none".to_owned(),
            Bus::Address(a) => a.clone(),
        };
        let socket = self
            .socket
            .as_ref()
            .map_or("none".to_owned(), |s| s.display().to_string());
        let (mode, budget) = match self.stats_mode {
            Mode::Always => ("always".to_owned(), defaults::STATS_OVERHEAD_BUDGET),
            Mode::Budget(b) => ("budget".to_owned(), b),
            Mode::Fixed(duty) => (
                format!("duty={}/1s", span_text(Duration::from_secs_f64(duty))),
                defaults::STATS_OVERHEAD_BUDGET,
            ),
        };
        vec![
            ("interval", d(self.interval)),
            ("db", self.db.display().to_string()),
            ("flush_interval", d(self.flush_interval)),
            ("raw_retention", d(self.raw_retention)),
            ("minute_retention", d(self.minute_retention)),
            ("hour_retention", d(self.hour_retention)),
            ("max_db_size", size_text(self.max_db_size)),
            ("rescan_every", self.rescan_every.to_string()),
            ("bus", bus),
            ("socket", socket),
            ("log_level", self.log_level.as_str().to_owned()),
            ("stats_mode", mode),
            (
                "stats_overhead_budget",
                format!("{}%", Share(budget).percent()),
            ),
            (
                "sampler_budget",
                format!("{}%", Share(self.sampler_budget).percent()),
            ),
            (
                "textfile",
                self.textfile
                    .as_ref()
                    .map_or("none".to_owned(), |p| p.display().to_string()),
            ),
            ("textfile_interval", d(self.textfile_interval)),
            (
                "metrics_listen",
                self.metrics_listen
                    .map_or("none".to_owned(), |a| a.to_string()),
            ),
            ("compare_min_runs", self.compare_min_runs.to_string()),
            ("compare_min_time", d(self.compare_min_time)),
        ]
    }
}

/// `3 rules (added: a; changed: b; removed: c)`.
fn rule_changes(old: &[Rule], new: &[Rule]) -> String {
    let named = |rules: &[Rule], name: &str| rules.iter().find(|r| r.name == name).cloned();
    let mut parts = Vec::new();
    let mut list = |what: &str, names: Vec<&str>| {
        if !names.is_empty() {
            parts.push(format!("{what}: {}", names.join(", ")));
        }
    };
    list(
        "added",
        new.iter()
            .filter(|r| named(old, &r.name).is_none())
            .map(|r| r.name.as_str())
            .collect(),
    );
    list(
        "changed",
        new.iter()
            .filter(|r| named(old, &r.name).is_some_and(|o| o != **r))
            .map(|r| r.name.as_str())
            .collect(),
    );
    list(
        "removed",
        old.iter()
            .filter(|r| named(new, &r.name).is_none())
            .map(|r| r.name.as_str())
            .collect(),
    );
    if parts.is_empty() {
        parts.push("reordered".to_owned());
    }
    format!("{} rules ({})", new.len(), parts.join("; "))
}

impl std::fmt::Display for Effective {
    /// The settings in the configuration file's syntax.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, (key, value)) in self.entries().into_iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            // Numbers are TOML integers; everything else is a string.
            if key == "rescan_every" || key == "compare_min_runs" {
                write!(f, "{key} = {value}")?;
            } else {
                write!(f, "{key} = \"{value}\"")?;
            }
        }
        // Tables come after every key.
        for rule in &self.alerts {
            write!(f, "\n\n{rule}")?;
        }
        Ok(())
    }
}
