//! Real eBPF programs loaded with raw `bpf(BPF_PROG_LOAD)` (no compiler needed), and ways to
//! drive and watch them: run counts, paced test runs, waiting for the kernel to free them.

use std::io;
use std::net::UdpSocket;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use ebpfstatd::bpf::btf;
use ebpfstatd::bpf::sys::{self, ProgSpec, SysError};

use crate::{is_root, kernel, skip_or_fail};

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

/// Returns from the calling test when real eBPF is not available (see [`bpf_available`]).
#[macro_export]
macro_rules! require_bpf {
    () => {
        if !$crate::bpf_available(module_path!()) {
            return;
        }
    };
}

// eBPF instruction encoding: opcode, dst | src << 4, 16-bit offset, 32-bit immediate.
const fn insn(op: u8, dst: u8, src: u8, imm: i32) -> u64 {
    (op as u64) | (((dst | (src << 4)) as u64) << 8) | ((imm.cast_unsigned() as u64) << 32)
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
        attach: None,
        attach_prog: None,
    })
}

pub fn array_map(name: &str, value_size: u32, max_entries: u32) -> OwnedFd {
    kernel::map_create(MAP_TYPE_ARRAY, (4, value_size, max_entries), name)
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
        kernel::btf_load(&btf::func_btf(f)).unwrap_or_else(|e| panic!("loading BTF for {f}: {e}"))
    });
    sys::prog_load(&ProgSpec {
        prog_type,
        insns: &insns,
        name,
        btf: btf_fd
            .as_ref()
            .map(|fd| (fd.as_fd(), btf::FUNC_BTF_FUNC_ID)),
        attach: None,
        attach_prog: None,
    })
    .unwrap_or_else(|e| panic!("loading program {name}: {e}"))
}

/// A socket filter of `extra` additions (`r0 += 1`) before `return 0`: a version whose cost per
/// run grows with `extra` (each addition one instruction, its tag different for each count).
pub fn costly_filter(name: &str, extra: usize) -> OwnedFd {
    let mut insns = vec![mov_r0(0)];
    // BPF_ALU64 | BPF_ADD | BPF_K: r0 += 1.
    insns.extend(std::iter::repeat_n(insn(0x07, 0, 0, 1), extra));
    insns.extend([mov_r0(0), EXIT]);
    sys::prog_load(&ProgSpec {
        prog_type: PROG_TYPE_SOCKET_FILTER,
        insns: &insns,
        name,
        btf: None,
        attach: None,
        attach_prog: None,
    })
    .unwrap_or_else(|e| panic!("loading program {name}: {e}"))
}

/// The kernel's mean ns per run of `prog` over `repeat` runs (`BPF_PROG_TEST_RUN`), the
/// median of `rounds` such measurements.
pub fn test_run_ns(prog: BorrowedFd<'_>, repeat: u32, rounds: usize) -> f64 {
    let packet = [0u8; 64];
    let mut v: Vec<f64> = (0..rounds)
        .map(|_| {
            f64::from(
                sys::prog_test_run(prog, &packet, repeat)
                    .expect("test run")
                    .duration_ns,
            )
        })
        .collect();
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Runs `prog` exactly `n` times (`BPF_PROG_TEST_RUN`) and checks the kernel counted them.
pub fn run_exactly(prog: BorrowedFd<'_>, n: u32) {
    let (_, before, _) = prog_counters(prog);
    sys::prog_test_run(prog, &[0u8; 64], n).expect("test run");
    let (_, after, _) = prog_counters(prog);
    assert_eq!(after - before, u64::from(n), "the kernel counted every run");
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
            libc::socklen_t::try_from(size_of::<libc::c_int>()).map_err(io::Error::other)?,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
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
