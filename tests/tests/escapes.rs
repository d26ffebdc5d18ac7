//! Text from the kernel's side on a terminal: a process names itself anything (its comm, its
//! cgroup), and whatever holds a program is shown by `ebpfstatctl`. Controls in those names are
//! shown escaped, never acted on by the terminal; bytes that are not UTF-8 are shown as U+FFFD,
//! never as an empty owner.

use std::ffi::OsStr;
use std::io::{self, BufRead, BufReader};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use ebpfstat_tests::bus::ApiDaemon;
use ebpfstat_tests::terminal::on_pty;
use ebpfstat_tests::*;

/// Clears the screen, turns text red, rings the bell: 14 bytes, within comm's 15.
const HOSTILE_COMM: &[u8] = b"\x1b[2J\x1b[31mPWN\x07";
/// A comm that is not UTF-8.
const BYTE_COMM: &[u8] = b"ab\xffcd";

/// A cgroup (v2) of any name, as bytes, removed when dropped (its processes gone first).
struct RawCgroup(PathBuf);

impl RawCgroup {
    fn create(name: &[u8]) -> Self {
        let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").expect("mountinfo");
        let root = ebpfstatd::sampler::pins::mounts(&mountinfo)
            .cgroup2
            .expect("a cgroup2 mount");
        let path = root.join(OsStr::from_bytes(name));
        std::fs::create_dir(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        Self(path)
    }

    fn join(&self, pid: u32) {
        std::fs::write(self.0.join("cgroup.procs"), pid.to_string()).expect("join the cgroup");
    }
}

impl Drop for RawCgroup {
    fn drop(&mut self) {
        // The last process may leave it a moment after it was reaped.
        let deadline = Instant::now() + Duration::from_secs(2);
        while std::fs::remove_dir(&self.0).is_err() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// A shell that inherits `prog`, names itself `comm` and waits (until killed when dropped).
fn holder(prog: BorrowedFd<'_>, comm: &[u8]) -> Reaped {
    let fd = prog.as_raw_fd();
    let mut cmd = Command::new("sh");
    // printf's octal escapes write the bytes; `read` keeps the shell itself (an exec'd
    // program would take its own file's name as comm).
    let octal: String = comm.iter().map(|b| format!("\\{b:03o}")).collect();
    cmd.args([
        "-c",
        "printf \"$COMM\" > /proc/$$/comm && echo named && read x",
    ])
    .env("COMM", octal)
    .stdin(Stdio::piped())
    .stdout(Stdio::piped());
    // SAFETY: runs in the child between fork and exec, calling only fcntl (async-signal-safe)
    // on the child's own copy of the fd, which the parent keeps open across the spawn.
    unsafe {
        cmd.pre_exec(move || {
            // Inherited across exec: the shell holds the program as a loader's child would.
            if libc::fcntl(fd, libc::F_SETFD, 0) == -1 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = cmd.spawn().expect("spawn sh");
    let mut said = String::new();
    BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut said)
        .expect("read the shell");
    assert_eq!(said, "named\n", "the shell named itself");
    let named = std::fs::read(format!("/proc/{}/comm", child.id())).expect("comm");
    assert_eq!(
        named,
        [comm, b"\n"].concat(),
        "the kernel took the name whole"
    );
    Reaped(child)
}

/// Waits (10 s at most) until `show` lists every pid among the program's owners.
fn owners_seen(d: &ApiDaemon, id: &str, pids: &[u32]) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let shown = d.ctl_json(&["show", id]);
        let owners = shown["program"]["owners"].clone();
        let listed = |pid: &u32| {
            owners
                .as_array()
                .is_some_and(|o| o.iter().any(|o| o["pid"] == *pid))
        };
        if pids.iter().all(listed) {
            return owners;
        }
        assert!(Instant::now() < deadline, "owners {pids:?} in {shown}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `ebpfstatctl args` on a pseudo-terminal: what the terminal got, after asserting that the
/// only escape codes in it are the header's bold and reset.
fn on_terminal(d: &ApiDaemon, args: &[&str]) -> String {
    let socket = d.socket.to_str().expect("utf-8");
    let all: Vec<&str> = ["--socket", socket].iter().chain(args).copied().collect();
    let (raw, code) = on_pty(&bin("ebpfstatctl"), &all, 200);
    assert_eq!(code, 0, "ebpfstatctl {args:?}:\n{raw}");
    let own = raw.replace("\x1b[1m", "").replace("\x1b[0m", "");
    assert!(
        !own.contains(['\x1b', '\x07', '\u{9b}']),
        "{args:?}: a control reached the terminal raw:\n{}",
        own.escape_debug()
    );
    raw
}

#[test]
fn names_from_the_kernels_side_reach_the_terminal_escaped() {
    require_bpf!();
    let name = format!("esc{}", tag());
    let prog = load_program(PROG_TYPE_SOCKET_FILTER, &name, None, &[], 0);
    let id = prog_id(prog.as_fd()).to_string();
    // Declared before the holders: dropped after them, once empty.
    let hostile_unit = RawCgroup::create(format!("\x1b[2J\x07{name}.service").as_bytes());
    let byte_unit = RawCgroup::create(&[name.as_bytes(), b"\xff.service"].concat());
    let hostile = holder(prog.as_fd(), HOSTILE_COMM);
    let bytes = holder(prog.as_fd(), BYTE_COMM);
    hostile_unit.join(hostile.0.id());
    byte_unit.join(bytes.0.id());
    let (hp, bp) = (hostile.0.id(), bytes.0.id());

    let d = ApiDaemon::start(None, "200ms");
    // The daemon sends the names exactly (JSON escapes them), a stray byte as U+FFFD.
    let owners = owners_seen(&d, &id, &[hp, bp]);
    let owner = |pid: u32| {
        owners
            .as_array()
            .and_then(|o| o.iter().find(|o| o["pid"] == pid))
            .cloned()
            .unwrap_or_default()
    };
    assert_eq!(owner(hp)["comm"], "\x1b[2J\x1b[31mPWN\x07", "{owners}");
    assert_eq!(owner(hp)["unit"], format!("\x1b[2J\x07{name}.service"));
    assert_eq!(owner(bp)["comm"], "ab\u{fffd}cd", "{owners}");
    assert_eq!(owner(bp)["unit"], format!("{name}\u{fffd}.service"));

    let hostile_shown = format!(r"\e[2J\e[31mPWN\x07[{hp}] \e[2J\x07{name}.service");
    let bytes_shown = format!("ab\u{fffd}cd[{bp}] {name}\u{fffd}.service");
    for args in [vec!["list", "--name", &name], vec!["show", &id]] {
        let screen = on_terminal(&d, &args);
        for shown in [&hostile_shown, &bytes_shown] {
            assert!(
                screen.contains(shown.as_str()),
                "{args:?}: {shown}:\n{screen}"
            );
        }
    }
    drop((hostile, bytes));
}
