//! Alert rules (`[[alert]]` in the configuration), judged by the sampling thread after each
//! pass on the values it already holds ([`eval`]), and said four ways: a log line, a D-Bus
//! signal (`AlertChanged`), a record in the store's alert ring, and the list of alerts raised
//! now (`Alerts`, `status`).
//!
//! A flood is bounded twice: a rule that raises again soon after it cleared must hold twice as
//! long each time ([`eval::FLAP_MEMORY`]), and at most [`MAX_SAID_PER_PASS`] changes a pass are
//! said one by one; the rest are counted in one log line, and `Alerts` lists every alert raised.

pub mod eval;
mod key;
pub mod rules;

use std::time::{Duration, Instant, SystemTime};

use ebpfstat_dbus::{self as wire, time::to_ns};
use ebpfstat_store::AlertRecord;
use tokio::sync::mpsc;

pub use eval::{Change, Evaluator, Judged, Moment, Rates, Restored, State, Subject, Why};
pub use rules::{Metric, Rule};

use crate::quiet::Quiet;
use crate::sampler::Pass;
use crate::shared::{Shared, StoreMsg, lock};

/// Changes said one by one per pass (signal, log line, stored record).
pub const MAX_SAID_PER_PASS: usize = 100;

/// What a change says, in words.
pub fn text(c: &Change) -> String {
    let subject = if c.prog_id == 0 {
        "host".to_owned()
    } else {
        format!("{} (id {})", c.program, c.prog_id)
    };
    let m = c.metric;
    let after = || {
        let raised = c.time.duration_since(c.since).unwrap_or_default();
        humantime::format_duration(Duration::from_secs(raised.as_secs())).to_string()
    };
    match (c.state, c.why) {
        (State::Raised, _) => format!(
            "alert {} raised: {subject}: {} {} above {}",
            c.rule,
            m.as_str(),
            m.show(c.value),
            m.show(c.threshold)
        ),
        (State::Cleared, Why::Crossed) => format!(
            "alert {} cleared: {subject}: {} {} at or below {} (raised {})",
            c.rule,
            m.as_str(),
            m.show(c.value),
            m.show(c.clear),
            after()
        ),
        (State::Cleared, Why::Unloaded) => format!(
            "alert {} cleared: {subject} was unloaded (raised {})",
            c.rule,
            after()
        ),
        (State::Cleared, Why::Unmatched) => format!(
            "alert {} cleared: {subject}: its holders changed and the rule no longer covers it",
            c.rule
        ),
        (State::Cleared, Why::RuleChanged) => format!(
            "alert {} cleared: {subject}: a reload changed or removed the rule",
            c.rule
        ),
        (State::Cleared, Why::GoneAfterRestart) => format!(
            "alert {} cleared: {subject}: raised before the restart, and the rule or that load \
             of the program is gone",
            c.rule
        ),
    }
}

pub fn wire_of(c: &Change) -> wire::Alert {
    wire::Alert {
        rule: c.rule.clone(),
        metric: c.metric.as_str().to_owned(),
        state: c.state.as_str().to_owned(),
        program_id: c.prog_id,
        program: c.program.clone(),
        prog_type: c.prog_type.clone(),
        value: c.value,
        threshold: c.threshold,
        clear: c.clear,
        since_ns: to_ns(c.since),
        time_ns: to_ns(c.time),
        text: text(c),
    }
}

pub fn wire_of_record(r: AlertRecord) -> wire::Alert {
    wire::Alert {
        rule: r.rule,
        metric: r.metric,
        state: r.state,
        program_id: r.prog_id,
        program: r.program,
        prog_type: r.prog_type,
        value: r.value,
        threshold: r.threshold,
        clear: r.clear,
        since_ns: to_ns(r.since),
        time_ns: to_ns(r.time),
        text: r.text,
    }
}

fn record_of(c: &Change, text: String) -> AlertRecord {
    AlertRecord {
        time: c.time,
        rule: c.rule.clone(),
        metric: c.metric.as_str().to_owned(),
        state: c.state.as_str().to_owned(),
        prog_id: c.prog_id,
        program: c.program.clone(),
        prog_type: c.prog_type.clone(),
        value: c.value,
        threshold: c.threshold,
        clear: c.clear,
        since: c.since,
        text,
    }
}

/// What the store said was raised when the daemon stopped.
pub fn restored(open: Vec<AlertRecord>) -> Vec<Restored> {
    open.into_iter()
        .map(|r| Restored {
            rule: r.rule,
            prog_id: r.prog_id,
            program: r.program,
            prog_type: r.prog_type,
            value: r.value,
            since: r.since,
        })
        .collect()
}

/// Active alerts an `Alerts()` reply lists at most (by rule, then program); `status` counts
/// them all.
pub const MAX_LISTED: usize = 1000;

/// The sampling thread's side: judging each pass (the evaluator is in [`Shared::alerts`], for
/// the API to list what is raised) and saying what changed.
#[derive(Debug, Default)]
pub struct Alerting {
    /// The newest pass's time, for a reload between passes.
    last: Option<Moment>,
    over: Quiet,
    lost: Quiet,
}

impl Alerting {
    /// Judges the pass (a failed pass is not judged: its values are not trusted).
    pub fn after_pass(&mut self, pass: &Pass, shared: &Shared, tx: &mpsc::Sender<StoreMsg>) {
        if pass.failure.is_some() {
            return;
        }
        let now = Moment {
            mono: Duration::from_nanos(pass.monotonic_ns),
            wall: pass.time,
            elapsed: Duration::from_nanos(pass.elapsed_ns.unwrap_or(0)),
            complete: pass.read_all(),
        };
        let judged = {
            let mut evaluator = lock(&shared.alerts);
            if evaluator.idle() {
                return;
            }
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
                        avg_ns: i.avg_ns_per_run.unwrap_or(0.0),
                        runs_per_sec: i.runs_per_sec,
                    }),
                })
                .collect();
            evaluator.evaluate(&subjects, pass.stats_overhead.map(|s| s * 100.0), &now)
        };
        self.last = Some(now);
        self.say(&judged, shared, tx);
    }

    /// New rules from a reload.
    pub fn set_rules(&mut self, rules: Vec<Rule>, shared: &Shared, tx: &mpsc::Sender<StoreMsg>) {
        let now = self.last.unwrap_or(Moment {
            mono: Duration::ZERO,
            wall: SystemTime::now(),
            elapsed: Duration::ZERO,
            complete: false,
        });
        let judged = lock(&shared.alerts).set_rules(rules, &now);
        self.say(&judged, shared, tx);
    }

    /// Logs, signals and records what changed.
    fn say(&mut self, judged: &Judged, shared: &Shared, tx: &mpsc::Sender<StoreMsg>) {
        let mut records = Vec::with_capacity(judged.changes.len());
        for c in &judged.changes {
            let line = text(c);
            match c.state {
                State::Raised => tracing::warn!("{line}"),
                State::Cleared => tracing::info!("{line}"),
            }
            let mut alert = wire_of(c);
            alert.text.clone_from(&line);
            // No receiver (no connection yet) is not an error: the record is stored.
            let _ = shared.alert_changes.send(alert);
            records.push(record_of(c, line));
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

#[cfg(test)]
mod tests;
