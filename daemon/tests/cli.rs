//! The binary's command line: bad arguments get a clear error and a non-zero exit.

use std::process::Command;

fn ebpfstatd(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_ebpfstatd"))
        .args(args)
        .output()
        .expect("run ebpfstatd")
}

#[test]
fn version_and_help() {
    let out = ebpfstatd(&["--version"]);
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!("ebpfstatd {}", env!("CARGO_PKG_VERSION"))
    );
    let out = ebpfstatd(&["sample", "--help"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("--interval"));
}

#[test]
fn bad_arguments_are_named() {
    for (args, needle) in [
        (&["sample", "--count", "0"][..], "--count"),
        (&["sample", "--interval", "soon"][..], "soon"),
        (&["sample", "--rescan-every", "0"][..], "--rescan-every"),
    ] {
        let out = ebpfstatd(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(needle), "{args:?}: {err}");
    }
}
