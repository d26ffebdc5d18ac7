//! The arm64 and armhf builds (`packaging/build --arm`, `packaging/cross`): their packages
//! against the amd64 ones, their binaries under qemu-user (which has no `bpf()`: the daemon
//! must say so and go on), and a database made on amd64 answering the same on both.
//!
//! Real `bpf()` on ARM is not tested here: it needs a native ARM machine (see the README,
//! "Building for ARM").

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use ebpfstat_tests::{built_package, built_package_for, ok, output, skip_or_fail};

struct Arch {
    deb: &'static str,
    rpm: &'static str,
    triple: &'static str,
    /// ELF `e_machine` and class (1: 32-bit, 2: 64-bit) of its binaries.
    machine: u16,
    class: u8,
}

const ARCHES: [Arch; 2] = [
    Arch {
        deb: "arm64",
        rpm: "aarch64",
        triple: "aarch64-unknown-linux-gnu",
        machine: 183,
        class: 2,
    },
    Arch {
        deb: "armhf",
        rpm: "armv7hl",
        triple: "armv7-unknown-linux-gnueabihf",
        machine: 40,
        class: 1,
    },
];

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// A cross-built file, or `None` (skipped; a failure under CI).
fn built(path: PathBuf) -> Option<PathBuf> {
    if path.exists() {
        return Some(path);
    }
    skip_or_fail(
        module_path!(),
        &format!(
            "{} is missing: run `bash packaging/build --arm` (the README's test command does)",
            path.display()
        ),
    );
    None
}

fn package(ext: &str, arch: &str) -> Option<PathBuf> {
    let found = built_package_for(ext, arch);
    if found.is_none() {
        skip_or_fail(
            module_path!(),
            &format!("no {arch} .{ext} in target/packages: run `bash packaging/build --arm`"),
        );
    }
    found
}

/// `program args` run by qemu-user for `arch`.
fn qemu(arch: &Arch, program: &Path) -> Command {
    let mut cmd = match arch.deb {
        "arm64" => Command::new("qemu-aarch64-static"),
        _ => {
            let mut c = Command::new("qemu-arm-static");
            c.args(["-L", "/usr/arm-linux-gnueabihf"]);
            c
        }
    };
    cmd.arg(program);
    cmd
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The paths a .deb installs (`dpkg-deb -c`).
fn deb_paths(deb: &Path) -> BTreeSet<String> {
    ok(Command::new("dpkg-deb").arg("-c").arg(deb))
        .lines()
        .filter_map(|l| l.split_whitespace().nth(5).map(str::to_owned))
        // The archive's root entry: dpkg-deb writes it, cargo-deb does not.
        .filter(|p| p != "./")
        .collect()
}

fn rpm_paths(rpm: &Path) -> BTreeSet<String> {
    ok(Command::new("rpm").arg("-qlp").arg(rpm))
        .lines()
        .map(str::to_owned)
        .collect()
}

/// ELF class and machine of the file at `path`.
fn elf(path: &Path) -> (u8, u16) {
    let head = std::fs::read(path).expect("read binary");
    assert_eq!(&head[..4], b"\x7fELF", "{}", path.display());
    (head[4], u16::from_le_bytes([head[18], head[19]]))
}

#[test]
fn packages_hold_what_amd64_holds_for_their_own_architecture() {
    let (Some(deb64), Some(rpm64)) = (built_package("deb"), built_package("rpm")) else {
        skip_or_fail(module_path!(), "no amd64 packages: run packaging/build");
        return;
    };
    let version = ok(Command::new("dpkg-deb")
        .args(["-f"])
        .arg(&deb64)
        .arg("Version"));
    for arch in &ARCHES {
        let (Some(deb), Some(rpm)) = (package("deb", arch.deb), package("rpm", arch.rpm)) else {
            return;
        };
        let field = |name: &str| ok(Command::new("dpkg-deb").arg("-f").arg(&deb).arg(name));
        assert_eq!(field("Package").trim(), "ebpfstat");
        assert_eq!(field("Architecture").trim(), arch.deb);
        assert_eq!(field("Version"), version);
        let depends = field("Depends");
        assert!(
            depends.starts_with("libc6 (>= 2.")
                && depends.contains("libgcc-s1")
                && depends
                    .trim_end()
                    .ends_with("systemd | systemd-standalone-sysusers"),
            "{}: {depends}",
            arch.deb
        );
        assert_eq!(deb_paths(&deb), deb_paths(&deb64), "{} file list", arch.deb);
        let lintian = output(Command::new("lintian").arg(&deb));
        let report = text(&lintian.stdout);
        let errors: Vec<&str> = report.lines().filter(|l| l.starts_with("E:")).collect();
        assert!(
            errors.is_empty(),
            "lintian errors for {}:\n{report}",
            arch.deb
        );

        // The binaries inside are for this architecture.
        let dir = tempfile::tempdir().expect("tempdir");
        ok(Command::new("dpkg-deb").arg("-x").arg(&deb).arg(dir.path()));
        for bin in ["ebpfstatd", "ebpfstatctl"] {
            let path = dir.path().join("usr/bin").join(bin);
            assert_eq!(
                elf(&path),
                (arch.class, arch.machine),
                "{bin} for {}",
                arch.deb
            );
        }

        let query = |format: &str| {
            ok(Command::new("rpm")
                .args(["-qp", "--queryformat", format])
                .arg(&rpm))
        };
        assert_eq!(query("%{NAME} %{ARCH}"), format!("ebpfstat {}", arch.rpm));
        assert_eq!(
            query("%{VERSION}"),
            ok(Command::new("rpm")
                .args(["-qp", "--queryformat", "%{VERSION}"])
                .arg(&rpm64))
        );
        assert_eq!(rpm_paths(&rpm), rpm_paths(&rpm64), "{} file list", arch.rpm);
        let requires = ok(Command::new("rpm").arg("-qpR").arg(&rpm));
        assert!(
            requires
                .lines()
                .any(|l| l.starts_with("libc.so.6(GLIBC_2."))
                && requires.lines().any(|l| l.starts_with("libgcc_s.so.1")),
            "{}: {requires}",
            arch.rpm
        );
    }
}

#[test]
fn binaries_run_under_qemu_and_say_that_bpf_is_unavailable() {
    for arch in &ARCHES {
        let release = root()
            .join("target/cross")
            .join(arch.triple)
            .join("release");
        let (Some(daemon), Some(ctl)) = (
            built(release.join("ebpfstatd")),
            built(release.join("ebpfstatctl")),
        ) else {
            return;
        };
        for bin in [&daemon, &ctl] {
            let version = ok(qemu(arch, bin).arg("--version"));
            assert!(version.contains(env!("CARGO_PKG_VERSION")), "{version}");
            let help = ok(qemu(arch, bin).arg("--help"));
            assert!(help.contains("Usage:"), "{help}");
        }
        // qemu-user has no bpf(): a pass says so, reads no program, and the command succeeds.
        let out = output(qemu(arch, &daemon).args(["sample", "--json"]));
        assert!(out.status.success(), "{}", text(&out.stderr));
        let pass: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON pass");
        let state = pass["stats_state"].as_str().unwrap_or_default();
        assert!(state.starts_with("unavailable"), "{}: {pass}", arch.deb);
        assert_eq!(pass["programs"].as_array().map(Vec::len), Some(0));
    }
}

#[test]
fn a_database_made_on_amd64_answers_the_same_on_arm() {
    // Built for this machine by `cargo test` (examples are), and for each ARM target by the
    // README's test command.
    let host = ebpfstat_tests::bin("examples/portable");
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("amd64.db");
    ok(Command::new(&host).arg("make").arg(&db));
    let ask = |run: &mut Command, copy: &str| {
        let path = dir.path().join(copy);
        std::fs::copy(&db, &path).expect("copy the database");
        let out = output(run.arg("ask").arg(&path));
        assert!(out.status.success(), "{}", text(&out.stderr));
        text(&out.stdout)
    };
    let expected = ask(&mut Command::new(&host), "host.db");
    assert!(expected.starts_with("25 series\n"), "{expected:.200}");
    assert!(
        expected.contains("history of 25 at 60s"),
        "every query answered"
    );
    for arch in &ARCHES {
        let release = root()
            .join("target/cross")
            .join(arch.triple)
            .join("release");
        let Some(example) = built(release.join("examples/portable")) else {
            return;
        };
        let got = ask(&mut qemu(arch, &example), &format!("{}.db", arch.deb));
        assert!(
            got == expected,
            "{} answers differently ({} and {} bytes)",
            arch.deb,
            got.len(),
            expected.len()
        );
    }
}
