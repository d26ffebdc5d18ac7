//! What a person sees: a command run on a pseudo-terminal (util-linux `script`, Essential on
//! Debian), and checks of what it printed as a terminal shows it.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Runs `program args` on a pseudo-terminal of `cols` columns; its output as the terminal got
/// it (escape codes included, `\r\n` made `\n`) and its exit status.
pub fn on_pty(program: &Path, args: &[&str], cols: u16) -> (String, i32) {
    on_pty_with(program, args, cols, &[])
}

/// [`on_pty`] with `env` added to the command's environment.
pub fn on_pty_with(
    program: &Path,
    args: &[&str],
    cols: u16,
    env: &[(&str, &str)],
) -> (String, i32) {
    let quoted: Vec<String> = std::iter::once(program.to_string_lossy().into_owned())
        .chain(args.iter().map(|a| (*a).to_owned()))
        .map(|a| format!("'{}'", a.replace('\'', r"'\''")))
        .collect();
    let out = Command::new("script")
        .args(["--quiet", "--return", "--command"])
        .arg(format!("stty cols {cols} rows 60; {}", quoted.join(" ")))
        .arg("/dev/null")
        .env("TERM", "xterm")
        .envs(env.iter().copied())
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

/// A real terminal a test types into and reads, as a person would: a detached tmux session
/// running `sh` (prompt `PROMPT`), killed when dropped. Each gets its own tmux server socket,
/// so tests running side by side never see each other's sessions.
#[derive(Debug)]
pub struct Tmux {
    socket: PathBuf,
    _dir: tempfile::TempDir,
}

/// The shell prompt in a [`Tmux`] pane: its return means the program before it has ended.
pub const PROMPT: &str = "tmux-test$ ";

impl Tmux {
    /// Whether tmux is here; if not, `test` is skipped (or fails under CI=true).
    pub fn available(test: &str) -> bool {
        let here = Command::new("tmux")
            .arg("-V")
            .output()
            .is_ok_and(|o| o.status.success());
        if !here {
            crate::skip_or_fail(
                test,
                "tmux is not installed (`bash tests/setup` installs it)",
            );
        }
        here
    }

    pub fn start(cols: u16, rows: u16) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let t = Self {
            socket: dir.path().join("tmux"),
            _dir: dir,
        };
        let (c, r) = (cols.to_string(), rows.to_string());
        let shell = format!("exec env PS1='{PROMPT}' sh");
        t.run(&["new-session", "-d", "-s", "t", "-x", &c, "-y", &r, &shell])
            .status()
            .expect("tmux new-session")
            .success()
            .then_some(())
            .expect("tmux started");
        // Resizes from the test, not from a client (there is none).
        t.tmux(&["set-option", "-g", "window-size", "manual"]);
        t.wait_for("the prompt", |s| s.contains(PROMPT.trim_end()));
        t
    }

    fn run(&self, args: &[&str]) -> Command {
        let mut c = Command::new("tmux");
        c.arg("-S")
            .arg(&self.socket)
            .args(["-f", "/dev/null"])
            .args(args);
        c
    }

    fn tmux(&self, args: &[&str]) -> String {
        let out = self.run(args).output().expect("run tmux");
        assert!(
            out.status.success(),
            "tmux {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Types `text` and Enter.
    pub fn type_line(&self, text: &str) {
        self.tmux(&["send-keys", "-t", "t", "-l", text]);
        self.tmux(&["send-keys", "-t", "t", "Enter"]);
    }

    /// Presses keys by tmux's names (`q`, `Enter`, `Escape`, `Down`, `C-c`) or literal
    /// characters.
    pub fn keys(&self, keys: &[&str]) {
        let mut args = vec!["send-keys", "-t", "t"];
        args.extend_from_slice(keys);
        self.tmux(&args);
    }

    /// The screen as shown (no escapes), one line per row.
    pub fn screen(&self) -> String {
        self.tmux(&["capture-pane", "-p", "-t", "t"])
    }

    /// The screen with its colours and attributes (SGR escapes).
    pub fn screen_styled(&self) -> String {
        self.tmux(&["capture-pane", "-p", "-e", "-t", "t"])
    }

    /// Whether the pane is on the alternate screen (a full-screen program holds it).
    pub fn alternate_on(&self) -> bool {
        self.tmux(&["display-message", "-p", "-t", "t", "#{alternate_on}"])
            .trim()
            == "1"
    }

    pub fn resize(&self, cols: u16, rows: u16) {
        let (c, r) = (cols.to_string(), rows.to_string());
        self.tmux(&["resize-window", "-t", "t", "-x", &c, "-y", &r]);
    }

    /// The pid of the program running in the pane's shell (the newest child of the shell).
    pub fn foreground_pid(&self) -> i32 {
        let shell = self.tmux(&["display-message", "-p", "-t", "t", "#{pane_pid}"]);
        let out = Command::new("pgrep")
            .args(["-n", "-P", shell.trim()])
            .output()
            .expect("pgrep");
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("a program under the pane's shell {shell}"))
    }

    /// Polls the screen until `ok` holds (10 s at most, else fails showing the screen).
    pub fn wait_for(&self, what: &str, ok: impl Fn(&str) -> bool) -> String {
        self.wait_for_within(what, std::time::Duration::from_secs(10), ok)
    }

    /// Polls the screen until `ok` holds, for at most `limit` (an emulated guest is slow).
    pub fn wait_for_within(
        &self,
        what: &str,
        limit: std::time::Duration,
        ok: impl Fn(&str) -> bool,
    ) -> String {
        let deadline = std::time::Instant::now() + limit;
        loop {
            let s = self.screen();
            if ok(&s) {
                return s;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "waited {limit:?} for {what}; the screen:\n{s}"
            );
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.run(&["kill-server"]).output();
    }
}
