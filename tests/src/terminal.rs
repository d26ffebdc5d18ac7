//! What a person sees: a command run on a pseudo-terminal (util-linux `script`, Essential on
//! Debian), and checks of what it printed as a terminal shows it.

use std::path::Path;
use std::process::Command;

/// Runs `program args` on a pseudo-terminal of `cols` columns; its output as the terminal got
/// it (escape codes included, `\r\n` made `\n`) and its exit status.
pub fn on_pty(program: &Path, args: &[&str], cols: u16) -> (String, i32) {
    let quoted: Vec<String> = std::iter::once(program.to_string_lossy().into_owned())
        .chain(args.iter().map(|a| (*a).to_owned()))
        .map(|a| format!("'{}'", a.replace('\'', r"'\''")))
        .collect();
    let out = Command::new("script")
        .args(["--quiet", "--return", "--command"])
        .arg(format!("stty cols {cols} rows 60; {}", quoted.join(" ")))
        .arg("/dev/null")
        .env("TERM", "xterm")
        .output()
        .expect("run script");
    let text = String::from_utf8_lossy(&out.stdout).replace("\r\n", "\n");
    (text, out.status.code().unwrap_or(-1))
}

/// `text` without ANSI escape sequences (`ESC [ … letter`): what occupies the screen.
pub fn visible(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\x1b' && chars.peek() == Some(&'[') {
            chars.next();
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// The lines of the table whose header line starts with `first_column` (after its padding):
/// the header and the rows after it. Every table line starts with a cell's padding space; the
/// text after a table (footnotes, remarks) does not.
pub fn table_lines<'a>(screen: &'a str, first_column: &str) -> Vec<&'a str> {
    let mut lines = screen
        .lines()
        .skip_while(|l| !(l.starts_with(' ') && l.trim_start().starts_with(first_column)));
    let mut out: Vec<&str> = lines.next().into_iter().collect();
    out.extend(lines.take_while(|l| l.starts_with(' ') && !l.trim().is_empty()));
    out
}

/// Asserts a table lines up on screen: comfy-table pads every cell to its column, so the header
/// and every row occupy the same number of columns (a header counted wider or narrower than it
/// shows, or a wrapped row, breaks that); no line is wider than `cols`; at least `rows` rows.
pub fn assert_aligned(screen: &str, first_column: &str, cols: usize, rows: usize) {
    let lines = table_lines(screen, first_column);
    assert!(
        lines.len() > rows,
        "a table with {first_column} and {rows} rows in:\n{screen}"
    );
    let widths: Vec<usize> = lines.iter().map(|l| l.chars().count()).collect();
    assert!(
        widths.iter().all(|&w| w == widths[0]),
        "misaligned, columns per line {widths:?}:\n{screen}"
    );
    assert!(
        widths[0] <= cols,
        "{} columns on a {cols}-column terminal:\n{screen}",
        widths[0]
    );
}
