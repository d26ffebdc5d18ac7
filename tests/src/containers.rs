//! Programs held from containers: a process placed in a cgroup laid out as a runtime lays it
//! out (docker's, containerd's under kubelet, podman's), holding a program; the files where
//! runtimes keep names; and a real systemd-nspawn container and a real podman container
//! holding one.

use std::os::fd::{AsRawFd, BorrowedFd};
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::Reaped;
use crate::mounts::cgroup2_root;

/// A 64-hex-digit container id, different for each `n` and each test run.
pub fn container_id(n: u8) -> String {
    // splitmix64 of the pid and `n`: ids that look like a runtime's.
    let mut z =
        (u64::from(std::process::id()) << 8 | u64::from(n)).wrapping_add(0x9e37_79b9_7f4a_7c15);
    (0..4)
        .map(|_| {
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            format!("{:016x}", z ^ (z >> 31))
        })
        .collect()
}

/// `command` started with `prog` as its fd 3 (a copy without close-on-exec).
pub fn holding(mut command: Command, prog: BorrowedFd<'_>) -> Command {
    let fd = prog.as_raw_fd();
    // SAFETY: between fork and exec the closure only calls dup2(2) and fcntl(2), which are
    // async-signal-safe and allocate nothing; `fd` stays open in the parent until the child
    // has been spawned.
    unsafe {
        command.pre_exec(move || {
            // dup2 onto itself leaves close-on-exec set: clear it then.
            let ok = if fd == 3 {
                libc::fcntl(3, libc::F_SETFD, 0)
            } else {
                libc::dup2(fd, 3)
            };
            if ok < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    command
}

/// A cgroup made under the cgroup2 root, with every directory of its path that was missing;
/// removed (deepest first) when dropped, once its processes are gone.
#[derive(Debug)]
pub struct MadeCgroup {
    pub path: PathBuf,
    created: Vec<PathBuf>,
}

impl MadeCgroup {
    /// `cgroup` is a path such as `/t1/system.slice/docker-<id>.scope`.
    pub fn create(cgroup: &str) -> Self {
        let mut created = Vec::new();
        let mut path = cgroup2_root().expect("a cgroup2 mount");
        for part in cgroup.split('/').filter(|p| !p.is_empty()) {
            path.push(part);
            if !path.exists() {
                std::fs::create_dir(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
                created.push(path.clone());
            }
        }
        Self { path, created }
    }

    /// Moves process `pid` into it.
    pub fn enter(&self, pid: u32) {
        std::fs::write(self.path.join("cgroup.procs"), pid.to_string())
            .unwrap_or_else(|e| panic!("moving {pid} into {}: {e}", self.path.display()));
    }
}

impl Drop for MadeCgroup {
    fn drop(&mut self) {
        // What was made, with what a runtime made inside it (nspawn's payload and supervisor).
        if let Some(top) = self.created.first() {
            remove_tree(top);
        }
    }
}

/// Removes a cgroup and those below it, deepest first; a process still leaving keeps one busy
/// for a moment.
fn remove_tree(dir: &Path) {
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                remove_tree(&e.path());
            }
        }
    }
    for _ in 0..100 {
        if std::fs::remove_dir(dir).is_ok() || !dir.exists() {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// A `sleep` holding a program, moved into a cgroup laid out as a runtime lays it out.
#[derive(Debug)]
pub struct PlacedHolder(pub Reaped);

impl PlacedHolder {
    pub fn start(cgroup: &MadeCgroup, prog: BorrowedFd<'_>) -> Self {
        let mut sleep = Command::new("sleep");
        sleep.arg("600").stdin(Stdio::null());
        let child = Reaped(holding(sleep, prog).spawn().expect("sleep"));
        cgroup.enter(child.0.id());
        Self(child)
    }
}

/// A real systemd-nspawn container (`--keep-unit`, in a cgroup named as systemd names
/// `systemd-nspawn@NAME.service`) whose payload, `sleep`, holds a program: passed in as a
/// socket-activation fd (`LISTEN_FDS`), which nspawn hands to the payload as its fd 3.
#[derive(Debug)]
pub struct NspawnHolder {
    pub child: Reaped,
    _cgroup: MadeCgroup,
}

impl NspawnHolder {
    pub fn start(root: &Path, unit_cgroup: &str, machine: &str, prog: BorrowedFd<'_>) -> Self {
        let made = MadeCgroup::create(unit_cgroup);
        let procs = made.path.join("cgroup.procs");
        let script = format!(
            "echo $$ > '{}' && LISTEN_PID=$$ LISTEN_FDS=1 exec systemd-nspawn -q -D '{}' \
             --read-only --register=no --keep-unit -M '{machine}' /bin/sleep 600",
            procs.display(),
            root.display()
        );
        let mut sh = Command::new("sh");
        sh.args(["-c", &script])
            .stdin(Stdio::null())
            .stdout(Stdio::null());
        let child = Reaped(holding(sh, prog).spawn().expect("systemd-nspawn"));
        Self {
            child,
            _cgroup: made,
        }
    }
}

impl Drop for NspawnHolder {
    fn drop(&mut self) {
        // SIGTERM: nspawn stops its container and cleans up after itself.
        self.child.signal(libc::SIGTERM);
        let _ = self.child.0.wait();
    }
}

/// A file written where a runtime keeps it, and removed with the directories it made.
#[derive(Debug)]
pub struct RuntimeFile {
    created: Vec<PathBuf>,
    path: PathBuf,
}

impl RuntimeFile {
    pub fn write(path: &Path, text: &str) -> Self {
        let mut created = Vec::new();
        let mut missing: Vec<&Path> = path
            .ancestors()
            .skip(1)
            .take_while(|p| !p.exists())
            .collect();
        missing.reverse();
        for dir in missing {
            std::fs::create_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
            created.push(dir.to_owned());
        }
        std::fs::write(path, text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        Self {
            created,
            path: path.to_owned(),
        }
    }
}

impl Drop for RuntimeFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
        for dir in self.created.iter().rev() {
            let _ = std::fs::remove_dir(dir);
        }
    }
}

/// A real podman container (runc: crun refuses this VM's hybrid cgroups) whose `sleep` holds
/// a program, passed with `--preserve-fds 1` as its fd 3; removed when dropped.
#[derive(Debug)]
pub struct PodmanHolder {
    pub name: String,
    pub id: String,
}

impl PodmanHolder {
    /// Whether podman and runc are here, and an image of `sleep` imported from a local root
    /// (`podman import` of a tar of /bin/sleep and its libraries) whose tag it gives.
    pub fn image(dir: &Path) -> Option<String> {
        if !crate::nspawn::have("podman") || !crate::nspawn::have("runc") {
            return None;
        }
        let root = dir.join("root");
        let ldd = crate::ok(Command::new("ldd").arg("/bin/sleep"));
        let libs = ldd.split_whitespace().filter(|w| w.starts_with('/'));
        for file in std::iter::once("/bin/sleep").chain(libs) {
            let to = root.join(file.trim_start_matches('/'));
            std::fs::create_dir_all(to.parent().expect("parent")).expect("mkdir");
            std::fs::copy(file, &to).unwrap_or_else(|e| panic!("{file}: {e}"));
        }
        let tar = dir.join("root.tar");
        crate::ok(
            Command::new("tar")
                .arg("-C")
                .arg(&root)
                .arg("-cf")
                .arg(&tar)
                .arg("."),
        );
        let image = format!("localhost/ebpfstat-sleep:{}", crate::tag());
        crate::ok(Command::new("podman").arg("import").arg(&tar).arg(&image));
        Some(image)
    }

    pub fn start(image: &str, name: &str, prog: BorrowedFd<'_>) -> Self {
        let mut run = Command::new("podman");
        run.args(["--runtime", "runc", "run", "-d", "--preserve-fds", "1"])
            // This VM's root may not raise RLIMIT_NOFILE to podman's default.
            .args([
                "--ulimit",
                "nofile=1024:20000",
                "--ulimit",
                "nproc=1024:1024",
            ])
            .args(["--name", name, image, "/bin/sleep", "600"])
            .stdin(Stdio::null());
        let out = holding(run, prog).output().expect("podman run");
        assert!(
            out.status.success(),
            "podman run: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Self {
            name: name.to_owned(),
            id: String::from_utf8_lossy(&out.stdout).trim().to_owned(),
        }
    }
}

impl Drop for PodmanHolder {
    fn drop(&mut self) {
        let _ = Command::new("podman")
            .args(["rm", "-f", "-t", "0", &self.name])
            .output();
    }
}
