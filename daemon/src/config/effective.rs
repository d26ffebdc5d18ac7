//! What the settings in effect are used for beyond their values: the store's retention, what
//! a reload changed, and the settings printed in the file's syntax.

use ebpfstat_store::Retention;

use super::Effective;
use crate::alerts::Rule;

impl Effective {
    /// The three tiers' ages.
    pub fn retention(&self) -> Retention {
        Retention {
            raw: self.raw_retention,
            min1: self.minute_retention,
            hour1: self.hour_retention,
        }
    }

    /// The settings that differ in `new`: `(key, value here, value there)`, as the file
    /// writes them.
    pub fn changes(&self, new: &Self) -> Vec<(&'static str, String, String)> {
        let mut changes: Vec<_> = self
            .entries()
            .into_iter()
            .zip(new.entries())
            .filter(|(a, b)| a.1 != b.1)
            .map(|((key, old), (_, new))| (key, old, new))
            .collect();
        if self.alerts != new.alerts {
            changes.push((
                "alert",
                format!("{} rules", self.alerts.len()),
                rule_changes(&self.alerts, &new.alerts),
            ));
        }
        if self.remote_write != new.remote_write {
            let urls = |t: &[super::remote_write::Target]| {
                let urls: Vec<&str> = t.iter().map(|t| t.url.text.as_str()).collect();
                format!("[{}]", urls.join(", "))
            };
            changes.push((
                "remote_write",
                urls(&self.remote_write),
                urls(&new.remote_write),
            ));
        }
        changes
    }
}

/// `3 rules (added: a; changed: b; removed: c)`.
fn rule_changes(old: &[Rule], new: &[Rule]) -> String {
    let named = |rules: &[Rule], name: &str| rules.iter().find(|r| r.name == name).cloned();
    let mut parts = Vec::new();
    let mut list = |what: &str, names: Vec<&str>| {
        if !names.is_empty() {
            parts.push(format!("{what}: {}", names.join(", ")));
        }
    };
    list(
        "added",
        new.iter()
            .filter(|r| named(old, &r.name).is_none())
            .map(|r| r.name.as_str())
            .collect(),
    );
    list(
        "changed",
        new.iter()
            .filter(|r| named(old, &r.name).is_some_and(|o| o != **r))
            .map(|r| r.name.as_str())
            .collect(),
    );
    list(
        "removed",
        old.iter()
            .filter(|r| named(new, &r.name).is_none())
            .map(|r| r.name.as_str())
            .collect(),
    );
    if parts.is_empty() {
        parts.push("reordered".to_owned());
    }
    format!("{} rules ({})", new.len(), parts.join("; "))
}

impl std::fmt::Display for Effective {
    /// The settings in the configuration file's syntax.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, (key, value)) in self.entries().into_iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            if !Self::quoted(key) {
                write!(f, "{key} = {value}")?;
            } else {
                write!(f, "{key} = \"{value}\"")?;
            }
        }
        // Tables come after every key.
        for rule in &self.alerts {
            write!(f, "\n\n{rule}")?;
        }
        for target in &self.remote_write {
            write!(f, "\n\n{target}")?;
        }
        Ok(())
    }
}
