//! Processes and the machine: running commands, finding built binaries and packages, root,
//! fd limits, and skipping a test whose prerequisite is missing.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// A test whose prerequisite is missing: under `CI=true` a failure with a clear message;
/// elsewhere a visible `SKIPPED` line (and the caller returns).
pub fn skip_or_fail(test: &str, reason: &str) {
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "{test}: {reason}. Under CI=true a missing prerequisite is a failure, not a skip."
    );
    eprintln!("SKIPPED {test}: {reason}");
}

/// Runs a command to completion, capturing its output (a failure to start it panics).
pub fn output(cmd: &mut Command) -> Output {
    cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"))
}

/// Runs a command, asserts it succeeded and returns its stdout.
pub fn ok(cmd: &mut Command) -> String {
    let out = output(cmd);
    assert!(
        out.status.success(),
        "{cmd:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `target/packages/`, where `packaging/build` puts the .deb and the .rpm.
pub fn packages_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/packages")
}

/// The amd64 package built by `packaging/build` with this extension (`deb`, `rpm`), if there
/// is one.
pub fn built_package(ext: &str) -> Option<PathBuf> {
    built_package_for(ext, if ext == "rpm" { "x86_64" } else { "amd64" })
}

/// The package with this extension for this architecture, as its file name spells it (`arm64`,
/// `armhf` for a .deb; `aarch64`, `armv7hl` for an .rpm), if there is one.
pub fn built_package_for(ext: &str, arch: &str) -> Option<PathBuf> {
    let tail = match ext {
        "rpm" => format!(".{arch}.rpm"),
        _ => format!("_{arch}.{ext}"),
    };
    std::fs::read_dir(packages_dir()).ok().and_then(|d| {
        d.flatten()
            .map(|e| e.path())
            .find(|p| p.to_string_lossy().ends_with(&tail))
    })
}

pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// Raises the soft fd limit to the hard one: a thousand programs need a few thousand fds.
pub fn raise_fd_limit() {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `lim` is a valid rlimit for getrlimit/setrlimit to read and write.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 {
            lim.rlim_cur = lim.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
}

/// Path of a workspace binary built next to the running test (`target/<profile>/<name>`), or
/// in `$EBPFSTAT_BIN_DIR` when that is set (a guest kernel's check runs the binaries built for
/// its architecture).
pub fn bin(name: &str) -> PathBuf {
    if let Some(dir) = std::env::var_os("EBPFSTAT_BIN_DIR") {
        return PathBuf::from(dir).join(name);
    }
    let exe = std::env::current_exe().expect("current exe");
    // target/<profile>/deps/<test>-<hash> → target/<profile>/<name>
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("test binary lives in target/<profile>/deps");
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} is missing: build the workspace binaries first (`cargo build --workspace`)",
        path.display()
    );
    path
}

/// `ebpfstatd run` of `daemon` on `db` and `socket`, no bus, every 200 ms, started by `sh -c`
/// with `prelude` first (`umask 077; ulimit -n 1024`, or joining a cgroup), then `extra`
/// flags; its standard output discarded.
pub fn daemon_after(
    prelude: &str,
    daemon: &Path,
    (db, socket): (&Path, &Path),
    extra: &[&str],
) -> Command {
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg(format!("{prelude}; exec \"$0\" \"$@\""))
        .arg(daemon)
        .args([
            "run",
            "--config",
            "/dev/null",
            "--bus",
            "none",
            "--interval",
            "200ms",
        ])
        .arg("--db")
        .arg(db)
        .arg("--socket")
        .arg(socket)
        .args(extra)
        .stdout(Stdio::null());
    cmd
}

/// This process's comm, as owners report it.
pub fn own_comm() -> String {
    std::fs::read_to_string("/proc/self/comm")
        .expect("read comm")
        .trim_end()
        .to_owned()
}

/// A unique-enough short tag for names, so parallel tests and runs do not collide.
pub fn tag() -> String {
    format!("{:x}", std::process::id() % 0xfff)
}

/// A child process that is killed and reaped when dropped, so a failing test leaves nothing
/// running (a daemon holding stats on would disturb the tests after it).
#[derive(Debug)]
pub struct Reaped(pub std::process::Child);

impl Reaped {
    /// Sends `sig` to the child.
    pub fn signal(&self, sig: libc::c_int) {
        let pid = libc::pid_t::try_from(self.0.id()).expect("a pid fits pid_t");
        // SAFETY: kill(2) on our own child, which is not reaped before `self` is dropped.
        unsafe { libc::kill(pid, sig) };
    }

    /// SIGTERM, and whether it then exited with success.
    pub fn stop(mut self) -> bool {
        self.signal(libc::SIGTERM);
        self.0.wait().is_ok_and(|s| s.success())
    }
}

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// CPU time of the calling thread, ns.
pub fn thread_cpu_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    let secs = u64::try_from(ts.tv_sec).expect("a thread's CPU time is not negative");
    secs * 1_000_000_000 + u64::try_from(ts.tv_nsec).expect("nanoseconds")
}

/// CPU time of every thread of `pid`, ns (`/proc/<pid>/task/*/schedstat`, first field):
/// finer than the clock ticks of `/proc/<pid>/stat`.
pub fn cpu_ns(pid: impl std::fmt::Display) -> u64 {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .expect("tasks")
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("schedstat")).ok())
        .filter_map(|s| s.split_whitespace().next()?.parse::<u64>().ok())
        .sum()
}

/// A field of `/proc/<pid>/status` in kB (`"VmHWM:"`, `"VmRSS:"`).
pub fn status_kb(pid: impl std::fmt::Display, key: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .expect("status")
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .expect("a value in kB")
}

/// Spawns a command to completion and returns its (user+sys CPU ns, peak RSS KiB).
#[expect(
    clippy::zombie_processes,
    reason = "reaped by wait4, which also returns this child's own rusage"
)]
pub fn child_usage(cmd: &mut Command) -> (f64, u64) {
    let child = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    let mut status = 0;
    // SAFETY: an all-zero rusage is valid; wait4 fills it for this child.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let pid = crate::bus::pid_of(&child);
    // SAFETY: `status` and `usage` are valid for writes; the pid is our own child.
    let rc = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    assert_eq!(rc, pid, "wait4");
    assert!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "child failed"
    );
    let tv = |t: libc::timeval| t.tv_sec as f64 * 1e9 + t.tv_usec as f64 * 1e3;
    (
        tv(usage.ru_utime) + tv(usage.ru_stime),
        u64::try_from(usage.ru_maxrss).expect("a peak RSS"),
    )
}
