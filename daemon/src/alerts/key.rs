//! One alert's state machine, for one (rule, program): quiet → pending (above the threshold,
//! not yet for long enough) → raised → quiet again (at or below the clear level).

use std::time::{Duration, SystemTime};

use super::rules::Rule;

/// A key that raised again within this long of its previous raise must hold twice as long as
/// the time before; after it, the key starts afresh.
pub const FLAP_MEMORY: Duration = Duration::from_secs(3600);
/// The longest a backed-off raise waits (unless the rule's own `for` is longer).
pub const MAX_BACKOFF: Duration = Duration::from_secs(3600);

/// When a pass was taken.
#[derive(Debug, Clone, Copy)]
pub struct Moment {
    /// Monotonic: what `for` is measured on.
    pub mono: Duration,
    pub wall: SystemTime,
    /// The interval the pass's values cover (0 on the first pass).
    pub elapsed: Duration,
}

/// Raised or cleared: the API's words.
pub use ebpfstat_dbus::AlertState as State;

#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum Phase {
    Quiet,
    Pending { since: Duration },
    Raised { since: SystemTime },
}

/// Small on purpose: there may be one per (rule, program) raised.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Key {
    pub phase: Phase,
    /// The newest value.
    pub value: f64,
    /// Raises within [`FLAP_MEMORY`] of each other, and the newest one.
    raises: u32,
    last_raise: Option<Duration>,
}

impl Key {
    pub fn new() -> Self {
        Self {
            phase: Phase::Quiet,
            value: 0.0,
            raises: 0,
            last_raise: None,
        }
    }

    /// Raised before a restart: raised still, from then; counted as one raise.
    pub fn restored(value: f64, since: SystemTime, now: &Moment) -> Self {
        Self {
            phase: Phase::Raised { since },
            value,
            raises: 1,
            last_raise: Some(now.mono),
        }
    }

    pub fn raised_since(&self) -> Option<SystemTime> {
        match self.phase {
            Phase::Raised { since } => Some(since),
            _ => None,
        }
    }

    fn recent(&self, now: &Moment) -> bool {
        self.last_raise
            .is_some_and(|t| now.mono.saturating_sub(t) < FLAP_MEMORY)
    }

    /// How long the value must stay above the threshold: the rule's `for`, doubled for each
    /// raise within the flap memory (at least one interval each), so a program flapping across
    /// the threshold raises at most about log2(T / for) times in T.
    fn hold(&self, rule: &Rule, now: &Moment) -> Duration {
        if !self.recent(now) || self.raises == 0 {
            return rule.hold;
        }
        let base = rule.hold.max(now.elapsed).max(Duration::from_millis(100));
        base.saturating_mul(1u32 << self.raises.min(16))
            .min(MAX_BACKOFF.max(rule.hold))
    }

    /// Takes this pass's value; says whether the alert was raised or cleared, and since when
    /// it was raised.
    pub fn step(&mut self, rule: &Rule, value: f64, now: &Moment) -> Option<(State, SystemTime)> {
        self.value = value;
        match self.phase {
            Phase::Quiet | Phase::Pending { .. } if value <= rule.threshold => {
                self.phase = Phase::Quiet;
                None
            }
            Phase::Quiet | Phase::Pending { .. } => {
                // The value covers the interval before the pass: it has been above since then.
                let since = match self.phase {
                    Phase::Pending { since } => since,
                    _ => now.mono.saturating_sub(now.elapsed),
                };
                self.phase = Phase::Pending { since };
                // Passes land on their slots give or take a little: half an interval of slack
                // keeps `for = "3s"` at 1 s from waiting a fourth pass when the third is early.
                let held = now.mono.saturating_sub(since) + now.elapsed / 2;
                if held < self.hold(rule, now) {
                    return None;
                }
                self.raises = if self.recent(now) { self.raises + 1 } else { 1 };
                self.last_raise = Some(now.mono);
                self.phase = Phase::Raised { since: now.wall };
                Some((State::Raised, now.wall))
            }
            Phase::Raised { since } if value <= rule.clear => {
                self.phase = Phase::Quiet;
                Some((State::Cleared, since))
            }
            Phase::Raised { .. } => None,
        }
    }

    /// Nothing worth keeping: quiet, and no raise it must remember.
    pub fn idle(&self, now: &Moment) -> bool {
        self.phase == Phase::Quiet && !self.recent(now)
    }
}

/// Puts `key` at its place in `keys` (by rule index), in place of one there (a restored raise
/// wins over the pending state the first pass may have left).
pub fn put_key(keys: &mut Vec<(u16, Key)>, i: u16, key: Key) {
    match keys.binary_search_by_key(&i, |k| k.0) {
        Ok(at) => keys[at].1 = key,
        Err(at) => keys.insert(at, (i, key)),
    }
}

/// Steps the keys of the covered rules in `rules` (ascending, as `keys`) with `value_of`'s
/// value for each; a key is made only when a value is above its rule's threshold. A rule
/// without a value this pass (`None`: no evidence) leaves its key as it is.
pub fn step_keys(
    rules: &[Rule],
    covered: &[u16],
    keys: &mut Vec<(u16, Key)>,
    mut value_of: impl FnMut(u16, &Rule) -> Option<f64>,
    now: &Moment,
    mut said: impl FnMut(&Rule, f64, State, SystemTime),
) {
    let mut k = 0;
    for &i in covered {
        let rule = &rules[usize::from(i)];
        let Some(value) = value_of(i, rule) else {
            continue;
        };
        while keys.get(k).is_some_and(|(j, _)| *j < i) {
            k += 1;
        }
        if keys.get(k).is_none_or(|(j, _)| *j != i) {
            if value <= rule.threshold {
                continue;
            }
            keys.insert(k, (i, Key::new()));
        }
        let key = &mut keys[k].1;
        if let Some((state, since)) = key.step(rule, value, now) {
            said(rule, key.value, state, since);
        }
        k += 1;
    }
    keys.retain(|(_, key)| !key.idle(now));
}
