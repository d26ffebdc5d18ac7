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
    // The defaults as the configuration settles them (`--check-config` prints the same), and
    // how many flags have each.
    let defaults = [
        ("[default: 1s]", 1),
        ("[default: /var/lib/ebpfstat/history.db]", 1),
        // flush_interval and compare_min_time.
        ("[default: 1m]", 2),
        ("[default: 6h]", 1),
        ("[default: 7d]", 1),
        ("[default: 90d]", 1),
        ("[default: 64MiB]", 1),
        ("[default: 30]", 1),
        ("[default: system]", 1),
        ("[default: /run/ebpfstat/private]", 1),
        ("[default: info]", 1),
        ("[default: budget]", 1),
        ("[default: 1%]", 1),
        ("[default: 1000]", 1),
        ("[default: /etc/ebpfstat/ebpfstatd.toml when it exists]", 1),
    ];
    for args in [&["--help"][..], &["run", "--help"][..]] {
        let out = ebpfstatd(args);
        assert!(out.status.success(), "{args:?}");
        let help = String::from_utf8_lossy(&out.stdout);
        for (d, n) in defaults {
            assert_eq!(help.matches(d).count(), n, "{args:?}: {d} in\n{help}");
        }
    }
}
