//! A Debian root for systemd-nspawn containers (made once by debootstrap, kept under
//! target/), and finding a container's processes.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The workspace's target directory.
pub fn target() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../target")
}

/// Whether `tool` is on the PATH.
pub fn have(tool: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// A pristine bookworm root, made once and kept under target/ (debootstrap takes ~35 s).
pub fn base_root() -> PathBuf {
    let root = target().join("nspawn/root");
    // kill (procps) for the unit's `ExecReload=kill -HUP $MAINPID`: a root made before it
    // was included is made again.
    if !root.join("usr/lib/systemd/systemd").exists() || !root.join("usr/bin/kill").exists() {
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(root.parent().expect("parent")).expect("mkdir");
        let out = Command::new("debootstrap")
            .args([
                "--variant=minbase",
                "--include=systemd,systemd-sysv,dbus,procps",
                "bookworm",
            ])
            .arg(&root)
            .arg("http://deb.debian.org/debian")
            .output()
            .expect("debootstrap");
        assert!(
            out.status.success(),
            "debootstrap: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    root
}

/// A child of `parent` whose command is `comm`.
pub fn child_named(parent: u32, comm: &str) -> Option<u32> {
    for e in std::fs::read_dir("/proc").ok()?.flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        let Some((name, rest)) = stat.split_once(") ") else {
            continue;
        };
        let ppid = rest
            .split_whitespace()
            .nth(1)
            .and_then(|p| p.parse::<u32>().ok());
        if ppid == Some(parent) && name.ends_with(&format!("({comm}")) {
            return Some(pid);
        }
    }
    None
}
