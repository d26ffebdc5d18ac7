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
        err.contains(&format!("cannot connect to socket {}", sock.display())),
        "{err}"
    );
}

#[test]
fn man_pages_and_completions_are_generated() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = ctl(&["generate-docs", dir.path().to_str().expect("utf-8")]);
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
}
