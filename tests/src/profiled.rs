//! A program for profiles: a socket filter with BTF whose long packets take a slow path of
//! 2000 divisions, run by the kernel on packets of two lengths (`BPF_PROG_TEST_RUN`, whose
//! `skb->len` is the packet's length less its Ethernet header on every kernel) with a known
//! share of long ones; and what tracing is attached to
//! a program, read from the kernel's links.

use std::os::fd::{AsFd, OwnedFd};

use ebpfstatd::bpf::btf;
use ebpfstatd::bpf::insn::{Asm, op};
use ebpfstatd::bpf::sys::{self, ObjKind, ProgSpec};

use crate::{PROG_TYPE_SOCKET_FILTER, kernel, prog_counters};

/// Divisions on the slow path: about 10 µs on an amd64 machine, tens under emulation, where the
/// clock's reads around every run take most of a microsecond and additions would not stand out.
pub const SLOW_INSNS: i32 = 2000;
/// Packets whose `skb->len` is at least this take it.
const LONG: usize = 100;

/// The filter.
#[derive(Debug)]
pub struct SlowPathFilter {
    pub prog: OwnedFd,
}

/// `if (skb->len < 100) return 0;` then 2000 32-bit divisions (which 32-bit ARM's JIT also
/// compiles), then `return 0`.
fn instructions() -> Vec<u64> {
    const FAST: u32 = 1;
    let mut a = Asm::default();
    a.op(0x61, 2, 1, 0, 0) // r2 = skb->len (u32 at offset 0 of __sk_buff)
        .op(op::MOV_IMM, 0, 0, 0, 0)
        .jump(op::JLT_IMM, 2, 0, i32::try_from(LONG).expect("small"), FAST);
    a.op(0xb4, 0, 0, 0, -1); // w0 = 0xffffffff
    for _ in 0..SLOW_INSNS {
        a.op(0x34, 0, 0, 0, 3); // w0 /= 3
    }
    a.op(op::MOV_IMM, 0, 0, 0, 0)
        .label(FAST)
        .op(op::EXIT, 0, 0, 0, 0);
    a.finish().expect("assembled")
}

impl SlowPathFilter {
    /// Loads it named `name` (its BTF function too).
    pub fn load(name: &str) -> Self {
        let btf = kernel::btf_load(&btf::func_btf(name)).expect("BTF");
        let prog = sys::prog_load(&ProgSpec {
            prog_type: PROG_TYPE_SOCKET_FILTER,
            insns: &instructions(),
            name,
            btf: Some((btf.as_fd(), btf::FUNC_BTF_FUNC_ID)),
            attach: None,
            attach_prog: None,
        })
        .unwrap_or_else(|e| panic!("loading {name}: {e}"));
        Self { prog }
    }

    /// Runs it on `n` packets, every `every`-th of them long (0: none), one test run each, and
    /// checks the kernel counted each run. Returns how many were long.
    pub fn drive(&self, n: u64, every: u64) -> u64 {
        let (_, before, _) = prog_counters(self.prog.as_fd());
        // 64 and 64 + LONG bytes: an Ethernet header (14) and 50 or 150 bytes after it.
        let (short, long) = ([0u8; 64], [0u8; 64 + LONG]);
        let mut longs = 0;
        for i in 1..=n {
            let slow = every > 0 && i % every == 0;
            longs += u64::from(slow);
            let packet: &[u8] = if slow { &long } else { &short };
            sys::prog_test_run(self.prog.as_fd(), packet, 1).expect("test run");
        }
        let (_, after, _) = prog_counters(self.prog.as_fd());
        assert_eq!(after - before, n, "the kernel counted every run");
        longs
    }
}

/// Every link on the host, as the kernel describes it, with a descriptor of its program.
fn each_link(mut f: impl FnMut(&sys::LinkInfo, OwnedFd)) {
    let mut id = 0;
    while let Ok(Some(next)) = sys::next_id(ObjKind::Link, id) {
        id = next;
        let Ok(fd) = sys::fd_by_id(ObjKind::Link, id) else {
            continue;
        };
        let Ok(link) = sys::link_info(fd.as_fd(), &mut []) else {
            continue;
        };
        if let Ok(prog) = sys::fd_by_id(ObjKind::Prog, link.info.prog_id) {
            f(&link.info, prog);
        }
    }
}

/// Tracing links (fentry, fexit) attached to program `target`.
pub fn tracing_links_on(target: u32) -> usize {
    const BPF_LINK_TYPE_TRACING: u32 = 2;
    let mut n = 0;
    each_link(|link, _| {
        // SAFETY: `tracing` is the union member the kernel fills for a tracing link, checked
        // first; its fields are plain integers.
        let on = link.type_ == BPF_LINK_TYPE_TRACING
            && unsafe { link.__bindgen_anon_1.tracing.target_obj_id } == target;
        n += usize::from(on);
    });
    n
}

/// Tracing links whose program has one of `names`, over the whole host.
pub fn tracing_links_of(names: &[&str]) -> usize {
    let mut n = 0;
    each_link(|_, prog| {
        if let Ok(info) = sys::prog_info(prog.as_fd(), &mut Vec::new()) {
            let name = ebpfstatd::sampler::maps::c_name(&info.name);
            n += usize::from(names.contains(&name.as_str()));
        }
    });
    n
}
