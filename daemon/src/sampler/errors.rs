//! Failures that do not stop a pass, folded so a thousand programs failing alike make one line.

use std::collections::BTreeMap;

use crate::bpf::sys::SysError;

#[derive(Debug, Default)]
pub struct ErrorLog {
    messages: Vec<String>,
    /// Programs enumerated but not read (vanished ones are not counted).
    pub unread: u32,
    /// Why the pass cannot be trusted: the walk over programs stopped, or reads failed for
    /// want of descriptors or memory. The first such failure.
    pub failure: Option<String>,
    /// Reads failed for want of descriptors or memory.
    pub exhausted: bool,
    /// (object kind, call, errno) → (count, first id, message).
    folded: BTreeMap<(&'static str, &'static str, i32), (u32, u32, String)>,
}

fn hint(e: &SysError) -> &'static str {
    if e.is_permission() {
        " (needs CAP_SYS_ADMIN)"
    } else {
        ""
    }
}

impl ErrorLog {
    /// A failure that ended a walk.
    pub fn fatal(&mut self, what: &str, e: &SysError) {
        self.messages.push(format!("{what}: {e}{}", hint(e)));
    }

    /// The walk over programs stopped: programs after it were not seen.
    pub fn walk_failed(&mut self, e: &SysError) {
        self.fatal("cannot enumerate programs", e);
        self.failure
            .get_or_insert_with(|| format!("cannot enumerate programs: {e}"));
    }

    pub fn per_program(&mut self, id: u32, e: &SysError) {
        self.unread += 1;
        if e.is_exhaustion() {
            self.exhausted = true;
            self.failure
                .get_or_insert_with(|| format!("cannot read program {id}: {e}"));
        }
        self.per_object("program", id, e);
    }

    /// A program's full name could not be read from its BTF (it is asked again next pass).
    pub fn per_name(&mut self, id: u32, e: &SysError) {
        self.per_object("program name", id, e);
    }

    /// A scan (holders, pins) that could not read everything: said once per pass, with the
    /// first reason.
    pub fn incomplete(&mut self, what: &str, why: &str) {
        self.messages.push(format!("{what}: incomplete: {why}"));
    }

    pub fn per_map(&mut self, id: u32, e: &SysError) {
        self.per_object("map", id, e);
    }

    fn per_object(&mut self, kind: &'static str, id: u32, e: &SysError) {
        let key = (kind, e.call, e.errno().unwrap_or(0));
        let entry = self
            .folded
            .entry(key)
            .or_insert_with(|| (0, id, format!("{e}{}", hint(e))));
        entry.0 += 1;
    }

    pub fn into_messages(self) -> Vec<String> {
        let mut out = self.messages;
        for ((kind, _, _), (count, first, message)) in self.folded {
            if count == 1 {
                out.push(format!("{kind} {first}: {message}"));
            } else {
                out.push(format!("{count} {kind}s (first id {first}): {message}"));
            }
        }
        out
    }
}
