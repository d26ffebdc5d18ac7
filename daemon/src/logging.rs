//! The daemon's log: one line per event on stderr, `TIME LEVEL message key=value`, filtered by a
//! level the configuration (or `RUST_LOG`) sets and SIGHUP changes.
//!
//! Written here rather than with tracing-subscriber: the daemon needs one format and a level
//! filter, and the subscriber's registry, layers and reload handle cost 58 KB of a binary
//! then 4 KB short of its cap (3,141,848 → 3,083,992 B stripped). The line is the one tracing-subscriber's `fmt` wrote (its default
//! format, no target, no colours), so logs read the same. Spans are not shown: the daemon opens
//! none, and its libraries' are at trace level.

use std::fmt::{self, Write as _};
use std::io::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use tracing::field::{Field, Visit};
use tracing::level_filters::LevelFilter;
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Level, Metadata, Subscriber};

/// Which events are written: a default level and per-target levels (a target and what it
/// starts with), as `RUST_LOG` spells them: `info`, `zbus=debug,info`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Targets {
    default: LevelFilter,
    by_target: Vec<(String, LevelFilter)>,
}

impl Targets {
    /// Every target at `level`.
    pub fn at(level: LevelFilter) -> Self {
        Self {
            default: level,
            by_target: Vec::new(),
        }
    }

    /// The level for `target`: the longest matching target's, else the default.
    fn level_of(&self, target: &str) -> LevelFilter {
        self.by_target
            .iter()
            .filter(|(t, _)| target.starts_with(t.as_str()))
            .max_by_key(|(t, _)| t.len())
            .map_or(self.default, |(_, level)| *level)
    }

    /// The most verbose level any target has.
    fn most_verbose(&self) -> LevelFilter {
        self.by_target
            .iter()
            .map(|(_, level)| *level)
            .fold(self.default, LevelFilter::max)
    }
}

impl std::str::FromStr for Targets {
    type Err = String;

    /// `RUST_LOG`'s form: comma-separated `level` or `target=level`; with only targets named,
    /// the rest are off.
    fn from_str(s: &str) -> Result<Self, String> {
        let mut targets = Self::at(LevelFilter::OFF);
        for directive in s.split(',').map(str::trim).filter(|d| !d.is_empty()) {
            let level_of = |text: &str| {
                text.parse::<LevelFilter>().map_err(|_| {
                    format!("{text:?} is not a level (off, error, warn, info, debug, trace)")
                })
            };
            match directive.split_once('=') {
                Some((target, level)) => targets
                    .by_target
                    .push((target.to_owned(), level_of(level)?)),
                None => targets.default = level_of(directive)?,
            }
        }
        Ok(targets)
    }
}

/// Writes events at the levels its [`Targets`] allow.
#[derive(Debug)]
pub struct Logger {
    targets: Arc<RwLock<Targets>>,
    /// Whether each line starts with the time: not under systemd, whose journal stamps it.
    stamped: bool,
    next_span: AtomicU64,
}

impl Logger {
    pub fn new(targets: Targets, stamped: bool) -> Self {
        Self {
            targets: Arc::new(RwLock::new(targets)),
            stamped,
            next_span: AtomicU64::new(1),
        }
    }

    /// What changes the levels once the logger is installed.
    pub fn levels(&self) -> Levels {
        Levels(Arc::clone(&self.targets))
    }

    fn targets(&self) -> std::sync::RwLockReadGuard<'_, Targets> {
        self.targets.read().unwrap_or_else(|p| p.into_inner())
    }

    /// The line `event` is written as, without its newline.
    pub fn line(&self, event: &Event<'_>) -> String {
        let mut line = String::with_capacity(128);
        if self.stamped {
            let now = humantime::format_rfc3339_micros(std::time::SystemTime::now());
            // Writing to a String cannot fail.
            let _ = write!(line, "{now} ");
        }
        let _ = write!(line, "{} ", LevelText(*event.metadata().level()));
        event.record(&mut Fields { line: &mut line });
        line
    }
}

impl Subscriber for Logger {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        *metadata.level() <= self.targets().level_of(metadata.target())
    }

    fn max_level_hint(&self) -> Option<LevelFilter> {
        Some(self.targets().most_verbose())
    }

    fn new_span(&self, _span: &Attributes<'_>) -> Id {
        Id::from_u64(self.next_span.fetch_add(1, Ordering::Relaxed).max(1))
    }

    fn record(&self, _span: &Id, _values: &Record<'_>) {}

    fn record_follows_from(&self, _span: &Id, _follows: &Id) {}

    fn event(&self, event: &Event<'_>) {
        let mut line = self.line(event);
        line.push('\n');
        // A log that cannot be written has nowhere to say so.
        let _ = std::io::stderr().lock().write_all(line.as_bytes());
    }

    fn enter(&self, _span: &Id) {}

    fn exit(&self, _span: &Id) {}
}

/// Changes an installed [`Logger`]'s levels.
#[derive(Debug)]
pub struct Levels(Arc<RwLock<Targets>>);

impl Levels {
    /// Filters by `targets` from now on.
    pub fn set(&self, targets: Targets) {
        match self.0.write() {
            Ok(mut t) => *t = targets,
            Err(poisoned) => *poisoned.into_inner() = targets,
        }
        // Call sites cache whether they are enabled; they ask again.
        tracing::callsite::rebuild_interest_cache();
    }
}

/// A level as five columns, right-aligned: `ERROR`, ` WARN`, ` INFO`.
struct LevelText(Level);

impl fmt::Display for LevelText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:>5}", self.0.as_str())
    }
}

/// An event's fields: the message as written, then ` key=value` with values as `Debug` shows
/// them (strings quoted). Control characters are escaped: a peer's name or a path can hold
/// terminal escapes, and the log is read on a terminal.
struct Fields<'a> {
    line: &'a mut String,
}

impl Fields<'_> {
    /// Adds a field: the message as written, any other as `name=value`.
    fn push(&mut self, name: &str, value: &dyn fmt::Debug) {
        let text = if name == "message" {
            format!("{value:?}")
        } else {
            format!("{name}={value:?}")
        };
        if !self.line.ends_with(' ') {
            self.line.push(' ');
        }
        for c in text.chars() {
            if c.is_control() {
                self.line.extend(c.escape_default());
            } else {
                self.line.push(c);
            }
        }
    }
}

impl Visit for Fields<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.push(field.name(), value);
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.push("message", &format_args!("{value}"));
        } else {
            self.push(field.name(), &value);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_read_as_rust_log_spells_them() {
        let t: Targets = "ebpfstatd::api=debug, warn,zbus=off"
            .parse()
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(t.level_of("ebpfstatd::api::socket"), LevelFilter::DEBUG);
        assert_eq!(t.level_of("ebpfstatd::sampler"), LevelFilter::WARN);
        assert_eq!(t.level_of("zbus::connection"), LevelFilter::OFF);
        assert_eq!(t.most_verbose(), LevelFilter::DEBUG);
        let only: Targets = "zbus=trace".parse().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(only.level_of("ebpfstatd"), LevelFilter::OFF);
        let longest: Targets = "a=error,a::b=trace"
            .parse()
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(longest.level_of("a::b::c"), LevelFilter::TRACE);
    }

    #[test]
    fn a_bad_level_is_named() {
        let e = "zbus=loud".parse::<Targets>().err();
        assert_eq!(
            e.as_deref(),
            Some("\"loud\" is not a level (off, error, warn, info, debug, trace)")
        );
    }

    #[test]
    fn levels_take_five_columns() {
        let shown: Vec<String> = [Level::ERROR, Level::WARN, Level::INFO]
            .into_iter()
            .map(|l| LevelText(l).to_string())
            .collect();
        assert_eq!(shown, ["ERROR", " WARN", " INFO"]);
    }

    #[test]
    fn fields_follow_the_message_and_escapes_are_escaped() {
        let mut line = String::from(" INFO ");
        let mut fields = Fields { line: &mut line };
        fields.push("message", &format_args!("peer {} refused", "x\u{1b}[2Jy"));
        fields.push("uid", &1000);
        fields.push("name", &"a b");
        assert_eq!(
            line,
            " INFO peer x\\u{1b}[2Jy refused uid=1000 name=\"a b\""
        );
    }
}
