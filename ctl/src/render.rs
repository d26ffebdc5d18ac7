//! What every subcommand prints with: tables that line up, JSON, footnotes, owners, times.

use std::io::{self, IsTerminal, Write};

use anyhow::{Context, Result};
use comfy_table::{CellAlignment, Table, presets};
use ebpfstat_dbus::{self as wire};
use ebpfstat_numbers::WallNs;

use crate::units;

/// A wire time as RFC 3339 seconds; `-` when unknown (0).
pub fn stamp(ns: i64) -> String {
    if ns <= 0 {
        return "-".into();
    }
    humantime::format_rfc3339_seconds(WallNs::from_ns(ns).time()).to_string()
}

pub fn table(header: &[&str], right_from: usize) -> Table {
    let mut t = Table::new();
    t.load_preset(presets::NOTHING);
    t.set_header(header.iter().copied());
    for i in right_from..header.len() {
        if let Some(c) = t.column_mut(i) {
            c.set_cell_alignment(CellAlignment::Right);
        }
    }
    t
}

/// Text in the last column (holders) reads from the left.
pub fn left_align_last(t: &mut Table) {
    let last = t.column_count().saturating_sub(1);
    if let Some(c) = t.column_mut(last) {
        c.set_cell_alignment(CellAlignment::Left);
    }
}

/// On a terminal, long text in a table wraps within the terminal's width instead of running
/// past it (sentences such as events and alerts); piped, lines stay whole for tools.
pub fn wrap_to_terminal(t: &mut Table) {
    if !io::stdout().is_terminal() {
        return;
    }
    if let Ok((cols, _)) = ratatui::crossterm::terminal::size() {
        t.set_content_arrangement(comfy_table::ContentArrangement::Dynamic);
        t.set_width(cols);
    }
}

/// Prints a table; on a terminal its header is bold. The escape codes go around the laid-out
/// header line, never into a cell, where they would count as width and misalign every column.
pub fn print_table(t: &Table) -> io::Result<()> {
    let text = t.to_string();
    let (header, rows) = text.split_once('\n').unwrap_or((&text, ""));
    let mut out = io::stdout().lock();
    if out.is_terminal() {
        writeln!(out, "\x1b[1m{header}\x1b[0m")?;
    } else {
        writeln!(out, "{header}")?;
    }
    if !rows.is_empty() {
        writeln!(out, "{rows}")?;
    }
    Ok(())
}

pub fn print_json(v: &impl serde::Serialize) -> Result<()> {
    let mut out = io::stdout().lock();
    serde_json::to_writer_pretty(&mut out, v).context("writing JSON")?;
    writeln!(out)?;
    Ok(())
}

pub fn footnotes(lines: &[String]) -> io::Result<()> {
    for (i, l) in lines.iter().enumerate() {
        out!("{} {l}", "*".repeat(i + 1))?;
    }
    Ok(())
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

/// The maps table; with `meaning` (what memory means on this kernel), each row whose memory
/// leaves something out points at its footnote, and the footnotes follow.
pub fn render_maps(maps: &[wire::MapRow], meaning: Option<&str>) -> io::Result<()> {
    let notes = meaning.map(|m| {
        crate::notes::coded_notes(
            m,
            maps.iter().flat_map(|r| r.notes.iter().map(String::as_str)),
        )
    });
    let marker = |row: &wire::MapRow| {
        notes
            .as_deref()
            .map_or_else(String::new, |n| marks(&row.notes, n))
    };
    let mut t = table(
        &[
            "ID", "NAME", "TYPE", "KEY", "VALUE", "ENTRIES", "FLAGS", "MEMORY*", "PROGS", "HOLDERS",
        ],
        3,
    );
    left_align_last(&mut t);
    for m in maps {
        t.add_row(vec![
            m.id.to_string(),
            m.name.clone(),
            m.map_type.clone(),
            m.key_size.to_string(),
            m.value_size.to_string(),
            m.max_entries.to_string(),
            format!("{:#x}", m.flags),
            format!("{}{}", units::bytes(m.memlock_bytes), marker(m)),
            m.used_by_programs.to_string(),
            owners(&m.owners),
        ]);
    }
    print_table(&t)?;
    if let Some(notes) = notes {
        print_notes(notes)?;
    }
    Ok(())
}

/// ` **`: the footnotes (by their stars) of the caveat codes a row carries.
pub fn marks(codes: &[String], notes: &[(Option<&'static str>, String)]) -> String {
    notes
        .iter()
        .enumerate()
        .filter(|(_, (code, _))| code.is_some_and(|c| codes.iter().any(|n| n == c)))
        .map(|(i, _)| format!(" {}", "*".repeat(i + 1)))
        .collect()
}

/// The footnotes, each after its stars.
pub fn print_notes(notes: Vec<(Option<&'static str>, String)>) -> io::Result<()> {
    let lines: Vec<String> = notes.into_iter().map(|(_, text)| text).collect();
    footnotes(&lines)
}
