//! The interactive `ebpfstatctl top` as a person uses it: typed into a real terminal (tmux),
//! read off the screen, against a real daemon sampling real programs driven to known counts.

use std::time::Duration;

use ebpfstat_tests::bus::ApiDaemon;
use ebpfstat_tests::terminal::{PROMPT, Tmux};
use ebpfstat_tests::*;

/// The screen's line showing `name` (the first).
fn line_of<'a>(screen: &'a str, name: &str) -> &'a str {
    screen
        .lines()
        .find(|l| l.contains(name))
        .unwrap_or_else(|| panic!("{name} on the screen:\n{screen}"))
}

/// The table row whose ID column is `id` (a whole word, below the header: an id's digits can
/// appear in the clock or a figure above it).
fn row_of(screen: &str, id: u32) -> &str {
    let id = id.to_string();
    screen
        .lines()
        .skip_while(|l| !l.trim_start().starts_with("ID"))
        .skip(1)
        .find(|l| l.split_whitespace().next() == Some(id.as_str()))
        .unwrap_or_else(|| panic!("a row of id {id}:\n{screen}"))
}

/// Row positions of `names` on the screen, top to bottom.
fn order(screen: &str, names: &[String]) -> Vec<usize> {
    let mut at: Vec<(usize, usize)> = names
        .iter()
        .enumerate()
        .map(|(i, n)| {
            let row = screen
                .lines()
                .position(|l| l.split_whitespace().any(|w| w == n))
                .unwrap_or_else(|| panic!("{n} on the screen:\n{screen}"));
            (row, i)
        })
        .collect();
    at.sort_unstable();
    at.into_iter().map(|(_, i)| i).collect()
}

fn command(d: &ApiDaemon, args: &str) -> String {
    format!(
        "{} --socket {} top {args}",
        bin("ebpfstatctl").display(),
        d.socket.display()
    )
}

/// The shell is back, in cooked mode, on the main screen: the terminal was given back.
fn assert_terminal_restored(t: &Tmux) {
    let prompt = PROMPT.trim_end();
    let s = t.wait_for("the prompt after the view", |s| {
        s.trim_end()
            .lines()
            .last()
            .is_some_and(|l| l.starts_with(prompt))
            && s.lines().filter(|l| l.starts_with(prompt)).count() >= 2
    });
    assert!(!t.alternate_on(), "still on the alternate screen:\n{s}");
    // Whether stty shows raw mode's mark (`-icanon`), then a word the command line itself does
    // not contain.
    t.type_line("echo \"$(stty -a | grep -c -e -icanon)raw\"");
    let s = t.wait_for("stty's answer", |s| {
        s.contains("0raw") || s.contains("1raw")
    });
    assert!(s.contains("0raw"), "the terminal is left raw:\n{s}");
}

#[test]
#[expect(
    clippy::too_many_lines,
    reason = "one scenario read top to bottom: each step checks what the step before left"
)]
fn the_table_sorts_filters_windows_and_charts_a_program_with_its_reload() {
    require_bpf!();
    if !Tmux::available(module_path!()) {
        return;
    }
    let prefix = format!("tv{}_", tag());
    let names: Vec<String> = (0..3).map(|i| format!("{prefix}{i}")).collect();
    let mut fleet = Fleet::load(&prefix, 3);
    let d = ApiDaemon::start(None, "200ms");
    for (i, runs) in [10, 200, 3000].into_iter().enumerate() {
        fleet.drive(i, runs);
    }
    std::thread::sleep(Duration::from_millis(800));
    // Program 0 is loaded again with the same code: a reload of the same program.
    let old_id = fleet.programs.remove(0).id;
    std::thread::sleep(Duration::from_millis(800));
    fleet.add(&names[0], None);
    let new_id = fleet.programs[2].id;
    fleet.drive(2, 5);
    std::thread::sleep(Duration::from_millis(800));

    let t = Tmux::start(80, 24);
    t.type_line(&command(&d, &format!("--window 1m --name '{prefix}*'")));
    let s = t.wait_for("four rows", |s| s.contains("4 of 4 programs"));
    assert!(t.alternate_on());
    // Header: the stats state and their cost, a clock; the window; the key line at the bottom.
    assert!(
        s.lines()
            .next()
            .is_some_and(|l| l.contains("stats enabled") && l.ends_with(" UTC")),
        "{s}"
    );
    assert!(
        line_of(&s, "of 4 programs").starts_with("last 1m · sort CPU%↓"),
        "{s}"
    );
    assert!(
        s.lines()
            .last()
            .is_some_and(|l| l.starts_with("q quit ? help")),
        "{s}"
    );
    // The first load of program 0 is gone: dim, and said in words.
    assert!(row_of(&s, old_id).ends_with("(unloaded)"), "{s}");
    assert!(row_of(&s, new_id).contains(&names[0]), "{s}");
    let styled = t.screen_styled();
    let dim_line = styled
        .lines()
        .find(|l| l.contains(&format!(" {old_id} ")) && l.contains("(unloaded)"))
        .expect("row");
    assert!(
        dim_line.contains("\x1b[2m"),
        "the unloaded row is dim: {dim_line:?}"
    );

    // Sort by RUNS/S (the column left of CPU%): 3000 > 200 > 10 runs; `r` reverses.
    t.keys(&["<"]);
    let s = t.wait_for("the RUNS/S sort", |s| s.contains("sort RUNS/S↓"));
    assert!(s.contains("RUNS/S▼"), "{s}");
    let live = [names[2].clone(), names[1].clone()];
    assert_eq!(order(&s, &live), [0, 1], "{s}");
    t.keys(&["r"]);
    let s = t.wait_for("the reversed sort", |s| s.contains("sort RUNS/S↑"));
    assert_eq!(order(&s, &live), [1, 0], "{s}");
    t.keys(&["r"]);

    // A typed filter narrows the rows; Esc drops it.
    t.keys(&["/"]);
    t.keys(&["-l", &names[1]]);
    let s = t.wait_for("the filter as typed", |s| s.contains("1 of 4 programs"));
    assert!(s.contains(&format!("filter: {}▏", names[1])), "{s}");
    t.keys(&["Enter"]);
    let s = t.wait_for("the filter kept", |s| {
        s.contains(&format!("filter: {}", names[1])) && !s.contains('▏')
    });
    assert!(!s.contains(&names[2]), "{s}");
    t.keys(&["Escape"]);
    t.wait_for("all rows again", |s| {
        s.contains("4 of 4 programs") && !s.contains("filter:")
    });

    // The window, pause and help.
    t.keys(&["w"]);
    t.wait_for("the 5m window", |s| s.contains("last 5m · sort"));
    t.keys(&["p"]);
    t.wait_for("paused", |s| s.contains("PAUSED"));
    t.keys(&["p"]);
    t.wait_for("unpaused", |s| !s.contains("PAUSED"));
    t.keys(&["?"]);
    t.wait_for("the help", |s| s.contains("keys (any key closes)"));
    t.keys(&["x"]);
    t.wait_for("the help closed", |s| {
        !s.contains("keys (any key closes)") && s.contains("last 5m · sort")
    });

    // Enter on the top row (3000 runs): its charts from stored history, its maps and owner.
    t.keys(&["Home", "Enter"]);
    let s = t.wait_for("the chart", |s| {
        s.contains("average per run") && s.contains("runs 3000")
    });
    assert!(line_of(&s, &names[2]).contains(") · last 1h · step"), "{s}");
    assert!(s.contains("socket_filter"), "{s}");
    for title in [
        "runs/s: now",
        "average per run: now",
        "CPU % of one core: now",
    ] {
        assert!(s.contains(title), "{title}:\n{s}");
    }
    assert!(
        s.contains("-1h") && s.contains("-30m") && s.contains("now"),
        "{s}"
    );
    // Its own map and the shared one; the test process holds it. Each (an array: entries are
    // its max entries) charted from its stored history beneath it: full where the history has
    // it (since the daemon started, the span's last columns), blank before.
    assert!(s.contains("maps (2,"), "{s}");
    let charted = s.lines().filter(|l| l.trim_end().ends_with('█')).count();
    assert_eq!(charted, 2, "an entries line under each map:\n{s}");
    assert!(
        s.contains(&format!("{}[{}]", own_comm(), std::process::id())) || s.contains(&own_comm()),
        "{s}"
    );
    // Shorter spans: 5m, then 1m.
    t.keys(&["W", "W"]);
    let s = t.wait_for("the 1m span", |s| {
        s.contains("· last 1m · step") && s.contains("-1m")
    });
    assert!(
        s.contains("runs 3000"),
        "every run of it was in the last minute:\n{s}"
    );
    t.keys(&["q"]);
    t.wait_for("the table again", |s| s.contains("of 4 programs"));

    // The reloaded program's chart marks its reload.
    t.keys(&["/"]);
    t.keys(&["-l", &names[0]]);
    t.keys(&["Enter"]);
    t.wait_for("program 0's rows", |s| s.contains("2 of 4 programs"));
    // Sorted by ID (five columns left of RUNS/S), the new load is the last row.
    t.keys(&["<", "<", "<", "<", "<"]);
    let s = t.wait_for("the ID sort", |s| s.contains("sort ID↑"));
    assert!(row_of(&s, old_id).ends_with("(unloaded)"), "{s}");
    t.keys(&["End", "Enter"]);
    let s = t.wait_for("the reload", |s| {
        s.contains("1 reload marked") && s.contains("2 stored, 1 loaded now")
    });
    assert!(s.contains(&format!("(id {new_id})")), "{s}");

    // q leaves the chart, then the view; the shell gets its terminal back.
    t.keys(&["q", "q"]);
    assert_terminal_restored(&t);
}

#[test]
fn resizes_redraw_a_lost_daemon_is_said_and_retried_and_sigterm_restores_the_terminal() {
    require_bpf!();
    if !Tmux::available(module_path!()) {
        return;
    }
    let prefix = format!("tr{}_", tag());
    let fleet = Fleet::load(&prefix, 2);
    let mut d = ApiDaemon::start(None, "200ms");
    fleet.drive(0, 50);
    std::thread::sleep(Duration::from_millis(600));
    let t = Tmux::start(80, 24);
    t.type_line(&command(&d, &format!("--name '{prefix}*'")));
    t.wait_for("the rows", |s| s.contains("2 of 2 programs loaded"));

    // Each size: one header, one top line, the key line last, nothing wider than the screen;
    // TYPE only where there is room.
    for (cols, rows) in [(132u16, 40u16), (60, 14), (80, 24)] {
        t.resize(cols, rows);
        let s = t.wait_for("the new size", |s| {
            s.lines().count() == usize::from(rows)
                && s.lines().last().is_some_and(|l| l.starts_with("q quit"))
                && s.lines().any(|l| l.contains("of 2 programs"))
        });
        let lines: Vec<&str> = s.lines().collect();
        assert_eq!(
            lines
                .iter()
                .filter(|l| l.trim_start().starts_with("ID "))
                .count(),
            1,
            "{s}"
        );
        assert_eq!(
            lines.iter().filter(|l| l.ends_with(" UTC")).count(),
            1,
            "{s}"
        );
        assert!(
            lines.iter().all(|l| l.chars().count() <= usize::from(cols)),
            "{s}"
        );
        assert_eq!(lines[2].contains("TYPE"), cols >= 100, "{s}");
        for i in 0..2 {
            assert!(s.contains(&format!("{prefix}{i}")), "{cols}x{rows}:\n{s}");
        }
    }

    // The daemon goes away: the view says so and keeps the last rows; it comes back: so does
    // the view, on its own.
    d.stop_in_place();
    let s = t.wait_for("the daemon's absence", |s| {
        s.lines()
            .any(|l| l.starts_with("retrying · showing") && l.contains("nothing answers on"))
    });
    assert!(
        s.contains(&format!("{prefix}0")),
        "the last rows stay:\n{s}"
    );
    d.start_again("200ms", &[]);
    t.wait_for("the daemon back", |s| {
        !s.contains("retrying") && s.contains("2 of 2 programs")
    });

    // SIGTERM: the view leaves and gives the terminal back.
    let pid = t.foreground_pid();
    // SAFETY: kill(2) on the ebpfstatctl this test started in its own tmux.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
    assert_terminal_restored(&t);
}

/// `stats cost this host 0.0012% of one core …` or `· cost 0.0012% of a core, …`: the percent.
fn cost_in(text: &str) -> f64 {
    text.split("cost ")
        .nth(1)
        .map(|rest| rest.trim_start_matches("this host "))
        .and_then(|rest| rest.split('%').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("a cost in {text:?}"))
}

/// Issue 24, item 10: the view's header said `cost 0.04% of a core` (the last interval's, over
/// every program) where `top --once` for the same window said `0.09%`: both say the window's.
#[test]
fn the_views_cost_is_the_windows_as_top_once_says_it() {
    require_bpf!();
    if !Tmux::available(module_path!()) {
        return;
    }
    let prefix = format!("tc{}_", tag());
    let fleet = Fleet::load(&prefix, 2);
    let d = ApiDaemon::start(None, "200ms");
    fleet.drive(0, 2000);
    fleet.drive(1, 500);
    std::thread::sleep(Duration::from_millis(1500));
    let glob = format!("{prefix}*");
    // No runs from here on: the window's cost only falls as the time observed grows.
    let once = || {
        let out = std::process::Command::new(bin("ebpfstatctl"))
            .arg("--socket")
            .arg(&d.socket)
            .args(["top", "--once", "--window", "5m", "--name", &glob])
            .output()
            .expect("top --once");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let line = text
            .lines()
            .find(|l| l.starts_with("stats cost this host"))
            .unwrap_or_else(|| panic!("the cost line in:\n{text}"))
            .to_owned();
        (cost_in(&line), line)
    };
    let (before, before_line) = once();
    let t = Tmux::start(100, 24);
    t.type_line(&command(&d, &format!("--window 5m --name '{glob}'")));
    let s = t.wait_for("the ranked window", |s| s.contains("2 of 2 programs"));
    let header = s.lines().next().unwrap_or_default().to_owned();
    let (after, after_line) = once();
    t.keys(&["q"]);
    let live = cost_in(&header);
    assert!(
        live > 0.0 && before >= live && live >= after,
        "the view {header:?} between {before_line:?} and {after_line:?}"
    );
}
