//! Time, each conversion written once.
//!
//! - A wall-clock instant is [`WallNs`]: nanoseconds since the Unix epoch as `i64`, as the wire
//!   and the store keep it. **Before the epoch it is negative** and converts back to the same
//!   instant (a device without a real-time clock may boot in 1970 and have its clock set
//!   later; a time set before 1970 is kept, not folded to the epoch). Beyond ±292 years it
//!   saturates.
//! - A boot-clock instant (`CLOCK_BOOTTIME`) is a `u64` of nanoseconds; the store keeps it at
//!   microsecond resolution: [`us_of_ns`] and [`ns_of_us`] are the two ways between them.
//! - A duration as a count of nanoseconds is [`duration_ns`], saturating at 584 years.

use std::time::{Duration, SystemTime};

use serde::Serialize;

const NS_PER_S: i64 = 1_000_000_000;

/// A wall-clock instant: nanoseconds since the Unix epoch, negative before it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct WallNs(i64);

impl WallNs {
    /// The epoch itself; on the wire, a time field of 0 means "unknown" where it says so.
    pub const EPOCH: Self = Self(0);

    pub const fn from_ns(ns: i64) -> Self {
        Self(ns)
    }

    /// Nanoseconds since the epoch.
    pub const fn ns(self) -> i64 {
        self.0
    }

    /// The instant `t`, saturating at ±292 years around the epoch.
    pub fn of(t: SystemTime) -> Self {
        Self(match t.duration_since(SystemTime::UNIX_EPOCH) {
            Ok(d) => i64::try_from(d.as_nanos()).unwrap_or(i64::MAX),
            Err(e) => i64::try_from(e.duration().as_nanos()).map_or(i64::MIN, |ns| -ns),
        })
    }

    /// [`WallNs::of`] a known time; the epoch (the wire's "unknown") for `None`.
    pub fn of_known(t: Option<SystemTime>) -> Self {
        t.map_or(Self::EPOCH, Self::of)
    }

    /// The instant as a `SystemTime` (before the epoch when negative).
    pub fn time(self) -> SystemTime {
        let d = Duration::from_nanos(self.0.unsigned_abs());
        if self.0 >= 0 {
            SystemTime::UNIX_EPOCH + d
        } else {
            SystemTime::UNIX_EPOCH - d
        }
    }

    /// Milliseconds since the epoch (what Prometheus stamps samples in), towards the past.
    pub const fn millis(self) -> i64 {
        self.0.div_euclid(1_000_000)
    }

    /// Whole seconds since the epoch, rounded towards the past (before the epoch too).
    pub const fn secs(self) -> i64 {
        self.0.div_euclid(NS_PER_S)
    }

    /// The start of second `s` since the epoch, saturating.
    pub const fn from_secs(s: i64) -> Self {
        Self(s.saturating_mul(NS_PER_S))
    }

    /// `d` later, saturating.
    #[must_use]
    pub fn plus(self, d: Duration) -> Self {
        Self(self.0.saturating_add(signed(duration_ns(d))))
    }

    /// `d` earlier, saturating.
    #[must_use]
    pub fn minus(self, d: Duration) -> Self {
        Self(self.0.saturating_sub(signed(duration_ns(d))))
    }
}

impl From<SystemTime> for WallNs {
    fn from(t: SystemTime) -> Self {
        Self::of(t)
    }
}

/// `d` as nanoseconds, saturating at 584 years.
pub fn duration_ns(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// Nanoseconds as seconds (what Prometheus and OpenMetrics count time in).
pub fn secs_of_ns(ns: f64) -> f64 {
    ns / 1e9
}

/// A non-negative count of nanoseconds as `i64`, saturating (292 years).
pub fn signed(ns: u64) -> i64 {
    i64::try_from(ns).unwrap_or(i64::MAX)
}

/// Nanoseconds of the boot clock at the store's microsecond resolution (rounded down).
pub const fn us_of_ns(ns: u64) -> u64 {
    ns / 1000
}

/// Microseconds of the boot clock as nanoseconds, saturating.
pub const fn ns_of_us(us: u64) -> u64 {
    us.saturating_mul(1000)
}

/// [`us_of_ns`] of a signed time (an offset, a time before a boot): towards zero.
pub const fn us_of_ns_signed(ns: i64) -> i64 {
    ns / 1000
}

/// [`ns_of_us`] of a signed time, saturating.
pub const fn ns_of_us_signed(us: i64) -> i64 {
    us.saturating_mul(1000)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_on_both_sides_of_the_epoch() {
        for ns in [0, 1, 1_767_225_600_123_456_789, -1, -86_400_000_000_000] {
            assert_eq!(WallNs::of(WallNs::from_ns(ns).time()).ns(), ns);
        }
        let before = SystemTime::UNIX_EPOCH - Duration::from_secs(5);
        assert_eq!(WallNs::of(before).ns(), -5_000_000_000);
        assert_eq!(WallNs::of_known(None), WallNs::EPOCH);
        // Seconds round towards the past on both sides.
        assert_eq!(WallNs::from_ns(1_999_999_999).secs(), 1);
        assert_eq!(WallNs::from_ns(-1).secs(), -1);
        assert_eq!(WallNs::from_secs(-1).ns(), -1_000_000_000);
        assert_eq!(WallNs::from_secs(i64::MAX).ns(), i64::MAX);
    }

    #[test]
    fn saturates_far_from_the_epoch() {
        let far = SystemTime::UNIX_EPOCH + Duration::from_secs(400 * 366 * 86_400);
        assert_eq!(WallNs::of(far).ns(), i64::MAX);
        assert_eq!(WallNs::from_ns(i64::MAX).plus(Duration::MAX).ns(), i64::MAX);
        assert_eq!(
            WallNs::from_ns(i64::MIN).minus(Duration::MAX).ns(),
            i64::MIN
        );
        assert_eq!(duration_ns(Duration::from_secs(2)), 2_000_000_000);
        assert_eq!(duration_ns(Duration::MAX), u64::MAX);
        assert_eq!(signed(u64::MAX), i64::MAX);
    }

    #[test]
    fn boot_clock_resolution() {
        assert_eq!(us_of_ns(1_999), 1);
        assert_eq!(ns_of_us(2), 2_000);
        assert_eq!(ns_of_us(u64::MAX), u64::MAX);
        assert_eq!(us_of_ns_signed(-1_999), -1);
        assert_eq!(ns_of_us_signed(i64::MIN), i64::MIN);
    }
}
