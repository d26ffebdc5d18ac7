//! Alert rules (`[[alert]]` in the configuration), judged by the sampling thread after each
//! pass on the values it already holds ([`eval`]), and said four ways (by
//! `service::alerting`): a log line, a D-Bus signal (`AlertChanged`), a record in the store's
//! alert ring, and the list of alerts raised now (`Alerts`, `status`).
//!
//! A flood is bounded twice: a rule that raises again soon after it cleared must hold twice as
//! long each time ([`eval::FLAP_MEMORY`]), and at most [`MAX_SAID_PER_PASS`] changes a pass are
//! said one by one; the rest are counted in one log line, and `Alerts` lists the alerts raised.

mod change;
pub mod eval;
mod key;
mod maps;
pub mod rules;

use std::time::Duration;

use ebpfstat_store::AlertRecord;

pub use eval::{Change, Evaluator, Judged, Moment, Raised, Rates, State, Subject, Why};
pub use maps::MapSubject;
pub use rules::{Metric, Rule, show};

/// Changes said one by one per pass (signal, log line, stored record).
pub const MAX_SAID_PER_PASS: usize = 100;

/// What a change says, in words.
pub fn text(c: &Change) -> String {
    let subject = if c.metric.per_map() {
        format!("map {} (id {})", c.program, c.prog_id)
    } else if c.prog_id == 0 {
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
        (State::Raised, Why::Still) => format!(
            "alert {} raised since {}: {subject}: {} now {} (raised above {}, clears at or \
             below {})",
            c.rule,
            humantime::format_rfc3339_seconds(c.since),
            m.as_str(),
            show(m, c.value),
            show(m, c.threshold),
            show(m, c.clear)
        ),
        (State::Raised, _) => format!(
            "alert {} raised: {subject}: {} {} above {}",
            c.rule,
            m.as_str(),
            show(m, c.value),
            show(m, c.threshold)
        ),
        (State::Cleared, Why::Crossed | Why::Still) => format!(
            "alert {} cleared: {subject}: {} {} at or below {} (raised {})",
            c.rule,
            m.as_str(),
            show(m, c.value),
            show(m, c.clear),
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

/// A change as it is said (logged, signalled, listed) and kept.
pub fn record_of(c: &Change, text: String) -> AlertRecord {
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

/// Active alerts an `Alerts()` reply lists at most (by rule, then program); `status` counts
/// them all.
pub const MAX_LISTED: usize = 1000;

#[cfg(test)]
mod tests;
