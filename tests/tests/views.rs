//! `ebpfstatctl` as a person sees it: on a pseudo-terminal, with real programs whose run
//! counts are known, against a real daemon.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use ebpfstat_tests::bus::ApiDaemon;
use ebpfstat_tests::terminal::{assert_aligned, on_pty, visible};
use ebpfstat_tests::*;

/// A daemon at 200 ms that has seen `fleet` run.
fn running(fleet: &Fleet) -> ApiDaemon {
    let d = ApiDaemon::start(None, "200ms");
    for i in 0..fleet.programs.len() {
        fleet.drive(i, 10 * (i as u64 + 1));
    }
    std::thread::sleep(Duration::from_millis(1200));
    d
}

fn ctl_on_pty(d: &ApiDaemon, args: &[&str]) -> String {
    let socket = d.socket.to_str().expect("utf-8");
    let mut all = vec!["--socket", socket];
    all.extend_from_slice(args);
    let (text, code) = on_pty(&bin("ebpfstatctl"), &all, 120);
    assert_eq!(code, 0, "ebpfstatctl {args:?}:\n{text}");
    text
}

#[test]
fn tables_line_up_on_a_terminal() {
    require_bpf!();
    let fleet = Fleet::load(&format!("al{}_", tag()), 3);
    let d = running(&fleet);
    let id = fleet.programs[2].id.to_string();
    for (args, first, rows) in [
        (vec!["top"], "ID", 3),
        (vec!["top", "--cumulative"], "ID", 3),
        (vec!["list"], "ID", 3),
        (vec!["maps"], "ID", 3),
        (
            vec!["history", &id, "--since", "1m", "--step", "10s"],
            "TIME",
            1,
        ),
    ] {
        let raw = ctl_on_pty(&d, &args);
        assert!(
            raw.contains("\x1b[1m"),
            "{args:?}: a bold header on a terminal:\n{raw}"
        );
        assert_aligned(&visible(&raw), first, 120, rows);
    }
}

/// Each command, read by a reader that goes away after one line (`| head -1`), ends quietly.
#[test]
fn a_reader_that_goes_away_ends_each_command_quietly() {
    require_bpf!();
    let fleet = Fleet::load(&format!("rp{}_", tag()), 3);
    let d = running(&fleet);
    let id = fleet.programs[0].id.to_string();
    for args in [
        vec!["status"],
        vec!["top"],
        vec!["list"],
        vec!["maps"],
        vec!["show", &id],
        vec!["history", &id, "--since", "1m", "--step", "1s"],
        vec!["--json", "list"],
    ] {
        let mut child = Command::new(bin("ebpfstatctl"))
            .arg("--socket")
            .arg(&d.socket)
            .args(&args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn");
        let mut first = String::new();
        BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut first)
            .expect("a line");
        // The reader is dropped here: the pipe is closed.
        let out = child.wait_with_output().expect("wait");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!first.is_empty(), "{args:?}");
        assert!(out.status.success(), "{args:?}: {:?} {err}", out.status);
        assert!(err.is_empty(), "{args:?}: {err}");
    }
}
