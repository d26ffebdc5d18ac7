//! The values settings take, as the file and the flags write them (durations, sizes, shares,
//! levels, paths or "none"), read once by one parser for both, and written back the same way.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use ebpfstat_numbers::Share;
use serde::{Deserialize, Deserializer};

use super::Bus;
use crate::observer::{MIN_DUTY, Mode};
pub use crate::shown::{SHOWN_CHARS, Shown};
use crate::units::parse_bytes;

/// A kind of setting value: read from text (the file's string, or a flag), settled into what
/// the daemon uses (`Out`), and written back as the file would write it.
pub trait Value: Clone {
    /// What the daemon runs with.
    type Out: Clone + PartialEq + std::fmt::Debug;
    /// The file writes it as a TOML string (else as a bare number).
    const QUOTED: bool = true;
    fn settle(self) -> Self::Out;
    fn text(v: &Self::Out) -> String;
}

/// Deserializes any [`Value`] from the file's string (numbers are read as themselves).
macro_rules! from_file_string {
    ($($t:ty),+) => {$(
        impl<'de> Deserialize<'de> for $t {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                String::deserialize(d)?.parse().map_err(serde::de::Error::custom)
            }
        }
    )+};
}

from_file_string!(Span, Size, Budget, StatsMode, Bus, Address);

/// A duration written as text (`"1s"`, `"250ms"`, `"6h"`), longer than zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span(pub Duration);

impl FromStr for Span {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let v = humantime::parse_duration(s).map_err(|e| {
            format!(
                "{:?} is not a duration ({e}); write e.g. \"1s\", \"250ms\", \"6h\", \"7d\"",
                Shown(s)
            )
        })?;
        if v.is_zero() {
            return Err("a duration of zero is not allowed".into());
        }
        Ok(Self(v))
    }
}

impl Value for Span {
    type Out = Duration;
    fn settle(self) -> Duration {
        self.0
    }
    fn text(v: &Duration) -> String {
        span_text(*v)
    }
}

impl std::fmt::Display for Span {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&span_text(self.0))
    }
}

/// A size written as text (`"64MiB"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Size(pub u64);

impl FromStr for Size {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        // parse_bytes quotes what it cannot read whole; no size is this long.
        if s.len() > SHOWN_CHARS {
            return Err(format!(
                "{:?} is not a size (expected e.g. 64MiB)",
                Shown(s)
            ));
        }
        parse_bytes(s).map(Self)
    }
}

impl Value for Size {
    type Out = u64;
    fn settle(self) -> u64 {
        self.0
    }
    fn text(v: &u64) -> String {
        size_text(*v)
    }
}

/// A count, written as a TOML integer.
impl Value for u64 {
    type Out = u64;
    const QUOTED: bool = false;
    fn settle(self) -> u64 {
        self
    }
    fn text(v: &u64) -> String {
        v.to_string()
    }
}

/// A switch, written as a TOML boolean.
impl Value for bool {
    type Out = bool;
    const QUOTED: bool = false;
    fn settle(self) -> bool {
        self
    }
    fn text(v: &bool) -> String {
        v.to_string()
    }
}

impl Value for PathBuf {
    type Out = PathBuf;
    fn settle(self) -> PathBuf {
        self
    }
    fn text(v: &PathBuf) -> String {
        v.display().to_string()
    }
}

/// A share of one core written as a percentage (`"1%"`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Budget(pub f64);

impl FromStr for Budget {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("{:?}: a percentage of one core, e.g. \"1%\"", Shown(s));
        let v: f64 = s
            .trim()
            .strip_suffix('%')
            .ok_or_else(bad)?
            .trim()
            .parse()
            .map_err(|_| bad())?;
        if !(v > 0.0 && v <= 100.0) {
            return Err(format!("{:?}: between 0% and 100%", Shown(s)));
        }
        Ok(Self(Share::from_percent(v).0))
    }
}

impl Value for Budget {
    type Out = f64;
    fn settle(self) -> f64 {
        self.0
    }
    fn text(v: &f64) -> String {
        format!("{}%", Share(*v).percent())
    }
}

/// How run-time stats are held: `always`, `budget` (within `stats_overhead_budget`), or
/// `duty=W/P` (on a fixed share of each interval).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum StatsMode {
    Always,
    Budget,
    /// The share of each interval.
    Duty(f64),
}

impl StatsMode {
    /// The mode the observer runs, with the budget that `budget` mode keeps to.
    pub fn with_budget(self, budget: f64) -> Mode {
        match self {
            Self::Always => Mode::Always,
            Self::Budget => Mode::Budget(budget),
            Self::Duty(d) => Mode::Fixed(d),
        }
    }
}

impl FromStr for StatsMode {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "always" => Ok(Self::Always),
            "budget" => Ok(Self::Budget),
            _ => {
                let s = Shown(s);
                let spec = s.0.strip_prefix("duty=").ok_or_else(|| {
                    format!("{s:?}: one of always, budget, duty=W/P (e.g. duty=200ms/1s)")
                })?;
                let (w, p) = spec
                    .split_once('/')
                    .ok_or_else(|| format!("{s:?}: duty=W/P needs a window and a period"))?;
                let parse = |v: &str| {
                    humantime::parse_duration(v).map_err(|e| format!("{s:?}: {:?}: {e}", Shown(v)))
                };
                let (w, p) = (parse(w)?, parse(p)?);
                if p.is_zero() || w > p {
                    return Err(format!("{s:?}: the window must be at most the period"));
                }
                Ok(Self::Duty(
                    (w.as_secs_f64() / p.as_secs_f64()).max(MIN_DUTY),
                ))
            }
        }
    }
}

impl Value for StatsMode {
    type Out = Self;
    fn settle(self) -> Self {
        self
    }
    fn text(v: &Self) -> String {
        match v {
            Self::Always => "always".to_owned(),
            Self::Budget => "budget".to_owned(),
            Self::Duty(d) => format!("duty={}/1s", span_text(Duration::from_secs_f64(*d))),
        }
    }
}

impl Value for Bus {
    type Out = Self;
    fn settle(self) -> Self {
        self
    }
    fn text(v: &Self) -> String {
        match v {
            Self::System => "system".to_owned(),
            Self::Session => "session".to_owned(),
            Self::None => "none".to_owned(),
            Self::Address(a) => a.clone(),
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum LogLevel {
    Error,
    Warn,
    #[default]
    Info,
    Debug,
    Trace,
}

impl LogLevel {
    const ALL: [Self; 5] = [
        Self::Error,
        Self::Warn,
        Self::Info,
        Self::Debug,
        Self::Trace,
    ];

    /// The level as a log filter.
    pub fn filter(self) -> tracing::level_filters::LevelFilter {
        use tracing::level_filters::LevelFilter;
        match self {
            Self::Error => LevelFilter::ERROR,
            Self::Warn => LevelFilter::WARN,
            Self::Info => LevelFilter::INFO,
            Self::Debug => LevelFilter::DEBUG,
            Self::Trace => LevelFilter::TRACE,
        }
    }

    /// The one spelling of each level.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Error => "error",
            Self::Warn => "warn",
            Self::Info => "info",
            Self::Debug => "debug",
            Self::Trace => "trace",
        }
    }
}

impl FromStr for LogLevel {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|l| l.as_str() == s)
            .ok_or_else(|| {
                let names: Vec<&str> = Self::ALL.iter().map(|l| l.as_str()).collect();
                format!("{:?}: one of {}", Shown(s), names.join(", "))
            })
    }
}

/// Read by its one spelling, refused in serde's words, with the value [`Shown`] (serde's
/// derived reading would quote it whole).
impl<'de> Deserialize<'de> for LogLevel {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        const NAMES: [&str; 5] = ["error", "warn", "info", "debug", "trace"];
        let s = String::deserialize(d)?;
        s.parse()
            .map_err(|_| serde::de::Error::unknown_variant(&Shown(&s).to_string(), &NAMES))
    }
}

impl Value for LogLevel {
    type Out = Self;
    fn settle(self) -> Self {
        self
    }
    fn text(v: &Self) -> String {
        v.as_str().to_owned()
    }
}

/// An address and port to listen on (`127.0.0.1:9435`, `[::1]:9435`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Address(pub SocketAddr);

impl FromStr for Address {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        s.parse().map(Self).map_err(|_| {
            format!(
                "{:?}: an address and port (127.0.0.1:9435, [::1]:9435), or \"none\"",
                Shown(s)
            )
        })
    }
}

impl Value for Address {
    type Out = SocketAddr;
    fn settle(self) -> SocketAddr {
        self.0
    }
    fn text(v: &SocketAddr) -> String {
        v.to_string()
    }
}

/// A value, or `"none"`: nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Maybe<T>(pub Option<T>);

impl<T: Value + FromStr<Err: std::fmt::Display>> FromStr for Maybe<T> {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        if s == "none" {
            return Ok(Self(None));
        }
        s.parse().map(|v| Self(Some(v))).map_err(|e| e.to_string())
    }
}

impl<'de, T: Value + FromStr<Err: std::fmt::Display>> Deserialize<'de> for Maybe<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

impl<T: Value> Value for Maybe<T> {
    type Out = Option<T::Out>;
    fn settle(self) -> Self::Out {
        self.0.map(T::settle)
    }
    fn text(v: &Self::Out) -> String {
        v.as_ref().map_or_else(|| "none".to_owned(), T::text)
    }
}

/// A duration in the largest unit that divides it: `90d`, `6h`, `250ms` (below a millisecond,
/// as humantime writes it: `1ns`).
pub fn span_text(v: Duration) -> String {
    if !v.subsec_nanos().is_multiple_of(1_000_000) {
        return humantime::format_duration(v).to_string();
    }
    let ms = v.as_millis();
    for (unit, n) in [
        ("d", 86_400_000),
        ("h", 3_600_000),
        ("m", 60_000),
        ("s", 1000),
    ] {
        if ms >= n && ms.is_multiple_of(n) {
            return format!("{}{unit}", ms / n);
        }
    }
    format!("{ms}ms")
}

/// A size in the largest binary unit that divides it: `64MiB`.
pub fn size_text(b: u64) -> String {
    for (unit, n) in [
        ("TiB", 1u64 << 40),
        ("GiB", 1 << 30),
        ("MiB", 1 << 20),
        ("KiB", 1 << 10),
    ] {
        if b >= n && b.is_multiple_of(n) {
            return format!("{}{unit}", b / n);
        }
    }
    format!("{b}B")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_and_budgets_parse() {
        assert_eq!("always".parse::<StatsMode>(), Ok(StatsMode::Always));
        assert_eq!("budget".parse::<StatsMode>(), Ok(StatsMode::Budget));
        assert_eq!(
            "duty=200ms/1s".parse::<StatsMode>(),
            Ok(StatsMode::Duty(0.2))
        );
        assert!("duty=2s/1s".parse::<StatsMode>().is_err());
        assert!("sometimes".parse::<StatsMode>().is_err());
        assert_eq!("1%".parse::<Budget>(), Ok(Budget(0.01)));
        assert_eq!(" 0.5 %".parse::<Budget>(), Ok(Budget(0.005)));
        assert!("1".parse::<Budget>().is_err());
        assert!("150%".parse::<Budget>().is_err());
        assert_eq!(StatsMode::Budget.with_budget(0.02), Mode::Budget(0.02));
    }

    #[test]
    fn a_value_is_shown_escaped_and_cut() {
        assert_eq!(Shown("1s").to_string(), "1s");
        assert_eq!(format!("{:?}", Shown("1s")), "\"1s\"");
        assert_eq!(Shown("/a\0b\x1b[2J").to_string(), "/a\\0b\\u{1b}[2J");
        let long = "é".repeat(1000);
        let head = "é".repeat(SHOWN_CHARS);
        assert_eq!(Shown(&long).to_string(), format!("{head}… (2000 bytes)"));
        assert_eq!(
            format!("{:?}", Shown(&long)),
            format!("\"{head}\"… (2000 bytes)")
        );
    }

    #[test]
    fn none_is_nothing_and_prints_back() {
        let m: Maybe<PathBuf> = "none".parse().expect("none");
        assert_eq!(m.clone().settle(), None);
        assert_eq!(Maybe::<PathBuf>::text(&m.settle()), "none");
        let a: Maybe<Address> = "127.0.0.1:9435".parse().expect("address");
        assert_eq!(Maybe::<Address>::text(&a.settle()), "127.0.0.1:9435");
        assert!("localhost".parse::<Maybe<Address>>().is_err());
    }
}
