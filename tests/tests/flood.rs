//! Floods of calls on the private socket, for real, against the real daemon over a store of
//! many long-named series: a peer that writes calls and never reads their (big) answers, a
//! peer that writes calls as fast as it can, and unknown names that once cost an edit
//! distance against every stored name. Each test names what must hold: the daemon's memory
//! stays within its unit's limit, other clients are answered, sampling goes on, the hostile
//! peer is let go.
//!
//! `EBPFSTATD=/path/to/ebpfstatd` runs another daemon binary (an older build, to see these
//! tests fail against it); `ebpfstatctl` is always the one built here.

use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant, SystemTime};

use ebpfstat_dbus::{INTERFACE, OBJECT_PATH, Options};
use ebpfstat_store::Store;
use ebpfstat_tests::bus::{ctl_json_via, open_tempdir};
use ebpfstat_tests::synthetic::Workload;
use ebpfstat_tests::*;

/// Series in the store: every one a row of a `Top` over the window.
const SERIES: usize = 16_000;
/// Simulated seconds of them, ending two minutes before the test starts.
const SIM_SECS: u64 = 180;
/// The unit's `MemoryMax`.
const MEMORY_MAX: u64 = 128 << 20;
/// What `Top` is asked for: as many rows as it gives.
const TOP_N: u32 = ebpfstat_dbus::MAX_TOP_N;

/// The daemon binary: `EBPFSTATD` if set, else the one built next to this test.
fn daemon_bin() -> PathBuf {
    std::env::var_os("EBPFSTATD").map_or_else(|| bin("ebpfstatd"), PathBuf::from)
}

/// Series `i`'s full name: about 200 bytes.
fn long_name(i: usize) -> String {
    format!("prog{i}_{}", "handler_".repeat(24))
}

/// A store at `db` of [`SERIES`] programs with long names over [`SIM_SECS`] seconds ending two
/// minutes ago; how long filling it took.
fn many_series(db: &Path) -> Duration {
    let started = Instant::now();
    let mut store = Store::open(store_config(db)).expect("open the store");
    let start = SystemTime::now() - Duration::from_secs(SIM_SECS + 120);
    let mut work = Workload::starting("flood-boot", SERIES, 0.2, start);
    for i in 0..SERIES {
        work.host.rename(i, &long_name(i));
    }
    work.fill(&mut store, SIM_SECS, || {});
    drop(store);
    // Read by this process first, so the file's page cache is charged here, not to the
    // daemon's cgroup.
    std::fs::read(db).expect("read the store");
    started.elapsed()
}

/// The daemon on `db`, serving only `socket`, inside `cage`, its log in `log`.
fn caged_daemon(cage: &MemoryCage, db: &Path, socket: &Path, log: &Path) -> Reaped {
    let join = format!("echo $$ > {}", cage.procs().display());
    let child = daemon_after(&join, &daemon_bin(), (db, socket), &[])
        .stderr(std::fs::File::create(log).expect("log"))
        .spawn()
        .expect("spawn ebpfstatd");
    let daemon = Reaped(child);
    // Answering, with a first pass made: a name is looked up in what the passes saw (a busy
    // machine delays the first one).
    let passed = |o: &Output| {
        o.status.success()
            && serde_json::from_slice::<serde_json::Value>(&o.stdout)
                .is_ok_and(|st| st["passes"].as_u64().is_some_and(|n| n >= 1))
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while run_within(
        ctl(socket).args(["--json", "status"]),
        Duration::from_secs(10),
    )
    .is_none_or(|(o, _)| !passed(&o))
    {
        assert!(
            Instant::now() < deadline,
            "no daemon answers on {}; its log:\n{}",
            socket.display(),
            std::fs::read_to_string(log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    daemon
}

/// `ebpfstatctl --socket <socket>`.
fn ctl(socket: &Path) -> Command {
    let mut cmd = Command::new(bin("ebpfstatctl"));
    cmd.arg("--socket").arg(socket);
    cmd
}

/// A child whose output is collected once it exits; killed if dropped before.
struct Running {
    child: Child,
    started: Instant,
}

impl Running {
    fn spawn(cmd: &mut Command) -> Self {
        let child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn");
        Self {
            child,
            started: Instant::now(),
        }
    }

    /// Its output and how long it ran, if it exits before `deadline`.
    fn finish_by(mut self, deadline: Instant) -> Option<(Output, Duration)> {
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                let took = self.started.elapsed();
                let mut stdout = Vec::new();
                let mut stderr = Vec::new();
                if let Some(mut out) = self.child.stdout.take() {
                    out.read_to_end(&mut stdout).expect("stdout");
                }
                if let Some(mut err) = self.child.stderr.take() {
                    err.read_to_end(&mut stderr).expect("stderr");
                }
                let output = Output {
                    status,
                    stdout,
                    stderr,
                };
                return Some((output, took));
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `cmd`; its output and how long it took, if it ends within `limit` (else it is killed).
fn run_within(cmd: &mut Command, limit: Duration) -> Option<(Output, Duration)> {
    Running::spawn(cmd).finish_by(Instant::now() + limit)
}

/// Another client's `status`, which must be answered while a flood goes on: its passes and
/// how long the answer took. A failure says what the daemon's cgroup saw.
fn status_answers(socket: &Path, cage: &MemoryCage, during: &str) -> (u64, Duration) {
    let cgroup = || {
        format!(
            "the daemon's cgroup: {} OOM kills, peak {} MiB of {} MiB",
            cage.oom_kills().expect("oom count"),
            cage.peak_bytes().expect("peak") >> 20,
            MEMORY_MAX >> 20
        )
    };
    let Some((out, took)) = run_within(
        ctl(socket).args(["--json", "status"]),
        Duration::from_secs(30),
    ) else {
        panic!(
            "{during}: another client's status got no answer in 30 s; {}",
            cgroup()
        );
    };
    assert!(
        out.status.success(),
        "{during}: another client's status failed: {}; {}",
        String::from_utf8_lossy(&out.stderr).trim_end(),
        cgroup()
    );
    let st: serde_json::Value = serde_json::from_slice(&out.stdout).expect("status JSON");
    (st["passes"].as_u64().expect("passes"), took)
}

/// A connection to `socket`, authenticated (SASL EXTERNAL as this process's user) and begun:
/// the next bytes are D-Bus messages.
fn authenticated(socket: &Path) -> UnixStream {
    let mut s = UnixStream::connect(socket).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    // SAFETY: geteuid has no preconditions.
    let uid = unsafe { libc::geteuid() };
    let hex: String = uid
        .to_string()
        .bytes()
        .map(|b| format!("{b:02x}"))
        .collect();
    s.write_all(format!("\0AUTH EXTERNAL {hex}\r\n").as_bytes())
        .expect("auth");
    // The reply is one line, and the server says nothing more until BEGIN: read it byte by
    // byte so nothing after it is taken.
    let mut reply = Vec::new();
    let mut byte = [0u8; 1];
    while !reply.ends_with(b"\r\n") {
        s.read_exact(&mut byte).expect("auth reply");
        reply.push(byte[0]);
    }
    assert!(
        reply.starts_with(b"OK "),
        "{}",
        String::from_utf8_lossy(&reply)
    );
    s.write_all(b"BEGIN\r\n").expect("begin");
    s
}

/// A method call of `method` with serial `serial`, to be given its body (an invalid name is
/// reported when it is built).
fn call(method: &str, serial: u32) -> zbus::message::Builder<'_> {
    zbus::message::Message::method_call(OBJECT_PATH, method)
        .interface(INTERFACE)
        .serial(std::num::NonZeroU32::new(serial).expect("serials start at 1"))
}

/// `Top(from_ns, to_ns, "runtime", TOP_N, {})`'s bytes on the wire.
fn top_call(serial: u32, (from_ns, to_ns): (i64, i64)) -> Vec<u8> {
    call("Top", serial)
        .build(&(from_ns, to_ns, "runtime", TOP_N, Options::new()))
        .expect("a message")
        .data()
        .to_vec()
}

/// `Status()`'s bytes on the wire.
fn status_call(serial: u32) -> Vec<u8> {
    call("Status", serial)
        .build(&())
        .expect("a message")
        .data()
        .to_vec()
}

/// The last 90 days to a minute from now, in ns since the epoch.
fn ninety_days() -> (i64, i64) {
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .expect("after 1970");
    let ns = |d: Duration| i64::try_from(d.as_nanos()).expect("ns fit i64");
    (
        ns(now - Duration::from_secs(90 * 86_400)),
        ns(now + Duration::from_secs(60)),
    )
}

/// Reads messages from `s` until a reply or an error comes (signals are skipped): its type
/// (2: reply, 3: error) and its length. No answer within the stream's read timeout fails
/// `what`.
fn read_answer(s: &mut UnixStream, what: &str) -> (u8, usize) {
    let mut read = |buf: &mut [u8]| {
        s.read_exact(buf).unwrap_or_else(|e| match e.kind() {
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut => {
                panic!("{what}: no answer within the read timeout")
            }
            _ => panic!("{what}: no answer: {e}"),
        });
    };
    loop {
        let mut header = [0u8; 16];
        read(&mut header);
        assert_eq!(header[0], b'l', "little-endian messages");
        let word = |at: usize| {
            let w =
                u32::from_le_bytes([header[at], header[at + 1], header[at + 2], header[at + 3]]);
            usize::try_from(w).expect("fits")
        };
        let len = (16 + word(12)).next_multiple_of(8) + word(4);
        let mut rest = vec![0u8; len - 16];
        read(&mut rest);
        if header[1] != 4 {
            return (header[1], len);
        }
    }
}

/// `Status()` on `s`, an open connection: how long its answer took.
fn timed_status(s: &mut UnixStream, serial: u32, what: &str) -> Duration {
    let asked = Instant::now();
    s.write_all(&status_call(serial)).expect("write Status");
    let (kind, _) = read_answer(s, what);
    assert_eq!(kind, 2, "{what}: Status answered with an error");
    asked.elapsed()
}

/// Waits (until `limit` after `since`) without reading for the daemon to close `s`: when it
/// did, after `since`, or `None`. Reading would let the daemon's answers flow again.
fn hung_up_within(s: &UnixStream, since: Instant, limit: Duration) -> Option<Duration> {
    loop {
        let left = limit.saturating_sub(since.elapsed());
        if left.is_zero() {
            return None;
        }
        let mut pfd = libc::pollfd {
            fd: s.as_raw_fd(),
            events: libc::POLLRDHUP,
            revents: 0,
        };
        let ms = libc::c_int::try_from(left.as_millis().min(1000)).expect("at most 1000");
        // SAFETY: one valid pollfd, for the length given.
        let n = unsafe { libc::poll(&raw mut pfd, 1, ms) };
        if n > 0 && pfd.revents & (libc::POLLRDHUP | libc::POLLHUP | libc::POLLERR) != 0 {
            return Some(since.elapsed());
        }
    }
}

/// After [`hung_up_within`]: reads what the daemon wrote until the end (or a reset); the bytes
/// read, or `None` if no end came within 30 s.
fn drained_to_the_end(s: &mut UnixStream) -> Option<usize> {
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut buf = vec![0u8; 1 << 16];
    let mut total = 0;
    while Instant::now() < deadline {
        match s.read(&mut buf) {
            Ok(0) => return Some(total),
            Ok(n) => total += n,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return Some(total),
            Err(_) => return None,
        }
    }
    None
}

/// What must hold of the daemon's memory while a flood goes on: no OOM kill in its cgroup,
/// and its own peak well under the limit. Its own peak: the high-water mark of its resident
/// set (`VmHWM`) less the file pages resident now (`RssFile`, `RssShmem`: its binary's text,
/// 12 MiB in a debug build, charged to whoever read them first), so about its heap's peak.
/// The cgroup's peak is shown, not judged: on cgroup v1 it counts reclaimable kernel memory
/// too, and the daemon's walk of every process's descriptors makes dentries it is charged for
/// (a process holding 20 000 descriptors added 18 MiB): another job on the machine can take
/// it to the limit, where the kernel reclaims them without an OOM kill.
/// Returns (the daemon's peak, the cgroup's peak), bytes.
fn within_memory(cage: &MemoryCage, pid: u32, during: &str) -> (u64, u64) {
    assert_eq!(
        cage.oom_kills().expect("oom count"),
        0,
        "{during}: the daemon was OOM-killed (its cgroup's limit is {} MiB)",
        MEMORY_MAX >> 20
    );
    assert!(
        Path::new(&format!("/proc/{pid}/status")).exists(),
        "{during}: the daemon is gone"
    );
    let kb = |key| status_kb(pid, key);
    let own = kb("VmHWM:").saturating_sub(kb("RssFile:") + kb("RssShmem:")) << 10;
    let peak = cage.peak_bytes().expect("peak");
    assert!(
        own < 96 << 20,
        "{during}: the daemon's memory peaked at {} MiB (its cgroup at {} MiB) of {} MiB",
        own >> 20,
        peak >> 20,
        MEMORY_MAX >> 20
    );
    (own, peak)
}

/// [`within_memory`], said.
fn say_memory(cage: &MemoryCage, pid: u32, during: &str) {
    let (own, peak) = within_memory(cage, pid, during);
    eprintln!(
        "{during}: daemon's peak {} MiB, its cgroup's {} MiB (limit {} MiB)",
        own >> 20,
        peak >> 20,
        MEMORY_MAX >> 20
    );
}

#[test]
#[expect(
    clippy::too_many_lines,
    reason = "one scenario read top to bottom: each flood checks what the one before left"
)]
fn unread_answers_cannot_bloat_or_starve_the_daemon() {
    require_bpf!();
    let dir = open_tempdir();
    let db = dir.path().join("history.db");
    let socket = dir.path().join("private");
    let log = dir.path().join("log");
    let filled = many_series(&db);
    eprintln!("{SERIES} series over {SIM_SECS} s stored in {filled:.1?}");
    let fleet = Fleet::load(&format!("fu{}_", tag()), 3);
    let cage =
        MemoryCage::create(&format!("ebpfstat-flood-u{}", tag()), MEMORY_MAX).expect("cgroup");
    let daemon = caged_daemon(&cage, &db, &socket, &log);
    let pid = daemon.0.id();
    let window = ninety_days();
    say_memory(&cage, pid, "started");

    // One answer, read: thousands of rows of long names.
    let mut probe = authenticated(&socket);
    probe
        .set_read_timeout(Some(Duration::from_secs(60)))
        .expect("timeout");
    let asked = Instant::now();
    probe.write_all(&top_call(1, window)).expect("write Top");
    let (kind, size) = read_answer(&mut probe, "one Top");
    assert_eq!(kind, 2, "Top answered with an error");
    eprintln!(
        "one Top answer ({TOP_N} rows asked of {SERIES} series): {size} bytes in {:.1?}",
        asked.elapsed()
    );
    assert!(size > 2 << 20, "a Top answer of only {size} bytes");
    drop(probe);
    say_memory(&cage, pid, "one Top answered");

    // 100 calls in one write on each of two connections of one user, and nothing ever read:
    // the daemon reads 4 from each (a peer's share), makes one answer at a time for the user
    // and holds its turn until that answer is written; each peer, reading none of it for 10 s,
    // is let go. They are watched without being read: a read would let the answers flow again.
    let during = "100 unread Top answers on each of 2 connections";
    let burst: Vec<u8> = (1..=100).flat_map(|i| top_call(i, window)).collect();
    let mut attackers: Vec<UnixStream> = (0..2).map(|_| authenticated(&socket)).collect();
    for a in &mut attackers {
        a.write_all(&burst).expect("write 100 Top calls");
    }
    let attacked = Instant::now();
    let (before, _) = status_answers(&socket, &cage, during);
    std::thread::sleep(Duration::from_secs(3));
    fleet.drive(1, 7);
    let (after, took) = status_answers(&socket, &cage, during);
    eprintln!("{during}: another client's status answered in {took:.1?}");
    assert!(
        after > before,
        "{during}: sampling stopped ({before} then {after} passes)"
    );
    say_memory(&cage, pid, during);
    for attacker in &mut attackers {
        // Each waits its turn for its first answer, then 10 s of not reading it.
        let Some(closed) = hung_up_within(attacker, attacked, Duration::from_secs(60)) else {
            panic!("{during}: an attacker was still served 60 s after its burst");
        };
        let read = drained_to_the_end(attacker).expect("the end of the attacker's stream");
        eprintln!(
            "{during}: an attacker let go {closed:.1?} after its burst, {read} bytes of \
             answers left for it"
        );
        assert!(
            read < size,
            "{during}: {read} bytes were written for the attacker"
        );
    }
    say_memory(&cage, pid, "after 100 unread Top answers");

    // 100 000 Status calls as fast as they are taken, and nothing read: answers fill the
    // socket, the daemon stops reading, the writer blocks, and the peer is let go.
    let during = "a Status flood";
    let flood = authenticated(&socket);
    let watch = flood.try_clone().expect("clone");
    let flooded = Instant::now();
    let writer = std::thread::spawn(move || {
        let mut flood = flood;
        flood
            .set_write_timeout(Some(Duration::from_secs(30)))
            .expect("timeout");
        let status = status_call(1);
        let mut accepted = 0u32;
        for serial in 1..=100_000u32 {
            let mut call = status.clone();
            call[8..12].copy_from_slice(&serial.to_le_bytes());
            if flood.write_all(&call).is_err() {
                break;
            }
            accepted += 1;
        }
        (accepted, flood)
    });
    std::thread::sleep(Duration::from_secs(3));
    let (before, _) = status_answers(&socket, &cage, during);
    fleet.drive(2, 5);
    std::thread::sleep(Duration::from_secs(1));
    let (after, took) = status_answers(&socket, &cage, during);
    eprintln!("{during}: another client's status answered in {took:.1?}");
    assert!(
        after > before,
        "{during}: sampling stopped ({before} then {after} passes)"
    );
    say_memory(&cage, pid, during);
    let Some(closed) = hung_up_within(&watch, flooded, Duration::from_secs(30)) else {
        panic!("{during}: the flooding peer was still served 30 s after it began");
    };
    let (accepted, mut flood) = writer.join().expect("the writer");
    let read = drained_to_the_end(&mut flood).expect("the end of the flood's stream");
    eprintln!(
        "{during}: {accepted} of 100000 calls taken before the daemon stopped reading, {read} \
         bytes of answers left, let go {closed:.1?} after it began"
    );
    assert!(
        accepted < 100_000,
        "{during}: the daemon took all 100 000 calls of a peer that read no answer"
    );

    // Sampling counted every run driven meanwhile, and the daemon stops cleanly.
    let (_, took) = status_answers(&socket, &cage, "after the floods");
    eprintln!("after the floods: status answered in {took:.1?}");
    for (i, runs) in [(1, 7), (2, 5)] {
        let shown = ctl_json_via(
            &["--socket".as_ref(), socket.as_os_str()],
            &["show", &fleet.programs[i].name],
        );
        assert_eq!(
            shown["program"]["since_load"]["run_cnt"].as_u64(),
            Some(runs),
            "{shown}"
        );
    }
    say_memory(&cage, pid, "after the floods");
    assert!(daemon.stop(), "the daemon did not stop cleanly");
}

#[test]
fn unknown_long_names_are_answered_without_starving_others() {
    require_bpf!();
    let dir = open_tempdir();
    let db = dir.path().join("history.db");
    let socket = dir.path().join("private");
    let log = dir.path().join("log");
    let filled = many_series(&db);
    eprintln!("{SERIES} series over {SIM_SECS} s stored in {filled:.1?}");
    let _fleet = Fleet::load(&format!("fd{}_", tag()), 3);
    let cage =
        MemoryCage::create(&format!("ebpfstat-flood-d{}", tag()), MEMORY_MAX).expect("cgroup");
    let daemon = caged_daemon(&cage, &db, &socket, &log);
    let pid = daemon.0.id();

    // The longest name a call takes (512 bytes), like none stored: an edit distance against
    // each of 16 000 names of 200 bytes is 1.6 G cells.
    let during = "10 unknown 512-byte names";
    let hostile = format!("{}{}b", "a".repeat(300), "Z".repeat(211));
    let mut other = authenticated(&socket);
    other
        .set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    let shows: Vec<Running> = (0..10)
        .map(|_| Running::spawn(ctl(&socket).args(["show", &hostile])))
        .collect();
    // Another client, connected already, asks for the status every 100 ms for 3 s meanwhile.
    let asking = std::thread::spawn(move || {
        let until = Instant::now() + Duration::from_secs(3);
        let mut took = Vec::new();
        for serial in 1.. {
            took.push(timed_status(&mut other, serial, during));
            if Instant::now() > until {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        took
    });
    let took = asking
        .join()
        .unwrap_or_else(|_| panic!("{during}: another client's status was not answered"));
    let slowest_status = took.iter().max().copied().unwrap_or_default();
    eprintln!(
        "{during}: another client's {} status calls answered, the slowest in {slowest_status:.1?}",
        took.len()
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut slowest_show = Duration::ZERO;
    for show in shows {
        let Some((out, took)) = show.finish_by(deadline) else {
            panic!("{during}: a show had no answer in 30 s");
        };
        slowest_show = slowest_show.max(took);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{during}: a show succeeded");
        assert!(
            err.contains("no program was ever seen named") && err.contains("(512 bytes)"),
            "{during}: {err}"
        );
        assert!(!err.contains("did you mean"), "{during}: {err}");
    }
    eprintln!("{during}: every show answered \"no program\", the slowest in {slowest_show:.1?}");
    assert!(
        slowest_status < Duration::from_secs(10),
        "{during}: a status took {slowest_status:?}"
    );
    assert!(
        slowest_show < Duration::from_secs(15),
        "{during}: a show took {slowest_show:?}"
    );
    say_memory(&cage, pid, during);
    assert!(daemon.stop(), "the daemon did not stop cleanly");
}
