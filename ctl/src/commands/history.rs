//! `ebpfstatctl history`: one program (or every load of a name) over time.

use std::time::Duration;

use anyhow::Result;
use ebpfstat_dbus::{self as wire, Options, Stats1Proxy};
use ebpfstat_numbers::rates::avg_ns_per_run;
use ebpfstat_numbers::time;
use serde_json::json;

use super::{explain, range_ns};
use crate::render::{estimated, print_json, print_table, stamp, table};
use crate::{HistoryArgs, Metric, units};

pub async fn history(p: &Stats1Proxy<'_>, a: &HistoryArgs, json: bool) -> Result<()> {
    let (from, to) = range_ns(a.since, a.until, "6h")?;
    let step = time::duration_ns(a.step);
    // One page: the daemon clips the range to when the program was seen and says where to go
    // on, so memory stays bounded whatever the range.
    let mut options = Options::new();
    options.insert("max_points".into(), zbus::OwnedVariant::from(a.max_points));
    let (info, points) = p
        .history(&a.program, from, to, step, options)
        .await
        .map_err(explain)?;
    if json {
        return print_json(&json!({ "info": info, "points": points }));
    }
    header(&info, a, step)?;
    if points.is_empty() {
        out!("no samples of it in that range")?;
        return Ok(());
    }
    chart(&points, a)?;
    let stalled = steps(&points, &info, a)?;
    footnotes(&points, &info, stalled)
}

/// Which loads, at what tier and step (and why the step is not the one asked for).
fn header(info: &wire::HistoryInfo, a: &HistoryArgs, step: u64) -> Result<()> {
    let names: Vec<String> = info
        .series
        .iter()
        .map(|s| {
            format!(
                "{} (id {}{})",
                s.full_name,
                s.id,
                if s.alive { "" } else { ", gone" }
            )
        })
        .collect();
    let shown_step = humantime::format_duration(Duration::from_nanos(info.step_ns));
    out!(
        "{} · tier {} · step {shown_step}",
        names.join(", "),
        info.tier,
    )?;
    if info.step_ns > step {
        out!(
            "(step raised from {}: this tier, or the sampling interval, holds nothing finer)",
            humantime::format_duration(a.step)
        )?;
    }
    Ok(())
}

/// The chosen metric as one line of blocks, as wide as the terminal.
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
    let width = std::env::var("COLUMNS")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(80usize)
        .saturating_sub(2);
    out!(
        "{:?}{}: {}",
        a.metric,
        if a.cumulative { " (cumulative)" } else { "" },
        units::sparkline(&units::downsample(&values, width))
    )?;
    Ok(())
}

/// The table of steps; whether a step's samples covered a stall (marked `*`).
fn steps(points: &[wire::HistoryPoint], info: &wire::HistoryInfo, a: &HistoryArgs) -> Result<bool> {
    let mut t = if a.cumulative {
        table(
            &["TIME", "SAMPLES", "RUNS SINCE LOAD", "RUN TIME SINCE LOAD"],
            1,
        )
    } else {
        table(
            &[
                "TIME",
                "SAMPLES",
                "RUNS",
                "RUN TIME",
                "AVG",
                "CPU%",
                "PEAK CPU%",
            ],
            1,
        )
    };
    let step_ns = info.step_ns.max(1);
    let mut stalled = false;
    for pt in points {
        // A step whose samples cover much more than the step: a late pass, or failed ones.
        let long = pt.span_ns > step_ns.saturating_add(step_ns / 2);
        stalled |= long;
        t.add_row(step_row(pt, long, a.cumulative));
    }
    print_table(&t)?;
    Ok(stalled)
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
        out!(
            "the last step is partial: it ends at the newest sample ({})",
            stamp(last.end_ns)
        )?;
    }
    if info.next_from_ns > 0 {
        out!(
            "{} points shown; the range goes on: continue with --since {}",
            points.len(),
            stamp(info.next_from_ns)
        )?;
    }
    if stalled {
        out!(
            "* a pass came late or passes failed: the step's counts cover the time since the \
             pass before (its CPU% is over that time)"
        )?;
    }
    if points.iter().any(|p| p.frozen > 0) {
        out!(
            "some samples were taken while run-time stats were off: their zeros are not idleness"
        )?;
    }
    Ok(())
}
