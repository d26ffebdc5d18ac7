//! The sampling thread's side of alerts: each pass judged by the evaluator in
//! [`Shared::alerts`], and what changed said: logged, signalled, recorded.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use ebpfstat_numbers::{Share, rates};
use tokio::sync::mpsc;

use crate::alerts::{
    Evaluator, Judged, MAX_SAID_PER_PASS, MapSubject, Moment, Rates, Rule, State, Subject,
    record_of, text,
};
use crate::quiet::Quiet;
use crate::sampler::Pass;
use crate::sampler::entry_kinds::Entries;
use crate::shared::{Shared, StoreMsg, lock};

/// The sampling thread's side: judging each pass (the evaluator is in [`Shared::alerts`], for
/// the API to list what is raised) and saying what changed.
#[derive(Debug)]
pub struct Alerting {
    /// The rules and every alert's state: this thread's alone (the API reads
    /// [`Shared::alerts`], what it publishes).
    evaluator: Evaluator,
    /// The newest pass's time, for a reload between passes.
    last: Option<Moment>,
    over: Quiet,
    lost: Quiet,
}

impl Alerting {
    pub fn new(evaluator: Evaluator, shared: &Shared) -> Self {
        let mut alerting = Self {
            evaluator,
            last: None,
            over: Quiet::default(),
            lost: Quiet::default(),
        };
        alerting.publish(shared, SystemTime::now(), true);
        alerting
    }

    /// Publishes what is raised now when it may have changed: every pass with alerts raised
    /// (their values move) or published as raised, and whenever the evaluator's generation
    /// moved.
    fn publish(&mut self, shared: &Shared, now: SystemTime, always: bool) {
        // Alerts restored after a restart carry on without a change (the generation stays):
        // what the evaluator holds raised is counted too.
        let stale = {
            let seen = lock(&shared.alerts);
            seen.total > 0 || seen.generation != self.evaluator.generation()
        } || self.evaluator.raised() > 0;
        if always || stale {
            let raised = Arc::new(self.evaluator.raised_now(now));
            *lock(&shared.alerts) = raised;
        }
    }

    /// Judges the pass (a failed pass is not judged: its values are not trusted).
    pub fn after_pass(&mut self, pass: &Pass, shared: &Shared, tx: &mpsc::Sender<StoreMsg>) {
        if pass.failure.is_some() {
            return;
        }
        let now = Moment {
            mono: Duration::from_nanos(pass.monotonic_ns),
            wall: pass.time,
            elapsed: Duration::from_nanos(pass.elapsed_ns.unwrap_or(0)),
        };
        if self.evaluator.idle() {
            return;
        }
        let judged = {
            let subjects: Vec<Subject<'_>> = pass
                .programs
                .iter()
                .map(|p| Subject {
                    id: p.meta.id,
                    name: &p.meta.name,
                    full_name: &p.meta.full_name,
                    prog_type: p.meta.prog_type,
                    load_time: p.meta.load_time,
                    context: &p.context,
                    interval: p.interval.map(|i| Rates {
                        cpu_pct: i.cpu_pct,
                        avg_ns: i.avg_ns_per_run,
                        runs_per_sec: i.runs_per_sec,
                        missed_per_sec: p.missed_per_sec,
                    }),
                })
                .collect();
            let mut judged = self.evaluator.evaluate(
                &subjects,
                &pass.unread_ids,
                pass.stats_overhead.map(Share::percent),
                &now,
            );
            if self.evaluator.wants_maps() {
                let maps = map_subjects(pass);
                self.evaluator.evaluate_maps(&maps, &now, &mut judged);
            }
            judged
        };
        self.last = Some(now);
        self.publish(shared, now.wall, false);
        self.say(&judged, shared, tx);
    }

    /// New rules from a reload.
    pub fn set_rules(&mut self, rules: Vec<Rule>, shared: &Shared, tx: &mpsc::Sender<StoreMsg>) {
        let now = self.last.unwrap_or(Moment {
            mono: Duration::ZERO,
            wall: SystemTime::now(),
            elapsed: Duration::ZERO,
        });
        let judged = self.evaluator.set_rules(rules, &now);
        self.publish(shared, now.wall, true);
        self.say(&judged, shared, tx);
    }

    /// Logs, signals and records what changed.
    fn say(&mut self, judged: &Judged, shared: &Shared, tx: &mpsc::Sender<StoreMsg>) {
        let mut records = Vec::with_capacity(judged.changes.len());
        for c in &judged.changes {
            let record = record_of(c, text(c));
            match c.state {
                State::Raised => tracing::warn!("{}", record.text),
                State::Cleared => tracing::info!("{}", record.text),
            }
            // No receiver (no connection yet) is not an error: the record is stored.
            let _ = shared.alert_changes.send(record.clone());
            records.push(record);
        }
        if judged.more > 0
            && let Some(n) = self.over.note(Instant::now())
        {
            tracing::warn!(
                "{} more alerts changed in one pass than the {MAX_SAID_PER_PASS} said one by \
                 one ({n} passes with more since the last report): `ebpfstatctl alerts` lists \
                 the alerts raised now",
                judged.more
            );
        }
        if !records.is_empty()
            && tx.try_send(StoreMsg::Alerts(records)).is_err()
            && let Some(n) = self.lost.note(Instant::now())
        {
            tracing::warn!(
                "the store's queue is full: alert changes of {n} passes were not recorded \
                 (they were logged and signalled)"
            );
        }
    }
}

/// The pass's maps as map rules judge them: fill, holders, and the programs using each.
fn map_subjects(pass: &Pass) -> Vec<MapSubject<'_>> {
    let mut users: HashMap<u32, Vec<&str>> = HashMap::new();
    for p in &pass.programs {
        for id in &p.context.map_ids {
            let names = users.entry(*id).or_default();
            names.push(&p.meta.full_name);
            names.push(&p.meta.name);
        }
    }
    pass.maps
        .iter()
        .map(|m| MapSubject {
            id: m.id,
            name: &m.name,
            map_type: m.map_type,
            fill_pct: match m.entries {
                Entries::Counted { n, .. } => Some(rates::fill_pct(n, m.max_entries)),
                Entries::NotCounted(_) => None,
            },
            owners: &m.owners,
            programs: users.remove(&m.id).unwrap_or_default(),
        })
        .collect()
}
