//! Times on the wire: nanoseconds since the Unix epoch as `i64` (negative before it; 0 means
//! "unknown" where a field says so). The one conversion, for the daemon and its clients.

use std::time::{Duration, SystemTime};

/// Nanoseconds since the epoch of `t`, negative before it; saturating at ±292 years.
pub fn to_ns(t: SystemTime) -> i64 {
    match t.duration_since(SystemTime::UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_nanos()).unwrap_or(i64::MAX),
        Err(e) => i64::try_from(e.duration().as_nanos()).map_or(i64::MIN, |ns| -ns),
    }
}

/// The time `ns` nanoseconds after the epoch (before it when negative).
pub fn from_ns(ns: i64) -> SystemTime {
    let d = Duration::from_nanos(ns.unsigned_abs());
    if ns >= 0 {
        SystemTime::UNIX_EPOCH + d
    } else {
        SystemTime::UNIX_EPOCH - d
    }
}

/// A duration in nanoseconds as the wire's `t`, saturating (584 years).
pub fn duration_ns(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_both_sides_of_the_epoch() {
        for ns in [0, 1, 1_767_225_600_123_456_789, -1, -86_400_000_000_000] {
            assert_eq!(to_ns(from_ns(ns)), ns);
        }
        let before = SystemTime::UNIX_EPOCH - Duration::from_secs(5);
        assert_eq!(to_ns(before), -5_000_000_000);
        assert_eq!(duration_ns(Duration::from_secs(2)), 2_000_000_000);
        assert_eq!(duration_ns(Duration::MAX), u64::MAX);
    }
}
