//! Other kernels, booted under qemu (TCG: this machine kind's KVM aborts on an MSR) with
//! `virtme-ng`: Debian 12's own kernels for amd64, arm64 and armhf. `tests/guests/prepare`
//! fetches them, the ARM roots and virtme-ng into `target/guests/` (cached: a second run fetches
//! nothing); here they are booted to run one command.
//!
//! An amd64 guest shares this host's root read-only, so it sees the workspace at the same path;
//! an ARM guest boots its own small Debian root, into which the binaries built for it are copied.

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

    /// The kernel image: an ARM one stays in its root's `/boot`, where virtme-ng finds its
    /// modules by walking up from it.
    fn vmlinuz(&self) -> Option<PathBuf> {
        if self.triple.is_none() {
            return Some(self.dir().join("vmlinuz")).filter(|p| p.exists());
        }
        std::fs::read_dir(self.dir().join("root/boot"))
            .ok()?
            .filter_map(Result::ok)
            .map(|e| e.path())
            .find(|p| {
                p.file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with("vmlinuz-"))
            })
    }

    /// Whether `tests/guests/prepare` made this kernel (and its root); if not, the test is
    /// skipped (see [`skip_or_fail`]).
    pub fn available(&self, test: &str) -> bool {
        let ready = self.vmlinuz().is_some() && vng().exists();
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
        // The binaries are copied into the guest's memory first: read over 9p, each run of the
        // client took seconds.
        let script = format!(
            "ip link set lo up; mkdir /tmp/bin; cp {bin}/ebpfstatd {bin}/ebpfstatctl {check} /tmp/bin; \
             export EBPFSTAT_BIN_DIR=/tmp/bin RUST_BACKTRACE=1; cd /tmp; /tmp/bin/kernel-check {args}",
            bin = bin_dir.display(),
            check = check.display()
        );
        self.boot(machine, &script)
    }

    /// Boots the kernel and runs `script` with `sh -c` as root; its output and the kernel's.
    pub fn boot(&self, machine: Machine, script: &str) -> String {
        let dir = self.dir();
        let vmlinuz = self.vmlinuz().expect("a prepared kernel (see `available`)");
        let mut cmd = Command::new("timeout");
        cmd.args(["--kill-after=10", "1200"])
            .arg(vng())
            .arg("--run")
            .arg(vmlinuz)
            .args(["--disable-kvm", "--verbose", "--user", "root"])
            .args(["--cpus", &machine.cpus.to_string()])
            .args(["--memory", &format!("{}M", machine.memory_mib)])
            .args(["--exec", script]);
        if self.triple.is_some() {
            cmd.args(["--arch", self.arch])
                .arg("--root")
                .arg(dir.join("root"));
        }
        // virtme-ng runs `virtme-run` from its own folder.
        let venv_bin = vng().parent().map(Path::to_owned).expect("the venv's bin");
        let path = format!(
            "{}:{}",
            venv_bin.display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let out = cmd.env("PATH", path).output().expect("run vng");
        // vng exits 255 even when the command succeeded: the output says what happened.
        let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
        text.push_str(&String::from_utf8_lossy(&out.stderr));
        // Kept whole for reading after a failure (the report shows its end).
        let log = target_dir()
            .join("guests")
            .join(format!("{}.log", self.name));
        std::fs::write(&log, &text).unwrap_or_else(|e| panic!("{}: {e}", log.display()));
        text
    }
}

fn vng() -> PathBuf {
    target_dir().join("guests/venv/bin/vng")
}

/// The `KERNEL-CHECK {json}` report in a guest's output, or a panic showing how it ended.
pub fn report(output: &str) -> serde_json::Value {
    let line = output
        .lines()
        .find_map(|l| l.split_once("KERNEL-CHECK ").map(|(_, json)| json));
    match line {
        Some(json) => serde_json::from_str(json.trim())
            .unwrap_or_else(|e| panic!("the report is not JSON ({e}): {json}")),
        None => {
            let tail: Vec<&str> = output.lines().rev().take(80).collect();
            let tail: Vec<&str> = tail.into_iter().rev().collect();
            panic!("the guest's check did not finish:\n{}", tail.join("\n"))
        }
    }
}
