//! The layout of the three tiers, in one place: names, tables, widths and which tier feeds
//! which. Maintenance and queries both build on it.

use std::time::Duration;

use serde::Serialize;

const MINUTE_US: u64 = 60_000_000;
const HOUR_US: u64 = 3_600_000_000;
const DAY_US: u64 = 86_400_000_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Tier {
    Raw,
    Min1,
    Hour1,
}

#[derive(Debug, thiserror::Error)]
#[error("unknown tier {0:?} (one of raw, 1m, 1h)")]
pub struct UnknownTier(pub String);

impl Tier {
    /// Finest first.
    pub const ALL: [Tier; 3] = [Self::Raw, Self::Min1, Self::Hour1];

    /// Position in [`Tier::ALL`].
    pub(crate) const fn index(self) -> usize {
        match self {
            Self::Raw => 0,
            Self::Min1 => 1,
            Self::Hour1 => 2,
        }
    }

    /// Name on the wire and in status.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Raw => "raw",
            Self::Min1 => "1m",
            Self::Hour1 => "1h",
        }
    }

    /// Width of one stored value (raw: one tick, taken as zero).
    pub fn resolution(self) -> Duration {
        match self {
            Self::Raw => Duration::ZERO,
            Self::Min1 => Duration::from_secs(60),
            Self::Hour1 => Duration::from_secs(3600),
        }
    }

    /// The table of the tier's rows (raw: its segments; tick time stamps are in `ticks`).
    pub(crate) const fn table(self) -> &'static str {
        match self {
            Self::Raw => "raw",
            Self::Min1 => "min1",
            Self::Hour1 => "hour1",
        }
    }

    /// Boot time one rollup chunk spans, µs. Raw rows are flush windows, not time chunks; 1
    /// (as for its buckets) keeps arithmetic on it defined.
    pub(crate) const fn chunk_us(self) -> u64 {
        match self {
            Self::Raw => 1,
            Self::Min1 => HOUR_US,
            Self::Hour1 => DAY_US,
        }
    }

    /// Boot time one bucket spans, µs (raw: 1, so every tick is a bucket of its own).
    pub(crate) const fn bucket_us(self) -> u64 {
        match self {
            Self::Raw => 1,
            Self::Min1 => MINUTE_US,
            Self::Hour1 => HOUR_US,
        }
    }

    /// The tier a rollup tier is derived from.
    pub(crate) const fn finer(self) -> Option<Tier> {
        match self {
            Self::Raw => None,
            Self::Min1 => Some(Self::Raw),
            Self::Hour1 => Some(Self::Min1),
        }
    }
}

/// 1-minute chunks (hours) in one 1-hour chunk (a day).
pub(crate) const MIN1_PER_HOUR1: i64 = {
    let n = Tier::Hour1.chunk_us() / Tier::Min1.chunk_us();
    assert!(n <= i64::MAX.cast_unsigned());
    n.cast_signed()
};

/// 1-minute buckets in one 1-hour bucket.
pub(crate) const MIN1_BUCKETS_PER_HOUR1: i64 = {
    let n = Tier::Hour1.bucket_us() / Tier::Min1.bucket_us();
    assert!(n <= i64::MAX.cast_unsigned());
    n.cast_signed()
};

impl std::str::FromStr for Tier {
    type Err = UnknownTier;
    fn from_str(s: &str) -> Result<Self, UnknownTier> {
        Self::ALL
            .into_iter()
            .find(|t| t.as_str() == s)
            .ok_or_else(|| UnknownTier(s.to_owned()))
    }
}

impl Serialize for Tier {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}
