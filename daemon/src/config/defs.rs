//! Every setting of the daemon, defined once: its key (the file's key; the flag is `--` and the
//! key with `-` for `_`), what it means (the flag's help and the man page), the kind of value,
//! its default, the range it may take, and whether a reload (SIGHUP) changes it or it waits
//! for a restart. From this one list come the file's keys and the flags ([`Settings`]), their
//! checks, the settings in effect ([`Effective`]) and how they print, what a reload applies,
//! and the list a test holds the shipped file and the documentation against ([`defs`]).

use std::os::unix::ffi::OsStrExt as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use super::remote_write::Target;
use super::values::{Address, Budget, LogLevel, Maybe, Size, Span, StatsMode, Value};
use super::{Bus, RangeError};
use crate::alerts::Rule;

/// Whether a reload changes a setting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reload {
    /// At once.
    Now,
    /// At the next start only (what the process opened or keeps for its life).
    AtRestart,
}

/// One setting, described: for `--check-config`, the docs and the tests that hold the shipped
/// file and the documentation to this list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Def {
    pub key: &'static str,
    /// What the flag's value is called in its help (`--interval <INTERVAL>`).
    pub value_name: String,
    pub doc: &'static str,
    /// The default, as the file writes it.
    pub default: String,
    /// The range it may take, in words; `None` when any value of its kind will do.
    pub range: Option<String>,
    pub reload: Reload,
    /// The file writes it as a string (else as a bare number).
    pub quoted: bool,
}

/// What values a setting may take.
pub trait Check<V: Value> {
    /// `Err` says what is allowed.
    fn allows(&self, v: &V::Out) -> Result<(), String>;
    /// The range in words, for the docs.
    fn describe(&self) -> Option<String>;
}

/// Any value of its kind.
pub struct Any;

impl<V: Value> Check<V> for Any {
    fn allows(&self, _: &V::Out) -> Result<(), String> {
        Ok(())
    }
    fn describe(&self) -> Option<String> {
        None
    }
}

/// Between two values, both included.
pub struct Between<O>(pub O, pub O);

impl<V: Value> Check<V> for Between<V::Out>
where
    V::Out: PartialOrd,
{
    fn allows(&self, v: &V::Out) -> Result<(), String> {
        if *v < self.0 || *v > self.1 {
            return Err(format!(
                "between {} and {}",
                V::text(&self.0),
                V::text(&self.1)
            ));
        }
        Ok(())
    }
    fn describe(&self) -> Option<String> {
        Some(format!("{} – {}", V::text(&self.0), V::text(&self.1)))
    }
}

/// A count between two bounds, both included.
pub struct Count(pub u64, pub u64);

impl Check<u64> for Count {
    fn allows(&self, v: &u64) -> Result<(), String> {
        if !(self.0..=self.1).contains(v) {
            return Err(format!("at least {} and at most {}", self.0, self.1));
        }
        Ok(())
    }
    fn describe(&self) -> Option<String> {
        Some(format!("{} – {}", self.0, self.1))
    }
}

/// A rule of its own: what it allows, in words, and the check.
pub struct Only<O: 'static>(pub &'static str, pub fn(&O) -> Result<(), String>);

impl<V: Value> Check<V> for Only<V::Out> {
    fn allows(&self, v: &V::Out) -> Result<(), String> {
        (self.1)(v)
    }
    fn describe(&self) -> Option<String> {
        Some(self.0.to_owned())
    }
}

/// The name a flag's value goes by: the one given, else the key in capitals.
fn value_name<const N: usize>(key: &str, given: [&str; N]) -> String {
    given
        .first()
        .map_or_else(|| key.to_ascii_uppercase(), |&n| n.to_owned())
}

const fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}
const HOUR: u64 = 3_600_000;
const DAY: u64 = 24 * HOUR;

/// `sun_path` holds 108 bytes, the last a NUL.
const MAX_SOCKET_PATH: usize = 107;

/// What every path setting must be: the daemon opens it, and a NUL byte would end it at the
/// system call (and no D-Bus string, such as `Status`'s, may hold one).
fn usable_path(p: &Path) -> Result<(), String> {
    if p.as_os_str().as_bytes().contains(&0) {
        return Err("a path without NUL bytes".to_owned());
    }
    Ok(())
}

/// A path the daemon creates: absolute, as a relative one would land wherever it was started.
fn absolute_path(p: &Path) -> Result<(), String> {
    usable_path(p)?;
    if !p.is_absolute() {
        return Err(
            "an absolute path (a relative one would depend on the directory ebpfstatd is \
             started in)"
                .to_owned(),
        );
    }
    Ok(())
}

#[expect(clippy::ptr_arg, reason = "a check takes the setting's own kind")]
fn database_path(p: &PathBuf) -> Result<(), String> {
    absolute_path(p)
}

fn socket_fits(p: &Option<PathBuf>) -> Result<(), String> {
    let Some(p) = p else { return Ok(()) };
    absolute_path(p)?;
    if p.as_os_str().len() > MAX_SOCKET_PATH {
        return Err(format!(
            "a path of at most {MAX_SOCKET_PATH} bytes (it is {})",
            p.as_os_str().len()
        ));
    }
    Ok(())
}

/// node_exporter reads only `*.prom` files, by absolute path.
fn prom_file(p: &Option<PathBuf>) -> Result<(), String> {
    let Some(p) = p else { return Ok(()) };
    usable_path(p)?;
    if !(p.is_absolute() && p.extension().is_some_and(|e| e == "prom")) {
        return Err(
            "an absolute path ending in .prom (node_exporter's textfile collector reads only \
             those), or \"none\""
                .to_owned(),
        );
    }
    Ok(())
}

/// Defines every setting, once: see the module's documentation.
macro_rules! settings {
    ($(
        $(#[doc = $doc:literal])+
        $key:ident $(<$value_name:literal>)?: $ty:ty = $default:expr, $check:expr, $reload:ident;
    )+) => {
        /// The file's keys, and the flags of `run` (each overrides the same key of the file).
        /// Every key is optional: an absent one is the default.
        #[derive(Debug, Clone, Default, PartialEq, Deserialize)]
        #[serde(deny_unknown_fields)]
        pub struct Settings {
            $(
                $(#[doc = $doc])+
                pub $key: Option<$ty>,
            )+
            /// Alert rules (`[[alert]]` tables); none by default. Only the file sets them. Read
            /// apart (see `Settings::parse`), so an error names the rule's own line.
            #[serde(default, deserialize_with = "super::read_apart")]
            pub alert: Option<Vec<Rule>>,
            /// Where to push (`[[remote_write]]` tables); none by default. Only the file sets
            /// them, read apart as the rules are.
            #[serde(default, deserialize_with = "super::read_apart")]
            pub remote_write: Option<Vec<Target>>,
        }

        /// Everything the daemon runs with, defaults filled in.
        #[derive(Debug, Clone, PartialEq)]
        pub struct Effective {
            $( pub $key: <$ty as Value>::Out, )+
            pub alerts: Vec<Rule>,
            pub remote_write: Vec<Target>,
        }

        impl Settings {
            /// Keys set in `over` replace those here (flags over the file).
            #[must_use]
            pub fn overlay(self, over: Self) -> Self {
                Self {
                    $( $key: over.$key.or(self.$key), )+
                    alert: over.alert.or(self.alert),
                    remote_write: over.remote_write.or(self.remote_write),
                }
            }

            /// Sets the key `key` (the file's spelling) from a flag's `value`; `None` when no
            /// setting has that key.
            pub fn set(&mut self, key: &str, value: &str) -> Option<Result<(), String>> {
                match key {
                    $(
                        stringify!($key) => Some(
                            value
                                .parse::<$ty>()
                                .map(|v| self.$key = Some(v))
                                .map_err(|e| e.to_string()),
                        ),
                    )+
                    _ => None,
                }
            }

            /// The first setting outside the range it may take.
            pub fn out_of_range(&self) -> Option<RangeError> {
                $(
                    if let Some(v) = &self.$key {
                        let v = v.clone().settle();
                        if let Err(allowed) = Check::<$ty>::allows(&$check, &v) {
                            return Some(RangeError {
                                key: stringify!($key),
                                value: <$ty as Value>::text(&v),
                                allowed,
                            });
                        }
                    }
                )+
                None
            }
        }

        impl From<Settings> for Effective {
            fn from(s: Settings) -> Self {
                Self {
                    $( $key: s.$key.map_or_else(|| $default, Value::settle), )+
                    alerts: s.alert.unwrap_or_default(),
                    remote_write: s.remote_write.unwrap_or_default(),
                }
            }
        }

        impl Effective {
            /// Each setting as `(key, value)`, the value as the configuration file writes it
            /// (without quotes).
            pub fn entries(&self) -> Vec<(&'static str, String)> {
                vec![$( (stringify!($key), <$ty as Value>::text(&self.$key)), )+]
            }

            /// Whether the file writes `key`'s value as a string (else as a bare number).
            pub fn quoted(key: &str) -> bool {
                match key {
                    $( stringify!($key) => <$ty as Value>::QUOTED, )+
                    _ => true,
                }
            }

            /// Puts back from `old` what only a restart changes.
            pub fn keep_until_restart(&mut self, old: &Self) {
                $(
                    if Reload::$reload == Reload::AtRestart {
                        self.$key.clone_from(&old.$key);
                    }
                )+
                // Each target is a thread started with the daemon.
                self.remote_write.clone_from(&old.remote_write);
            }
        }

        /// Every setting, described.
        pub fn defs() -> Vec<Def> {
            let defaults = Effective::default();
            vec![$(
                Def {
                    key: stringify!($key),
                    value_name: value_name(stringify!($key), [$($value_name)?]),
                    doc: concat!($($doc, "\n"),+),
                    default: <$ty as Value>::text(&defaults.$key),
                    range: Check::<$ty>::describe(&$check),
                    reload: Reload::$reload,
                    quoted: <$ty as Value>::QUOTED,
                },
            )+]
        }
    };
}

settings! {
    /// Time between passes.
    interval: Span = ms(1000), Between(ms(100), ms(HOUR)), Now;
    /// History database, created with its directory.
    db: PathBuf = PathBuf::from("/var/lib/ebpfstat/history.db"),
        Only("an absolute path", database_path), AtRestart;
    /// Write buffered samples at least this often; a crash loses at most this window.
    flush_interval: Span = ms(60_000), Between(ms(100), ms(HOUR)), Now;
    /// Age kept at full resolution.
    raw_retention: Span = ms(6 * HOUR), Between(ms(60_000), ms(30 * DAY)), Now;
    /// Age kept as 1-minute rollups.
    minute_retention: Span = ms(7 * DAY), Between(ms(HOUR), ms(365 * DAY)), Now;
    /// Age kept as 1-hour rollups.
    hour_retention: Span = ms(90 * DAY), Between(ms(DAY), ms(3650 * DAY)), Now;
    /// Hard cap on the database file; the oldest data goes first.
    max_db_size: Size = 64 << 20, Between(1 << 20, 1 << 40), Now;
    /// Rescan owners, pins, links and map memory at least every this many passes.
    rescan_every: u64 = 30, Count(1, 1_000_000), Now;
    /// Bus to serve the API on: system, session, none, or a D-Bus address.
    bus: Bus = Bus::System, Any, AtRestart;
    /// Private socket serving the API without a bus, or "none".
    socket: Maybe<PathBuf> = Some(PathBuf::from(ebpfstat_dbus::SOCKET)),
        Only("an absolute path of at most 107 bytes", socket_fits), AtRestart;
    /// error, warn, info, debug or trace (RUST_LOG wins).
    log_level: LogLevel = LogLevel::Info, Any, Now;
    /// How run-time stats are held: always, budget, or duty=W/P.
    stats_mode: StatsMode = StatsMode::Budget, Any, Now;
    /// Most that stats may cost the host, as a share of one core.
    stats_overhead_budget: Budget = 0.01, Any, Now;
    /// Most of one core the sampler's passes may take; slower passes stretch the interval.
    sampler_budget: Budget = 0.5, Any, Now;
    /// A .prom file for node_exporter's textfile collector, or "none".
    textfile: Maybe<PathBuf> = None,
        Only("an absolute path ending in .prom", prom_file), AtRestart;
    /// How often the textfile is rewritten.
    textfile_interval: Span = ms(15_000), Between(ms(1000), ms(HOUR)), AtRestart;
    /// Serve /metrics on this address (host:port), or "none".
    metrics_listen <"ADDR">: Maybe<Address> = None, Any, AtRestart;
    /// Let metrics_listen be an address beyond loopback (anyone reaching it reads /metrics).
    metrics_public <"BOOL">: bool = false, Any, AtRestart;
    /// Runs a new version of a program needs before it is compared with the one before.
    compare_min_runs <"N">: u64 = u64::from(ebpfstat_dbus::DEFAULT_COMPARE_MIN_RUNS),
        Count(1, 1_000_000_000_000), AtRestart;
    /// Time a new version must have been seen before it is compared.
    compare_min_time <"DURATION">: Span =
        Duration::from_secs(u64::from(ebpfstat_dbus::DEFAULT_COMPARE_MIN_SECONDS)),
        Between(ms(1000), ms(30 * DAY)), AtRestart;
}

/// The configuration file read when it exists and no `--config` is given.
pub const CONFIG_PATH: &str = "/etc/ebpfstat/ebpfstatd.toml";

impl Default for Effective {
    fn default() -> Self {
        Self::from(Settings::default())
    }
}

impl Effective {
    /// How stats are held, with the budget of `budget` mode.
    pub fn mode(&self) -> crate::observer::Mode {
        self.stats_mode.with_budget(self.stats_overhead_budget)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(relative: &str) -> String {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(relative);
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }

    fn written(d: &Def) -> String {
        if d.quoted {
            format!("\"{}\"", d.default)
        } else {
            d.default.clone()
        }
    }

    #[test]
    fn the_shipped_file_lists_every_setting_with_its_default() {
        let shipped = read("../packaging/ebpfstatd.toml");
        let keys: Vec<&str> = shipped
            .lines()
            .filter_map(|l| l.strip_prefix('#'))
            .filter(|l| !l.starts_with(' ') && l.contains(" = "))
            .collect();
        let want: Vec<String> = defs()
            .iter()
            .map(|d| format!("{} = {}", d.key, written(d)))
            .collect();
        assert_eq!(keys, want);
    }

    #[test]
    fn the_reference_gives_every_default_and_range_and_what_waits_for_a_restart() {
        let doc = read("../docs/configuration.md");
        for d in defs() {
            let key = format!("`{}`", d.key);
            let row = doc
                .lines()
                .find(|l| l.starts_with("| ") && l.contains(&key))
                .unwrap_or_else(|| panic!("no row for {key}"));
            let default = format!("`{}`", written(&d));
            assert!(row.contains(&default), "{key}: {default} in {row}");
            if let Some(range) = &d.range {
                assert!(row.contains(range.as_str()), "{key}: {range} in {row}");
            }
        }
        let reload = doc
            .split("## Reload (SIGHUP)")
            .nth(1)
            .and_then(|s| s.split("\n## ").next())
            .expect("a Reload section");
        for d in defs().iter().filter(|d| d.reload == Reload::AtRestart) {
            assert!(
                reload.contains(&format!("`{}`", d.key)),
                "{} in {reload}",
                d.key
            );
        }
    }

    #[test]
    fn a_setting_is_checked_and_printed_as_its_kind_says() {
        let s = Settings {
            rescan_every: Some(0),
            ..Settings::default()
        };
        let e = s.out_of_range().expect("out of range");
        assert_eq!(
            e.to_string(),
            "rescan_every = 0 is out of range: at least 1 and at most 1000000"
        );
        let mut new = Effective {
            db: PathBuf::from("/elsewhere.db"),
            interval: ms(2000),
            ..Effective::default()
        };
        new.keep_until_restart(&Effective::default());
        assert_eq!(new.db, Effective::default().db);
        assert_eq!(new.interval, ms(2000));
        assert!(!Effective::quoted("compare_min_runs") && Effective::quoted("interval"));
    }
}
