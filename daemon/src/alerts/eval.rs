//! Rules judged against each pass: which rules cover each program (kept per program until its
//! holders change), and a state machine ([`super::key`]) per (rule, program) that is not
//! quiet. Pure: it is given the pass's values and the time, and returns what changed.
//!
//! What it costs: a quiet (rule, program) holds nothing but its rule's index in the program's
//! list; a pass walks each program's list once, in order, next to the keys it holds (no
//! lookups); changes beyond the caller's limit are counted, not built.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::SystemTime;

use ebpfstat_store::AlertRecord;

use super::change::{About, HOST, change, gone};
pub use super::change::{Change, Judged, Why};
pub use super::key::{FLAP_MEMORY, MAX_BACKOFF, Moment, State};
use super::key::{Key, Phase, put_key, step_keys};
use super::maps::{MapAlerts, MapSubject};
use super::rules::{Metric, Rule};
use crate::observer;
use crate::sampler::model::ProgramContext;

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
    /// `None` when it did not run: an interval without runs says nothing about the cost of a
    /// run, so a rule on it keeps its state (neither raised nor cleared) until the next run.
    pub avg_ns: Option<f64>,
    pub runs_per_sec: f64,
    /// Runs missed per second (recursion and kprobe misses); `None` without a last read.
    pub missed_per_sec: Option<f64>,
}

/// What is raised now, as the sampling thread last judged it: published after each pass that
/// has alerts raised (or changed them), so that a reader never waits for a pass to be judged.
#[derive(Debug, Default)]
pub struct Raised {
    /// The evaluator's generation it was taken at (see [`Evaluator::generation`]).
    pub generation: u64,
    /// Rules configured.
    pub rules: usize,
    /// At most `MAX_LISTED` of the alerts raised, by rule then program id.
    pub active: Vec<Change>,
    /// How many are raised.
    pub total: usize,
}

/// A program, the rules covering it, and its keys that are not quiet.
#[derive(Debug)]
struct Covered {
    context: Arc<ProgramContext>,
    full_name: Box<str>,
    prog_type: Box<str>,
    /// Indices of the rules its name and type fit, ascending; found again only when its
    /// name changes (globs are matched once per program, not once per pass).
    named: Vec<u16>,
    /// Those of `named` its holders fit too; recomputed when its holders change.
    rules: Vec<u16>,
    /// By rule index, ascending.
    keys: Vec<(u16, Key)>,
    /// The pass that last saw it; 0: its rules are to be computed again.
    seen: u64,
}

impl Covered {
    /// The rules covering the program again (its holders changed, or it is new); the alerts
    /// of rules that no longer cover it are cleared.
    fn cover(
        &mut self,
        s: &Subject<'_>,
        rules: &[Rule],
        now: &Moment,
        (limit, out): (usize, &mut Judged),
    ) {
        if self.seen == 0 || *self.full_name != *s.full_name {
            self.full_name = s.full_name.into();
            self.named = (0..rules.len())
                .filter(|&i| named(&rules[i], s.name, s.full_name, s.prog_type))
                .filter_map(|i| u16::try_from(i).ok())
                .collect();
        }
        self.context = Arc::clone(s.context);
        self.rules = self
            .named
            .iter()
            .copied()
            .filter(|&i| held(&rules[usize::from(i)], s.context))
            .collect();
        let mut keys = std::mem::take(&mut self.keys);
        keys.retain(|(i, key)| {
            let kept = self.rules.binary_search(i).is_ok();
            if let (false, Some(since)) = (kept, key.raised_since()) {
                let rule = &rules[usize::from(*i)];
                out.push(limit, || {
                    let a = self.about(s.id);
                    let why = Why::Unmatched;
                    change(rule, &a, key.value, State::Cleared, why, since, now.wall)
                });
            }
            kept
        });
        self.keys = keys;
    }

    /// The alerts raised before a restart that carry on for this program: the same program
    /// (name, and loaded before it was raised) under a rule covering it.
    fn restore(
        &mut self,
        s: &Subject<'_>,
        pending: &mut HashMap<(u16, u32), AlertRecord>,
        now: &Moment,
    ) {
        for &i in &self.rules {
            let Some(r) = pending.remove(&(i, s.id)) else {
                continue;
            };
            if r.program == s.full_name && s.load_time <= r.since {
                put_key(&mut self.keys, i, Key::restored(r.value, r.since, now));
            } else {
                pending.insert((i, s.id), r);
            }
        }
    }

    fn about(&self, prog_id: u32) -> About<'_> {
        About {
            prog_id,
            program: &self.full_name,
            prog_type: &self.prog_type,
        }
    }
}

/// Whether a rule's program glob and type fit a program.
fn named(rule: &Rule, name: &str, full_name: &str, prog_type: &str) -> bool {
    if rule.metric == Metric::StatsOverheadPct
        || rule.metric.per_map()
        || observer::is_own(name, prog_type)
    {
        return false;
    }
    rule.program
        .as_ref()
        .is_none_or(|p| p.matches(full_name) || p.matches(name))
        && rule.prog_type.as_deref().is_none_or(|t| t == prog_type)
}

/// Whether a rule's unit and container globs fit a program's holders.
fn held(rule: &Rule, ctx: &ProgramContext) -> bool {
    rule.holders_fit(&ctx.owners)
}

/// Judges every rule on each pass.
#[derive(Debug, Default)]
pub struct Evaluator {
    rules: Vec<Rule>,
    programs: HashMap<u32, Covered>,
    /// Keys of host-wide rules.
    host: Vec<(u16, Key)>,
    /// Keys of per-map rules, and their alerts from before a restart.
    maps: MapAlerts,
    /// Alerts raised when the daemon stopped, as the store kept them: each carries on only
    /// under the same rule (name, metric, threshold, clear).
    restored: Vec<AlertRecord>,
    passes: u64,
    /// Changes returned one by one each pass; the rest are counted.
    limit: usize,
    /// Counts every change of what is raised, so the store rewrites its list of open alerts
    /// only when it changed.
    generation: u64,
}

impl Evaluator {
    pub fn new(rules: Vec<Rule>, restored: Vec<AlertRecord>, limit: usize) -> Self {
        Self {
            rules,
            restored,
            limit,
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
        self.rules.is_empty()
            && self.restored.is_empty()
            && self.host.is_empty()
            && self.programs.values().all(|c| c.keys.is_empty())
            && self.maps.is_empty()
    }

    /// Judges one pass; returns the alerts raised and cleared by it. `unread` (ascending): the
    /// programs that exist but the pass could not read; every other program not in `programs`
    /// was unloaded.
    pub fn evaluate(
        &mut self,
        programs: &[Subject<'_>],
        unread: &[u32],
        stats_overhead_pct: Option<f64>,
        now: &Moment,
    ) -> Judged {
        self.passes += 1;
        let seq = self.passes;
        let limit = self.limit;
        let mut out = Judged::default();
        let mut pending = self.take_restored(now, &mut out);
        let rules = &self.rules;
        let mut totals = vec![0.0; rules.len()];
        for s in programs {
            let c = self.programs.entry(s.id).or_insert_with(|| Covered {
                context: Arc::clone(s.context),
                full_name: s.full_name.into(),
                prog_type: s.prog_type.into(),
                named: Vec::new(),
                rules: Vec::new(),
                keys: Vec::new(),
                seen: 0,
            });
            // Its holders changed, or its full name came late (read from BTF after it was
            // first seen): the rules covering it are found again.
            if c.seen == 0 || !Arc::ptr_eq(&c.context, s.context) || *c.full_name != *s.full_name {
                c.cover(s, rules, now, (limit, &mut out));
            }
            c.seen = seq;
            if !pending.is_empty() {
                c.restore(s, &mut pending, now);
            }
            let Some(rates) = s.interval else { continue };
            let about = About {
                prog_id: s.id,
                program: s.full_name,
                prog_type: s.prog_type,
            };
            let map_memory = c.context.map_memory.total as f64;
            step_keys(
                rules,
                &c.rules,
                &mut c.keys,
                |i, rule| match rule.metric {
                    Metric::CpuPct => Some(rates.cpu_pct),
                    Metric::AvgNs => rates.avg_ns,
                    Metric::RunsPerSec => Some(rates.runs_per_sec),
                    Metric::MissedPerSec => rates.missed_per_sec,
                    Metric::MapMemory => Some(map_memory),
                    Metric::TotalCpuPct => {
                        totals[usize::from(i)] += rates.cpu_pct;
                        None
                    }
                    Metric::StatsOverheadPct | Metric::MapFillPct => None,
                },
                now,
                |rule, value, state, since| {
                    out.push(limit, || {
                        change(rule, &about, value, state, Why::Crossed, since, now.wall)
                    });
                },
            );
        }
        if !now.elapsed.is_zero() {
            self.host_wide(&totals, stats_overhead_pct, &mut pending, now, &mut out);
        }
        for ((i, _), r) in pending {
            let rule = &self.rules[usize::from(i)];
            out.push(limit, || gone(rule, &r, now));
        }
        self.forget(seq, unread, now, &mut out);
        if out.changed() {
            self.generation += 1;
        }
        out
    }

    /// Changes when what is raised changes (a raise, a clear, a reload, a restore).
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// On the first pass with values, the alerts from before a restart, by (rule, program);
    /// those of rules no longer configured are cleared at once.
    fn take_restored(
        &mut self,
        now: &Moment,
        out: &mut Judged,
    ) -> HashMap<(u16, u32), AlertRecord> {
        let mut pending = HashMap::new();
        if self.restored.is_empty() || now.elapsed.is_zero() {
            return pending;
        }
        for r in std::mem::take(&mut self.restored) {
            let index = self.rules.iter().position(|x| {
                x.name == r.rule
                    && x.metric.as_str() == r.metric
                    && x.threshold == r.threshold
                    && x.clear == r.clear
                    && x.metric.host_wide() == (r.prog_id == 0)
            });
            match index.and_then(|i| u16::try_from(i).ok()) {
                Some(i) if self.rules[usize::from(i)].metric.per_map() => {
                    self.maps.restore_later(i, r);
                }
                Some(i) => {
                    pending.insert((i, r.prog_id), r);
                }
                None => {
                    let rule = placeholder(&r.rule);
                    out.push(self.limit, || gone(&rule, &r, now));
                }
            }
        }
        pending
    }

    fn host_wide(
        &mut self,
        totals: &[f64],
        stats_overhead_pct: Option<f64>,
        pending: &mut HashMap<(u16, u32), AlertRecord>,
        now: &Moment,
        out: &mut Judged,
    ) {
        let host_rules: Vec<u16> = (0..self.rules.len())
            .filter(|&i| self.rules[i].metric.host_wide())
            .filter_map(|i| u16::try_from(i).ok())
            .collect();
        for &i in &host_rules {
            if let Some(r) = pending.remove(&(i, 0)) {
                put_key(&mut self.host, i, Key::restored(r.value, r.since, now));
            }
        }
        let limit = self.limit;
        step_keys(
            &self.rules,
            &host_rules,
            &mut self.host,
            |i, rule| match rule.metric {
                Metric::TotalCpuPct => totals.get(usize::from(i)).copied(),
                _ => stats_overhead_pct,
            },
            now,
            |rule, value, state, since| {
                out.push(limit, || {
                    change(rule, &HOST, value, state, Why::Crossed, since, now.wall)
                });
            },
        );
    }

    /// Drops the programs gone, clearing their alerts; a program the pass could not read is
    /// not gone.
    fn forget(&mut self, seq: u64, unread: &[u32], now: &Moment, out: &mut Judged) {
        let (rules, limit) = (&self.rules, self.limit);
        self.programs.retain(|&id, c| {
            if c.seen == seq || unread.binary_search(&id).is_ok() {
                return true;
            }
            for (i, key) in &c.keys {
                if let (Some(since), Some(rule)) = (key.raised_since(), rules.get(usize::from(*i)))
                {
                    out.push(limit, || {
                        let a = c.about(id);
                        change(
                            rule,
                            &a,
                            key.value,
                            State::Cleared,
                            Why::Unloaded,
                            since,
                            now.wall,
                        )
                    });
                }
            }
            false
        });
    }

    /// New rules (a reload). Alerts of rules kept unchanged carry on; those of rules changed or
    /// removed are cleared. Which rules cover each program is computed again on the next pass.
    pub fn set_rules(&mut self, rules: Vec<Rule>, now: &Moment) -> Judged {
        let mut out = Judged::default();
        let old = std::mem::replace(&mut self.rules, rules);
        let to: Vec<Option<u16>> = old
            .iter()
            .map(|r| {
                let j = self.rules.iter().position(|n| n == r)?;
                u16::try_from(j).ok()
            })
            .collect();
        let limit = self.limit;
        let mut carry = |keys: &mut Vec<(u16, Key)>, about: &About<'_>| {
            carry_keys(keys, (&to, &old), about, now, (limit, &mut out));
        };
        for (&id, c) in &mut self.programs {
            let mut keys = std::mem::take(&mut c.keys);
            carry(&mut keys, &c.about(id));
            c.keys = keys;
            c.seen = 0;
        }
        carry(&mut self.host, &HOST);
        self.maps.each_keys(|keys, about| carry(keys, about));
        if self.rules.is_empty() {
            // Nothing more to judge: what was kept per program goes (its alerts were cleared).
            self.programs.clear();
        }
        self.generation += 1;
        out
    }

    /// The alerts raised now with their newest values, by rule (in the configuration's order)
    /// then program id: at most `limit` of them, and how many there are.
    pub fn active(&self, now: SystemTime, limit: usize) -> (Vec<Change>, usize) {
        // Plain (rule, program) pairs first, so only the ones listed cost strings: this runs
        // under the lock the sampling thread judges passes with.
        let mut raised: Vec<(u16, u32, About<'_>, &Key)> = Vec::new();
        for (&id, c) in &self.programs {
            for (i, key) in &c.keys {
                if matches!(key.phase, Phase::Raised { .. }) {
                    raised.push((*i, id, c.about(id), key));
                }
            }
        }
        for (i, key) in &self.host {
            if matches!(key.phase, Phase::Raised { .. }) {
                raised.push((*i, 0, HOST, key));
            }
        }
        self.maps
            .raised(|i, about, key| raised.push((i, about.prog_id, about, key)));
        let total = raised.len();
        if raised.len() > limit {
            raised.select_nth_unstable_by_key(limit, |e| (e.0, e.1));
            raised.truncate(limit);
        }
        raised.sort_unstable_by_key(|e| (e.0, e.1));
        let list = raised
            .into_iter()
            .filter_map(|(i, _, about, key)| {
                let rule = self.rules.get(usize::from(i))?;
                let since = key.raised_since()?;
                Some(change(
                    rule,
                    &about,
                    key.value,
                    State::Raised,
                    Why::Still,
                    since,
                    now,
                ))
            })
            .collect();
        (list, total)
    }

    /// What is raised now, for the API and the store to read without this evaluator's lock.
    pub fn raised_now(&self, now: SystemTime) -> Raised {
        let (active, total) = self.active(now, super::MAX_LISTED);
        Raised {
            generation: self.generation,
            rules: self.rules.len(),
            active,
            total,
        }
    }

    /// How many alerts are raised now.
    pub fn raised(&self) -> usize {
        let raised = |keys: &[(u16, Key)]| {
            keys.iter()
                .filter(|(_, k)| k.raised_since().is_some())
                .count()
        };
        self.programs
            .values()
            .map(|c| raised(&c.keys))
            .sum::<usize>()
            + raised(&self.host)
            + self.maps.raised_count()
    }
}

impl Evaluator {
    /// Judges the pass's maps (all of them: a map not among them is gone); what changed goes
    /// to `out` (with the pass's program changes).
    pub fn evaluate_maps(&mut self, maps: &[MapSubject<'_>], now: &Moment, out: &mut Judged) {
        let changed_before = out.changed();
        self.maps
            .evaluate((&self.rules, self.limit), maps, now, out);
        if out.changed() && !changed_before {
            self.generation += 1;
        }
    }

    /// Whether maps are to be judged: a rule watches them, or one of their alerts is raised
    /// or waits to be restored.
    pub fn wants_maps(&self) -> bool {
        self.rules.iter().any(|r| r.metric.per_map()) || !self.maps.is_empty()
    }
}

/// Keys of rules kept through a reload go to their new index (`to`, by old index); the alerts
/// of rules changed or removed are cleared.
fn carry_keys(
    keys: &mut Vec<(u16, Key)>,
    (to, old): (&[Option<u16>], &[Rule]),
    about: &About<'_>,
    now: &Moment,
    (limit, out): (usize, &mut Judged),
) {
    let mut kept: Vec<(u16, Key)> = Vec::with_capacity(keys.len());
    for (i, key) in keys.drain(..) {
        match to.get(usize::from(i)).copied().flatten() {
            Some(j) => kept.push((j, key)),
            None => {
                if let (Some(since), Some(rule)) = (key.raised_since(), old.get(usize::from(i))) {
                    let why = Why::RuleChanged;
                    out.push(limit, || {
                        change(rule, about, key.value, State::Cleared, why, since, now.wall)
                    });
                }
            }
        }
    }
    ebpfstat_numbers::order::sort_by_key(&mut kept, |k| (i64::from(k.0), 0));
    *keys = kept;
}

/// A rule no longer configured, to word the clearing of its alerts.
fn placeholder(name: &str) -> Rule {
    Rule {
        name: name.to_owned(),
        metric: Metric::CpuPct,
        threshold: 0.0,
        hold: std::time::Duration::ZERO,
        clear: 0.0,
        program: None,
        prog_type: None,
        unit: None,
        container: None,
        map: None,
    }
}
