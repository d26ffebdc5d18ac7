//! How groups of programs (`top --by`, the live view's `b`) are named for people.

use ebpfstat_dbus as wire;

use crate::By;

/// A group's name as shown: its key, or what its programs share when they have none.
pub fn group_name(g: &wire::Group, by: By) -> String {
    match (g.kind.as_str(), by) {
        ("named", _) => g.key.clone(),
        ("unloaded", _) => "(unloaded)".into(),
        (_, By::Container) => "(host)".into(),
        (_, By::Unit) => "(no unit)".into(),
        (_, By::Owner) => "(no holder)".into(),
    }
}

/// `1 container`, `3 units`: how many groups of what.
pub fn counted(n: usize, by: By) -> String {
    let s = if n == 1 { "" } else { "s" };
    format!("{n} {}{s}", by.as_str())
}
