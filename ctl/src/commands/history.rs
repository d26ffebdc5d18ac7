//! `ebpfstatctl history`: one program (or every load of a name) over time.

use std::time::Duration;

use anyhow::Result;
use ebpfstat_dbus::json::HistoryJson;
use ebpfstat_dbus::{self as wire, Options, Stats1Proxy};
use ebpfstat_numbers::rates::avg_ns_per_run;
use ebpfstat_numbers::time;

use super::{explain, range_ns};
use crate::render::fit::say_named;
use crate::render::{
    estimated, print_json, print_table, say, say_indented, stamp, table, terminal_width,
};
use crate::{HistoryArgs, Metric, units};

/// The range and the options a history asks for (a program's or a map's). One page: the
/// daemon clips the range to when it was seen and says where to go on, so memory stays bounded
/// whatever the range.
pub(crate) fn asked(a: &HistoryArgs) -> Result<((i64, i64), Options)> {
    let range = range_ns(a.since, a.until, "6h")?;
    let mut options = Options::new();
    options.insert("max_points".into(), zbus::OwnedVariant::from(a.max_points));
    Ok((range, options))
}

pub async fn history(
    p: &Stats1Proxy<'_>,
    program: &str,
    a: &HistoryArgs,
    json: bool,
) -> Result<()> {
    let ((from, to), options) = asked(a)?;
    let step = time::duration_ns(a.step);
    let (info, points) = p
        .history(program, from, to, step, options)
        .await
        .map_err(explain)?;
    if json {
        return print_json(&HistoryJson::of(&info, &points));
    }
    header(&info, a, step)?;
    if points.is_empty() {
        say("no samples of it in that range")?;
        return Ok(());
    }
    chart(&points, a)?;
    let stalled = steps(&points, &info, a)?;
    footnotes(&points, &info, stalled)
}

/// Which loads, at what tier and step (and why the step is not the one asked for). A name
/// covers each of its loads, reloads and versions included: with more than one, each load on a
/// line of its own, its version numbered in the order the versions were first loaded. On a
/// terminal the name is cut to leave the line's width to the rest.
fn header(info: &wire::HistoryInfo, a: &HistoryArgs, step: u64) -> Result<()> {
    let shown_step = humantime::format_duration(Duration::from_nanos(info.step_ns));
    let loads = Loads::of(&info.series);
    match loads.all.as_slice() {
        [(s, _)] => say_named(
            "",
            &s.full_name,
            &format!(
                " (id {}{}) · tier {} · step {shown_step}",
                s.id,
                if s.alive { "" } else { ", gone" },
                info.tier,
            ),
            2,
        )?,
        all => {
            let name = all.first().map_or("", |(s, _)| s.full_name.as_str());
            let rest = format!(
                " · {} loads, {} · tier {} · step {shown_step}",
                all.len(),
                plural(loads.versions, "version"),
                info.tier,
            );
            say_named("", name, &rest, 2)?;
            for (s, v) in all {
                let line = format!(
                    "  v{v} tag {} · id {} · {} to {}",
                    short_tag(&s.tag),
                    s.id,
                    stamp(s.first_seen_ns),
                    if s.alive {
                        "now".to_owned()
                    } else {
                        stamp(s.last_seen_ns)
                    },
                );
                say_indented(&line, 4)?;
            }
        }
    }
    if info.step_ns > step {
        say(&format!(
            "(step raised from {}: this tier, or the sampling interval, holds nothing finer)",
            humantime::format_duration(a.step)
        ))?;
    }
    Ok(())
}

/// The loads of a history, oldest first, each with its version's number (1 for the code
/// loaded first; a load of code seen before keeps that code's number).
struct Loads<'a> {
    all: Vec<(&'a wire::SeriesInfo, usize)>,
    versions: usize,
}

impl<'a> Loads<'a> {
    fn of(series: &'a [wire::SeriesInfo]) -> Self {
        let mut sorted: Vec<&wire::SeriesInfo> = series.iter().collect();
        sorted.sort_by_key(|s| (s.first_seen_ns, s.series_id));
        let mut tags: Vec<&str> = Vec::new();
        let all = sorted
            .into_iter()
            .map(|s| {
                let v = match tags.iter().position(|t| *t == s.tag) {
                    Some(i) => i + 1,
                    None => {
                        tags.push(&s.tag);
                        tags.len()
                    }
                };
                (s, v)
            })
            .collect();
        Self {
            all,
            versions: tags.len(),
        }
    }

    /// The versions that ran in a step (`v1`, `v1 v2`), a version's loads side by side
    /// counted (`v2×2`); empty when the history is of one load.
    fn in_step(&self, pt: &wire::HistoryPoint) -> String {
        if self.all.len() < 2 {
            return String::new();
        }
        let mut counts: Vec<(usize, usize)> = Vec::new();
        for (s, v) in &self.all {
            let until = if s.alive { i64::MAX } else { s.last_seen_ns };
            if s.first_seen_ns < pt.end_ns && until >= pt.start_ns {
                match counts.iter_mut().find(|(cv, _)| cv == v) {
                    Some((_, n)) => *n += 1,
                    None => counts.push((*v, 1)),
                }
            }
        }
        counts.sort_unstable();
        let marks: Vec<String> = counts
            .iter()
            .map(|&(v, n)| match n {
                1 => format!("v{v}"),
                n => format!("v{v}×{n}"),
            })
            .collect();
        marks.join(" ")
    }
}

/// A tag as versions are named elsewhere (`compare`, `events`): its first 8 hex digits.
fn short_tag(tag: &str) -> &str {
    tag.get(..8).unwrap_or(tag)
}

fn plural(n: usize, what: &str) -> String {
    if n == 1 {
        format!("1 {what}")
    } else {
        format!("{n} {what}s")
    }
}

/// The chosen metric as one line of blocks, as wide as the terminal (piped: `COLUMNS`, or 80).
fn chart(points: &[wire::HistoryPoint], a: &HistoryArgs) -> Result<()> {
    // Cumulative: what the program had done since load at the end of each step (its CPU is
    // its run time so far).
    let metric = |pt: &wire::HistoryPoint| -> f64 {
        match (a.metric, a.cumulative) {
            (Metric::Cpu, false) => pt.rates.est_cpu_pct,
            (Metric::Runs, false) => pt.run_cnt as f64,
            (Metric::Runtime, false) => pt.run_time_ns as f64,
            (Metric::Avg, false) => pt.avg_ns_per_run.max(0.0),
            (Metric::Runs, true) => pt.cum_run_cnt as f64,
            (Metric::Cpu | Metric::Runtime, true) => pt.cum_run_time_ns as f64,
            (Metric::Avg, true) => {
                avg_ns_per_run(pt.cum_run_time_ns, pt.cum_run_cnt).unwrap_or(0.0)
            }
        }
    };
    let values: Vec<f64> = points.iter().map(metric).collect();
    let label = format!(
        "{:?}{}: ",
        a.metric,
        if a.cumulative { " (cumulative)" } else { "" }
    );
    let width = match terminal_width() {
        Some(w) => usize::from(w).saturating_sub(label.len()),
        None => std::env::var("COLUMNS")
            .ok()
            .and_then(|c| c.parse().ok())
            .unwrap_or(80usize)
            .saturating_sub(2),
    };
    out!(
        "{label}{}",
        units::sparkline(&units::downsample(&values, width))
    )?;
    Ok(())
}

/// The table of steps; whether a step's samples covered a stall (marked `*`, in a SAMPLES
/// column on screen). With more than one load, a VERSION column says which ran in each step.
/// On a terminal too narrow for all, columns are left out whole (never TIME, nor the column of
/// the metric charted) and VERSION is cut.
fn steps(points: &[wire::HistoryPoint], info: &wire::HistoryInfo, a: &HistoryArgs) -> Result<bool> {
    let loads = Loads::of(&info.series);
    let versioned = loads.all.len() > 1;
    let mut head: Vec<&str> = vec!["TIME"];
    if versioned {
        head.push("VERSION");
    }
    head.extend_from_slice(if a.cumulative {
        &["SAMPLES", "RUNS SINCE LOAD", "RUN TIME SINCE LOAD"][..]
    } else {
        &["SAMPLES", "RUNS", "RUN TIME", "AVG", "CPU%", "PEAK CPU%"][..]
    });
    let mut t = table(&head, if versioned { 2 } else { 1 });
    let step_ns = info.step_ns.max(1);
    let mut stalled = false;
    for pt in points {
        // A step whose samples cover much more than the step: a late pass, or failed ones.
        let long = pt.span_ns > step_ns.saturating_add(step_ns / 2);
        stalled |= long;
        let mut row = step_row(pt, long, a.cumulative);
        if versioned {
            row.insert(1, loads.in_step(pt));
        }
        t.add_row(row);
    }
    // Cut no narrower than its title: a column whose title is cut and cells whole reads badly.
    t.cut("VERSION", 7, 1);
    let keep = charted(a);
    let order: Vec<&str> = [
        "PEAK CPU%",
        "RUN TIME",
        "SAMPLES",
        "RUN TIME SINCE LOAD",
        "AVG",
        "RUNS",
        "RUNS SINCE LOAD",
        "VERSION",
        "CPU%",
    ]
    .into_iter()
    .filter(|c| !keep.contains(c))
    .collect();
    t.drop_first(&order);
    let printed = print_table(&t)?;
    Ok(stalled && printed.shows("SAMPLES"))
}

/// The columns of the metric the chart shows.
fn charted(a: &HistoryArgs) -> &'static [&'static str] {
    match (a.metric, a.cumulative) {
        (Metric::Cpu, false) => &["CPU%"],
        (Metric::Runs, false) => &["RUNS"],
        (Metric::Runtime, false) => &["RUN TIME"],
        (Metric::Avg, false) => &["AVG"],
        (Metric::Runs, true) => &["RUNS SINCE LOAD"],
        (Metric::Cpu | Metric::Runtime, true) => &["RUN TIME SINCE LOAD"],
        (Metric::Avg, true) => &["RUNS SINCE LOAD", "RUN TIME SINCE LOAD"],
    }
}

fn step_row(pt: &wire::HistoryPoint, long: bool, cumulative: bool) -> Vec<String> {
    let samples = if long {
        format!("{}*", pt.samples)
    } else {
        pt.samples.to_string()
    };
    if pt.samples == 0 {
        // Nothing was seen in this step: no number is true, so none is shown.
        let mut row = vec![stamp(pt.start_ns), "0".to_owned()];
        row.resize(if cumulative { 4 } else { 7 }, "-".to_owned());
        return row;
    }
    if cumulative {
        vec![
            stamp(pt.start_ns),
            samples,
            units::count(pt.cum_run_cnt as f64),
            units::ns(pt.cum_run_time_ns as f64),
        ]
    } else {
        vec![
            stamp(pt.start_ns),
            samples,
            units::count(pt.run_cnt as f64),
            units::ns(pt.run_time_ns as f64),
            units::ns(pt.avg_ns_per_run),
            estimated(pt.rates.est_cpu_pct, pt.rates.estimated, units::pct),
            units::pct(pt.peak_cpu_pct),
        ]
    }
}

/// What a reader needs below the table: a partial last step, where the range goes on, stalls,
/// and samples taken while stats were off.
fn footnotes(points: &[wire::HistoryPoint], info: &wire::HistoryInfo, stalled: bool) -> Result<()> {
    if let Some(last) = points.last()
        && u64::try_from(last.end_ns - last.start_ns).is_ok_and(|w| w < info.step_ns)
    {
        say(&format!(
            "the last step is partial: it ends at the newest sample ({})",
            stamp(last.end_ns)
        ))?;
    }
    if info.next_from_ns > 0 {
        say(&format!(
            "{} points shown; the range goes on: continue with --since {}",
            points.len(),
            stamp(info.next_from_ns)
        ))?;
    }
    if stalled {
        say_indented(
            "* a pass came late or passes failed: the step's counts cover the time since the \
             pass before (its CPU% is over that time)",
            2,
        )?;
    }
    let (from, to) = (
        points.first().map_or(0, |p| p.start_ns),
        points.last().map_or(0, |p| p.end_ns),
    );
    for s in &info.series {
        if s.runs_before_first_pass > 0 && (from..to).contains(&s.first_seen_ns) {
            say(&format!(
                "id {}'s first step is partial: it had run {} times before the first pass saw \
                 it ({}); those runs are in no step (stats were not held on since its load)",
                s.id,
                units::count(s.runs_before_first_pass as f64),
                stamp(s.first_seen_ns)
            ))?;
        }
    }
    if points.iter().any(|p| p.frozen > 0) {
        say("some samples were taken while run-time stats were off: their zeros are not idleness")?;
    }
    Ok(())
}
