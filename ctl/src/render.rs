//! What every subcommand prints with: tables that line up, JSON, footnotes, owners, times;
//! and [`visible`], which every text line and table cell goes through on its way to a terminal.

use std::borrow::Cow;
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

/// Whether a character acts on a terminal instead of showing: C0 controls (ESC among them),
/// DEL and C1 controls; or reorders the text after it: bidi overrides and isolates.
fn hostile(c: char) -> bool {
    matches!(
        c,
        '\0'..='\x1f' | '\x7f'..='\u{9f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}'
    )
}

/// Whether `s`, which starts with a backslash, starts `\xNN`: a byte as systemd writes it in
/// unit and cgroup names (`\x2d` for `-`), which reads the same in this escaping.
fn escaped_byte(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() >= 4 && b[1] == b'x' && b[2].is_ascii_hexdigit() && b[3].is_ascii_hexdigit()
}

/// Text as a terminal may be given it. Names, owners, units, cgroups, errors: whatever the
/// daemon sends comes from the kernel or other processes (a comm is anything a process writes),
/// and raw it could clear the screen or fake lines. So ESC is written `\e`, the other C0
/// controls and DEL `\xNN` (`\x07`, `\x0a`), C1 controls and bidi overrides and isolates
/// `\u{…}` (`\u{9b}`, `\u{202e}`), and a backslash is doubled unless it already starts a `\xNN`
/// (as in systemd's `\x2d`, kept so a unit name can be copied): on screen, a backslash always
/// starts an escape. Plain text comes back as it was, without a copy.
pub fn visible(text: &str) -> Cow<'_, str> {
    if !text.chars().any(|c| c == '\\' || hostile(c)) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 16);
    for (i, c) in text.char_indices() {
        match c {
            '\x1b' => out.push_str("\\e"),
            '\\' if escaped_byte(&text[i..]) => out.push('\\'),
            '\\' => out.push_str("\\\\"),
            c if c < ' ' || c == '\x7f' => out.push_str(&format!("\\x{:02x}", u32::from(c))),
            c if hostile(c) => out.push_str(&format!("\\u{{{:x}}}", u32::from(c))),
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// [`visible`], but line breaks stay: for error messages, whose own wording may take two lines.
pub fn visible_lines(text: &str) -> String {
    text.split('\n').map(visible).collect::<Vec<_>>().join("\n")
}

/// A table whose cells are made [`visible`] as they are added: comfy-table then lays out the
/// escaped text, so columns line up with what the terminal shows.
pub struct Grid(Table);

impl Grid {
    pub fn add_row<S: AsRef<str>>(&mut self, cells: impl IntoIterator<Item = S>) {
        let cells: Vec<String> = cells
            .into_iter()
            .map(|c| visible(c.as_ref()).into_owned())
            .collect();
        self.0.add_row(cells);
    }
}

pub fn table(header: &[&str], right_from: usize) -> Grid {
    let mut t = Table::new();
    t.load_preset(presets::NOTHING);
    t.set_header(header.iter().copied());
    for i in right_from..header.len() {
        if let Some(c) = t.column_mut(i) {
            c.set_cell_alignment(CellAlignment::Right);
        }
    }
    Grid(t)
}

/// Text in the last column (holders) reads from the left.
pub fn left_align_last(Grid(t): &mut Grid) {
    let last = t.column_count().saturating_sub(1);
    if let Some(c) = t.column_mut(last) {
        c.set_cell_alignment(CellAlignment::Left);
    }
}

/// On a terminal, long text in a table wraps within the terminal's width instead of running
/// past it (sentences such as events and alerts); piped, lines stay whole for tools.
pub fn wrap_to_terminal(Grid(t): &mut Grid) {
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
pub fn print_table(Grid(t): &Grid) -> io::Result<()> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terminal_controls_are_escaped() {
        // A comm a process can give itself (14 bytes): clear the screen, red, bell.
        assert_eq!(visible("\x1b[2J\x1b[31mPWN\x07"), r"\e[2J\e[31mPWN\x07");
        assert_eq!(visible("a\tb\nc\rd\0\x7f"), r"a\x09b\x0ac\x0dd\x00\x7f");
        // C1: U+009B is a one-character CSI on terminals that take 8-bit controls.
        assert_eq!(visible("\u{85}\u{9b}2J"), r"\u{85}\u{9b}2J");
        // Bidi overrides and isolates reorder what follows them on the line.
        assert_eq!(
            visible("x\u{202a}\u{202e}\u{2066}\u{2069}y"),
            r"x\u{202a}\u{202e}\u{2066}\u{2069}y"
        );
    }

    #[test]
    fn plain_text_is_unchanged_and_not_copied() {
        for text in [
            "sys_enter_openat",
            "bpftrace[12] foo.service",
            "µs ▂▃ ~0.0040%",
            "",
            "\u{fffd}",
        ] {
            assert!(
                matches!(visible(text), Cow::Borrowed(t) if t == text),
                "{text:?}"
            );
        }
        // Neighbours of the escaped ranges show as they are.
        assert_eq!(
            visible("\u{a0}\u{2029}\u{202f}\u{2065}\u{206a}"),
            "\u{a0}\u{2029}\u{202f}\u{2065}\u{206a}"
        );
    }

    #[test]
    fn a_backslash_on_screen_always_starts_an_escape() {
        // systemd's own byte escapes stay, so a unit name can be copied to systemctl.
        assert_eq!(
            visible(r"system-getty\x2dx.slice/a\x2Db.service"),
            r"system-getty\x2dx.slice/a\x2Db.service"
        );
        // Anything else that would read as an escape is a literal backslash, doubled.
        assert_eq!(visible(r"\e[2J"), r"\\e[2J");
        assert_eq!(
            visible(r"\u{202e} \\ \x \xg1 end\"),
            r"\\u{202e} \\\\ \\x \\xg1 end\\"
        );
    }

    #[test]
    fn error_messages_keep_their_line_breaks_only() {
        assert_eq!(
            visible_lines("not running.\nStart it: \x1b]0;x\x07"),
            "not running.\nStart it: \\e]0;x\\x07"
        );
    }

    #[test]
    fn a_table_lays_out_the_escaped_cells() {
        let mut t = table(&["ID", "NAME", "HOLDERS"], 3);
        t.add_row(["1", "plain", "sshd[1]"]);
        t.add_row(["22", "\x1b[2J\x1b[31mPWN\x07", "\u{202e}evil[2]"]);
        let Grid(t) = t;
        let text = t.to_string();
        assert!(!text.contains(['\x1b', '\x07', '\u{202e}']), "{text}");
        // The holders column starts where its header does: the escaped name was measured.
        let at = |line: &str, what: &str| line.find(what).map(|b| line[..b].chars().count());
        let lines: Vec<&str> = text.lines().collect();
        let column = at(lines[0], "HOLDERS");
        assert_eq!(at(lines[1], "sshd[1]"), column, "{text}");
        assert_eq!(at(lines[2], r"\u{202e}evil[2]"), column, "{text}");
        assert_eq!(
            at(lines[2], r"\e[2J\e[31mPWN\x07"),
            at(lines[0], "NAME"),
            "{text}"
        );
    }
}
