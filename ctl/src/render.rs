//! What every subcommand prints with: tables that line up, JSON, footnotes, owners, times;
//! and [`visible`], which every text line and table cell goes through on its way to a terminal.

use std::borrow::Cow;
use std::io::{self, IsTerminal, Write};
use std::time::Duration;

use anyhow::{Context, Result};
use comfy_table::{CellAlignment, Table, presets};
use ebpfstat_dbus::{self as wire};
use ebpfstat_numbers::WallNs;

use crate::units;

pub mod fit;
pub mod groups;
pub mod histogram;

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

/// A table whose cells are made [`visible`] as they are added: the layout measures the
/// escaped text, so columns line up with what the terminal shows. On a terminal it is fitted
/// to the width at print time ([`fit`]): columns named in [`Grid::drop_first`] are left out in
/// that order and columns named in [`Grid::cut`] are cut with `…`; piped, every value is whole.
pub struct Grid {
    header: Vec<String>,
    rows: Vec<Vec<String>>,
    right: Vec<bool>,
    /// Columns that may be cut: minimum width and share of the room.
    cut: Vec<(usize, u16, u16)>,
    /// Columns that may be left out, first first.
    drop: Vec<usize>,
    /// Long cells wrap within the terminal's width instead (sentences: events, alerts).
    wrap: bool,
}

impl Grid {
    pub fn add_row<S: AsRef<str>>(&mut self, cells: impl IntoIterator<Item = S>) {
        let cells: Vec<String> = cells
            .into_iter()
            .map(|c| visible(c.as_ref()).into_owned())
            .collect();
        self.rows.push(cells);
    }

    fn column(&self, title: &str) -> Option<usize> {
        self.header.iter().position(|h| h == title)
    }

    /// On a terminal, the column `title` may be cut to `min` columns; such columns share the
    /// room left by `weight`.
    pub fn cut(&mut self, title: &str, min: u16, weight: u16) {
        if let Some(i) = self.column(title) {
            self.cut.push((i, min, weight));
        }
    }

    /// On a terminal too narrow for all, these columns are left out whole, in this order
    /// (unknown titles are ignored, so a caller may pass a fixed list and remove the sort
    /// column from it).
    pub fn drop_first(&mut self, titles: &[&str]) {
        self.drop = titles.iter().filter_map(|t| self.column(t)).collect();
    }

    /// The width each column gets in `total` columns (`None`: left out). comfy-table's
    /// preset pads every cell with a space on each side.
    fn widths(&self, total: u16) -> Vec<Option<u16>> {
        let wants: Vec<fit::Want> = (0..self.header.len())
            .map(|i| {
                let widest = std::iter::once(&self.header[i])
                    .chain(self.rows.iter().filter_map(|r| r.get(i)))
                    .map(|c| unicode_width::UnicodeWidthStr::width(c.as_str()))
                    .max()
                    .unwrap_or(0);
                let natural = u16::try_from(widest).unwrap_or(u16::MAX);
                let drop = self
                    .drop
                    .iter()
                    .position(|d| *d == i)
                    .map(|p| u8::try_from(p).unwrap_or(u8::MAX));
                match self.cut.iter().find(|(c, ..)| *c == i) {
                    Some(&(_, min, weight)) => fit::Want {
                        natural,
                        min: min.min(natural),
                        weight,
                        drop,
                    },
                    None => fit::Want::whole(natural, drop),
                }
            })
            .collect();
        fit::widths(&wants, total, fit::Spacing { sep: 2, edges: 2 })
    }

    /// The comfy-table of the columns shown at `width` (all, whole, without one), and the
    /// titles left out.
    fn laid_out(&self, width: Option<u16>) -> (Table, Vec<String>) {
        let widths = match width {
            Some(w) if !self.wrap => self.widths(w),
            _ => self.header.iter().map(|_| Some(u16::MAX)).collect(),
        };
        let shown: Vec<(usize, usize)> = widths
            .iter()
            .enumerate()
            .filter_map(|(i, w)| w.map(|w| (i, usize::from(w))))
            .collect();
        let mut t = Table::new();
        t.load_preset(presets::NOTHING);
        t.set_header(shown.iter().map(|&(i, w)| fit::cut(&self.header[i], w)));
        for r in &self.rows {
            t.add_row(
                shown
                    .iter()
                    .map(|&(i, w)| r.get(i).map_or_else(String::new, |c| fit::cut(c, w))),
            );
        }
        for (at, &(i, _)) in shown.iter().enumerate() {
            if let Some(c) = t.column_mut(at) {
                c.set_cell_alignment(if self.right[i] {
                    CellAlignment::Right
                } else {
                    CellAlignment::Left
                });
            }
        }
        if let (Some(w), true) = (width, self.wrap) {
            t.set_content_arrangement(comfy_table::ContentArrangement::Dynamic);
            t.set_width(w);
        }
        let dropped = widths
            .iter()
            .zip(&self.header)
            .filter(|(w, _)| w.is_none())
            .map(|(_, h)| h.clone())
            .collect();
        (t, dropped)
    }
}

pub fn table(header: &[&str], right_from: usize) -> Grid {
    Grid {
        header: header.iter().map(|h| (*h).to_owned()).collect(),
        rows: Vec::new(),
        right: (0..header.len()).map(|i| i >= right_from).collect(),
        cut: Vec::new(),
        drop: Vec::new(),
        wrap: false,
    }
}

/// A table of programs or maps on a terminal: NAME and HOLDERS are cut (NAME to a kernel
/// name's 15 characters at least, with three fifths of the room), and the columns in `order`
/// are left out in turn, all but `keep` (the column the rows are ranked by).
pub fn fit_programs(t: &mut Grid, order: &[&str], keep: &str) {
    t.cut("NAME", fit::MIN_NAME, 3);
    t.cut("HOLDERS", fit::MIN_HOLDERS, 2);
    let order: Vec<&str> = order.iter().copied().filter(|o| *o != keep).collect();
    t.drop_first(&order);
}

/// Text in the last column (holders) reads from the left.
pub fn left_align_last(t: &mut Grid) {
    if let Some(last) = t.right.last_mut() {
        *last = false;
    }
}

/// On a terminal, long text in a table wraps within the terminal's width instead of running
/// past it (sentences such as events and alerts); piped, lines stay whole for tools.
pub fn wrap_to_terminal(t: &mut Grid) {
    t.wrap = true;
}

/// The terminal's width when the output goes to one; `None` when piped (lines stay whole for
/// tools).
pub fn terminal_width() -> Option<u16> {
    if !io::stdout().is_terminal() {
        return None;
    }
    ratatui::crossterm::terminal::size()
        .ok()
        .map(|(cols, _)| cols)
        .filter(|c| *c > 0)
}

/// What a printed table left out to fit the terminal.
#[derive(Debug, Default)]
pub struct Printed {
    pub dropped: Vec<String>,
}

impl Printed {
    /// Whether the column `title` is on screen.
    pub fn shows(&self, title: &str) -> bool {
        !self.dropped.iter().any(|d| d == title)
    }
}

/// Prints a table, fitted to the terminal (see [`Grid`]), and after it which columns were
/// left out; on a terminal its header is bold. The escape codes go around the laid-out header
/// line, never into a cell, where they would count as width and misalign every column.
pub fn print_table(grid: &Grid) -> io::Result<Printed> {
    let width = terminal_width();
    let (t, dropped) = grid.laid_out(width);
    let text = t.to_string();
    let (header, rows) = text.split_once('\n').unwrap_or((&text, ""));
    {
        let mut out = io::stdout().lock();
        if out.is_terminal() {
            writeln!(out, "\x1b[1m{header}\x1b[0m")?;
        } else {
            writeln!(out, "{header}")?;
        }
        if !rows.is_empty() {
            writeln!(out, "{rows}")?;
        }
    }
    if let (false, Some(w)) = (dropped.is_empty(), width) {
        say(&format!(
            "columns left out to fit {w}: {}",
            dropped.join(", ")
        ))?;
    }
    Ok(Printed { dropped })
}

/// A line of prose: [`visible`], and on a terminal broken between words within its width
/// (lines after the first indented by `indent`); piped, one line.
pub fn say_indented(text: &str, indent: usize) -> io::Result<()> {
    let text = visible(text);
    let mut out = io::stdout().lock();
    match terminal_width() {
        Some(w) => {
            for line in fit::wrap(&text, usize::from(w), indent) {
                writeln!(out, "{line}")?;
            }
        }
        None => writeln!(out, "{text}")?,
    }
    Ok(())
}

/// [`say_indented`] without an indent.
pub fn say(text: &str) -> io::Result<()> {
    say_indented(text, 0)
}

pub fn print_json(v: &impl serde::Serialize) -> Result<()> {
    let mut out = io::stdout().lock();
    serde_json::to_writer_pretty(&mut out, v).context("writing JSON")?;
    writeln!(out)?;
    Ok(())
}

/// Footnotes, each after its stars; on a terminal wrapped, continuing under its text.
pub fn footnotes(lines: &[String]) -> io::Result<()> {
    for (i, l) in lines.iter().enumerate() {
        say_indented(&format!("{} {l}", "*".repeat(i + 1)), i + 2)?;
    }
    Ok(())
}

pub fn owners(o: &[wire::Owner]) -> String {
    o.iter()
        .map(wire::Owner::text)
        .collect::<Vec<_>>()
        .join(", ")
}

/// A length of time in its two largest units, whole seconds: `42s`, `5m`, `12m 3s`, `2h 5m`,
/// `400d 7h` (a calendar's months and years would read as more exact than a span is).
pub fn span(d: Duration) -> String {
    let mut secs = d.as_secs();
    let mut parts = Vec::new();
    for (unit, size) in [("d", 86_400), ("h", 3600), ("m", 60), ("s", 1)] {
        if parts.len() == 2 {
            break;
        }
        if secs >= size {
            parts.push(format!("{}{unit}", secs / size));
            secs %= size;
        } else if !parts.is_empty() {
            // `2h 5m`, never `2h 0m 5s`: the second unit is the next one down or nothing.
            break;
        }
    }
    if parts.is_empty() {
        return "0s".into();
    }
    parts.join(" ")
}

/// `1 program`, `6 programs`: a count of `one`s (a noun whose plural takes an `s`).
pub fn plural(n: usize, one: &str) -> String {
    if n == 1 {
        format!("1 {one}")
    } else {
        format!("{n} {one}s")
    }
}

/// What run-time stats cost the host, as `top` and the live view say it: the daemon's figure
/// for the time the view's numbers are over (a window's, or the last interval's), never one
/// time's cost beside another time's rates.
#[derive(Debug, Clone, PartialEq)]
pub struct StatsCost {
    /// Of one core, percent.
    pub pct: f64,
    /// The time it is over.
    pub over: String,
    /// What stats cost a program run, ns (calibrated).
    pub per_run_ns: f64,
}

impl StatsCost {
    /// Over a ranked window: the time the daemon observed in it.
    pub fn of_window(info: &wire::TopInfo, snap: &wire::Snapshot) -> Self {
        Self {
            pct: info.stats_overhead_pct,
            over: format!(
                "the {} observed",
                span(Duration::from_nanos(info.observed_ns))
            ),
            per_run_ns: snap.stats_cost_ns,
        }
    }

    /// Over the daemon's last interval.
    pub fn of_interval(snap: &wire::Snapshot) -> Self {
        Self {
            pct: snap.stats_overhead_pct,
            over: "the last interval".into(),
            per_run_ns: snap.stats_cost_ns,
        }
    }

    /// As a sentence: `stats cost this host 0.09% of one core over the 5m observed (69ns per
    /// program run)`.
    pub fn sentence(&self) -> String {
        format!(
            "stats cost this host {} of one core over {} ({} per program run)",
            units::pct(self.pct),
            self.over,
            units::ns(self.per_run_ns)
        )
    }

    /// Short, for the live view's top line, whose next line names the window: `cost 0.09% of
    /// a core, 69ns/run`.
    pub fn short(&self) -> String {
        format!(
            "cost {} of a core, {}/run",
            units::pct(self.pct),
            units::ns(self.per_run_ns)
        )
    }
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
pub fn render_maps(
    maps: &[wire::MapRow],
    usage: &[wire::MapUsage],
    meaning: Option<&str>,
) -> io::Result<()> {
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
            "ID", "NAME", "TYPE", "KEY", "VALUE", "ENTRIES", "MAX", "FILL", "FLAGS", "MEMORY*",
            "PROGS", "HOLDERS",
        ],
        3,
    );
    left_align_last(&mut t);
    fit_programs(
        &mut t,
        &[
            "FLAGS", "KEY", "VALUE", "PROGS", "MAX", "HOLDERS", "TYPE", "ENTRIES",
        ],
        "",
    );
    for m in maps {
        let u = wire::MapUsage::of(usage, m.id);
        let counted = u.and_then(wire::MapUsage::counted);
        // A perf_event_array's slots, and the perf ring buffers behind them.
        let perf = u
            .filter(|u| u.perf_buffer_bytes > 0)
            .map_or_else(String::new, |u| {
                format!("+{}", units::bytes(u.perf_buffer_bytes))
            });
        t.add_row(vec![
            m.id.to_string(),
            m.name.clone(),
            m.map_type.clone(),
            m.key_size.to_string(),
            m.value_size.to_string(),
            counted.map_or_else(|| "-".into(), |(n, _)| n.to_string()),
            m.max_entries.to_string(),
            counted.map_or_else(|| "-".into(), |(_, pct)| units::pct(pct)),
            format!("{:#x}", m.flags),
            format!("{}{perf}{}", units::bytes(m.memlock_bytes), marker(m)),
            m.used_by_programs.to_string(),
            owners(&m.owners),
        ]);
    }
    let printed = print_table(&t)?;
    if let (Some(notes), true) = (notes, printed.shows("MEMORY*")) {
        print_notes(notes)?;
    }
    if printed.shows("ENTRIES") {
        for line in uncounted(maps, usage) {
            say_indented(&line, 2)?;
        }
    }
    Ok(())
}

/// Why ENTRIES shows `-`: one line per reason, with the maps it holds for (the first few).
fn uncounted(maps: &[wire::MapRow], usage: &[wire::MapUsage]) -> Vec<String> {
    const SHOWN_IDS: usize = 5;
    let mut why: Vec<(&str, Vec<u32>)> = Vec::new();
    for m in maps {
        let reason = match wire::MapUsage::of(usage, m.id) {
            Some(u) if u.counted().is_some() => continue,
            Some(u) => u.why.as_str(),
            None => "not counted",
        };
        match why.iter_mut().find(|(r, _)| *r == reason) {
            Some((_, ids)) => ids.push(m.id),
            None => why.push((reason, vec![m.id])),
        }
    }
    why.into_iter()
        .map(|(reason, ids)| {
            let mut shown: Vec<String> = ids.iter().take(SHOWN_IDS).map(u32::to_string).collect();
            if ids.len() > SHOWN_IDS {
                shown.push(format!("{} more", ids.len() - SHOWN_IDS));
            }
            format!("- entries: {reason} (map {})", shown.join(", "))
        })
        .collect()
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
    fn spans_read_in_two_units_at_most() {
        let s = Duration::from_secs;
        assert_eq!(span(s(0)), "0s");
        assert_eq!(span(s(42)), "42s");
        assert_eq!(span(s(300)), "5m");
        assert_eq!(span(s(723)), "12m 3s");
        assert_eq!(span(s(7500)), "2h 5m");
        assert_eq!(span(s(7205)), "2h");
        assert_eq!(span(s(86_400)), "1d");
        // `1year 1month 4days 7h 26m 24s` as humantime says it.
        assert_eq!(span(s(400 * 86_400 + 7 * 3600 + 26 * 60 + 24)), "400d 7h");
    }

    #[test]
    fn a_count_of_programs_agrees_in_number() {
        assert_eq!(plural(0, "program"), "0 programs");
        assert_eq!(plural(1, "program"), "1 program");
        assert_eq!(plural(6, "map"), "6 maps");
    }

    #[test]
    fn a_table_lays_out_the_escaped_cells() {
        let mut t = table(&["ID", "NAME", "HOLDERS"], 3);
        t.add_row(["1", "plain", "sshd[1]"]);
        t.add_row(["22", "\x1b[2J\x1b[31mPWN\x07", "\u{202e}evil[2]"]);
        let (t, _) = t.laid_out(None);
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
