//! Programs of the test kit's own attached the ways tracers attach them: a tracepoint through a
//! perf event (`perf_event_open` + `PERF_EVENT_IOC_SET_BPF`, as bpftrace and bcc do) or through
//! a perf-event link made from one (`BPF_LINK_CREATE`, as libbpf ≥ 0.7 does), and a raw
//! tracepoint (`BPF_RAW_TRACEPOINT_OPEN`).

use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};

use crate::bpftrace::ensure_tracefs;
use crate::kernel::link_create;
use crate::programs::{load_program, prog_id};

const PROG_TYPE_TRACEPOINT: u32 = 5;
const PROG_TYPE_RAW_TRACEPOINT: u32 = 17;
const PERF_TYPE_TRACEPOINT: u32 = 2;
const BPF_RAW_TRACEPOINT_OPEN: libc::c_int = 17;
// _IO('$', 0) and _IOW('$', 8, __u32): from linux/perf_event.h.
const PERF_EVENT_IOC_ENABLE: libc::c_ulong = 0x2400;
const PERF_EVENT_IOC_SET_BPF: libc::c_ulong = 0x4004_2408;
const PERF_FLAG_FD_CLOEXEC: libc::c_ulong = 1 << 3;
/// `BPF_PERF_EVENT`: the attach type of a perf-event link (Linux 5.15).
const ATTACH_PERF_EVENT: u32 = 41;

/// A program attached somewhere, held with what keeps it attached.
#[derive(Debug)]
pub struct Attached {
    pub prog: OwnedFd,
    pub id: u32,
    /// The perf event, the perf-event link, or the raw tracepoint's fd.
    pub attachment: OwnedFd,
    /// The perf event a link was made from, when its holder keeps it open.
    pub perf_event: Option<OwnedFd>,
}

/// Attaches a new tracepoint program named `name` to `category:event` through a perf event.
pub fn tracepoint(category: &str, event: &str, name: &str) -> Attached {
    let prog = load_program(PROG_TYPE_TRACEPOINT, name, None, &[], 0);
    let event = tracepoint_event(category, event);
    // SAFETY: ioctls on the perf event we own; SET_BPF takes the program fd as its argument.
    let rc = unsafe {
        libc::ioctl(event.as_raw_fd(), PERF_EVENT_IOC_SET_BPF, prog.as_raw_fd())
            | libc::ioctl(event.as_raw_fd(), PERF_EVENT_IOC_ENABLE, 0)
    };
    assert_eq!(rc, 0, "attaching: {}", std::io::Error::last_os_error());
    let id = prog_id(prog.as_fd());
    Attached {
        prog,
        id,
        attachment: event,
        perf_event: None,
    }
}

/// Attaches a new tracepoint program named `name` to `category:event` through a perf-event
/// link (`BPF_LINK_CREATE`, attach type `BPF_PERF_EVENT`, Linux 5.15+), made from a perf event
/// that is kept open beside the link if `keep_perf_fd`, closed otherwise (the link holds it).
pub fn tracepoint_link(category: &str, event: &str, name: &str, keep_perf_fd: bool) -> Attached {
    let prog = load_program(PROG_TYPE_TRACEPOINT, name, None, &[], 0);
    linked(prog, tracepoint_event(category, event), keep_perf_fd)
}

/// `prog` attached to the perf event `event` through a perf-event link; the event kept open
/// beside it if `keep_perf_fd`.
fn linked(prog: OwnedFd, event: OwnedFd, keep_perf_fd: bool) -> Attached {
    let link = link_create(
        prog.as_fd(),
        event.as_raw_fd().cast_unsigned(),
        ATTACH_PERF_EVENT,
    )
    .unwrap_or_else(|e| panic!("BPF_LINK_CREATE (BPF_PERF_EVENT): {e}"));
    let id = prog_id(prog.as_fd());
    Attached {
        prog,
        id,
        attachment: link,
        perf_event: keep_perf_fd.then_some(event),
    }
}

/// A perf event on the tracepoint `category:event`, system-wide on CPU 0.
fn tracepoint_event(category: &str, event: &str) -> OwnedFd {
    ensure_tracefs();
    let id_path = format!("/sys/kernel/tracing/events/{category}/{event}/id");
    let tp_id: u64 = std::fs::read_to_string(&id_path)
        .unwrap_or_else(|e| panic!("{id_path}: {e}"))
        .trim()
        .parse()
        .expect("a tracepoint id");
    // perf_event_attr: type, size, config, sample_period; the rest zero (PERF_ATTR_SIZE_VER0 is
    // 64 bytes; the kernel takes the size we give).
    let mut attr = [0u64; 16];
    attr[0] = u64::from(PERF_TYPE_TRACEPOINT) | (128u64 << 32);
    attr[1] = tp_id;
    attr[2] = 1;
    // SAFETY: perf_event_open reads a perf_event_attr of the stated size (128 bytes) from
    // `attr`, which is 128 bytes and alive for the call; pid -1 with cpu 0 is a system-wide
    // event on CPU 0 (a tracepoint's program runs on every CPU).
    let fd = unsafe {
        libc::syscall(
            libc::SYS_perf_event_open,
            attr.as_ptr(),
            -1 as libc::pid_t,
            0 as libc::c_int,
            -1 as libc::c_int,
            PERF_FLAG_FD_CLOEXEC,
        )
    };
    returned_fd(fd, "perf_event_open")
}

/// Attaches a new raw tracepoint program named `name` to the raw tracepoint `tp`.
pub fn raw_tracepoint(tp: &str, name: &str) -> Attached {
    let prog = load_program(PROG_TYPE_RAW_TRACEPOINT, name, None, &[], 0);
    let tp_name = std::ffi::CString::new(tp).expect("a name");
    // bpf_attr.raw_tracepoint: { __u64 name; __u32 prog_fd; } and, since 6.10, a cookie after
    // 4 bytes of padding. The padding is a field of its own so that it is zero: before 6.10 the
    // kernel refuses (EINVAL) any nonzero byte after `prog_fd`.
    #[repr(C)]
    struct Attr {
        name: u64,
        prog_fd: u32,
        pad: u32,
    }
    let mut attr = Attr {
        name: tp_name.as_ptr() as u64,
        prog_fd: prog.as_raw_fd().cast_unsigned(),
        pad: 0,
    };
    // SAFETY: BPF_RAW_TRACEPOINT_OPEN reads `name` (a NUL-terminated string alive for the call)
    // and `prog_fd` from an attribute of the stated size.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_RAW_TRACEPOINT_OPEN,
            &raw mut attr,
            size_of::<Attr>(),
        )
    };
    let attachment = returned_fd(fd, "BPF_RAW_TRACEPOINT_OPEN");
    let id = prog_id(prog.as_fd());
    Attached {
        prog,
        id,
        attachment,
        perf_event: None,
    }
}

/// The descriptor a syscall (`what`) just returned, owned; its error if it failed.
fn returned_fd(ret: libc::c_long, what: &str) -> OwnedFd {
    assert!(ret >= 0, "{what}: {}", std::io::Error::last_os_error());
    let fd = i32::try_from(ret).expect("an fd");
    // SAFETY: the kernel just returned this descriptor to us and nothing else owns it.
    unsafe { OwnedFd::from_raw_fd(fd) }
}

/// Whether kprobes can be made here (`kprobe_events` in tracefs).
pub fn kprobes_available() -> bool {
    ensure_tracefs();
    std::path::Path::new("/sys/kernel/tracing/kprobe_events").exists()
}

const PROG_TYPE_KPROBE: u32 = 2;

/// A kretprobe on `func` with `maxactive` instances, made in tracefs (`r<N>:kprobes/<event>`, as
/// libbpf's legacy mode and bcc make them) and attached to a new kprobe program named `name`
/// through a perf-event link (its perf event closed: the link holds it). More callers in `func`
/// at once than `maxactive` are missed, and counted. [`remove_tracefs_kprobe`] removes it.
pub fn kretprobe_tracefs(func: &str, maxactive: u32, event: &str, name: &str) -> Attached {
    use std::io::Write as _;
    ensure_tracefs();
    let mut events = std::fs::OpenOptions::new()
        .append(true)
        .open("/sys/kernel/tracing/kprobe_events")
        .expect("kprobe_events");
    // One write: tracefs parses each write as a command.
    let line = format!("r{maxactive}:kprobes/{event} {func}\n");
    events
        .write_all(line.as_bytes())
        .expect("a kretprobe in tracefs");
    drop(events);
    linked(
        kprobe_program(name),
        tracepoint_event("kprobes", event),
        false,
    )
}

/// Removes the tracefs kprobe `event` (once nothing is attached to it).
pub fn remove_tracefs_kprobe(event: &str) {
    use std::io::Write as _;
    if let Ok(mut events) = std::fs::OpenOptions::new()
        .append(true)
        .open("/sys/kernel/tracing/kprobe_events")
    {
        let _ = events.write_all(format!("-:kprobes/{event}\n").as_bytes());
    }
}

/// A kprobe program that returns 0.
fn kprobe_program(name: &str) -> OwnedFd {
    use ebpfstatd::bpf::insn::{Asm, op};
    use ebpfstatd::bpf::sys::{self, ProgSpec};
    let mut asm = Asm::default();
    asm.op(op::MOV_IMM, 0, 0, 0, 0).op(op::EXIT, 0, 0, 0, 0);
    let insns = asm.finish().expect("the kprobe's instructions");
    sys::prog_load(&ProgSpec {
        prog_type: PROG_TYPE_KPROBE,
        insns: &insns,
        name,
        btf: None,
        attach: None,
        attach_prog: None,
    })
    .unwrap_or_else(|e| panic!("loading kprobe program {name}: {e}"))
}
