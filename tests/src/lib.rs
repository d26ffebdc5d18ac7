//! Test kit: real eBPF programs in the real kernel, driven so their run counts are known exactly.
//!
//! Programs are loaded with raw `bpf(BPF_PROG_LOAD)` (no compiler needed): socket filters that
//! reference their own map and one map shared by all, attached with `SO_ATTACH_BPF` to UDP
//! sockets on 127.0.0.1. A filter runs exactly once per datagram its socket receives.

pub mod bus;
pub mod synthetic;

use std::ffi::CString;
use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use ebpfstatd::bpf::btf;
use ebpfstatd::bpf::sys::{self, MapSpec, ProgSpec, SysError};
pub use ebpfstatd::sampler::maps::memlock_of;
use ebpfstatd::store::{SeriesRow, Store};

pub const PROG_TYPE_SOCKET_FILTER: u32 = 1;
pub const PROG_TYPE_CGROUP_SKB: u32 = 8;
pub const PROG_TYPE_XDP: u32 = 6;
pub const ATTACH_XDP: u32 = 37;
pub const MAP_TYPE_ARRAY: u32 = 2;
pub const ATTACH_CGROUP_INET_INGRESS: u32 = 0;

/// Whether this process may load programs; if not, the test is skipped (see [`skip_or_fail`]).
pub fn bpf_available(test: &str) -> bool {
    let reason = if is_root() {
        match load_trivial() {
            Ok(_) => return true,
            Err(e) => format!("bpf(BPF_PROG_LOAD) fails here: {e}"),
        }
    } else {
        "needs root (CAP_SYS_ADMIN and bpf())".to_owned()
    };
    skip_or_fail(test, &reason);
    false
}

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

/// The package built by `packaging/build` with this extension (`deb`, `rpm`), if there is one.
pub fn built_package(ext: &str) -> Option<PathBuf> {
    std::fs::read_dir(packages_dir()).ok().and_then(|d| {
        d.flatten()
            .map(|e| e.path())
            .find(|p| p.extension().is_some_and(|x| x == ext))
    })
}

/// Returns from the calling test when real eBPF is not available (see [`bpf_available`]).
#[macro_export]
macro_rules! require_bpf {
    () => {
        if !$crate::bpf_available(module_path!()) {
            return;
        }
    };
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

// eBPF instruction encoding: opcode, dst | src << 4, 16-bit offset, 32-bit immediate.
const fn insn(op: u8, dst: u8, src: u8, imm: i32) -> u64 {
    (op as u64) | (((dst | (src << 4)) as u64) << 8) | ((imm as u32 as u64) << 32)
}

/// `r0 = imm`
pub const fn mov_r0(imm: i32) -> u64 {
    insn(0xb7, 0, 0, imm)
}

/// `exit`
pub const EXIT: u64 = insn(0x95, 0, 0, 0);

/// `r1 = map` (`ld_imm64` with `BPF_PSEUDO_MAP_FD`): binds the map to the program.
pub fn ld_map_fd(map: BorrowedFd<'_>) -> [u64; 2] {
    [insn(0x18, 1, 1, map.as_raw_fd()), 0]
}

fn load_trivial() -> Result<OwnedFd, SysError> {
    sys::prog_load(&ProgSpec {
        prog_type: PROG_TYPE_SOCKET_FILTER,
        insns: &[mov_r0(0), EXIT],
        name: "ebpfstat_probe",
        btf: None,
    })
}

pub fn array_map(name: &str, value_size: u32, max_entries: u32) -> OwnedFd {
    sys::map_create(&MapSpec {
        map_type: MAP_TYPE_ARRAY,
        key_size: 4,
        value_size,
        max_entries,
        flags: 0,
        name,
    })
    .unwrap_or_else(|e| panic!("creating map {name}: {e}"))
}

/// Loads a program of `prog_type` returning `ret`, referencing `maps`; when `full_name` is
/// given the program carries BTF naming its main function so.
pub fn load_program(
    prog_type: u32,
    name: &str,
    full_name: Option<&str>,
    maps: &[BorrowedFd<'_>],
    ret: i32,
) -> OwnedFd {
    let mut insns: Vec<u64> = maps.iter().flat_map(|m| ld_map_fd(*m)).collect();
    insns.extend([mov_r0(ret), EXIT]);
    let btf_fd = full_name.map(|f| {
        sys::btf_load(&btf::func_btf(f)).unwrap_or_else(|e| panic!("loading BTF for {f}: {e}"))
    });
    sys::prog_load(&ProgSpec {
        prog_type,
        insns: &insns,
        name,
        btf: btf_fd
            .as_ref()
            .map(|fd| (fd.as_fd(), btf::FUNC_BTF_FUNC_ID)),
    })
    .unwrap_or_else(|e| panic!("loading program {name}: {e}"))
}

/// The kernel's id of a program or map fd we hold.
pub fn prog_id(fd: BorrowedFd<'_>) -> u32 {
    prog_counters(fd).0
}

/// (id, run_cnt, run_time_ns) of a program fd we hold.
pub fn prog_counters(fd: BorrowedFd<'_>) -> (u32, u64, u64) {
    let info = sys::prog_info(fd, &mut Vec::new()).expect("program info");
    (info.id, info.run_cnt, info.run_time_ns)
}

pub fn map_id(fd: BorrowedFd<'_>) -> u32 {
    sys::map_info(fd).expect("map info").id
}

/// A socket filter attached to its own loopback UDP socket, with its own map.
#[derive(Debug)]
pub struct FilterProgram {
    pub name: String,
    pub id: u32,
    pub prog: OwnedFd,
    pub own_map: OwnedFd,
    pub own_map_id: u32,
    pub socket: UdpSocket,
    pub addr: SocketAddr,
}

/// N filters sharing one map, and one socket to send from.
#[derive(Debug)]
pub struct Fleet {
    /// Run-time stats stay on while the fleet lives, so driven runs are always counted
    /// (unless made with [`Fleet::load_unheld`]).
    _stats: Option<ebpfstatd::sampler::stats::StatsSwitch>,
    pub shared_map: OwnedFd,
    pub shared_map_id: u32,
    pub programs: Vec<FilterProgram>,
    sender: UdpSocket,
}

impl Fleet {
    /// Loads `n` filters named `{prefix}{i}`; each gets an own array map of `4 + i` entries so
    /// their memory differs.
    pub fn load(prefix: &str, n: usize) -> Self {
        let mut fleet = Self::load_unheld(prefix, n);
        fleet._stats = Some(ebpfstatd::sampler::stats::StatsSwitch::acquire(Path::new(
            "/proc",
        )));
        fleet
    }

    /// The same, without holding stats on: for tests of who holds them.
    pub fn load_unheld(prefix: &str, n: usize) -> Self {
        raise_fd_limit();
        let shared_map = array_map(&format!("{prefix}sh"), 8, 64);
        let shared_map_id = map_id(shared_map.as_fd());
        let sender = UdpSocket::bind("127.0.0.1:0").expect("bind sender");
        let mut fleet = Self {
            _stats: None,
            shared_map,
            shared_map_id,
            programs: Vec::with_capacity(n),
            sender,
        };
        for i in 0..n {
            fleet.add(&format!("{prefix}{i}"), None);
        }
        fleet
    }

    /// Loads and attaches one more filter.
    pub fn add(&mut self, name: &str, full_name: Option<&str>) -> &FilterProgram {
        let own_map = array_map(name, 8, 4 + self.programs.len() as u32);
        let prog = load_program(
            PROG_TYPE_SOCKET_FILTER,
            name,
            full_name,
            &[own_map.as_fd(), self.shared_map.as_fd()],
            0,
        );
        let socket = UdpSocket::bind("127.0.0.1:0").expect("bind filtered socket");
        attach_filter(&socket, prog.as_fd()).expect("SO_ATTACH_BPF");
        let addr = socket.local_addr().expect("local addr");
        let id = prog_id(prog.as_fd());
        let own_map_id = map_id(own_map.as_fd());
        self.programs.push(FilterProgram {
            name: name.to_owned(),
            id,
            prog,
            own_map,
            own_map_id,
            socket,
            addr,
        });
        self.programs.last().expect("just pushed")
    }

    /// Sends `n` datagrams to program `i` and waits until the kernel has run it for each.
    pub fn drive(&self, i: usize, n: u64) {
        let p = &self.programs[i];
        let (_, before, _) = prog_counters(p.prog.as_fd());
        for _ in 0..n {
            self.sender.send_to(b"x", p.addr).expect("send datagram");
        }
        wait_for_runs(p.prog.as_fd(), before + n);
    }

    pub fn ids(&self) -> Vec<u32> {
        self.programs.iter().map(|p| p.id).collect()
    }
}

/// Waits (up to 5 s) until the program's run count reaches `expected`: loopback delivery may
/// finish in a softirq after `send` returns.
pub fn wait_for_runs(prog: BorrowedFd<'_>, expected: u64) {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let (_, runs, _) = prog_counters(prog);
        if runs >= expected {
            assert_eq!(runs, expected, "the program ran more often than driven");
            return;
        }
        assert!(
            Instant::now() < deadline,
            "program ran {runs} of {expected} times"
        );
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// Runs a program at a steady pace with `BPF_PROG_TEST_RUN` on a thread of its own: `per_ms`
/// runs every millisecond until stopped (or dropped), counting them.
#[derive(Debug)]
pub struct PacedLoad {
    stop: Arc<AtomicBool>,
    runs: Arc<AtomicU64>,
    thread: Option<JoinHandle<Duration>>,
}

impl PacedLoad {
    pub fn start(prog: BorrowedFd<'_>, per_ms: u32) -> Self {
        let prog = prog.try_clone_to_owned().expect("dup program fd");
        let stop = Arc::new(AtomicBool::new(false));
        let runs = Arc::new(AtomicU64::new(0));
        let (s, r) = (Arc::clone(&stop), Arc::clone(&runs));
        let thread = std::thread::spawn(move || {
            let packet = [0u8; 64];
            let start = Instant::now();
            let mut next = start;
            while !s.load(Ordering::Relaxed) {
                sys::prog_test_run(prog.as_fd(), &packet, per_ms).expect("test run");
                r.fetch_add(u64::from(per_ms), Ordering::Relaxed);
                next += Duration::from_millis(1);
                std::thread::sleep(next.saturating_duration_since(Instant::now()));
            }
            start.elapsed()
        });
        Self {
            stop,
            runs,
            thread: Some(thread),
        }
    }

    /// The runs made so far.
    pub fn runs(&self) -> u64 {
        self.runs.load(Ordering::Relaxed)
    }

    /// Stops it: the runs made, and for how long it ran.
    pub fn stop(mut self) -> (u64, Duration) {
        let took = self.halt();
        (self.runs(), took)
    }

    fn halt(&mut self) -> Duration {
        self.stop.store(true, Ordering::Relaxed);
        self.thread
            .take()
            .and_then(|t| t.join().ok())
            .unwrap_or_default()
    }
}

impl Drop for PacedLoad {
    fn drop(&mut self) {
        self.halt();
    }
}

pub fn attach_filter(socket: &UdpSocket, prog: BorrowedFd<'_>) -> io::Result<()> {
    let fd: libc::c_int = prog.as_raw_fd();
    // SAFETY: the option value is a c_int that lives for the call, with its size passed.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_ATTACH_BPF,
            std::ptr::from_ref(&fd).cast(),
            size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// A bpffs mounted on a temporary directory, unmounted (lazily) on drop.
#[derive(Debug)]
pub struct Bpffs {
    pub dir: tempfile::TempDir,
}

impl Bpffs {
    pub fn mount() -> io::Result<Self> {
        let dir = tempfile::tempdir()?;
        let target = c_path(dir.path());
        // SAFETY: all pointers are NUL-terminated strings alive for the call; data is null.
        let rc = unsafe {
            libc::mount(
                c"bpf".as_ptr(),
                target.as_ptr(),
                c"bpf".as_ptr(),
                0,
                std::ptr::null(),
            )
        };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(Self { dir })
    }

    pub fn pin(&self, fd: BorrowedFd<'_>, name: &str) -> PathBuf {
        let path = self.dir.path().join(name);
        sys::obj_pin(fd, &c_path(&path)).expect("BPF_OBJ_PIN");
        path
    }
}

impl Drop for Bpffs {
    fn drop(&mut self) {
        let target = c_path(self.dir.path());
        // SAFETY: `target` is a NUL-terminated path alive for the call.
        unsafe { libc::umount2(target.as_ptr(), libc::MNT_DETACH) };
    }
}

/// A tmpfs of a given size on a temporary directory, for disk-full and read-only tests.
#[derive(Debug)]
pub struct Tmpfs {
    pub dir: tempfile::TempDir,
}

impl Tmpfs {
    /// `options` as for `mount -o`, e.g. `"size=256k"` or `"ro"`.
    pub fn mount(options: &str) -> io::Result<Self> {
        let dir = tempfile::tempdir()?;
        let target = c_path(dir.path());
        let data = CString::new(options).map_err(io::Error::other)?;
        let flags = if options.split(',').any(|o| o == "ro") {
            libc::MS_RDONLY
        } else {
            0
        };
        // SAFETY: all pointers are NUL-terminated strings alive for the call.
        let rc = unsafe {
            libc::mount(
                c"tmpfs".as_ptr(),
                target.as_ptr(),
                c"tmpfs".as_ptr(),
                flags,
                data.as_ptr().cast(),
            )
        };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(Self { dir })
    }

    /// Changes the size in place (`mount -o remount,size=…`).
    pub fn resize(&self, size: &str) -> io::Result<()> {
        let target = c_path(self.dir.path());
        let data = CString::new(format!("size={size}")).map_err(io::Error::other)?;
        // SAFETY: all pointers are NUL-terminated strings alive for the call.
        let rc = unsafe {
            libc::mount(
                c"tmpfs".as_ptr(),
                target.as_ptr(),
                c"tmpfs".as_ptr(),
                libc::MS_REMOUNT,
                data.as_ptr().cast(),
            )
        };
        if rc == 0 {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let target = c_path(self.dir.path());
        // SAFETY: `target` is a NUL-terminated path alive for the call.
        unsafe { libc::umount2(target.as_ptr(), libc::MNT_DETACH) };
    }
}

/// Skips (or under CI fails) a test that needs root for mounts.
#[macro_export]
macro_rules! require_root {
    () => {
        if !$crate::is_root() {
            $crate::skip_or_fail(module_path!(), "needs root (mount)");
            return;
        }
    };
}

fn c_path(p: &Path) -> CString {
    use std::os::unix::ffi::OsStrExt;
    CString::new(p.as_os_str().as_bytes()).expect("path without NUL")
}

/// A cgroup made for the test under the cgroup2 mount, removed on drop.
#[derive(Debug)]
pub struct TestCgroup {
    pub path: PathBuf,
    /// Path relative to the cgroup2 root, as the sampler reports it.
    pub relative: String,
    pub dir: std::fs::File,
}

impl TestCgroup {
    pub fn create(name: &str) -> io::Result<Self> {
        let mountinfo = std::fs::read_to_string("/proc/self/mountinfo")?;
        let root = ebpfstatd::sampler::pins::mounts(&mountinfo)
            .cgroup2
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "no cgroup2 mount"))?;
        let path = root.join(name);
        std::fs::create_dir_all(&path)?;
        let dir = std::fs::File::open(&path)?;
        Ok(Self {
            path,
            relative: format!("/{name}"),
            dir,
        })
    }
}

impl Drop for TestCgroup {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir(&self.path);
    }
}

/// Path of a workspace binary built next to the running test (`target/<profile>/<name>`).
pub fn bin(name: &str) -> PathBuf {
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

/// Waits (up to 10 s) until the kernel has freed these programs: it frees them lazily, about a
/// second after their last holder went away.
pub fn wait_until_freed(ids: &[u32]) {
    let deadline = Instant::now() + Duration::from_secs(10);
    for &id in ids {
        while sys::fd_by_id(sys::ObjKind::Prog, id).is_ok() {
            assert!(Instant::now() < deadline, "program {id} was never freed");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// The series stored for the program named `name` (the newest, if it was loaded more than once).
pub fn stored_series(store: &Store, name: &str) -> SeriesRow {
    store
        .all_series()
        .expect("series")
        .into_iter()
        .find(|s| s.full_name == name)
        .unwrap_or_else(|| panic!("no series {name} stored"))
}
