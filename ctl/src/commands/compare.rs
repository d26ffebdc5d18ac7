//! `ebpfstatctl compare`: two versions of a program side by side, with the change in cost per
//! run and its 95 % interval.

use std::time::Duration;

use anyhow::Result;
use ebpfstat_dbus::json::{ComparisonJson, GateJson};
use ebpfstat_dbus::{self as wire, Options, Stats1Proxy};
use zbus::OwnedVariant;

use super::explain;
use crate::CompareArgs;
use crate::render::{footnotes, print_json, print_table, say, stamp, table};
use crate::units;
use ebpfstat_numbers::Share;
use ebpfstat_numbers::rates::change_pct;

/// `+35 %` of `after` against `before`; ten times or more as `×42` (a percentage of a tiny
/// base reads as noise: `+4100 %`); `-` when there is no `before`.
fn change(before: f64, after: f64) -> String {
    if before <= 0.0 || !before.is_finite() || !after.is_finite() || after < 0.0 {
        return "-".into();
    }
    let ratio = after / before;
    if ratio >= 10.0 {
        return format!("×{ratio:.0}");
    }
    format!("{:+.0} %", change_pct(ratio))
}

/// A change of size as a size: `+393.9KiB`, `-4.0KiB`, `0B` (map memory of a few hundred
/// bytes that grew to hundreds of KiB was `+420152 %`).
fn size_change(before: u64, after: u64) -> String {
    match after.cmp(&before) {
        std::cmp::Ordering::Equal => "0B".into(),
        std::cmp::Ordering::Greater => format!("+{}", units::bytes(after - before)),
        std::cmp::Ordering::Less => format!("-{}", units::bytes(before - after)),
    }
}

fn signed(v: i64) -> String {
    format!("{v:+}")
}

pub async fn compare(p: &Stats1Proxy<'_>, a: &CompareArgs, json: bool) -> Result<()> {
    // Only what the user set: the rest is the daemon's configured needs, which its own
    // comparisons (`events`) were judged by.
    let mut options = Options::new();
    for (key, value) in [("min_runs", a.min_runs), ("min_seconds", a.min_seconds)] {
        if let Some(v) = value {
            options.insert(key.into(), OwnedVariant::from(v));
        }
    }
    let c = p
        .compare(
            &a.program,
            a.before.as_deref().unwrap_or(""),
            a.after.as_deref().unwrap_or(""),
            options,
        )
        .await
        .map_err(explain)?;
    let gate = a.fail_above.map(|pct| GateJson {
        fail_above_pct: pct,
        failed: beyond(&c, pct),
    });
    let printed = if json {
        print_json(&ComparisonJson {
            gate,
            ..ComparisonJson::from(&c)
        })
    } else {
        print_human(&c)
    };
    // The gate's verdict first: a reader that went away (`| head -1`) must not turn a failed
    // gate into a pass.
    gate.map_or(Ok(()), |g| judge(&c, g))?;
    printed
}

/// The exit status of `compare --fail-above` when the newer version is beyond the limit
/// (1 is any error, 2 a usage error).
pub const GATE_FAILED: u8 = 3;

/// `--fail-above` failed: said on stderr, and the exit status is [`GATE_FAILED`].
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct GateFailed(pub String);

/// Slower per run by more than `pct` % at 95 % confidence: the whole interval of the ratio
/// lies above `1 + pct / 100`.
fn beyond(c: &wire::Comparison, pct: f64) -> bool {
    c.judged && c.ratio_low > 1.0 + pct / 100.0
}

/// The gate's outcome: an error when it failed; when the versions could not be judged it
/// passes, saying so on stderr (a CI log shows it).
fn judge(c: &wire::Comparison, g: GateJson) -> Result<()> {
    let limit = g.fail_above_pct;
    if g.failed {
        return Err(GateFailed(format!(
            "{}: slower per run by more than {limit} % (95 % interval {:+.0} % to {:+.0} %)",
            c.full_name,
            change_pct(c.ratio_low),
            change_pct(c.ratio_high)
        ))
        .into());
    }
    if !c.judged {
        eprintln!(
            "ebpfstatctl: the gate passes, but nothing was judged: {}",
            crate::render::visible(&c.verdict)
        );
    }
    Ok(())
}

fn print_human(c: &wire::Comparison) -> Result<()> {
    // Prose: on a terminal broken between words within its width.
    say(&c.verdict)?;
    let mut t = table(&["", "BEFORE", "AFTER", "CHANGE"], 1);
    for r in rows(c) {
        t.add_row(r);
    }
    print_table(&t)?;
    footnotes(&[format!(
        "cost per run: the median of per-step averages (steps of {}: {} before, {} after); its \
         change is the Hodges–Lehmann estimate, with its Mann–Whitney 95 % interval in the first \
         line, called significant beyond ±{} % and {} ns",
        humantime::format_duration(Duration::from_nanos(c.step_ns)),
        c.before.steps,
        c.after.steps,
        Share(wire::COMPARE_MIN_EFFECT).percent(),
        wire::COMPARE_MIN_EFFECT_NS,
    )])?;
    Ok(())
}

/// The two versions side by side. The interval is in the verdict above: the table stays
/// within 80 columns.
fn rows(c: &wire::Comparison) -> Vec<[String; 4]> {
    let (b, n) = (&c.before, &c.after);
    let avg_change = if c.judged {
        change(1.0, c.ratio)
    } else {
        "not judged".into()
    };
    let observed = |v: &wire::VersionInfo| {
        humantime::format_duration(Duration::from_secs(v.observed_ns / 1_000_000_000)).to_string()
    };
    let both = |what: &str, f: &dyn Fn(&wire::VersionInfo) -> String, change: String| {
        [what.to_owned(), f(b), f(n), change]
    };
    vec![
        both("tag", &|v| v.tag.clone(), String::new()),
        both("loads", &|v| v.series.len().to_string(), String::new()),
        both("first seen", &|v| stamp(v.first_seen_ns), String::new()),
        both("last seen", &|v| stamp(v.last_seen_ns), String::new()),
        both("observed", &observed, String::new()),
        both("runs", &|v| units::count(v.runs as f64), String::new()),
        both("per run*", &|v| units::ns(v.median_ns_per_run), avg_change),
        both(
            "runs/s",
            &|v| units::count(v.runs_per_sec),
            change(b.runs_per_sec, n.runs_per_sec),
        ),
        both(
            "CPU%",
            &|v| units::pct(v.cpu_pct),
            change(b.cpu_pct, n.cpu_pct),
        ),
        both(
            "map memory",
            &|v| units::bytes(v.map_memory_bytes),
            size_change(b.map_memory_bytes, n.map_memory_bytes),
        ),
        both(
            "verified insns",
            &|v| v.verified_insns.to_string(),
            signed(i64::from(n.verified_insns) - i64::from(b.verified_insns)),
        ),
        both(
            "jited size",
            &|v| units::bytes(u64::from(v.jited_size)),
            signed(i64::from(n.jited_size) - i64::from(b.jited_size)),
        ),
    ]
}
