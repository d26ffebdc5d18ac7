//! `ebpfstatctl compare`: two versions of a program side by side, with the change in cost per
//! run and its 95 % interval.

use std::time::Duration;

use anyhow::Result;
use ebpfstat_dbus::{self as wire, Options, Stats1Proxy};
use zbus::OwnedVariant;

use super::explain;
use crate::CompareArgs;
use crate::render::{print_json, print_table, stamp, table};
use crate::units;
use ebpfstat_numbers::rates::change_pct;

/// `+35 %` of `after` against `before`; `-` when there is no `before`.
fn change(before: f64, after: f64) -> String {
    if before <= 0.0 || !before.is_finite() || !after.is_finite() || after < 0.0 {
        return "-".into();
    }
    format!("{:+.0} %", change_pct(after / before))
}

fn signed(v: i64) -> String {
    format!("{v:+}")
}

pub async fn compare(p: &Stats1Proxy<'_>, a: &CompareArgs, json: bool) -> Result<()> {
    let mut options = Options::new();
    options.insert("min_runs".into(), OwnedVariant::from(a.min_runs));
    options.insert("min_seconds".into(), OwnedVariant::from(a.min_seconds));
    let c = p
        .compare(
            &a.program,
            a.before.as_deref().unwrap_or(""),
            a.after.as_deref().unwrap_or(""),
            options,
        )
        .await
        .map_err(explain)?;
    if json {
        return print_json(&c);
    }
    out!("{}", c.verdict)?;
    let (b, n) = (&c.before, &c.after);
    let mut t = table(&["", "BEFORE", "AFTER", "CHANGE"], 1);
    // The interval is in the verdict above: the table stays within 80 columns.
    let avg_change = if c.judged {
        change(1.0, c.ratio)
    } else {
        "not judged".into()
    };
    let observed = |v: &wire::VersionInfo| {
        humantime::format_duration(Duration::from_secs(v.observed_ns / 1_000_000_000)).to_string()
    };
    let rows: Vec<[String; 4]> = vec![
        ["tag".into(), b.tag.clone(), n.tag.clone(), String::new()],
        [
            "loads".into(),
            b.series.len().to_string(),
            n.series.len().to_string(),
            String::new(),
        ],
        [
            "first seen".into(),
            stamp(b.first_seen_ns),
            stamp(n.first_seen_ns),
            String::new(),
        ],
        [
            "last seen".into(),
            stamp(b.last_seen_ns),
            stamp(n.last_seen_ns),
            String::new(),
        ],
        ["observed".into(), observed(b), observed(n), String::new()],
        [
            "runs".into(),
            units::count(b.runs as f64),
            units::count(n.runs as f64),
            String::new(),
        ],
        [
            "per run*".into(),
            units::ns(b.median_ns_per_run),
            units::ns(n.median_ns_per_run),
            avg_change,
        ],
        [
            "runs/s".into(),
            units::count(b.runs_per_sec),
            units::count(n.runs_per_sec),
            change(b.runs_per_sec, n.runs_per_sec),
        ],
        [
            "CPU%".into(),
            units::pct(b.cpu_pct),
            units::pct(n.cpu_pct),
            change(b.cpu_pct, n.cpu_pct),
        ],
        [
            "map memory".into(),
            units::bytes(b.map_memory_bytes),
            units::bytes(n.map_memory_bytes),
            change(b.map_memory_bytes as f64, n.map_memory_bytes as f64),
        ],
        [
            "verified insns".into(),
            b.verified_insns.to_string(),
            n.verified_insns.to_string(),
            signed(i64::from(n.verified_insns) - i64::from(b.verified_insns)),
        ],
        [
            "jited size".into(),
            units::bytes(u64::from(b.jited_size)),
            units::bytes(u64::from(n.jited_size)),
            signed(i64::from(n.jited_size) - i64::from(b.jited_size)),
        ],
    ];
    for r in rows {
        t.add_row(r);
    }
    print_table(&t)?;
    out!(
        "* cost per run: the median of per-step averages (steps of {}: {} before, {} after); its \
         change is the Hodges–Lehmann estimate, with its Mann–Whitney 95 % interval in the first \
         line, called significant beyond ±5 % and 15 ns",
        humantime::format_duration(Duration::from_nanos(c.step_ns)),
        b.steps,
        n.steps
    )?;
    Ok(())
}
