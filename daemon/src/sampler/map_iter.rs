//! The kernel's own count of each hash map's elements (Linux 6.6 and later): one read of a BPF
//! iterator over every map gives every count, where batch reads walk each map's elements.
//!
//! The iterator is the daemon's own program, built as instructions (no compiler on the
//! device), loaded once and left out of passes like the calibration probe. For each map it
//! writes 16 bytes, the map's id and `bpf_map_sum_elem_count(map)`: the per-CPU element
//! counters every hash map variant keeps from 6.6 on (other types have none and read 0, so only
//! hash maps take their count from here). Kernels that refuse tracing programs, or have no
//! counters, count by batches as before.

use std::io::Read;
use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;

use crate::bpf::insn::{PSEUDO_KFUNC_CALL, insn};
use crate::bpf::sys::{self, ProgSpec, SysError};
use crate::bpf::vmlinux::{self, MapIterBtf, VmlinuxError};

/// The iterator's kernel name (at most 15 bytes).
pub const ITER_NAME: &str = "ebpfstat_maps";

const BPF_PROG_TYPE_TRACING: u32 = 26;
const BPF_TRACE_ITER: u32 = 28;
const BPF_FUNC_SEQ_WRITE: i32 = 127;

#[derive(Debug, thiserror::Error)]
pub enum CounterError {
    #[error("the kernel has no BTF of its own (/sys/kernel/btf/vmlinux)")]
    NoBtf,
    #[error("the kernel keeps no element counters (bpf_map_sum_elem_count: Linux 6.6)")]
    NoCounters,
    #[error(transparent)]
    Btf(#[from] VmlinuxError),
    #[error("the kernel refused the map iterator: {0}")]
    Refused(SysError),
}

/// The loaded iterator: its program and the link each read starts from.
#[derive(Debug)]
pub struct MapCounter {
    prog: OwnedFd,
    link: OwnedFd,
}

/// For each map (`ctx->map`, null at the end): `{ u64 id; s64 count }` to the seq file.
fn program(b: &MapIterBtf) -> [u64; 16] {
    let kfunc = i32::try_from(b.sum_kfunc).unwrap_or(i32::MAX);
    [
        insn(0xbf, 6, 1, 0, 0),                     // r6 = ctx
        insn(0x79, 7, 6, 8, 0),                     // r7 = ctx->map
        insn(0x15, 7, 0, 11, 0),                    // if r7 == 0 goto out
        insn(0xbf, 1, 7, 0, 0),                     // r1 = map
        insn(0x85, 0, PSEUDO_KFUNC_CALL, 0, kfunc), // r0 = bpf_map_sum_elem_count(map)
        insn(0x7b, 10, 0, -8, 0),                   // *(u64 *)(fp - 8) = r0
        insn(0x61, 1, 7, b.map_id_offset, 0),       // r1 = map->id
        insn(0x7b, 10, 1, -16, 0),                  // *(u64 *)(fp - 16) = r1
        insn(0x79, 1, 6, 0, 0),                     // r1 = ctx->meta
        insn(0x79, 1, 1, 0, 0),                     // r1 = meta->seq
        insn(0xbf, 2, 10, 0, 0),                    // r2 = fp
        insn(0x07, 2, 0, 0, -16),                   // r2 -= 16
        insn(0xb7, 3, 0, 0, 16),                    // r3 = 16
        insn(0x85, 0, 0, 0, BPF_FUNC_SEQ_WRITE),    // bpf_seq_write(seq, fp - 16, 16)
        insn(0xb7, 0, 0, 0, 0),                     // out: r0 = 0
        insn(0x95, 0, 0, 0, 0),                     // exit
    ]
}

impl MapCounter {
    /// Loads and links the iterator, or says why the kernel has none for the daemon.
    pub fn load() -> Result<Self, CounterError> {
        let path = Path::new("/sys/kernel/btf/vmlinux");
        if !path.exists() {
            return Err(CounterError::NoBtf);
        }
        let btf = vmlinux::map_iter_btf(path)?.ok_or(CounterError::NoCounters)?;
        let insns = program(&btf);
        let prog = sys::prog_load(&ProgSpec {
            prog_type: BPF_PROG_TYPE_TRACING,
            insns: &insns,
            name: ITER_NAME,
            btf: None,
            attach: Some((BPF_TRACE_ITER, btf.iter_func)),
            attach_prog: None,
        })
        .map_err(CounterError::Refused)?;
        let link = sys::iter_link_create(prog.as_fd()).map_err(CounterError::Refused)?;
        Ok(Self { prog, link })
    }

    /// The iterator program's id, to leave it out of passes.
    pub fn prog_id(&self) -> Result<u32, SysError> {
        sys::prog_info(self.prog.as_fd(), &mut Vec::new()).map(|i| i.id)
    }

    /// Every map's id and element count, in id order.
    pub fn counts(&self) -> Result<Vec<(u32, i64)>, SysError> {
        let iter = sys::iter_create(self.link.as_fd())?;
        let mut bytes = Vec::with_capacity(16 * 256);
        std::fs::File::from(iter)
            .read_to_end(&mut bytes)
            .map_err(|source| SysError {
                call: "read of the map iterator",
                source,
            })?;
        Ok(records(&bytes))
    }
}

/// The iterator's output as (map id, count); a short tail (never written) is ignored.
fn records(bytes: &[u8]) -> Vec<(u32, i64)> {
    bytes
        .chunks_exact(16)
        .map(|r| {
            let word = |i: usize| {
                let mut w = [0u8; 8];
                w.copy_from_slice(&r[i..i + 8]);
                w
            };
            let id = u64::from_ne_bytes(word(0));
            (
                u32::try_from(id).unwrap_or(u32::MAX),
                i64::from_ne_bytes(word(8)),
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_read_id_and_count() {
        let mut bytes = Vec::new();
        for (id, n) in [(7u64, 137i64), (9, 0)] {
            bytes.extend(id.to_ne_bytes());
            bytes.extend(n.to_ne_bytes());
        }
        bytes.push(1);
        assert_eq!(records(&bytes), [(7, 137), (9, 0)]);
    }
}
