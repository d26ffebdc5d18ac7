//! How groups of programs (`top --by`, the live view's `b`) are named for people.

use ebpfstat_dbus::{self as wire, GroupBy};

/// A group's name as shown: its key, or what its programs share when they have none.
pub fn group_name(g: &wire::Group, by: GroupBy) -> String {
    match (g.kind.as_str(), by) {
        ("named", _) => g.key.clone(),
        ("unloaded", _) => "(unloaded)".into(),
        (_, GroupBy::Container) => "(host)".into(),
        (_, GroupBy::Unit) => "(no unit)".into(),
        (_, GroupBy::Owner) => "(no holder)".into(),
    }
}

/// `1 container`, `3 units`: how many groups of what.
pub fn counted(n: usize, by: GroupBy) -> String {
    let s = if n == 1 { "" } else { "s" };
    format!("{n} {}{s}", by.as_str())
}
