//! Rules judged against each pass: which programs each rule covers (cached per program until
//! its holders change), and one small state machine per (rule, program): quiet → pending
//! (above the threshold, not yet for long enough) → raised → cleared (at or below the clear
//! level). Pure: it is given the pass's values and the time, and returns what changed.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use super::rules::{Metric, Rule};
use crate::glob::glob;
use crate::observer;
use crate::sampler::model::ProgramContext;

/// A key that raised again within this long of its previous raise must hold twice as long as
/// the time before (see [`Evaluator`]); after it, the key starts afresh.
pub const FLAP_MEMORY: Duration = Duration::from_secs(3600);
/// The longest a backed-off raise waits (unless the rule's own `for` is longer).
pub const MAX_BACKOFF: Duration = Duration::from_secs(3600);

/// One program as a pass saw it.
#[derive(Debug, Clone)]
pub struct Subject<'a> {
    pub id: u32,
    pub name: &'a str,
    pub full_name: &'a str,
    pub prog_type: &'a str,
    pub load_time: SystemTime,
    pub context: &'a Arc<ProgramContext>,
    /// The last interval's values; `None` on the pass it was first seen (no interval yet).
    pub interval: Option<Rates>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rates {
    pub cpu_pct: f64,
    /// 0 when it did not run.
    pub avg_ns: f64,
    pub runs_per_sec: f64,
}

/// When a pass was taken.
#[derive(Debug, Clone, Copy)]
pub struct Moment {
    /// Monotonic: what `for` is measured on.
    pub mono: Duration,
    pub wall: SystemTime,
    /// The interval the pass's values cover (0 on the first pass).
    pub elapsed: Duration,
    /// Whether the pass read every program: only then are missing ones unloaded.
    pub complete: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Raised,
    Cleared,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Raised => "raised",
            Self::Cleared => "cleared",
        }
    }
}

/// Why an alert was cleared, when not because its value came back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Why {
    Crossed,
    Unloaded,
    RuleChanged,
    /// Raised before a restart, and the program or rule is not there any more.
    GoneAfterRestart,
}

/// An alert raised or cleared, or (in [`Evaluator::active`]) one raised now.
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    pub rule: String,
    pub metric: Metric,
    pub state: State,
    pub why: Why,
    /// 0 for a host-wide rule.
    pub prog_id: u32,
    /// The full name; empty for a host-wide rule.
    pub program: String,
    pub prog_type: String,
    pub value: f64,
    pub threshold: f64,
    pub clear: f64,
    /// When it was raised.
    pub since: SystemTime,
    pub time: SystemTime,
}

/// An alert that was raised when the daemon stopped, as the store kept it.
#[derive(Debug, Clone, PartialEq)]
pub struct Restored {
    pub rule: String,
    pub prog_id: u32,
    pub program: String,
    pub prog_type: String,
    pub value: f64,
    pub since: SystemTime,
}

#[derive(Debug, Clone, Copy)]
enum Phase {
    Quiet,
    Pending { since: Duration },
    Raised { since: SystemTime },
}

#[derive(Debug)]
struct Key {
    phase: Phase,
    program: String,
    prog_type: String,
    value: f64,
    /// Raises within [`FLAP_MEMORY`] of each other, and the newest one.
    raises: u32,
    last_raise: Option<Duration>,
    seen: u64,
}

impl Key {
    fn new(program: &str, prog_type: &str) -> Self {
        Self {
            phase: Phase::Quiet,
            program: program.to_owned(),
            prog_type: prog_type.to_owned(),
            value: 0.0,
            raises: 0,
            last_raise: None,
            seen: 0,
        }
    }

    /// How long the value must stay above the threshold: the rule's `for`, doubled for each
    /// raise within the flap memory (at least one interval each), so a program flapping across
    /// the threshold raises at most about log2(T / for) times in T.
    fn hold(&self, rule: &Rule, now: &Moment) -> Duration {
        let recent = self
            .last_raise
            .is_some_and(|t| now.mono.saturating_sub(t) < FLAP_MEMORY);
        if !recent || self.raises == 0 {
            return rule.hold;
        }
        let base = rule.hold.max(now.elapsed).max(Duration::from_millis(100));
        let factor = 1u32 << self.raises.min(16);
        base.saturating_mul(factor).min(MAX_BACKOFF.max(rule.hold))
    }

    /// Takes this pass's value; says whether the alert was raised or cleared.
    fn step(&mut self, rule: &Rule, value: f64, now: &Moment) -> Option<State> {
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
                if now.mono.saturating_sub(since) < self.hold(rule, now) {
                    return None;
                }
                let recent = self
                    .last_raise
                    .is_some_and(|t| now.mono.saturating_sub(t) < FLAP_MEMORY);
                self.raises = if recent { self.raises + 1 } else { 1 };
                self.last_raise = Some(now.mono);
                self.phase = Phase::Raised { since: now.wall };
                Some(State::Raised)
            }
            Phase::Raised { .. } if value <= rule.clear => {
                self.phase = Phase::Quiet;
                Some(State::Cleared)
            }
            Phase::Raised { .. } => None,
        }
    }

    /// Nothing worth keeping: quiet, and no raise it must remember.
    fn idle(&self, now: &Moment) -> bool {
        matches!(self.phase, Phase::Quiet)
            && self
                .last_raise
                .is_none_or(|t| now.mono.saturating_sub(t) >= FLAP_MEMORY)
    }
}

/// The rules a program falls under, until its holders change.
#[derive(Debug)]
struct Covered {
    context: Arc<ProgramContext>,
    rules: Vec<u16>,
    seen: u64,
}

/// Judges every rule on each pass. Costs one glob match per (rule, program) when a program
/// appears or its holders change, then one comparison per (covered rule, program) a pass.
#[derive(Debug, Default)]
pub struct Evaluator {
    rules: Vec<Rule>,
    keys: HashMap<(u16, u32), Key>,
    covered: HashMap<u32, Covered>,
    restored: Vec<Restored>,
    passes: u64,
}

fn covers(rule: &Rule, s: &Subject<'_>) -> bool {
    if rule.metric == Metric::StatsOverheadPct || observer::is_own(s.name, s.prog_type) {
        return false;
    }
    rule.program
        .as_deref()
        .is_none_or(|p| glob(p, s.full_name) || glob(p, s.name))
        && rule.prog_type.as_deref().is_none_or(|t| t == s.prog_type)
        && rule.unit.as_deref().is_none_or(|u| {
            s.context
                .owners
                .iter()
                .any(|o| o.unit.as_deref().is_some_and(|ou| glob(u, ou)))
        })
}

impl Evaluator {
    pub fn new(rules: Vec<Rule>, restored: Vec<Restored>) -> Self {
        Self {
            rules,
            restored,
            ..Self::default()
        }
    }

    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// Alerts from before a restart wait for their first pass.
    pub fn restoring(&self) -> bool {
        !self.restored.is_empty()
    }

    /// Nothing to judge: no rule, and nothing raised or restored.
    pub fn idle(&self) -> bool {
        self.rules.is_empty() && self.restored.is_empty() && self.keys.is_empty()
    }

    /// New rules (a reload). Alerts of rules kept unchanged carry on; those of rules changed or
    /// removed are cleared.
    pub fn set_rules(&mut self, rules: Vec<Rule>, now: &Moment) -> Vec<Change> {
        let mut changes = Vec::new();
        let old = std::mem::take(&mut self.keys);
        for ((i, id), key) in old {
            let Some(rule) = self.rules.get(usize::from(i)) else {
                continue;
            };
            match rules.iter().position(|r| r == rule).map(u16::try_from) {
                Some(Ok(j)) => {
                    self.keys.insert((j, id), key);
                }
                _ => {
                    if let Phase::Raised { since } = key.phase {
                        changes.push(change(
                            rule,
                            id,
                            &key,
                            State::Cleared,
                            Why::RuleChanged,
                            since,
                            now,
                        ));
                    }
                }
            }
        }
        self.rules = rules;
        self.covered.clear();
        changes
    }

    /// Judges one pass; returns the alerts raised and cleared by it.
    pub fn evaluate(
        &mut self,
        programs: &[Subject<'_>],
        stats_overhead_pct: Option<f64>,
        now: &Moment,
    ) -> Vec<Change> {
        self.passes += 1;
        let seq = self.passes;
        let mut changes = Vec::new();
        let mut totals: HashMap<u16, f64> = HashMap::new();
        self.restore(programs, now, &mut changes);
        for s in programs {
            let covered = self.covered.entry(s.id).or_insert_with(|| Covered {
                context: Arc::clone(s.context),
                rules: Vec::new(),
                seen: 0,
            });
            if covered.seen == 0 || !Arc::ptr_eq(&covered.context, s.context) {
                covered.context = Arc::clone(s.context);
                covered.rules = (0..self.rules.len())
                    .filter(|&i| covers(&self.rules[i], s))
                    .filter_map(|i| u16::try_from(i).ok())
                    .collect();
            }
            covered.seen = seq;
            let Some(rates) = s.interval else {
                // Still loaded: its alerts stay as they are.
                for &i in &covered.rules {
                    if let Some(key) = self.keys.get_mut(&(i, s.id)) {
                        key.seen = seq;
                    }
                }
                continue;
            };
            for &i in &covered.rules {
                let rule = &self.rules[usize::from(i)];
                let value = match rule.metric {
                    Metric::CpuPct => rates.cpu_pct,
                    Metric::AvgNs => rates.avg_ns,
                    Metric::RunsPerSec => rates.runs_per_sec,
                    Metric::MapMemory => s.context.map_memory.total as f64,
                    Metric::TotalCpuPct => {
                        *totals.entry(i).or_default() += rates.cpu_pct;
                        continue;
                    }
                    Metric::StatsOverheadPct => continue,
                };
                let key = self
                    .keys
                    .entry((i, s.id))
                    .or_insert_with(|| Key::new(s.full_name, s.prog_type));
                key.seen = seq;
                let before = key.phase;
                if let Some(state) = key.step(rule, value, now) {
                    let since = raised_since(before, key.phase, now);
                    changes.push(change(rule, s.id, key, state, Why::Crossed, since, now));
                }
            }
        }
        if now.elapsed > Duration::ZERO {
            self.host_wide(&totals, stats_overhead_pct, seq, now, &mut changes);
        }
        self.forget(seq, now, &mut changes);
        changes
    }

    fn host_wide(
        &mut self,
        totals: &HashMap<u16, f64>,
        stats_overhead_pct: Option<f64>,
        seq: u64,
        now: &Moment,
        changes: &mut Vec<Change>,
    ) {
        for (i, rule) in self.rules.iter().enumerate() {
            let Ok(i) = u16::try_from(i) else { break };
            let value = match rule.metric {
                Metric::TotalCpuPct => totals.get(&i).copied().unwrap_or(0.0),
                Metric::StatsOverheadPct => match stats_overhead_pct {
                    Some(v) => v,
                    None => continue,
                },
                _ => continue,
            };
            let key = self.keys.entry((i, 0)).or_insert_with(|| Key::new("", ""));
            key.seen = seq;
            let before = key.phase;
            if let Some(state) = key.step(rule, value, now) {
                let since = raised_since(before, key.phase, now);
                changes.push(change(rule, 0, key, state, Why::Crossed, since, now));
            }
        }
    }

    /// Alerts raised before a restart, on the first pass with values: raised again, silently,
    /// when the rule and the same load of the program are still there (this pass then judges
    /// them as usual); cleared when not.
    fn restore(&mut self, programs: &[Subject<'_>], now: &Moment, out: &mut Vec<Change>) {
        if self.restored.is_empty() || now.elapsed.is_zero() {
            return;
        }
        for r in std::mem::take(&mut self.restored) {
            let index = self.rules.iter().position(|x| x.name == r.rule);
            let same_load = r.prog_id == 0
                || programs.iter().any(|s| {
                    s.id == r.prog_id && s.full_name == r.program && s.load_time <= r.since
                });
            let mut key = Key::new(&r.program, &r.prog_type);
            key.value = r.value;
            let kept = index
                .filter(|_| same_load)
                .and_then(|i| u16::try_from(i).ok())
                .filter(|&i| r.prog_id != 0 || self.rules[usize::from(i)].metric.host_wide());
            match kept {
                Some(i) => {
                    key.phase = Phase::Raised { since: r.since };
                    key.raises = 1;
                    key.last_raise = Some(now.mono);
                    self.keys.insert((i, r.prog_id), key);
                }
                None => {
                    let rule = index
                        .and_then(|i| self.rules.get(i).cloned())
                        .unwrap_or_else(|| placeholder(&r.rule));
                    out.push(change(
                        &rule,
                        r.prog_id,
                        &key,
                        State::Cleared,
                        Why::GoneAfterRestart,
                        r.since,
                        now,
                    ));
                }
            }
        }
    }

    /// Drops the keys of programs gone (clearing their alerts) and keys with nothing to keep.
    fn forget(&mut self, seq: u64, now: &Moment, changes: &mut Vec<Change>) {
        if now.complete {
            let rules = &self.rules;
            self.keys.retain(|&(i, id), key| {
                if key.seen == seq || id == 0 {
                    return !key.idle(now);
                }
                if let (Phase::Raised { since }, Some(rule)) =
                    (key.phase, rules.get(usize::from(i)))
                {
                    changes.push(change(
                        rule,
                        id,
                        key,
                        State::Cleared,
                        Why::Unloaded,
                        since,
                        now,
                    ));
                }
                false
            });
            self.covered.retain(|_, c| c.seen == seq);
        } else {
            self.keys.retain(|_, key| !key.idle(now));
        }
    }

    /// The alerts raised now, with their newest values.
    pub fn active(&self, now: SystemTime) -> Vec<Change> {
        let mut out: Vec<Change> = self
            .keys
            .iter()
            .filter_map(|(&(i, id), key)| {
                let Phase::Raised { since } = key.phase else {
                    return None;
                };
                let rule = self.rules.get(usize::from(i))?;
                let at = Moment {
                    mono: Duration::ZERO,
                    wall: now,
                    elapsed: Duration::ZERO,
                    complete: true,
                };
                Some(change(
                    rule,
                    id,
                    key,
                    State::Raised,
                    Why::Crossed,
                    since,
                    &at,
                ))
            })
            .collect();
        out.sort_by(|a, b| (&a.rule, a.prog_id).cmp(&(&b.rule, b.prog_id)));
        out
    }
}

/// When the alert a step raised or cleared was raised.
fn raised_since(before: Phase, after: Phase, now: &Moment) -> SystemTime {
    match (after, before) {
        (Phase::Raised { since }, _) | (_, Phase::Raised { since }) => since,
        _ => now.wall,
    }
}

/// A rule no longer configured, to word the clearing of its alerts.
fn placeholder(name: &str) -> Rule {
    Rule {
        name: name.to_owned(),
        metric: Metric::CpuPct,
        threshold: 0.0,
        hold: Duration::ZERO,
        clear: 0.0,
        program: None,
        prog_type: None,
        unit: None,
    }
}

fn change(
    rule: &Rule,
    prog_id: u32,
    key: &Key,
    state: State,
    why: Why,
    since: SystemTime,
    now: &Moment,
) -> Change {
    Change {
        rule: rule.name.clone(),
        metric: rule.metric,
        state,
        why,
        prog_id,
        program: key.program.clone(),
        prog_type: key.prog_type.clone(),
        value: key.value,
        threshold: rule.threshold,
        clear: rule.clear,
        since,
        time: now.wall,
    }
}
