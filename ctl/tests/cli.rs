//! The command line without a daemon: argument errors, the not-running message, generated docs.

use std::process::Command;

fn ctl(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_ebpfstatctl"))
        .args(args)
        .output()
        .expect("run ebpfstatctl")
}

#[test]
fn bad_durations_are_named() {
    let out = ctl(&["top", "--window", "5x"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--window"));
    let out = ctl(&["history", "7", "--since", "yesterday-ish"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("neither a duration"));
}

#[test]
fn a_missing_daemon_says_how_to_start_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sock = dir.path().join("nothing-here");
    let out = ctl(&["--socket", sock.to_str().expect("utf-8"), "status"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("nothing answers on {}", sock.display()))
            && err.contains("ebpfstatd is not running there")
            && err.contains("systemctl start ebpfstatd"),
        "{err}"
    );
}

#[test]
fn man_pages_and_completions_are_generated() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = Command::new(env!("CARGO_BIN_EXE_ebpfstatctl-docs"))
        .arg(dir.path())
        .output()
        .expect("run ebpfstatctl-docs");
    assert!(out.status.success());
    for f in [
        "man/ebpfstatctl.1",
        "man/ebpfstatctl-top.1",
        "completions/ebpfstatctl.bash",
        "completions/_ebpfstatctl",
        "completions/ebpfstatctl.fish",
    ] {
        let p = dir.path().join(f);
        assert!(p.metadata().is_ok_and(|m| m.len() > 100), "{f}");
    }
    // Each subcommand's page explains its columns and gives examples.
    for page in ["top", "list", "maps", "history", "show", "status"] {
        let text = std::fs::read_to_string(dir.path().join(format!("man/ebpfstatctl-{page}.1")))
            .expect("page");
        assert!(text.contains("Examples:"), "{page}");
    }
    let top = std::fs::read_to_string(dir.path().join("man/ebpfstatctl-top.1")).expect("top");
    for column in ["RUNS/S", "PEAK CPU%", "HOLDERS"] {
        assert!(top.contains(column), "{column}");
    }
}

#[test]
fn help_keeps_global_options_apart_and_describes_every_option() {
    let out = ctl(&["top", "--help"]);
    let help = String::from_utf8_lossy(&out.stdout);
    let (own, global) = help
        .split_once("Global options:")
        .expect("a global section");
    assert!(
        global.contains("--json") && global.contains("--socket"),
        "{help}"
    );
    assert!(!own.contains("--json"), "{help}");
    // Every option line is followed by its description.
    let lines: Vec<&str> = own.lines().collect();
    for (i, l) in lines.iter().enumerate() {
        if l.trim_start().starts_with("--") || l.trim_start().starts_with("-n") {
            let next = lines.get(i + 1).map_or("", |n| n.trim());
            assert!(!next.is_empty(), "{l} has no description:\n{help}");
        }
    }
}
