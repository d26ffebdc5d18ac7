//! The values settings take, as the file and the flags write them (durations, sizes, shares,
//! levels), and how the daemon writes them back.

use std::time::Duration;

use serde::{Deserialize, Deserializer};

use super::Bus;
use crate::observer::{Mode, parse_budget};
use crate::units::parse_bytes;

/// A duration written as text (`"1s"`, `"250ms"`, `"6h"`), longer than zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span(pub Duration);

/// Shared by the file and the flags, so both accept and reject the same text.
impl std::str::FromStr for Span {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let v = humantime::parse_duration(s).map_err(|e| {
            format!("{s:?} is not a duration ({e}); write e.g. \"1s\", \"250ms\", \"6h\", \"7d\"")
        })?;
        if v.is_zero() {
            return Err("a duration of zero is not allowed".into());
        }
        Ok(Self(v))
    }
}

impl std::fmt::Display for Span {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&span_text(self.0))
    }
}

impl<'de> Deserialize<'de> for Span {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// A size written as text (`"64MiB"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Size(pub u64);

impl<'de> Deserialize<'de> for Size {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        parse_bytes(&s).map(Size).map_err(serde::de::Error::custom)
    }
}

impl<'de> Deserialize<'de> for Bus {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// `always`, `budget` or `duty=W/P`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StatsMode(pub Mode);

impl<'de> Deserialize<'de> for StatsMode {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map(StatsMode).map_err(serde::de::Error::custom)
    }
}

/// A share of one core written as a percentage (`"1%"`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Budget(pub f64);

impl<'de> Deserialize<'de> for Budget {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        parse_budget(&s)
            .map(Budget)
            .map_err(serde::de::Error::custom)
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
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

    /// The one spelling of each level (serde's `lowercase` derives the same for the file).
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

/// For the `--log-level` flag.
impl std::str::FromStr for LogLevel {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|l| l.as_str() == s)
            .ok_or_else(|| {
                let names: Vec<&str> = Self::ALL.iter().map(|l| l.as_str()).collect();
                format!("{s:?}: one of {}", names.join(", "))
            })
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
