//! The README's quick start, run exactly as written: its first command (`cargo run --release`,
//! the daemon with its embedded defaults) from the repository's root, then the commands its
//! next paragraph gives for asking that daemon (`cargo run --release -p ebpfstatctl -- top`,
//! `cargo run --release -- sample --json`). A docs binary beside a program once made the first
//! command fail with "could not determine which binary to run"; this catches that and any
//! command the README changes to. Its other command, `bash tests/run`, is the one that runs this
//! test (CI runs it, see `.ci/run`): here it is only checked to be what CI runs.

use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use ebpfstat_tests::{Fleet, Reaped, is_root, require_bpf, skip_or_fail, tag};

/// Where the daemon keeps its history and its private socket with its embedded defaults.
const STATE_DIR: &str = "/var/lib/ebpfstat";
const RUN_DIR: &str = "/run/ebpfstat";
const SOCKET: &str = "/run/ebpfstat/private";
const TEST_COMMAND: &str = "bash tests/run";

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn readme() -> String {
    std::fs::read_to_string(repo_root().join("README.md")).expect("README.md is readable")
}

/// The "Quick start" section of the README: its lines up to the next heading.
fn quick_start_section(readme: &str) -> Vec<&str> {
    readme
        .lines()
        .skip_while(|l| !l.starts_with("## Quick start"))
        .skip(1)
        .take_while(|l| !l.starts_with("## "))
        .collect()
}

/// The commands of the section's first fenced block (comments and blank lines left out).
fn fenced_commands(section: &[&str]) -> Vec<String> {
    section
        .iter()
        .skip_while(|l| !l.trim_start().starts_with("```"))
        .skip(1)
        .take_while(|l| !l.trim_start().starts_with("```"))
        .map(|l| l.trim())
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_owned)
        .collect()
}

/// The inline code spans of the section (outside its fenced block) that are cargo commands.
fn inline_cargo_commands(section: &[&str]) -> Vec<String> {
    let mut in_fence = false;
    let mut text = String::new();
    for line in section {
        if line.trim_start().starts_with("```") {
            in_fence = !in_fence;
        } else if !in_fence {
            text.push_str(line);
            text.push(' ');
        }
    }
    text.split('`')
        .skip(1)
        .step_by(2)
        .filter(|span| span.starts_with("cargo run"))
        .map(str::to_owned)
        .collect()
}

/// `sh -c COMMAND` from the repository's root: the command exactly as a reader pastes it.
fn as_written(command: &str) -> Command {
    let mut cmd = Command::new("sh");
    cmd.arg("-c").arg(command).current_dir(repo_root());
    cmd
}

/// Runs `command` until it succeeds with output for which `good` holds (the daemon may not be
/// serving yet, and the first run may build); panics when the daemon has ended, or after 10
/// minutes, with the command's last output.
fn until_good(daemon: &mut Reaped, command: &str, good: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        if let Some(status) = daemon.0.try_wait().expect("wait for the daemon") {
            panic!("the README's daemon command ended ({status}) before `{command}` was answered");
        }
        let out = as_written(command)
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("{command}: {e}"));
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        if out.status.success() && good(&stdout) {
            return stdout;
        }
        assert!(
            Instant::now() < deadline,
            "`{command}` as the README writes it: {}\n{stdout}{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// Removes what the daemon made at its default paths, when they were not there before.
struct Leftovers {
    state_was_there: bool,
    run_was_there: bool,
}

impl Drop for Leftovers {
    fn drop(&mut self) {
        for (dir, was) in [
            (STATE_DIR, self.state_was_there),
            (RUN_DIR, self.run_was_there),
        ] {
            if !was {
                let _ = std::fs::remove_dir_all(dir);
            }
        }
    }
}

#[test]
fn the_quick_start_commands_run_as_written() {
    let text = readme();
    let section = quick_start_section(&text);
    let fenced = fenced_commands(&section);
    assert!(
        fenced.iter().any(|c| c == TEST_COMMAND),
        "the quick start gives the test command `{TEST_COMMAND}`: {fenced:?}"
    );
    let ci = std::fs::read_to_string(repo_root().join(".ci/run")).expect(".ci/run");
    assert!(
        ci.lines().any(|l| l.trim() == TEST_COMMAND),
        "CI runs exactly the README's test command `{TEST_COMMAND}`"
    );
    let daemon: Vec<&String> = fenced.iter().filter(|c| *c != TEST_COMMAND).collect();
    let [daemon] = daemon.as_slice() else {
        panic!("one command runs the daemon, besides the tests: {fenced:?}");
    };
    let asking = inline_cargo_commands(&section);
    assert!(
        asking.iter().any(|c| c.contains("-p ebpfstatctl")),
        "the quick start says how to ask the daemon: {asking:?}"
    );

    if !is_root() {
        skip_or_fail(
            module_path!(),
            "needs root: the daemon's defaults are /var/lib and /run",
        );
        return;
    }
    require_bpf!();
    if UnixStream::connect(SOCKET).is_ok() {
        skip_or_fail(
            module_path!(),
            "a daemon already serves /run/ebpfstat/private",
        );
        return;
    }
    let _leftovers = Leftovers {
        state_was_there: Path::new(STATE_DIR).exists(),
        run_was_there: Path::new(RUN_DIR).exists(),
    };
    let name = format!("readme_{}", tag());
    let mut fleet = Fleet::load("readme_unused_", 0);
    fleet.add(&name, None);
    fleet.drive(0, 7);

    let mut started = as_written(&format!("exec {daemon}"));
    let mut started = Reaped(
        started
            .stdin(Stdio::null())
            .spawn()
            .expect("start the daemon"),
    );
    for command in &asking {
        check_asking(&mut started, command, &name);
    }
    assert!(started.stop(), "`{daemon}` stops cleanly on SIGTERM");
}

/// One of the README's commands asking the daemon, with what it must print.
fn check_asking(daemon: &mut Reaped, command: &str, program: &str) {
    if command.contains("-p ebpfstatctl") {
        let out = until_good(daemon, command, |out| out.contains(program));
        assert!(out.lines().count() > 1, "`{command}`: a table:\n{out}");
    } else if command.contains("sample --json") {
        let out = until_good(daemon, command, |out| out.contains(program));
        let first = out.lines().next().unwrap_or_default();
        let pass: serde_json::Value =
            serde_json::from_str(first).unwrap_or_else(|e| panic!("`{command}`: {e}:\n{out}"));
        assert!(pass.is_object(), "`{command}`: one JSON object per pass");
    } else {
        until_good(daemon, command, |_| true);
    }
}

#[test]
fn the_quick_start_is_read_from_the_readme() {
    let section = [
        "intro",
        "```sh",
        "# run it",
        "cargo run --release",
        "",
        "bash tests/run",
        "```",
        "Try `cargo run --release -- sample --json` or",
        "`cargo run --release -p ebpfstatctl -- top` (keys: `q`).",
    ];
    assert_eq!(
        fenced_commands(&section),
        ["cargo run --release", "bash tests/run"]
    );
    assert_eq!(
        inline_cargo_commands(&section),
        [
            "cargo run --release -- sample --json",
            "cargo run --release -p ebpfstatctl -- top"
        ]
    );
}
