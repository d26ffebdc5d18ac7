//! The `Status()` map's helpers: the daemon's own CPU and memory, the mode in words.

use zbus::{OwnedVariant, Str};

use crate::observer::Mode;

pub fn mode_text(mode: Mode) -> String {
    match mode {
        Mode::Always => "always".into(),
        Mode::Budget(b) => format!("budget {}% of one core", b * 100.0),
        Mode::Fixed(d) => format!("duty {:.0}%", d * 100.0),
    }
}

pub fn var(s: impl Into<String>) -> OwnedVariant {
    OwnedVariant::from(Str::from(s.into()))
}

/// This process's CPU time (user + system) and resident memory.
pub fn own_usage() -> (u64, u64, u64) {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    // SAFETY: sysconf has no memory-safety preconditions.
    let hz = u64::try_from(unsafe { libc::sysconf(libc::_SC_CLK_TCK) })
        .unwrap_or(100)
        .max(1);
    let ticks: u64 = [11, 12]
        .iter()
        .filter_map(|&i| fields.get(i)?.parse::<u64>().ok())
        .sum();
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kib = |key: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
            .unwrap_or(0)
            * 1024
    };
    (
        ticks.saturating_mul(1_000_000_000) / hz,
        kib("VmRSS:"),
        kib("VmHWM:"),
    )
}
