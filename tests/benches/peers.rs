//! `peers` benchmark: what 500 local peers holding the private socket cost the daemon, against
//! the same daemon with none, in the same run: CPU per pass and memory of the whole process,
//! measured from outside (`/proc/<pid>`), with 1000 programs loaded. The peers belong to five
//! users of group `ebpfstat` (created if missing), 100 each; a third window after they leave.
//!
//! Run as root: `cargo build --release --workspace && cargo bench -p ebpfstat-tests --bench peers`

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::Duration;

use ebpfstat_dbus::Stats1Proxy;
use ebpfstat_tests::bus::{self, ApiDaemon};
use ebpfstat_tests::{Fleet, cpu_ns, is_root, status_kb};

const WINDOW: Duration = Duration::from_secs(20);
const PEERS: usize = 500;

fn fds(pid: i32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .expect("fds")
        .count()
}

struct Window {
    cpu_ms_per_pass: f64,
    passes: u64,
    late: u64,
    failed: u64,
    rss_kib: u64,
    fds: usize,
}

/// The daemon's counters, over a connection it let in before any peer came.
fn counters(rt: &tokio::runtime::Runtime, p: &Stats1Proxy<'_>) -> [u64; 3] {
    let st = rt.block_on(p.status()).expect("status");
    ["passes", "late_passes", "failed_passes"]
        .map(|k| u64::try_from(st.get(k).expect(k)).expect("a count"))
}

fn measure(pid: i32, rt: &tokio::runtime::Runtime, p: &Stats1Proxy<'_>) -> Window {
    let (c0, cpu0) = (counters(rt, p), cpu_ns(pid));
    std::thread::sleep(WINDOW);
    let cpu1 = cpu_ns(pid);
    let rss_kib = status_kb(pid, "VmRSS:");
    let open = fds(pid);
    let c1 = counters(rt, p);
    let passes = c1[0] - c0[0];
    Window {
        // Threads that ended meanwhile are not counted: the daemon's live for its life.
        cpu_ms_per_pass: cpu1.saturating_sub(cpu0) as f64 / 1e6 / passes.max(1) as f64,
        passes,
        late: c1[1] - c0[1],
        failed: c1[2] - c0[2],
        rss_kib,
        fds: open,
    }
}

/// A peer that authenticates as `uid` and then sends nothing; `None` when the daemon turned it
/// away.
fn idle_peer(socket: &Path, uid: u32) -> Option<UnixStream> {
    let mut s = UnixStream::connect(socket).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    let hex: String = uid
        .to_string()
        .bytes()
        .map(|b| format!("{b:02x}"))
        .collect();
    s.write_all(format!("\0AUTH EXTERNAL {hex}\r\n").as_bytes())
        .ok()?;
    let mut reply = String::new();
    BufReader::new(&s).read_line(&mut reply).ok()?;
    if !reply.starts_with("OK ") {
        return None;
    }
    s.write_all(b"BEGIN\r\n").ok()?;
    Some(s)
}

/// Helper mode, run as another user: `--hold-peers <socket> <n>` tries `n` peers, prints how
/// many were let in, and holds them until its stdin closes.
fn hold_peers(args: &[String]) {
    let socket = Path::new(&args[0]);
    let n: usize = args[1].parse().expect("a count");
    // SAFETY: getuid has no preconditions.
    let uid = unsafe { libc::getuid() };
    let held: Vec<UnixStream> = (0..n).filter_map(|_| idle_peer(socket, uid)).collect();
    println!("{}", held.len());
    std::io::stdout().flush().expect("flush");
    let mut rest = Vec::new();
    let _ = std::io::stdin().read_to_end(&mut rest);
}

/// Users in group `ebpfstat` for the peers: the per-user cap (16) lets each hold only a few.
const USERS: [&str; 5] = [
    "ebpfstat-peer1",
    "ebpfstat-peer2",
    "ebpfstat-peer3",
    "ebpfstat-peer4",
    "ebpfstat-peer5",
];

#[expect(
    clippy::too_many_lines,
    reason = "one benchmark's setup, runs and table, read in the order they happen"
)]
fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--hold-peers") {
        hold_peers(&args[i + 1..]);
        return;
    }
    if args.iter().any(|a| a == "--list") {
        return;
    }
    if !is_root() {
        eprintln!("peers benchmark: needs root (the daemon samples real programs); skipped");
        return;
    }
    for user in USERS {
        bus::ensure_user(user, true);
    }
    // This benchmark, where the peers' users can run it.
    let public = tempfile::tempdir().expect("tempdir");
    std::fs::set_permissions(public.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let exe = public.path().join("peers");
    std::fs::copy(std::env::current_exe().expect("exe"), &exe).expect("copy");

    let _fleet = Fleet::load("peers_", 1000);
    let d = ApiDaemon::start(None, "1s");
    let pid = d.pid();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let (_conn, p) = rt.block_on(bus::proxy_on_socket(&d.socket));
    let quiet = measure(pid, &rt, &p);

    let per_user = PEERS / USERS.len();
    let mut helpers: Vec<Child> = USERS
        .iter()
        .map(|user| {
            bus::as_user(user, &exe)
                .arg("--hold-peers")
                .arg(&d.socket)
                .arg(per_user.to_string())
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .spawn()
                .expect("setpriv")
        })
        .collect();
    let held: usize = helpers
        .iter_mut()
        .map(|h| {
            let mut line = String::new();
            BufReader::new(h.stdout.as_mut().expect("stdout"))
                .read_line(&mut line)
                .expect("read");
            line.trim().parse::<usize>().expect("a count")
        })
        .sum();
    let crowded = measure(pid, &rt, &p);
    for mut h in helpers {
        drop(h.stdin.take());
        h.wait().expect("helper");
    }
    // The peers gone: what the daemon keeps of them.
    let after = measure(pid, &rt, &p);
    let hwm = status_kb(pid, "VmHWM:");
    drop(p);
    assert!(d.stop());

    println!(
        "\npeers: ebpfstatd (release) with 1000 programs at 1 s, {}-s windows; {PEERS} peers of {} \
         users connecting and authenticating: {held} let in",
        WINDOW.as_secs(),
        USERS.len()
    );
    println!(
        "{:<28} {:>12} {:>12} {:>12} {:>8}",
        "measure", "no peers", "500 peers", "after them", "ratio"
    );
    let row = |k: &str, f: &dyn Fn(&Window) -> f64, prec: usize| {
        let (a, b, c) = (f(&quiet), f(&crowded), f(&after));
        println!(
            "{k:<28} {a:>12.prec$} {b:>12.prec$} {c:>12.prec$} {:>8.2}",
            b / a.max(1e-9)
        );
    };
    row("CPU ms per pass (process)", &|w| w.cpu_ms_per_pass, 3);
    row("passes", &|w| w.passes as f64, 0);
    row("late passes", &|w| w.late as f64, 0);
    row("failed passes", &|w| w.failed as f64, 0);
    row("RSS MiB", &|w| w.rss_kib as f64 / 1024.0, 2);
    row("open descriptors", &|w| w.fds as f64, 0);
    println!("peak RSS over the run: {:.2} MiB", hwm as f64 / 1024.0);
    println!(
        "peers: held={held} cpu_ms_per_pass_ratio={:.2} rss_ratio={:.2}",
        crowded.cpu_ms_per_pass / quiet.cpu_ms_per_pass.max(1e-9),
        crowded.rss_kib as f64 / quiet.rss_kib.max(1) as f64
    );
}
