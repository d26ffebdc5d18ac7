//! Pacing: passes may take at most the sampler budget's share of the interval (a share of one
//! core, since a pass is the sampling thread's work). What a pass takes is the sampling
//! thread's CPU time, not its wall time: on a busy host a pass waits for a core longer while
//! its work stays the same, and stretching the interval then would only sample less of a host
//! that is busy for other reasons. When passes take more, as with thousands of programs on a
//! slow device, the interval stretches to the smallest whole multiple of the configured one
//! that fits, and it comes back when passes are quick again. Decisions go by the mean of a
//! whole window of passes, so a rescan pass counts at its share, not as a spike; meanwhile a
//! pass that overruns its slot only skips slots (they are counted as late). The wall time is
//! kept beside it, for status.

use std::collections::VecDeque;
use std::time::Duration;

/// Passes the mean is taken over.
const WINDOW: usize = 16;
/// Come back only when passes would fit with this much room, so the interval does not flap.
const RETURN_ROOM: f64 = 0.75;
/// The longest stretch: an hour at 1 s, ten hours at the longest interval.
const MAX_FACTOR: u32 = 3600;

/// What one pass took: the sampling thread's CPU time (what the budget is about) and the wall
/// time from its start to its end (longer on a busy host).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PassTime {
    pub cpu: Duration,
    pub wall: Duration,
}

/// A change of pace, for the log and status.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Change {
    pub from: u32,
    pub to: u32,
    /// Mean pass time that decided it (its CPU time decided).
    pub mean_pass: PassTime,
}

#[derive(Debug)]
pub struct Pace {
    factor: u32,
    recent: VecDeque<PassTime>,
    /// The mean that decided the last change, shown until a window at the new pace is full.
    decided_on: PassTime,
    first_seen: bool,
}

impl Default for Pace {
    fn default() -> Self {
        Self {
            factor: 1,
            recent: VecDeque::with_capacity(WINDOW),
            decided_on: PassTime::default(),
            first_seen: false,
        }
    }
}

impl Pace {
    /// The configured interval times this.
    pub fn factor(&self) -> u32 {
        self.factor
    }

    /// Mean time of the recent passes.
    pub fn mean_pass(&self) -> PassTime {
        match u32::try_from(self.recent.len()) {
            Ok(0) | Err(_) => self.decided_on,
            Ok(n) => PassTime {
                cpu: self.recent.iter().map(|p| p.cpu).sum::<Duration>() / n,
                wall: self.recent.iter().map(|p| p.wall).sum::<Duration>() / n,
            },
        }
    }

    /// Starts over (a new interval or budget).
    pub fn reset(&mut self) {
        *self = Self::default();
    }

    /// Takes what a pass took; says when the pace changes. The first pass reads every
    /// program's metadata once, so it says nothing of the passes after it.
    pub fn after_pass(
        &mut self,
        took: PassTime,
        interval: Duration,
        budget: f64,
    ) -> Option<Change> {
        if !std::mem::replace(&mut self.first_seen, true) {
            return None;
        }
        if self.recent.len() == WINDOW {
            self.recent.pop_front();
        }
        self.recent.push_back(took);
        if self.recent.len() < WINDOW {
            return None;
        }
        let mean_pass = self.mean_pass();
        let mean = mean_pass.cpu;
        let allowed = interval.mul_f64(budget);
        let fits = |factor: u32, room: f64| mean <= allowed.mul_f64(room) * factor;
        let need = needed_factor(mean, allowed);
        let to = if need > self.factor {
            // Slower than allowed: stretch as far as needed.
            need
        } else if self.factor > 1 && fits(self.factor - 1, RETURN_ROOM) {
            // Quick again over a whole window: come back as far as fits with room.
            (1..self.factor)
                .find(|&f| fits(f, RETURN_ROOM))
                .unwrap_or(self.factor)
        } else {
            self.factor
        };
        if to == self.factor {
            return None;
        }
        let change = Change {
            from: self.factor,
            to,
            mean_pass,
        };
        self.factor = to;
        self.decided_on = mean_pass;
        // The new pace is judged on passes taken at it.
        self.recent.clear();
        Some(change)
    }
}

/// The smallest whole factor with which `mean` fits in `allowed` times it.
fn needed_factor(mean: Duration, allowed: Duration) -> u32 {
    if allowed.is_zero() {
        return MAX_FACTOR;
    }
    let ratio = mean.as_secs_f64() / allowed.as_secs_f64();
    if ratio <= 1.0 {
        return 1;
    }
    // `ratio` is finite and above 1 here; clamped before the cast.
    #[expect(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        reason = "a finite value clamped to 1..=MAX_FACTOR"
    )]
    let f = ratio.ceil().min(f64::from(MAX_FACTOR)) as u32;
    f
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEC: Duration = Duration::from_secs(1);

    /// A pass of `n` ms, CPU and wall alike.
    fn ms(n: u64) -> PassTime {
        let d = Duration::from_millis(n);
        PassTime { cpu: d, wall: d }
    }

    #[test]
    fn quick_passes_keep_the_interval() {
        let mut p = Pace::default();
        for _ in 0..100 {
            assert_eq!(p.after_pass(ms(100), SEC, 0.5), None);
        }
        assert_eq!(p.factor(), 1);
    }

    #[test]
    fn the_first_pass_decides_nothing() {
        let mut p = Pace::default();
        assert_eq!(p.after_pass(ms(5000), SEC, 0.5), None);
        assert_eq!(p.after_pass(ms(100), SEC, 0.5), None);
    }

    /// The changes over `n` passes of `took` each.
    fn passes(p: &mut Pace, n: usize, took: PassTime) -> Vec<Change> {
        (0..n)
            .filter_map(|_| p.after_pass(took, SEC, 0.5))
            .collect()
    }

    #[test]
    fn slow_passes_stretch_to_the_smallest_multiple_that_fits() {
        let mut p = Pace::default();
        p.after_pass(ms(1), SEC, 0.5);
        // 1.2 s passes with half of 1 s allowed: 3 s intervals (1.5 s allowed), after a window.
        assert_eq!(passes(&mut p, WINDOW - 1, ms(1200)), []);
        let c = p.after_pass(ms(1200), SEC, 0.5).expect("a change");
        assert_eq!((c.from, c.to, c.mean_pass), (1, 3, ms(1200)));
        assert_eq!(p.factor(), 3);
        assert_eq!(
            p.mean_pass(),
            ms(1200),
            "shown until passes at the new pace fill a window"
        );
        for _ in 0..40 {
            assert_eq!(p.after_pass(ms(1200), SEC, 0.5), None);
        }
    }

    #[test]
    fn a_rescan_now_and_then_counts_at_its_share() {
        let mut p = Pace::default();
        p.after_pass(ms(1), SEC, 0.5);
        // 300 ms passes and one of 2 s in 16: a mean of 406 ms, under the 500 ms allowed.
        for i in 0..64 {
            let took = if i % 16 == 15 { ms(2000) } else { ms(300) };
            assert_eq!(p.after_pass(took, SEC, 0.5), None, "pass {i}");
        }
    }

    #[test]
    fn quick_passes_bring_it_back_after_a_window_with_room() {
        let mut p = Pace::default();
        p.after_pass(ms(1), SEC, 0.5);
        assert_eq!(passes(&mut p, WINDOW, ms(2400)).len(), 1);
        assert_eq!(p.factor(), 5);
        // 700 ms: factor 2 fits with room (750 ms), factor 1 does not.
        let changes = passes(&mut p, WINDOW, ms(700));
        assert_eq!(changes.len(), 1, "{changes:?}");
        assert_eq!((changes[0].from, changes[0].to), (5, 2));
        let changes = passes(&mut p, WINDOW, ms(100));
        assert_eq!(changes.last().map(|c| c.to), Some(1));
        assert_eq!(p.factor(), 1);
    }

    #[test]
    fn absurd_passes_stop_at_the_longest_stretch() {
        let mut p = Pace::default();
        p.after_pass(ms(1), SEC, 0.5);
        let d = Duration::from_secs(1_000_000);
        passes(&mut p, WINDOW, PassTime { cpu: d, wall: d });
        assert_eq!(p.factor(), MAX_FACTOR);
        assert_eq!(needed_factor(ms(1).cpu, Duration::ZERO), MAX_FACTOR);
    }

    #[test]
    fn a_busy_host_stretches_the_wall_time_not_the_interval() {
        let mut p = Pace::default();
        p.after_pass(ms(1), SEC, 0.5);
        // Passes wait 2 s for a core but work 100 ms: the budget is about the work.
        let waited = PassTime {
            cpu: Duration::from_millis(100),
            wall: Duration::from_secs(2),
        };
        assert_eq!(passes(&mut p, 3 * WINDOW, waited), []);
        assert_eq!(p.factor(), 1);
        assert_eq!(p.mean_pass(), waited, "both are kept, for status");
    }
}
