//! The subcommands: one call (or a few) to the daemon, then a table or JSON.

use std::io::{IsTerminal, Write};
use std::time::{Duration, SystemTime};

use anyhow::{Context, Result, bail};
use comfy_table::{CellAlignment, Table, presets};
use ebpfstat_dbus::{self as wire, Options, Stats1Proxy};
use serde_json::{Value, json};

use crate::connect::{self, ConnectError};
use crate::notes::map_memory_notes;
use crate::units;
use crate::{Cli, Command, HistoryArgs, Metric, Sort, TopArgs};

fn ns_of(t: SystemTime) -> i64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
}

fn time_of(ns: i64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_nanos(ns.max(0) as u64)
}

fn stamp(ns: i64) -> String {
    if ns <= 0 {
        return "-".into();
    }
    humantime::format_rfc3339_seconds(time_of(ns)).to_string()
}

/// A failed call in words a person can act on.
fn explain(e: zbus::Error) -> anyhow::Error {
    if connect::is_denied(&e) {
        return ConnectError::Denied.into();
    }
    match wire::Error::from(e) {
        wire::Error::NoSuchProgram(msg) => anyhow::anyhow!("no such program: {msg}"),
        wire::Error::InvalidArgument(msg) => anyhow::anyhow!("invalid argument: {msg}"),
        wire::Error::Unavailable(msg) => anyhow::anyhow!("unavailable: {msg}"),
        wire::Error::ZBus(e) => match wire::error_name(&e) {
            Some((name, msg)) => anyhow::anyhow!("{name}: {msg}"),
            None => anyhow::anyhow!("the call to ebpfstatd failed: {e}"),
        },
    }
}

pub async fn run(cli: &Cli) -> Result<()> {
    let proxy = connect::connect(cli.address.as_deref(), cli.socket.as_ref()).await?;
    match &cli.command {
        Command::Top(a) => top(&proxy, a, cli.json).await,
        Command::History(a) => history(&proxy, a, cli.json).await,
        Command::List => list(&proxy, cli.json).await,
        Command::Show { program } => show(&proxy, program, cli.json).await,
        Command::Maps => maps(&proxy, cli.json).await,
        Command::Status => status(&proxy, cli.json).await,
        Command::GenerateDocs { .. } => Ok(()),
    }
}

fn table(header: &[&str], right_from: usize) -> Table {
    let mut t = Table::new();
    t.load_preset(presets::NOTHING);
    let tty = std::io::stdout().is_terminal();
    t.set_header(header.iter().map(|h| {
        if tty {
            format!("\x1b[1m{h}\x1b[0m")
        } else {
            (*h).to_owned()
        }
    }));
    for i in right_from..header.len() {
        if let Some(c) = t.column_mut(i) {
            c.set_cell_alignment(CellAlignment::Right);
        }
    }
    t
}

fn print_json(v: &impl serde::Serialize) -> Result<()> {
    let mut out = std::io::stdout().lock();
    serde_json::to_writer_pretty(&mut out, v).context("writing JSON")?;
    writeln!(out)?;
    Ok(())
}

fn footnotes(lines: &[String]) {
    for (i, l) in lines.iter().enumerate() {
        println!("{} {l}", "*".repeat(i + 1));
    }
}

fn owners(o: &[wire::Owner]) -> String {
    o.iter()
        .map(|o| {
            if o.unit.is_empty() {
                format!("{}[{}]", o.comm, o.pid)
            } else {
                format!("{}[{}] {}", o.comm, o.pid, o.unit)
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

async fn top(p: &Stats1Proxy<'_>, a: &TopArgs, json: bool) -> Result<()> {
    loop {
        let snap = p.snapshot(Options::new()).await.map_err(explain)?;
        if a.cumulative {
            top_cumulative(&snap, a, json)?;
        } else {
            let to = SystemTime::now();
            let from = a.since.map_or(to - a.window, |w| w.0);
            // Every program, for the cost of stats over all of them; the first n are shown.
            let mut rows = p
                .top(
                    ns_of(from),
                    ns_of(to) + 1,
                    a.sort.wire(),
                    ebpfstat_dbus::MAX_TOP_N,
                    Options::new(),
                )
                .await
                .map_err(explain)?;
            let overhead_ns: f64 = rows.iter().map(|r| r.rates.stats_overhead_ns).sum();
            rows.truncate(a.n as usize);
            if a.watch && !json && std::io::stdout().is_terminal() {
                print!("\x1b[2J\x1b[H");
            }
            if json {
                print_json(&rows)?;
            } else {
                let span = to.duration_since(from).unwrap_or_default();
                let window = humantime::format_duration(Duration::from_secs(span.as_secs()));
                println!(
                    "top {} by {} over the last {window} (stats {})",
                    rows.len(),
                    a.sort.wire(),
                    snap.stats_state
                );
                println!(
                    "stats cost this host {} of one core over the last {window} ({} per program run)",
                    units::pct(overhead_ns / span.as_secs_f64().max(1e-9) / 1e7),
                    units::ns(snap.stats_cost_ns)
                );
                render_top(&rows, &snap);
            }
        }
        if !a.watch {
            return Ok(());
        }
        tokio::time::sleep(a.refresh).await;
    }
}

/// A value extrapolated from partial coverage is marked `~`.
fn estimated(v: f64, estimated: bool, show: fn(f64) -> String) -> String {
    if estimated {
        format!("~{}", show(v))
    } else {
        show(v)
    }
}

fn render_top(rows: &[wire::TopRow], snap: &wire::Snapshot) {
    let mut t = table(
        &[
            "ID",
            "NAME",
            "TYPE",
            "RUNS/S",
            "AVG",
            "CPU%",
            "PEAK CPU%",
            "MAP MEM*",
        ],
        3,
    );
    let mut codes = Vec::new();
    for r in rows {
        let live = snap.programs.iter().find(|p| p.series_id == r.series_id);
        if let Some(l) = live {
            codes.extend(l.notes.iter().map(String::as_str));
        }
        t.add_row(vec![
            if r.alive {
                r.id.to_string()
            } else {
                format!("{} (gone)", r.id)
            },
            r.full_name.clone(),
            r.prog_type.clone(),
            estimated(r.rates.est_runs_per_sec, r.rates.estimated, units::count),
            units::ns(r.avg_ns_per_run),
            estimated(r.rates.est_cpu_pct, r.rates.estimated, units::pct),
            units::pct(r.peak_cpu_pct),
            units::bytes(r.map_memory_bytes),
        ]);
    }
    println!("{t}");
    footnotes(&map_memory_notes(&snap.memlock_meaning, codes));
    if rows.iter().any(|r| r.rates.estimated) {
        println!(
            "~ extrapolated: run-time stats were on for only part of the window (duty-cycled to \
             bound their cost)"
        );
    }
}

fn top_cumulative(snap: &wire::Snapshot, a: &TopArgs, json: bool) -> Result<()> {
    let now = snap.time_ns;
    let since_load = |p: &wire::ProgramRow| (now - p.load_time_ns).max(1) as f64;
    let mut rows: Vec<&wire::ProgramRow> = snap.programs.iter().collect();
    let key = |p: &wire::ProgramRow| -> f64 {
        match a.sort {
            Sort::Runtime => p.run_time_ns as f64,
            Sort::Runs => p.run_cnt as f64,
            Sort::Avg => p.run_time_ns as f64 / (p.run_cnt.max(1)) as f64,
            Sort::Cpu => p.run_time_ns as f64 / since_load(p),
            Sort::Mapmem => p.map_memory_bytes as f64,
        }
    };
    rows.sort_by(|x, y| key(y).total_cmp(&key(x)));
    rows.truncate(a.n as usize);
    if json {
        return print_json(&rows);
    }
    println!(
        "top {} by {} since each program was loaded (stats {})",
        rows.len(),
        a.sort.wire(),
        snap.stats_state
    );
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
        ],
        3,
    );
    let mut codes = Vec::new();
    for p in &rows {
        codes.extend(p.notes.iter().map(String::as_str));
        let avg = if p.run_cnt > 0 {
            p.run_time_ns as f64 / p.run_cnt as f64
        } else {
            -1.0
        };
        t.add_row(vec![
            p.id.to_string(),
            p.full_name.clone(),
            p.prog_type.clone(),
            units::count(p.run_cnt as f64),
            units::ns(p.run_time_ns as f64),
            units::ns(avg),
            units::pct(p.run_time_ns as f64 * 100.0 / since_load(p)),
            units::bytes(p.map_memory_bytes),
        ]);
    }
    println!("{t}");
    footnotes(&map_memory_notes(&snap.memlock_meaning, codes));
    Ok(())
}

async fn history(p: &Stats1Proxy<'_>, a: &HistoryArgs, json: bool) -> Result<()> {
    let to = a.until.map_or_else(SystemTime::now, |w| w.0);
    let (mut from, to) = (ns_of(a.since.0), ns_of(to));
    if to <= from {
        bail!("--until must be after --since");
    }
    let step = a.step.as_nanos() as u64;
    let mut info = None;
    let mut points = Vec::new();
    // Pages of at most 2000 points; a generous bound keeps a typo from running for ever.
    while points.len() < 200_000 {
        let (i, mut page) = p
            .history(&a.program, from, to, step, Options::new())
            .await
            .map_err(explain)?;
        points.append(&mut page);
        let next = i.next_from_ns;
        info = Some(i);
        if next == 0 || next <= from {
            break;
        }
        from = next;
    }
    let Some(info) = info else {
        bail!("no answer");
    };
    if json {
        return print_json(&json!({ "info": info, "points": points }));
    }
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
    println!(
        "{} · tier {} · step {}",
        names.join(", "),
        info.tier,
        humantime::format_duration(Duration::from_nanos(info.step_ns))
    );
    let metric = |pt: &wire::HistoryPoint| -> f64 {
        match (a.metric, a.cumulative) {
            (Metric::Cpu, _) => pt.rates.est_cpu_pct,
            (Metric::Runs, false) => pt.run_cnt as f64,
            (Metric::Runs, true) => pt.cum_run_cnt as f64,
            (Metric::Runtime, false) => pt.run_time_ns as f64,
            (Metric::Runtime, true) => pt.cum_run_time_ns as f64,
            (Metric::Avg, _) => pt.avg_ns_per_run.max(0.0),
        }
    };
    let values: Vec<f64> = points.iter().map(metric).collect();
    let width = std::env::var("COLUMNS")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(80usize)
        .saturating_sub(2);
    println!(
        "{:?}{}: {}",
        a.metric,
        if a.cumulative { " (cumulative)" } else { "" },
        units::sparkline(&units::downsample(&values, width))
    );
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
    for pt in &points {
        let row = if a.cumulative {
            vec![
                stamp(pt.start_ns),
                pt.samples.to_string(),
                units::count(pt.cum_run_cnt as f64),
                units::ns(pt.cum_run_time_ns as f64),
            ]
        } else {
            vec![
                stamp(pt.start_ns),
                pt.samples.to_string(),
                units::count(pt.run_cnt as f64),
                units::ns(pt.run_time_ns as f64),
                units::ns(pt.avg_ns_per_run),
                estimated(pt.rates.est_cpu_pct, pt.rates.estimated, units::pct),
                units::pct(pt.peak_cpu_pct),
            ]
        };
        t.add_row(row);
    }
    println!("{t}");
    if points.iter().any(|p| p.frozen > 0) {
        println!(
            "some samples were taken while run-time stats were off: their zeros are not idleness"
        );
    }
    Ok(())
}

async fn list(p: &Stats1Proxy<'_>, json: bool) -> Result<()> {
    let snap = p.snapshot(Options::new()).await.map_err(explain)?;
    if json {
        return print_json(&snap);
    }
    println!(
        "{} programs · stats {} · {}",
        snap.programs.len(),
        snap.stats_state,
        stamp(snap.time_ns)
    );
    let mut t = table(
        &[
            "ID", "NAME", "TYPE", "RUNS", "RUNS/S", "AVG", "CPU%", "MAP MEM*", "OWNERS",
        ],
        3,
    );
    let mut codes = Vec::new();
    // Duty-cycled: the last interval was observed in part; rates are scaled to all of it.
    let partial = snap.coverage < 0.999;
    let scale = 1.0 / snap.coverage.max(0.01);
    for r in &snap.programs {
        codes.extend(r.notes.iter().map(String::as_str));
        t.add_row(vec![
            r.id.to_string(),
            r.full_name.clone(),
            r.prog_type.clone(),
            units::count(r.run_cnt as f64),
            estimated(r.runs_per_sec * scale, partial, units::count),
            units::ns(r.avg_ns_per_run),
            estimated(r.cpu_pct * scale, partial, units::pct),
            units::bytes(r.map_memory_bytes),
            owners(&r.owners),
        ]);
    }
    println!("{t}");
    footnotes(&map_memory_notes(&snap.memlock_meaning, codes));
    Ok(())
}

async fn show(p: &Stats1Proxy<'_>, program: &str, json: bool) -> Result<()> {
    let d = p.program(program).await.map_err(explain)?;
    if json {
        return print_json(&d);
    }
    let meaning = p.memlock_meaning().await.unwrap_or_default();
    let r = &d.program;
    let kv = [
        ("id", r.id.to_string()),
        ("name", r.name.clone()),
        ("full name", r.full_name.clone()),
        ("type", r.prog_type.clone()),
        ("tag", r.tag.clone()),
        ("loaded", stamp(r.load_time_ns)),
        ("series", r.series_id.to_string()),
        ("runs", units::count(r.run_cnt as f64)),
        ("run time", units::ns(r.run_time_ns as f64)),
        (
            "now",
            format!(
                "{} runs/s, {} of a core, {} per run",
                units::count(r.runs_per_sec),
                units::pct(r.cpu_pct),
                units::ns(r.avg_ns_per_run)
            ),
        ),
        (
            "map memory*",
            format!(
                "{} ({} own, {} shared)",
                units::bytes(r.map_memory_bytes),
                units::bytes(r.map_memory_own_bytes),
                units::bytes(r.map_memory_shared_bytes)
            ),
        ),
        ("program memory", units::bytes(d.prog_memlock_bytes)),
        (
            "instructions",
            format!(
                "{} verified, {} translated bytes, {} jited bytes",
                d.verified_insns, d.xlated_size, d.jited_size
            ),
        ),
        ("created by uid", d.created_by_uid.to_string()),
        (
            "btf id",
            if d.btf_id == 0 {
                "-".into()
            } else {
                d.btf_id.to_string()
            },
        ),
        (
            "owners",
            if r.owners.is_empty() {
                "-".into()
            } else {
                owners(&r.owners)
            },
        ),
        (
            "pins",
            if d.pins.is_empty() {
                "-".into()
            } else {
                d.pins.join(", ")
            },
        ),
    ];
    for (k, v) in kv {
        println!("{k:>15}: {v}");
    }
    if !d.attach.is_empty() {
        println!("\nattached");
        let mut t = table(&["LINK", "TYPE", "ATTACH TYPE", "TARGET"], 4);
        for a in &d.attach {
            t.add_row(vec![
                a.link_id.to_string(),
                a.link_type.clone(),
                a.attach_type.clone(),
                a.target.clone(),
            ]);
        }
        println!("{t}");
    }
    println!("\nmaps");
    render_maps(&d.maps);
    if !d.notes.is_empty() {
        println!("\nnotes");
        for n in &d.notes {
            println!("  {}: {}", n.code, n.text);
        }
    }
    println!();
    footnotes(&map_memory_notes(
        &meaning,
        r.notes.iter().map(String::as_str),
    ));
    Ok(())
}

fn render_maps(maps: &[wire::MapRow]) {
    let mut t = table(
        &[
            "ID", "NAME", "TYPE", "KEY", "VALUE", "ENTRIES", "FLAGS", "MEMORY*", "USERS",
        ],
        3,
    );
    for m in maps {
        t.add_row(vec![
            m.id.to_string(),
            m.name.clone(),
            m.map_type.clone(),
            m.key_size.to_string(),
            m.value_size.to_string(),
            m.max_entries.to_string(),
            format!("{:#x}", m.flags),
            units::bytes(m.memlock_bytes),
            m.used_by_programs.to_string(),
        ]);
    }
    println!("{t}");
}

async fn maps(p: &Stats1Proxy<'_>, json: bool) -> Result<()> {
    let maps = p.maps().await.map_err(explain)?;
    if json {
        return print_json(&maps);
    }
    let meaning = p.memlock_meaning().await.unwrap_or_default();
    render_maps(&maps);
    footnotes(&map_memory_notes(&meaning, []));
    Ok(())
}

/// An `a{sv}` value as JSON (the status map holds only basic types).
fn to_json(v: &zbus::OwnedVariant) -> Value {
    if let Ok(s) = <&str>::try_from(v) {
        return json!(s);
    }
    if let Ok(n) = u64::try_from(v) {
        return json!(n);
    }
    if let Ok(n) = i64::try_from(v) {
        return json!(n);
    }
    if let Ok(n) = u32::try_from(v) {
        return json!(n);
    }
    if let Ok(n) = f64::try_from(v) {
        return json!(n);
    }
    if let Ok(b) = bool::try_from(v) {
        return json!(b);
    }
    Value::Null
}

async fn status(p: &Stats1Proxy<'_>, json: bool) -> Result<()> {
    let st = p.status().await.map_err(explain)?;
    let map: serde_json::Map<String, Value> =
        st.iter().map(|(k, v)| (k.clone(), to_json(v))).collect();
    if json {
        return print_json(&map);
    }
    let get = |k: &str| map.get(k).cloned().unwrap_or(Value::Null);
    let num = |k: &str| get(k).as_f64().unwrap_or(0.0);
    let text = |k: &str| get(k).as_str().unwrap_or("-").to_owned();
    println!("ebpfstatd {} · kernel {}", text("version"), text("kernel"));
    println!("stats: {}", text("stats_state"));
    println!(
        "stats cost: {} per program run ({}); now {} of one core · mode {}{}",
        units::ns(num("stats_cost_ns")),
        text("stats_cost_source"),
        units::pct(num("stats_overhead_pct")),
        text("stats_mode"),
        match get("stats_other_holder").as_bool() {
            Some(true) => " · another process also holds stats on",
            _ => "",
        }
    );
    println!(
        "sampling: every {} · {} passes, {} late, {} not stored · {} programs now",
        units::ns(num("interval_ns")),
        num("passes"),
        num("late_passes"),
        num("dropped_passes"),
        num("programs")
    );
    println!(
        "database: {} · {} of {} cap (used {}) + WAL {} · {} series",
        text("db_path"),
        units::bytes(num("db_bytes") as u64),
        units::bytes(num("cap_bytes") as u64),
        units::bytes(num("used_bytes") as u64),
        units::bytes(num("wal_bytes") as u64),
        num("series")
    );
    println!(
        "writes: last flush {} · {} passes buffered, {} dropped{}",
        stamp(num("last_flush_ns") as i64),
        num("ticks_buffered"),
        num("ticks_dropped"),
        match text("last_error").as_str() {
            "" | "-" => String::new(),
            e => format!(" · last error: {e}"),
        }
    );
    for tier in ["raw", "1m", "1h"] {
        let k = |w: &str| format!("tier_{tier}_{w}");
        println!(
            "tier {tier:>3}: {} → {} ({})",
            stamp(num(&k("oldest_ns")) as i64),
            stamp(num(&k("newest_ns")) as i64),
            units::bytes(num(&k("bytes")) as u64)
        );
    }
    let uptime = num("uptime_ns").max(1.0);
    println!(
        "daemon: {} CPU over {} up ({} of a core) · RSS {} (peak {})",
        units::ns(num("daemon_cpu_ns")),
        units::ns(uptime),
        units::pct(num("daemon_cpu_ns") * 100.0 / uptime),
        units::bytes(num("daemon_rss_bytes") as u64),
        units::bytes(num("daemon_peak_rss_bytes") as u64)
    );
    if num("clock_steps") > 0.0 {
        println!(
            "the wall clock stepped {} times; series stay ordered by boot time",
            num("clock_steps")
        );
    }
    Ok(())
}
