//! `ebpfstatctl profile`: every run of a program timed for a while; percentiles and histogram.

use std::time::Duration;

use anyhow::Result;
use ebpfstat_dbus::{self as wire, Options, ProfileEnd, Stats1Proxy};

use super::explain;
use crate::ProfileArgs;
use crate::render::histogram::{bar, by_octave};
use crate::render::{print_json, print_table, say, table};
use crate::units;
use ebpfstat_numbers::text::round_u64;

pub async fn profile(p: &Stats1Proxy<'_>, a: &ProfileArgs, json: bool) -> Result<()> {
    let ns = u64::try_from(a.duration.as_nanos()).unwrap_or(u64::MAX);
    let profile = p
        .profile(&a.program, ns, Options::new())
        .await
        .map_err(explain)?;
    if json {
        return print_json(&profile);
    }
    for line in lines(&profile) {
        say(&line)?;
    }
    if profile.runs == 0 {
        return Ok(());
    }
    let mut t = table(&["P50", "P90", "P99", "P99.9", "MAX", "MEAN"], 0);
    let ns = |v: u64| units::ns(v as f64);
    t.add_row(vec![
        ns(profile.p50_ns),
        ns(profile.p90_ns),
        ns(profile.p99_ns),
        ns(profile.p999_ns),
        ns(profile.max_ns),
        units::ns(profile.mean_ns),
    ]);
    print_table(&t)?;
    out!()?;
    print_histogram(&profile)?;
    Ok(())
}

/// What was traced, how it ended, and what the tracing cost.
pub fn lines(p: &wire::Profile) -> Vec<String> {
    let ended = match p.ended() {
        Some(ProfileEnd::Time) => String::new(),
        Some(ProfileEnd::Budget) => {
            "; stopped early: the tracing had cost the daemon's stats budget".into()
        }
        Some(ProfileEnd::Client) => "; stopped: the caller went away".into(),
        None => format!("; ended: {}", p.ended),
    };
    let seconds = Duration::from_millis(round_u64(p.seconds * 1000.0));
    vec![
        format!(
            "{} (id {}, {}): {} runs traced over {}{ended}",
            p.full_name,
            p.id,
            p.prog_type,
            units::count(p.runs as f64),
            humantime::format_duration(seconds)
        ),
        format!(
            "tracing added {} to each run; {} of each duration is its own (what it records of \
             an empty program); the kernel counted {} runs meanwhile",
            units::ns(p.added_ns_per_run),
            units::ns(p.floor_ns as f64),
            units::count(p.kernel_runs as f64)
        ),
    ]
}

fn print_histogram(p: &wire::Profile) -> std::io::Result<()> {
    let rows = by_octave(&p.buckets);
    let max = rows.iter().map(|r| r.count).max().unwrap_or(0);
    let mut t = table(&["FROM", "TO", "RUNS", "SHARE", ""], 0);
    crate::render::left_align_last(&mut t);
    for r in rows {
        #[expect(clippy::cast_precision_loss, reason = "a share")]
        let share = r.count as f64 / p.runs.max(1) as f64 * 100.0;
        t.add_row(vec![
            units::ns(r.from_ns as f64),
            units::ns(r.to_ns as f64),
            units::count(r.count as f64),
            units::pct(share),
            bar(r.count, max, 30),
        ]);
    }
    print_table(&t).map(drop)
}
