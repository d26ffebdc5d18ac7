//! `ebpfstatctl top`: programs ranked by cost over a window, or since load.

use std::io::IsTerminal;
use std::time::{Duration, SystemTime};

use anyhow::Result;
use ebpfstat_dbus::json::{since_load_rows, window_rows};
use ebpfstat_dbus::{self as wire, Options, SortKey, Stats1Proxy};
use ebpfstat_numbers::WallNs;
use zbus::Str;

use super::explain;
use crate::notes::coded_notes;
use crate::render::{
    StatsCost, estimated, fit_programs, left_align_last, marks, owners, print_json, print_notes,
    print_table, say, span, table,
};
use crate::{By, Cli, TopArgs, live, units};

/// The window of the printed table.
const DEFAULT_WINDOW: Duration = Duration::from_secs(300);

/// The interactive view when a person is at a terminal (stdin and stdout), else the table.
pub async fn top(p: Stats1Proxy<'static>, a: &TopArgs, cli: &Cli) -> Result<()> {
    let terminal = std::io::stdin().is_terminal() && std::io::stdout().is_terminal();
    if terminal && !cli.json && !a.once {
        let target = live::Target {
            address: cli.address.clone(),
            socket: cli.socket.clone(),
            filter: a.filter.options(),
        };
        return live::run(p, a, target).await;
    }
    plain(&p, a, cli.json).await
}

async fn plain(p: &Stats1Proxy<'_>, a: &TopArgs, json: bool) -> Result<()> {
    loop {
        if let Some(by) = a.by.map(By::group_by) {
            if a.watch && !json && std::io::stdout().is_terminal() {
                out_raw!("\x1b[2J\x1b[H")?;
            }
            super::groups::print(p, a, by, a.window.unwrap_or(DEFAULT_WINDOW), json).await?;
        } else if a.cumulative {
            let snap = p.snapshot(since_load_options(a)).await.map_err(explain)?;
            top_cumulative(&snap, a, json)?;
        } else {
            let snap = p.snapshot(a.filter.options()).await.map_err(explain)?;
            let to = SystemTime::now();
            let from = a
                .since
                .map_or(to - a.window.unwrap_or(DEFAULT_WINDOW), |w| w.0);
            let (info, rows) = p
                .top(
                    WallNs::of(from).ns(),
                    WallNs::of(to).ns() + 1,
                    a.sort.key().as_str(),
                    a.n,
                    a.filter.options(),
                )
                .await
                .map_err(explain)?;
            if a.watch && !json && std::io::stdout().is_terminal() {
                out_raw!("\x1b[2J\x1b[H")?;
            }
            if json {
                print_json(&window_rows(&rows, &snap))?;
            } else {
                let span = to.duration_since(from).unwrap_or_default();
                print_header(&rows, &info, span, a, &snap)?;
                render_top(&rows, &snap, a.sort.key())?;
            }
        }
        if !a.watch {
            return Ok(());
        }
        tokio::time::sleep(a.refresh.unwrap_or(Duration::from_secs(1))).await;
    }
}

/// The filters, and the ranking since load the daemon makes of the snapshot.
fn since_load_options(a: &TopArgs) -> Options {
    let mut o = a.filter.options();
    o.insert("sort_by".into(), Str::from(a.sort.key().as_str()).into());
    o.insert("n".into(), a.n.into());
    o
}

fn print_header(
    rows: &[wire::TopRow],
    info: &wire::TopInfo,
    window: Duration,
    a: &TopArgs,
    snap: &wire::Snapshot,
) -> Result<()> {
    let over = format!("over the last {}", span(window));
    say(&title(rows.len(), a, &over, snap))?;
    say(&StatsCost::of_window(info, snap).sentence())?;
    Ok(())
}

/// `top 6 by CPU% while observed over the last 5m (stats enabled)`; `no programs to rank …`
/// when none matched (never `top 0`).
fn title(n: usize, a: &TopArgs, over: &str, snap: &wire::Snapshot) -> String {
    if n == 0 {
        return format!("no programs to rank {over} (stats {})", snap.stats_state);
    }
    format!(
        "top {n} by {} {over} (stats {})",
        a.sort.key().meaning(),
        snap.stats_state
    )
}

/// The column a ranking is by: always shown, never left out to fit.
fn sort_column(key: SortKey) -> &'static str {
    match key {
        SortKey::RunTime => "RUN TIME",
        SortKey::Runs => "RUNS",
        SortKey::Avg => "AVG",
        SortKey::Cpu => "CPU%",
        SortKey::MapMem => "MAP MEM*",
    }
}

/// The window's table: the usual columns, and the count or run time when ranked by it.
fn render_top(rows: &[wire::TopRow], snap: &wire::Snapshot, key: SortKey) -> Result<()> {
    let extra = matches!(key, SortKey::Runs | SortKey::RunTime).then(|| sort_column(key));
    let header: Vec<&str> = ["ID", "NAME", "TYPE"]
        .into_iter()
        .chain(extra)
        .chain(["RUNS/S", "AVG", "CPU%", "PEAK CPU%", "MAP MEM*", "HOLDERS"])
        .collect();
    let mut t = table(&header, 3);
    left_align_last(&mut t);
    fit_programs(
        &mut t,
        &["TYPE", "PEAK CPU%", "MAP MEM*", "HOLDERS", "AVG", "RUNS/S"],
        sort_column(key),
    );
    let live = |r: &wire::TopRow| snap.programs.iter().find(|p| p.series_id == r.series_id);
    let notes = coded_notes(
        &snap.memlock_meaning,
        rows.iter()
            .filter_map(live)
            .flat_map(|l| l.notes.iter().map(String::as_str)),
    );
    for r in rows {
        let live = live(r);
        // Seen in one pass only: no interval yet, so no rate (not a rate of 0).
        let rate = |v: f64, show: fn(f64) -> String| {
            if r.span_ns == 0 {
                "-".into()
            } else {
                estimated(v, r.rates.estimated, show)
            }
        };
        let mut cells = vec![
            if r.alive {
                r.id.to_string()
            } else {
                format!("{} (gone)", r.id)
            },
            r.full_name.clone(),
            r.prog_type.clone(),
        ];
        match key {
            SortKey::Runs => cells.push(rate(r.rates.est_run_cnt as f64, units::count)),
            SortKey::RunTime => cells.push(rate(r.rates.est_run_time_ns as f64, units::ns)),
            _ => {}
        }
        cells.extend([
            rate(r.rates.est_runs_per_sec, units::count),
            units::ns(r.avg_ns_per_run),
            rate(r.rates.est_cpu_pct, units::pct),
            if r.span_ns == 0 {
                "-".into()
            } else {
                units::pct(r.peak_cpu_pct)
            },
            // An unloaded program holds no memory now, and nobody holds it.
            match live {
                Some(l) if r.alive => {
                    format!(
                        "{}{}",
                        units::bytes(r.map_memory_bytes),
                        marks(&l.notes, &notes)
                    )
                }
                _ => "-".into(),
            },
            live.map_or_else(|| "-".into(), |l| owners(&l.owners)),
        ]);
        t.add_row(cells);
    }
    let printed = print_table(&t)?;
    if printed.shows("MAP MEM*") {
        print_notes(notes)?;
    }
    if rows.iter().any(|r| r.rates.estimated) {
        say(
            "~ extrapolated: run-time stats were on for only part of the window (duty-cycled to \
             bound their cost)",
        )?;
    }
    Ok(())
}

fn top_cumulative(snap: &wire::Snapshot, a: &TopArgs, json: bool) -> Result<()> {
    // The daemon ranked them since load and kept the first n.
    if json {
        return print_json(&since_load_rows(snap));
    }
    render_cumulative(snap, a)
}

/// The table since load.
fn render_cumulative(snap: &wire::Snapshot, a: &TopArgs) -> Result<()> {
    let rows = &snap.programs;
    say(&title(rows.len(), a, "since each program was loaded", snap))?;
    let mut t = table(
        &[
            "ID",
            "NAME",
            "TYPE",
            "RUNS",
            "RUN TIME",
            "AVG",
            "CPU% SINCE LOAD",
            "MAP MEM*",
            "HOLDERS",
        ],
        3,
    );
    left_align_last(&mut t);
    let sorted = match a.sort.key() {
        SortKey::Cpu => "CPU% SINCE LOAD",
        key => sort_column(key),
    };
    fit_programs(
        &mut t,
        &["TYPE", "MAP MEM*", "RUN TIME", "HOLDERS", "AVG", "RUNS"],
        sorted,
    );
    let notes = coded_notes(
        &snap.memlock_meaning,
        rows.iter().flat_map(|p| p.notes.iter().map(String::as_str)),
    );
    for p in rows {
        t.add_row(vec![
            p.id.to_string(),
            p.full_name.clone(),
            p.prog_type.clone(),
            units::count(p.run_cnt as f64),
            units::ns(p.run_time_ns as f64),
            units::ns(p.avg_ns_per_run_since_load),
            units::pct(p.cpu_pct_since_load),
            format!(
                "{}{}",
                units::bytes(p.map_memory_bytes),
                marks(&p.notes, &notes)
            ),
            owners(&p.owners),
        ]);
    }
    if print_table(&t)?.shows("MAP MEM*") {
        print_notes(notes)?;
    }
    Ok(())
}
