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

#[test]
fn every_flag_of_run_says_its_default() {
    // The defaults as the configuration settles them (`--check-config` prints the same).
    let defaults = [
        "[default: 1s]",
        "[default: /var/lib/ebpfstat/history.db]",
        "[default: 1m]",
        "[default: 6h]",
        "[default: 7d]",
        "[default: 90d]",
        "[default: 64MiB]",
        "[default: 30]",
        "[default: system]",
        "[default: /run/ebpfstat/private]",
        "[default: info]",
        "[default: budget]",
        "[default: 1%]",
        "[default: /etc/ebpfstat/ebpfstatd.toml when it exists]",
    ];
    for args in [&["--help"][..], &["run", "--help"][..]] {
        let out = ebpfstatd(args);
        assert!(out.status.success(), "{args:?}");
        let help = String::from_utf8_lossy(&out.stdout);
        for d in defaults {
            assert_eq!(help.matches(d).count(), 1, "{args:?}: {d} in\n{help}");
        }
    }
}
