//! What every subcommand prints with: tables that line up, JSON, footnotes, owners, times.

use std::io::{IsTerminal, Write};

use anyhow::{Context, Result};
use comfy_table::{CellAlignment, Table, presets};
use ebpfstat_dbus::{self as wire, time};

use crate::units;

/// A wire time as RFC 3339 seconds; `-` when unknown (0).
pub fn stamp(ns: i64) -> String {
    if ns <= 0 {
        return "-".into();
    }
    humantime::format_rfc3339_seconds(time::from_ns(ns)).to_string()
}

pub fn table(header: &[&str], right_from: usize) -> Table {
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

pub fn print_json(v: &impl serde::Serialize) -> Result<()> {
    let mut out = std::io::stdout().lock();
    serde_json::to_writer_pretty(&mut out, v).context("writing JSON")?;
    writeln!(out)?;
    Ok(())
}

pub fn footnotes(lines: &[String]) {
    for (i, l) in lines.iter().enumerate() {
        println!("{} {l}", "*".repeat(i + 1));
    }
}

pub fn owners(o: &[wire::Owner]) -> String {
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

/// A value extrapolated from partial coverage is marked `~`.
pub fn estimated(v: f64, estimated: bool, show: fn(f64) -> String) -> String {
    if estimated {
        format!("~{}", show(v))
    } else {
        show(v)
    }
}

pub fn render_maps(maps: &[wire::MapRow]) {
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
