//! The configuration file `/etc/ebpfstat/ebpfstatd.toml`: every key optional, command-line
//! flags win over it, embedded defaults fill the rest. Unknown keys and bad values are errors
//! that name the key, the line and what is allowed.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::alerts::rules::first_repeat;

mod defs;
mod effective;
pub mod remote_write;
mod tables;
mod values;

pub use defs::{CONFIG_PATH, Def, Effective, Reload, Settings, defs};
pub use values::{Budget, LogLevel, Shown, Size, Span, StatsMode, Value, size_text, span_text};

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read configuration {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("configuration {path}: {message}")]
    Invalid { path: PathBuf, message: String },
    /// A command-line flag out of its range.
    #[error("{0}")]
    Flag(String),
}

/// Which message bus to serve the API on (besides the private socket).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Bus {
    #[default]
    System,
    Session,
    Address(String),
    None,
}

impl std::str::FromStr for Bus {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Ok(match s {
            "system" => Self::System,
            "session" => Self::Session,
            "none" => Self::None,
            a if a.contains(':') => Self::Address(a.to_owned()),
            other => {
                return Err(format!(
                    "{:?}: expected system, session, none or a D-Bus address (unix:path=...)",
                    Shown(other)
                ));
            }
        })
    }
}

/// A setting outside its range.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RangeError {
    /// The file's key (the flag is `--` and the key with `-` for `_`).
    pub key: &'static str,
    pub value: String,
    pub allowed: String,
}

impl std::fmt::Display for RangeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} = {} is out of range: {}",
            self.key,
            Shown(&self.value),
            self.allowed
        )
    }
}

impl RangeError {
    /// The same, as the command line says it.
    pub fn as_flag(&self) -> String {
        format!(
            "--{} {} is out of range: {}",
            self.key.replace('_', "-"),
            Shown(&self.value),
            self.allowed
        )
    }
}

/// A parser's error as `line L, column C: key: what` (the key when the error is in its
/// value). Not the parser's own rendering, which repeats the line and underlines the value: a
/// value may be a whole file's worth.
pub(super) fn toml_error(e: &toml::de::Error, text: &str) -> String {
    let message = e.message().trim_end();
    let Some(at) = e.span().map(|s| s.start) else {
        return message.to_owned();
    };
    let before = text.get(..at).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let start = before.rsplit('\n').next().unwrap_or("");
    let column = start.chars().count() + 1;
    match start.split_once('=') {
        Some((key, _)) => format!(
            "line {line}, column {column}: {}: {message}",
            Shown(key.trim())
        ),
        None => format!("line {line}, column {column}: {message}"),
    }
}

/// Skips an array of tables (`alert`, `remote_write`) in the first reading of the file.
pub(super) fn read_apart<'de, D: serde::Deserializer<'de>, T>(d: D) -> Result<Option<T>, D::Error> {
    serde::de::IgnoredAny::deserialize(d)?;
    Ok(None)
}

impl Settings {
    /// Parses file text; `path` only names the file in errors.
    pub fn parse(text: &str, path: &Path) -> Result<Self, ConfigError> {
        let invalid = |message: String| ConfigError::Invalid {
            path: path.to_owned(),
            message,
        };
        let mut settings: Self = toml::from_str(text).map_err(|e| invalid(toml_error(&e, text)))?;
        settings.alert = tables::alerts(text).map_err(invalid)?;
        settings.remote_write = tables::remote_write(text).map_err(&invalid)?;
        if let Some(message) = settings.bad_rules(text) {
            return Err(ConfigError::Invalid {
                path: path.to_owned(),
                message,
            });
        }
        if let Some(message) = settings.bad_targets() {
            return Err(invalid(message));
        }
        if let Some(e) = settings.out_of_range() {
            // Name the line too, as the parser's own errors do.
            let line = text.lines().position(|l| {
                l.trim_start()
                    .strip_prefix(e.key)
                    .is_some_and(|rest| rest.trim_start().starts_with('='))
            });
            return Err(ConfigError::Invalid {
                path: path.to_owned(),
                message: match line {
                    Some(n) => format!("line {}: {e}", n + 1),
                    None => e.to_string(),
                },
            });
        }
        Ok(settings)
    }

    /// What is wrong with the alert rules taken together (each rule was checked as it was
    /// parsed), naming the line.
    fn bad_rules(&self, text: &str) -> Option<String> {
        let rules = self.alert.as_deref()?;
        let i = first_repeat(rules)?;
        let name = &rules[i].name;
        // The line of the repeat: the second `name = "..."` with that name.
        let line = text
            .lines()
            .enumerate()
            .filter(|(_, l)| {
                l.split_once('=').is_some_and(|(k, v)| {
                    k.trim() == "name" && v.trim().trim_matches(['"', '\'']) == name
                })
            })
            .nth(1)
            .map_or(String::new(), |(n, _)| format!("line {}: ", n + 1));
        Some(format!(
            "{line}alert name {:?} is used twice: each rule needs a name of its own",
            Shown(name)
        ))
    }

    /// A target whose step is shorter than the sampling interval (it would send the same
    /// value twice), or two targets with one url (they would share one position).
    fn bad_targets(&self) -> Option<String> {
        let targets = self.remote_write.as_deref()?;
        let interval = self.interval.map_or(Effective::default().interval, |s| s.0);
        if let Some(t) = targets.iter().find(|t| t.step < interval) {
            return Some(format!(
                "remote_write {:?}: step {} is shorter than the interval ({}): at least that",
                Shown(&t.url.text),
                span_text(t.step),
                span_text(interval)
            ));
        }
        let urls: std::collections::HashSet<&str> =
            targets.iter().map(|t| t.url.text.as_str()).collect();
        (urls.len() < targets.len())
            .then(|| "two [[remote_write]] tables have the same url: one each".to_owned())
    }

    /// The file at `explicit`, or the default file when it exists, or nothing.
    pub fn load(explicit: Option<&Path>) -> Result<(Self, Option<PathBuf>), ConfigError> {
        let path = match explicit {
            Some(p) => p.to_owned(),
            None if Path::new(CONFIG_PATH).exists() => PathBuf::from(CONFIG_PATH),
            None => return Ok((Self::default(), None)),
        };
        let text = std::fs::read_to_string(&path).map_err(|source| ConfigError::Read {
            path: path.clone(),
            source,
        })?;
        Ok((Self::parse(&text, &path)?, Some(path)))
    }
}

/// Where the settings come from: the configuration file (the one given, else the default one
/// when it exists) and the flags, which win over it. Kept for a reload.
#[derive(Debug, Clone, Default)]
pub struct Sources {
    pub file: Option<PathBuf>,
    pub flags: Settings,
}

impl Sources {
    /// Reads the file (again) and settles every setting; also which file was read.
    pub fn resolve(&self) -> Result<(Effective, Option<PathBuf>), ConfigError> {
        if let Some(e) = self.flags.out_of_range() {
            return Err(ConfigError::Flag(e.as_flag()));
        }
        let (file, path) = Settings::load(self.file.as_deref())?;
        let settings = Effective::from(file.overlay(self.flags.clone()));
        if let Some(message) = exposure(&settings) {
            let by_flags =
                self.flags.metrics_listen.is_some() || self.flags.metrics_public.is_some();
            return Err(match path {
                Some(path) if !by_flags => ConfigError::Invalid { path, message },
                _ => ConfigError::Flag(message),
            });
        }
        Ok((settings, path))
    }
}

/// Why `/metrics` may not be served where `metrics_listen` says: it names every program, its
/// tag, the processes holding it and their units, which the API keeps to group `ebpfstat`, to
/// anyone who connects; beyond loopback that must be meant (`metrics_public`).
fn exposure(e: &Effective) -> Option<String> {
    let addr = e.metrics_listen?;
    if e.metrics_public || addr.ip().to_canonical().is_loopback() {
        return None;
    }
    Some(format!(
        "metrics_listen = \"{addr}\" is not a loopback address: anyone who reaches it would read \
         every program's name and tag and the processes and units holding it (the API keeps \
         them to group ebpfstat). Listen on 127.0.0.1 or [::1] (and let a proxy or the \
         ebpfstatd-metrics.socket unit carry it further), or set metrics_public = true \
         (--metrics-public true) if that is meant"
    ))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn parse(text: &str) -> Result<Settings, String> {
        Settings::parse(text, Path::new("test.toml")).map_err(|e| e.to_string())
    }

    #[test]
    fn every_key() {
        let s = parse(
            r#"
            interval = "2s"
            db = "/data/h.db"
            flush_interval = "30s"
            raw_retention = "1h"
            minute_retention = "2d"
            hour_retention = "30d"
            max_db_size = "16MiB"
            rescan_every = 10
            bus = "none"
            socket = "none"
            log_level = "debug"
            "#,
        )
        .expect("valid");
        let e = Effective::from(s);
        assert_eq!(e.interval, Duration::from_secs(2));
        assert_eq!(e.max_db_size, 16 << 20);
        assert_eq!(e.bus, Bus::None);
        assert_eq!(e.socket, None);
        assert_eq!(e.log_level, LogLevel::Debug);
    }

    #[test]
    fn defaults_without_a_file() {
        let e = Effective::from(Settings::default());
        assert_eq!(e.interval, Duration::from_secs(1));
        assert_eq!(e.db, PathBuf::from("/var/lib/ebpfstat/history.db"));
        assert_eq!(e.flush_interval, Duration::from_secs(60));
        assert_eq!(e.socket, Some(PathBuf::from("/run/ebpfstat/private")));
    }

    #[test]
    fn errors_name_key_line_and_what_is_allowed() {
        let e = parse("interval = \"1s\"\nintervall = \"2s\"\n").expect_err("unknown key");
        assert!(
            e.contains("line 2") && e.contains("intervall") && e.contains("`interval`"),
            "{e}"
        );
        let e = parse("\n\ninterval = \"5 fortnights\"\n").expect_err("bad duration");
        assert!(
            e.contains("line 3") && e.contains("interval") && e.contains("\"1s\""),
            "{e}"
        );
        let e = parse("max_db_size = \"big\"\n").expect_err("bad size");
        assert!(e.contains("max_db_size") && e.contains("MiB"), "{e}");
        let e = parse("log_level = \"loud\"\n").expect_err("bad level");
        assert!(e.contains("loud") && e.contains("debug"), "{e}");
        let e = parse("bus = \"telepathy\"\n").expect_err("bad bus");
        assert!(e.contains("system, session, none"), "{e}");
        let e = parse("rescan_every = 0\n").expect_err("zero");
        assert!(e.contains("rescan_every"), "{e}");
        let e = parse("interval = 5\n").expect_err("wrong type");
        assert!(e.contains("interval") && e.contains("string"), "{e}");
    }

    #[test]
    fn errors_quote_a_long_value_by_its_start_and_length() {
        let long = "x".repeat(100_000);
        for key in [
            "interval",
            "max_db_size",
            "log_level",
            "bus",
            "stats_mode",
            "stats_overhead_budget",
            "metrics_listen",
            "textfile",
            "socket",
        ] {
            let e = parse(&format!("{key} = \"/{long}\"\n")).expect_err(key);
            assert!(
                e.len() < 600 && e.contains(key) && e.contains("… (100001 bytes)"),
                "{key}: {} bytes: {}",
                e.len(),
                e.get(..600).unwrap_or(&e)
            );
        }
    }

    #[test]
    fn a_path_with_a_nul_byte_is_refused() {
        for key in ["db", "textfile", "socket"] {
            let e = parse(&format!("{key} = \"/var/lib/a\\u0000b.prom\"\n")).expect_err(key);
            assert!(
                e.contains(&format!(
                    "line 1: {key} = /var/lib/a\\0b.prom is out of range"
                )) && e.contains("without NUL bytes"),
                "{e}"
            );
        }
    }

    #[test]
    fn a_relative_path_is_refused_where_the_daemon_creates_it() {
        for key in ["db", "socket", "textfile"] {
            let e = parse(&format!("\n{key} = \"state/h.prom\"\n")).expect_err(key);
            assert!(
                e.contains(&format!(
                    "line 2: {key} = state/h.prom is out of range: an absolute path"
                )),
                "{e}"
            );
        }
        let mut flags = Settings::default();
        assert_eq!(flags.set("db", "history.db"), Some(Ok(())));
        let e = Sources {
            file: Some(PathBuf::from("/dev/null")),
            flags,
        }
        .resolve()
        .expect_err("relative --db");
        assert!(
            e.to_string()
                .starts_with("--db history.db is out of range: an absolute path"),
            "{e}"
        );
    }

    #[test]
    fn metrics_beyond_loopback_must_be_meant() {
        let resolve = |flags: &[(&str, &str)]| {
            let mut settings = Settings::default();
            for (key, value) in flags {
                assert_eq!(settings.set(key, value), Some(Ok(())), "{key}");
            }
            Sources {
                file: Some(PathBuf::from("/dev/null")),
                flags: settings,
            }
            .resolve()
            .map(drop)
            .map_err(|e| e.to_string())
        };
        for loopback in [
            "127.0.0.1:9435",
            "127.3.2.1:80",
            "[::1]:9435",
            "[::ffff:127.0.0.1]:80",
        ] {
            assert_eq!(
                resolve(&[("metrics_listen", loopback)]),
                Ok(()),
                "{loopback}"
            );
        }
        for public in [
            "0.0.0.0:80",
            "[::]:9435",
            "10.0.0.5:9435",
            "[::ffff:10.0.0.5]:80",
        ] {
            let e = resolve(&[("metrics_listen", public)]).expect_err(public);
            assert!(
                e.contains("is not a loopback address") && e.contains("metrics_public = true"),
                "{e}"
            );
            let meant = [("metrics_listen", public), ("metrics_public", "true")];
            assert_eq!(resolve(&meant), Ok(()), "{public}");
        }
    }

    #[test]
    fn printed_settings_parse_back() {
        let e = Effective::from(Settings::default());
        let text = e.to_string();
        assert!(
            text.contains("hour_retention = \"90d\"") && text.contains("\"64MiB\""),
            "{text}"
        );
        let back = Effective::from(parse(&text).expect("parses"));
        assert_eq!(back, e);
        assert_eq!(span_text(Duration::from_millis(250)), "250ms");
    }

    #[test]
    fn alert_rules_print_back_and_repeats_are_named_with_their_line() {
        let text = "interval = \"2s\"\n\n[[alert]]\nname = \"hot\"\nmetric = \"cpu_pct\"\n\
                    threshold = 5\nfor = \"3s\"\n\n[[alert]]\nname = \"hot\"\n\
                    metric = \"avg_ns\"\nthreshold = 900\n";
        let e = parse(text).expect_err("repeated name");
        assert!(
            e.contains("line 10") && e.contains("\"hot\" is used twice"),
            "{e}"
        );
        let one = parse(&text.replace(
            "name = \"hot\"\nmetric = \"avg",
            "name = \"slow\"\nmetric = \"avg",
        ))
        .expect("valid");
        let e = Effective::from(one);
        assert_eq!(e.alerts.len(), 2);
        let printed = e.to_string();
        assert!(printed.contains("[[alert]]\nname = \"slow\""), "{printed}");
        assert_eq!(Effective::from(parse(&printed).expect("parses back")), e);
    }

    #[test]
    fn flags_win() {
        let file = parse("interval = \"5s\"\ndb = \"/a.db\"\n").expect("valid");
        let flags = Settings {
            interval: Some(Span(Duration::from_secs(2))),
            ..Settings::default()
        };
        let e = Effective::from(file.overlay(flags));
        assert_eq!(e.interval, Duration::from_secs(2));
        assert_eq!(e.db, PathBuf::from("/a.db"));
    }
}
