//! Other kernels, booted under qemu (TCG: this machine kind's KVM aborts on an MSR) with
//! `virtme-ng`: Debian 12's own kernels for amd64, arm64 and armhf. `tests/guests/prepare`
//! fetches them, the ARM roots and virtme-ng into `target/guests/` (cached: a second run fetches
//! nothing); here they are booted to run one command.
//!
//! An amd64 guest shares this host's root read-only, so it sees the workspace at the same path;
//! an ARM guest boots its own small Debian root, into which the binaries built for it are copied.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::process::skip_or_fail;

/// A kernel of the matrix.
#[derive(Debug, Clone, Copy)]
pub struct Kernel {
    /// Its folder under `target/guests/` (`vmlinuz`, and `root/` for an ARM one).
    pub name: &'static str,
    /// `vng --arch`.
    pub arch: &'static str,
    /// The Rust target whose binaries run on it (`None`: this host's own build).
    pub triple: Option<&'static str>,
}

pub const DEBIAN_6_1_AMD64: Kernel = Kernel {
    name: "amd64-6.1",
    arch: "amd64",
    triple: None,
};
pub const DEBIAN_6_12_AMD64: Kernel = Kernel {
    name: "amd64-6.12",
    arch: "amd64",
    triple: None,
};
pub const DEBIAN_6_1_ARM64: Kernel = Kernel {
    name: "arm64-6.1",
    arch: "arm64",
    triple: Some("aarch64-unknown-linux-gnu"),
};
pub const DEBIAN_6_1_ARMHF: Kernel = Kernel {
    name: "armhf-6.1",
    arch: "armhf",
    triple: Some("armv7-unknown-linux-gnueabihf"),
};

/// The workspace's `target/`, from the running test's path (`target/<profile>/deps/<test>`).
pub fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("current exe");
    exe.ancestors()
        .find(|p| p.file_name().is_some_and(|n| n == "target"))
        .expect("the test runs from target/")
        .to_owned()
}

/// A guest's size.
#[derive(Debug, Clone, Copy)]
pub struct Machine {
    pub cpus: u32,
    pub memory_mib: u32,
}

impl Kernel {
    /// Its folder: `target/guests/NAME` for amd64 (`vmlinuz`), `target/guests/ARCH` for ARM
    /// (`root/`, as `tests/guests/make-root` makes it).
    fn dir(&self) -> PathBuf {
        let folder = if self.triple.is_some() {
            self.arch
        } else {
            self.name
        };
        target_dir().join("guests").join(folder)
    }

    /// The kernel image: an ARM one stays in its root's `/boot` ([`kernel_in`]).
    fn vmlinuz(&self) -> Option<PathBuf> {
        if self.triple.is_none() {
            return Some(self.dir().join("vmlinuz")).filter(|p| p.exists());
        }
        kernel_in(&self.dir().join("root"))
    }

    /// Whether `tests/guests/prepare` made this kernel (and its root); if not, the test is
    /// skipped (see [`skip_or_fail`]).
    pub fn available(&self, test: &str) -> bool {
        let ready = self.vmlinuz().is_some() && vng_ready();
        if !ready {
            skip_or_fail(
                test,
                &format!(
                    "{} is not prepared: run `bash tests/guests/prepare`",
                    self.name
                ),
            );
        }
        ready
    }

    /// Where the binaries built for this kernel's architecture are: the release daemon and
    /// client (as packaged) and the debug `kernel-check`.
    fn binaries(&self) -> (PathBuf, PathBuf) {
        let target = target_dir();
        match self.triple {
            None => (target.join("release"), target.join("debug")),
            Some(t) => (
                target.join("cross").join(t).join("release"),
                target.join("cross").join(t).join("debug"),
            ),
        }
    }

    /// Boots the kernel and runs `kernel-check ARGS` in it, with `EBPFSTAT_BIN_DIR` naming the
    /// daemon and client built for it. Returns everything the guest printed.
    pub fn run_check(&self, machine: Machine, args: &str) -> String {
        let (release, debug) = self.binaries();
        let (bin_dir, check) = match self.triple {
            None => (release, debug.join("kernel-check")),
            Some(_) => {
                // The root is the guest's own: the binaries are copied into it.
                let dest = self.dir().join("root/opt/ebpfstat");
                std::fs::create_dir_all(&dest).expect("create the guest's /opt/ebpfstat");
                for (from, name) in [
                    (&release, "ebpfstatd"),
                    (&release, "ebpfstatctl"),
                    (&debug, "kernel-check"),
                ] {
                    std::fs::copy(from.join(name), dest.join(name))
                        .unwrap_or_else(|e| panic!("{}: {e}", from.join(name).display()));
                }
                (
                    PathBuf::from("/opt/ebpfstat"),
                    PathBuf::from("/opt/ebpfstat/kernel-check"),
                )
            }
        };
        let script = format!(
            "ip link set lo up; export EBPFSTAT_BIN_DIR={} RUST_BACKTRACE=1; cd /tmp; {} {args}",
            bin_dir.display(),
            check.display()
        );
        // One log per kind of run: `device` runs apart from the matrix on the same kernel.
        let log = match args.split_whitespace().next() {
            Some(mode) => format!("{}-{mode}", self.name),
            None => self.name.to_owned(),
        };
        self.boot(machine, &script, &log)
    }

    /// Boots the kernel and runs `script` with `sh -c` as root; its output and the kernel's,
    /// also kept in `target/guests/LOG.log`.
    pub fn boot(&self, machine: Machine, script: &str, log: &str) -> String {
        let vmlinuz = self.vmlinuz().expect("a prepared kernel (see `available`)");
        let mut args: Vec<OsString> = machine.args();
        args.extend(["--exec".into(), script.into()]);
        if self.triple.is_some() {
            args.extend(["--arch".into(), self.arch.into(), "--root".into()]);
            args.push(self.dir().join("root").into());
        }
        run_vng(&vmlinuz, &args, log)
    }
}

impl Machine {
    /// `vng --cpus N --memory M`.
    pub fn args(self) -> Vec<OsString> {
        vec![
            "--cpus".into(),
            self.cpus.to_string().into(),
            "--memory".into(),
            format!("{}M", self.memory_mib).into(),
        ]
    }
}

/// The kernel image in a root's `/boot`: an ARM kernel is booted from there, where virtme-ng
/// finds its modules by walking up from it.
pub fn kernel_in(root: &Path) -> Option<PathBuf> {
    std::fs::read_dir(root.join("boot"))
        .ok()?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("vmlinuz-"))
        })
}

fn vng() -> PathBuf {
    target_dir().join("guests/venv/bin/vng")
}

/// Whether `tests/guests/prepare` installed virtme-ng.
pub fn vng_ready() -> bool {
    vng().exists()
}

/// Boots `vmlinuz` under TCG as root with `vng --run` and `args`, and returns everything the
/// guest printed; kept whole in `target/guests/LOG.log` for reading after a failure.
pub fn run_vng(vmlinuz: &Path, args: &[OsString], log: &str) -> String {
    let mut cmd = Command::new("timeout");
    cmd.args(["--kill-after=10", "1200"])
        .arg(vng())
        .arg("--run")
        .arg(vmlinuz)
        .args(["--disable-kvm", "--verbose", "--user", "root"])
        .args(args);
    // virtme-ng runs `virtme-run` from its own folder.
    let venv_bin = vng().parent().map(Path::to_owned).expect("the venv's bin");
    let path = format!(
        "{}:{}",
        venv_bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let out = cmd.env("PATH", path).output().expect("run vng");
    // vng's exit status says nothing here (255 even when the command succeeded): the report
    // in the output does.
    let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&out.stderr));
    let log = target_dir().join("guests").join(format!("{log}.log"));
    std::fs::write(&log, &text).unwrap_or_else(|e| panic!("{}: {e}", log.display()));
    text
}

/// The `MARKER {json}` report line in a guest's output (`KERNEL-CHECK`, ...), or a panic
/// showing how the guest ended.
pub fn report(output: &str, marker: &str) -> serde_json::Value {
    let line = output
        .lines()
        .find_map(|l| l.split_once(&format!("{marker} ")).map(|(_, json)| json));
    match line {
        Some(json) => serde_json::from_str(json.trim())
            .unwrap_or_else(|e| panic!("the report is not JSON ({e}): {json}")),
        None => {
            let lines: Vec<&str> = output.lines().collect();
            let tail = &lines[lines.len().saturating_sub(80)..];
            panic!("the guest gave no {marker} report:\n{}", tail.join("\n"))
        }
    }
}
