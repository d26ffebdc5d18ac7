//! The .deb and .rpm built by `packaging/build`: contents, metadata, lintian, and the .deb's
//! life on this machine: install, upgrade over itself, remove, purge.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use ebpfstat_tests::{built_package, ok, output, require_root, skip_or_fail};

/// The package of this kind, or `None` (skipped; a failure under CI).
fn package(ext: &str) -> Option<PathBuf> {
    let found = built_package(ext);
    if found.is_none() {
        skip_or_fail(
            module_path!(),
            &format!(
                "no .{ext} in target/packages: run packaging/build first (the README's test command does)"
            ),
        );
    }
    found
}

/// `cmd args`, asserted to succeed; its stdout.
fn ok_args(cmd: &str, args: &[&str]) -> String {
    ok(Command::new(cmd).args(args))
}

const POLICY_RC_D: &str = "/usr/sbin/policy-rc.d";
const DENY_ALL: &[u8] =
    b"#!/bin/sh\n# written by the ebpfstat package test; removed after it\nexit 101\n";

/// Keeps the package's scripts from starting services while it exists: `deb-systemd-invoke`
/// asks `policy-rc.d`, and 101 means "not now". On a host where systemd is PID 1 the postinst
/// would otherwise start `ebpfstatd`, which holds `/var/lib/ebpfstat/history.db` (exclusive
/// locking) and keeps writing it while the test runs the daemon itself and compares the file.
/// An existing `policy-rc.d` is the host's and is left alone; ours is removed on drop, also
/// when the test fails.
struct NoServiceStarts {
    ours: bool,
}

impl NoServiceStarts {
    fn install() -> Self {
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o755)
            .open(POLICY_RC_D);
        match file {
            Ok(mut f) => {
                let guard = Self { ours: true };
                f.write_all(DENY_ALL).expect("write policy-rc.d");
                guard
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Self { ours: false },
            Err(e) => panic!("{POLICY_RC_D}: {e}"),
        }
    }
}

impl Drop for NoServiceStarts {
    fn drop(&mut self) {
        if self.ours {
            let _ = std::fs::remove_file(POLICY_RC_D);
        }
    }
}

/// `dpkg -i deb`; its stdout. Where systemd runs, the service is stopped afterwards in case the
/// host's own `policy-rc.d` let the postinst start it.
fn install(deb: &str) -> String {
    let out = ok_args("dpkg", &["-i", deb]);
    if Path::new("/run/systemd/system").exists() {
        let _ = output(Command::new("systemctl").args(["stop", "ebpfstatd.service"]));
    }
    out
}

const FILES: &[&str] = &[
    "/usr/bin/ebpfstatd",
    "/usr/bin/ebpfstatctl",
    "/usr/lib/systemd/system/ebpfstatd.service",
    "/usr/lib/systemd/system/ebpfstatd-metrics.socket",
    "/usr/share/ebpfstat/remote-write.conf",
    "/usr/lib/sysusers.d/ebpfstat.conf",
    "/usr/share/dbus-1/system.d/org.ebpfstat.Stats1.conf",
    "/usr/share/dbus-1/interfaces/org.ebpfstat.Stats1.xml",
    "/etc/ebpfstat/ebpfstatd.toml",
    "/usr/share/man/man8/ebpfstatd.8.gz",
    "/usr/share/man/man1/ebpfstatctl.1.gz",
    "/usr/share/man/man1/ebpfstatctl-top.1.gz",
    "/usr/share/bash-completion/completions/ebpfstatctl",
    "/usr/share/fish/vendor_completions.d/ebpfstatctl.fish",
    "/usr/share/doc/ebpfstat/README.md",
];

#[test]
fn rpm_lists_the_files_and_metadata() {
    let Some(rpm) = package("rpm") else { return };
    let rpm = rpm.to_str().expect("utf-8");
    let list = ok_args("rpm", &["-qlp", rpm]);
    for f in FILES {
        assert!(
            list.lines().any(|l| l == *f),
            "{f} missing from the rpm:\n{list}"
        );
    }
    assert!(list.contains("/usr/share/zsh/site-functions/_ebpfstatctl"));
    assert!(list.contains("/usr/share/licenses/ebpfstat/LICENSE"));
    let info = ok_args("rpm", &["-qip", rpm]);
    for field in [
        "Name        : ebpfstat",
        "Version     : 0.1.0",
        "License     : MIT OR Apache-2.0",
    ] {
        assert!(info.contains(field), "{field} missing:\n{info}");
    }
    let config = ok_args("rpm", &["-qcp", rpm]);
    assert_eq!(
        config.trim(),
        "/etc/ebpfstat/ebpfstatd.toml",
        "the config is %config"
    );
    let scripts = ok_args("rpm", &["-qp", "--scripts", rpm]);
    assert!(scripts.contains("groupadd --system ebpfstat"), "{scripts}");
}

fn dpkg_status() -> String {
    String::from_utf8_lossy(
        &output(Command::new("dpkg-query").args(["-W", "-f=${db:Status-Abbrev}", "ebpfstat"]))
            .stdout,
    )
    .trim()
    .to_owned()
}

/// Runs the installed daemon briefly so it creates its database where the package says.
fn run_installed_daemon() {
    let mut child = Command::new("/usr/bin/ebpfstatd")
        .args([
            "run",
            "--bus",
            "none",
            "--socket",
            "none",
            "--interval",
            "200ms",
        ])
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("run the installed daemon");
    std::thread::sleep(Duration::from_millis(1500));
    // SAFETY: kill(2) on our own child.
    unsafe { libc::kill(ebpfstat_tests::bus::pid_of(&child), libc::SIGTERM) };
    assert!(child.wait().expect("wait").success());
}

fn digest(path: &str) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

#[test]
fn deb_installs_upgrades_removes_and_purges() {
    require_root!();
    let Some(deb) = package("deb") else { return };
    let deb = deb.to_str().expect("utf-8");
    let list = ok_args("dpkg-deb", &["-c", deb]);
    for f in FILES {
        assert!(
            list.contains(&format!(".{f}")),
            "{f} missing from the deb:\n{list}"
        );
    }
    assert!(list.contains("./usr/share/doc/ebpfstat/copyright"));
    let conffiles = ok_args("dpkg-deb", &["-I", deb, "conffiles"]);
    assert_eq!(conffiles.trim(), "/etc/ebpfstat/ebpfstatd.toml");
    let lintian = output(Command::new("lintian").arg(deb));
    let report = String::from_utf8_lossy(&lintian.stdout);
    let errors: Vec<&str> = report.lines().filter(|l| l.starts_with("E:")).collect();
    assert!(errors.is_empty(), "lintian errors:\n{report}");

    // Start clean, then install (without the service starting: the test runs the daemon).
    let _no_starts = NoServiceStarts::install();
    let _ = output(Command::new("dpkg").args(["--purge", "ebpfstat"]));
    let out = install(deb);
    assert_eq!(dpkg_status(), "ii");
    if !Path::new("/run/systemd/system").exists() {
        assert!(out.contains("start it as root with: ebpfstatd"), "{out}");
    }
    assert_eq!(
        ok_args("/usr/bin/ebpfstatd", &["--version"]).trim(),
        format!("ebpfstatd {}", env!("CARGO_PKG_VERSION"))
    );
    assert!(ok_args("/usr/bin/ebpfstatctl", &["--help"]).contains("history"));
    ok_args("getent", &["group", "ebpfstat"]);
    assert!(
        ok_args("/usr/bin/ebpfstatd", &["--check-config"]).contains("/etc/ebpfstat/ebpfstatd.toml")
    );
    // The unit, with its binary and man pages where it names them.
    ok_args(
        "systemd-analyze",
        &["verify", "/usr/lib/systemd/system/ebpfstatd.service"],
    );

    // History and an edited configuration survive an upgrade over the same version.
    run_installed_daemon();
    let db = "/var/lib/ebpfstat/history.db";
    let before = digest(db);
    let conf = "/etc/ebpfstat/ebpfstatd.toml";
    let mut edited = std::fs::read_to_string(conf).expect("config");
    edited.push_str("\n# edited by the package test\nrescan_every = 29\n");
    std::fs::write(conf, &edited).expect("edit config");
    install(deb);
    assert_eq!(
        std::fs::read_to_string(conf).expect("config"),
        edited,
        "edited config kept"
    );
    assert_eq!(digest(db), before, "history kept");
    assert!(ok_args("/usr/bin/ebpfstatd", &["--check-config"]).contains("rescan_every = 29"));

    // Remove keeps data and configuration; purge deletes them.
    ok_args("dpkg", &["--remove", "ebpfstat"]);
    assert_eq!(dpkg_status(), "rc");
    assert!(!Path::new("/usr/bin/ebpfstatd").exists());
    assert_eq!(digest(db), before, "remove keeps the history");
    assert!(Path::new(conf).exists(), "remove keeps the configuration");
    ok_args("dpkg", &["--purge", "ebpfstat"]);
    assert!(
        !Path::new("/var/lib/ebpfstat").exists(),
        "purge deletes the history"
    );
    assert!(!Path::new(conf).exists(), "purge deletes the configuration");
    assert_eq!(dpkg_status(), "");
}
