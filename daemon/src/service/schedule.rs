//! The sampling schedule: a pass at every slot `start + k × interval`, in checked arithmetic
//! so that every interval works for any uptime (a 1 ms interval passes `u32::MAX` slots after
//! 49.7 days).

use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy)]
pub(super) struct Slots {
    interval: Duration,
}

impl Slots {
    pub fn new(interval: Duration) -> Self {
        Self {
            interval: interval.max(Duration::from_nanos(1)),
        }
    }

    /// How long after the start slot `k` is, saturating.
    pub fn offset(&self, k: u64) -> Duration {
        let ns = self.interval.as_nanos().saturating_mul(u128::from(k));
        match (
            u64::try_from(ns / 1_000_000_000),
            u32::try_from(ns % 1_000_000_000),
        ) {
            (Ok(secs), Ok(nanos)) => Duration::new(secs, nanos),
            _ => Duration::MAX,
        }
    }

    /// When slot `k` is due; `None` beyond what the clock can hold (the slot never comes).
    pub fn due(&self, start: Instant, k: u64) -> Option<Instant> {
        start.checked_add(self.offset(k))
    }

    /// The first slot strictly after `elapsed` since the start: slots missed by a slow pass
    /// are skipped.
    pub fn next_after(&self, elapsed: Duration) -> u64 {
        let k = elapsed.as_nanos() / self.interval.as_nanos();
        u64::try_from(k).unwrap_or(u64::MAX).saturating_add(1)
    }

    /// Whether a pass starting `elapsed` after the start is late for slot `k`: by more than
    /// half an interval.
    pub fn is_late(&self, k: u64, elapsed: Duration) -> bool {
        elapsed > self.offset(k).saturating_add(self.interval / 2)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const YEAR: Duration = Duration::from_secs(365 * 86_400);

    /// The next slot after `elapsed` comes after it, and at most one interval after it.
    fn check_next(slots: Slots, interval: Duration, elapsed: Duration) -> u64 {
        let k = slots.next_after(elapsed);
        let at = slots.offset(k);
        assert!(at > elapsed, "slot {k} at {at:?} is not after {elapsed:?}");
        assert!(
            at - elapsed <= interval,
            "slot {k} at {at:?} skips past {elapsed:?}"
        );
        k
    }

    #[test]
    fn a_one_millisecond_schedule_keeps_sleeping_after_years() {
        let interval = Duration::from_millis(1);
        let slots = Slots::new(interval);
        // 49.7 days is where a 32-bit slot number wrapped and the loop stopped sleeping.
        let wrap = Duration::from_millis(u64::from(u32::MAX));
        for elapsed in [
            Duration::ZERO,
            wrap - Duration::from_micros(1),
            wrap + Duration::from_micros(500),
            10 * YEAR + Duration::from_nanos(123),
            100 * YEAR,
        ] {
            let k = check_next(slots, interval, elapsed);
            if elapsed > wrap {
                assert!(k > u64::from(u32::MAX), "slot {k}");
            }
        }
        let start = Instant::now();
        let k = slots.next_after(100 * YEAR);
        let due = slots.due(start, k).expect("a century fits the clock");
        assert!(due > start + 100 * YEAR);
    }

    #[test]
    fn every_accepted_interval_schedules() {
        for interval in [
            Duration::from_nanos(1),
            Duration::from_millis(250),
            Duration::from_secs(1),
            Duration::from_secs(7 * 86_400),
            100 * YEAR,
        ] {
            let slots = Slots::new(interval);
            assert_eq!(check_next(slots, interval, Duration::ZERO), 1);
            check_next(slots, interval, 3 * YEAR + Duration::from_nanos(7));
        }
        // An interval so long that its second slot is beyond the clock: saturates, never
        // panics, and that slot never comes.
        let slots = Slots::new(Duration::MAX);
        assert_eq!(slots.offset(2), Duration::MAX);
        assert_eq!(slots.due(Instant::now(), 2), None);
    }

    #[test]
    fn late_means_half_an_interval_past_the_slot() {
        let slots = Slots::new(Duration::from_secs(1));
        assert!(!slots.is_late(3, Duration::from_millis(3400)));
        assert!(slots.is_late(3, Duration::from_millis(3600)));
        // The last slot there is, on time.
        assert!(!slots.is_late(u64::MAX, slots.offset(u64::MAX)));
    }
}
