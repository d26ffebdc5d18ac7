//! Rate-limited log lines, as journald would have them: a failure that repeats ten times a
//! second is said once a minute, with how often it happened meanwhile.

use std::time::{Duration, Instant};

/// How often a repeating line is said.
pub const PERIOD: Duration = Duration::from_secs(60);

#[derive(Debug, Default)]
pub struct Quiet {
    /// Occurrences since the line was last said (this one included).
    count: u64,
    said: Option<Instant>,
}

impl Quiet {
    /// Notes one occurrence at `now`; `Some(n)` when the line is to be said now, `n` being the
    /// occurrences it covers (1 the first time).
    pub fn note(&mut self, now: Instant) -> Option<u64> {
        self.count += 1;
        if self
            .said
            .is_some_and(|t| now.saturating_duration_since(t) < PERIOD)
        {
            return None;
        }
        self.said = Some(now);
        Some(std::mem::take(&mut self.count))
    }

    /// Forgets the past: the next occurrence is said at once (the condition ended).
    pub fn reset(&mut self) {
        *self = Self::default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeats_are_said_once_a_period_with_their_count() {
        let t0 = Instant::now();
        let mut q = Quiet::default();
        assert_eq!(q.note(t0), Some(1));
        for i in 1..600 {
            assert_eq!(q.note(t0 + Duration::from_millis(100 * i)), None);
        }
        assert_eq!(q.note(t0 + PERIOD), Some(600));
        q.reset();
        assert_eq!(q.note(t0 + PERIOD + Duration::from_secs(1)), Some(1));
    }
}
