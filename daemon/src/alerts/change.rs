//! What an alert change is (`Change`, `Why`), the changes of a pass (`Judged`) and how one is
//! made from a rule and what it is about: shared by the programs' evaluator and the maps'.

use std::time::SystemTime;

use ebpfstat_store::AlertRecord;

use super::key::{Moment, State};
use super::rules::{Metric, Rule};

/// Why an alert was cleared, when not because its value came back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Why {
    Crossed,
    Unloaded,
    /// The program's holders changed and the rule (by `unit`) no longer covers it.
    Unmatched,
    RuleChanged,
    /// Raised before a restart, and the program or rule is not there any more.
    GoneAfterRestart,
    /// Not a change: an alert listed while it is raised (`Evaluator::active`).
    Still,
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

/// What one pass (or reload) changed: the first changes up to the limit, and how many more.
#[derive(Debug, Default)]
pub struct Judged {
    pub changes: Vec<Change>,
    pub more: usize,
}

impl Judged {
    pub fn changed(&self) -> bool {
        !self.changes.is_empty() || self.more > 0
    }

    pub fn push(&mut self, limit: usize, make: impl FnOnce() -> Change) {
        if self.changes.len() < limit {
            self.changes.push(make());
        } else {
            self.more += 1;
        }
    }
}

/// What a change is about, besides its rule and key.
pub struct About<'a> {
    pub prog_id: u32,
    pub program: &'a str,
    pub prog_type: &'a str,
}

pub const HOST: About<'static> = About {
    prog_id: 0,
    program: "",
    prog_type: "",
};

pub fn change(
    rule: &Rule,
    about: &About<'_>,
    value: f64,
    state: State,
    why: Why,
    since: SystemTime,
    now: SystemTime,
) -> Change {
    Change {
        rule: rule.name.clone(),
        metric: rule.metric,
        state,
        why,
        prog_id: about.prog_id,
        program: about.program.to_owned(),
        prog_type: about.prog_type.to_owned(),
        value,
        threshold: rule.threshold,
        clear: rule.clear,
        since,
        time: now,
    }
}

/// The clearing of an alert raised before a restart whose program or rule is gone.
pub fn gone(rule: &Rule, r: &AlertRecord, now: &Moment) -> Change {
    let about = About {
        prog_id: r.prog_id,
        program: &r.program,
        prog_type: &r.prog_type,
    };
    change(
        rule,
        &about,
        r.value,
        State::Cleared,
        Why::GoneAfterRestart,
        r.since,
        now.wall,
    )
}
