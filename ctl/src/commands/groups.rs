//! `ebpfstatctl top --by container|unit|owner`: programs summed by who holds them.

use std::time::{Duration, SystemTime};

use anyhow::Result;
use ebpfstat_dbus::json::{GroupJson, Over};
use ebpfstat_dbus::{self as wire, Stats1Proxy};
use ebpfstat_numbers::WallNs;

use super::explain;
use crate::render::groups::{counted, group_name};
use crate::render::{estimated, print_json, print_table, say, span, table};
use crate::{TopArgs, units};

/// How many of the groups are named (not `(host)` or `(unloaded)`).
fn named(groups: &[wire::Group]) -> usize {
    groups.iter().filter(|g| g.kind == "named").count()
}

/// Asks for the groups over `window` (or since load) and prints them.
pub async fn print(
    p: &Stats1Proxy<'_>,
    a: &TopArgs,
    by: wire::GroupBy,
    window: Duration,
    json: bool,
) -> Result<()> {
    let mut options = a.filter.options();
    let to = SystemTime::now();
    let from = a.since.map_or(to - window, |w| w.0);
    if a.cumulative {
        options.insert("since_load".into(), true.into());
    }
    let (info, groups) = p
        .groups(
            by.as_str(),
            WallNs::of(from).ns(),
            WallNs::of(to).ns() + 1,
            a.sort.key().as_str(),
            a.n,
            options,
        )
        .await
        .map_err(explain)?;
    let over = if a.cumulative {
        Over::SinceLoad
    } else {
        Over::Window
    };
    if json {
        let rows: Vec<GroupJson> = groups
            .iter()
            .map(|g| GroupJson::of(g, by.as_str(), over))
            .collect();
        return print_json(&rows);
    }
    let when = if a.cumulative {
        "since each program was loaded".to_owned()
    } else {
        format!(
            "over the last {}",
            span(to.duration_since(from).unwrap_or_default())
        )
    };
    say(&format!(
        "{} of {} programs, ranked by {}, {when}",
        counted(named(&groups), by),
        info.programs,
        a.sort.key().meaning(),
    ))?;
    render(&groups, by, a.cumulative)
}

fn render(groups: &[wire::Group], by: wire::GroupBy, cumulative: bool) -> Result<()> {
    let first = by.as_str().to_uppercase();
    let (runs, cpu) = if cumulative {
        ("RUNS", "CPU% SINCE LOAD")
    } else {
        ("RUNS/S", "CPU%")
    };
    let mut t = table(
        &[&first, "PROGRAMS", runs, "RUN TIME", "AVG", cpu, "MAP MEM"],
        1,
    );
    // A group's name whole while columns can be left out for it (up to 40 characters).
    let longest = groups
        .iter()
        .map(|g| group_name(g, by).chars().count())
        .max();
    let min = longest.map_or(12, |l| u16::try_from(l.clamp(12, 40)).unwrap_or(40));
    t.cut(&first, min, 3);
    t.drop_first(&["RUN TIME", "AVG", "MAP MEM", "PROGRAMS"]);
    for g in groups {
        let rate = |v: f64, show: fn(f64) -> String| estimated(v, g.estimated, show);
        t.add_row(vec![
            group_name(g, by),
            g.programs.to_string(),
            if cumulative {
                units::count(g.run_cnt as f64)
            } else {
                rate(g.runs_per_sec, units::count)
            },
            rate(g.run_time_ns as f64, units::ns),
            units::ns(g.avg_ns_per_run),
            rate(g.cpu_pct, units::pct),
            if g.kind == "unloaded" {
                "-".into()
            } else {
                units::bytes(g.map_memory_bytes)
            },
        ]);
    }
    print_table(&t)?;
    if groups.iter().any(|g| g.estimated) {
        say("~ extrapolated: run-time stats were on for only part of the window")?;
    }
    say("a program held from several groups counts in each; a map once per group")?;
    Ok(())
}
