//! The profile's two tracing programs, as instructions: fentry notes when a run of the target
//! starts, fexit files its duration. Both use one per-CPU array of one element, laid out as
//! [`histogram`] reads it. A run is timed on its own CPU: BPF programs run with migration
//! disabled, so fentry and fexit of one run meet on one CPU.
//!
//! A run whose fexit finds no start (the profile attached in the middle of it, or another run
//! of the target on that CPU, preempting it, consumed the start) is not filed.

use super::histogram::{self, BUCKETS, HEADER_WORDS, MAX_EXP, SUB_BITS};
use crate::bpf::insn::{Asm, AsmError, op};

const HELPER_MAP_LOOKUP_ELEM: i32 = 1;
const HELPER_KTIME_GET_NS: i32 = 5;

/// Byte offset of word `w` of a CPU's value (all of them fit: the value is 4768 bytes).
fn at(w: usize) -> i16 {
    i16::try_from(w * 8).unwrap_or(i16::MAX)
}

/// Looks up the map's one element into r0 (key 0 on the stack); jumps to `out` when absent.
fn lookup(a: &mut Asm, map_fd: i32, out: u32) {
    a.ld_map(1, map_fd)
        .op(op::ST_W, 10, 0, -4, 0)
        .op(op::MOV_REG, 2, 10, 0, 0)
        .op(op::ADD_IMM, 2, 0, 0, -4)
        .call(HELPER_MAP_LOOKUP_ELEM)
        .jump(op::JEQ_IMM, 0, 0, 0, out);
}

fn ret0(a: &mut Asm) {
    a.op(op::MOV_IMM, 0, 0, 0, 0).op(op::EXIT, 0, 0, 0, 0);
}

/// fentry: `value.start = ktime_get_ns()`, the clock read last so the lookup is not timed.
pub fn entry(map_fd: i32) -> Result<Vec<u64>, AsmError> {
    const OUT: u32 = 1;
    let mut a = Asm::default();
    lookup(&mut a, map_fd, OUT);
    a.op(op::MOV_REG, 6, 0, 0, 0)
        .call(HELPER_KTIME_GET_NS)
        .op(op::STX_DW, 6, 0, at(histogram::START), 0)
        .label(OUT);
    ret0(&mut a);
    a.finish()
}

/// `value[word] += 1` (r1 scratch; `base` holds the value's address).
fn increment(a: &mut Asm, base: u8, off: i16) {
    a.op(op::LDX_DW, 1, base, off, 0)
        .op(op::ADD_IMM, 1, 0, 0, 1)
        .op(op::STX_DW, base, 1, off, 0);
}

/// fexit: the clock read first; then the duration `d` (r7), clamped to
/// [`histogram::MAX_NS`], counted, added, compared with the longest, and filed in its bucket.
pub fn exit(map_fd: i32) -> Result<Vec<u64>, AsmError> {
    const OUT: u32 = 1;
    const CLAMPED: u32 = 2;
    const LONGEST: u32 = 3;
    const FILE: u32 = 4;
    let mut a = Asm::default();
    a.call(HELPER_KTIME_GET_NS).op(op::MOV_REG, 7, 0, 0, 0);
    lookup(&mut a, map_fd, OUT);
    a.op(op::MOV_REG, 6, 0, 0, 0)
        .op(op::LDX_DW, 1, 6, at(histogram::START), 0)
        .jump(op::JEQ_IMM, 1, 0, 0, OUT)
        .op(op::MOV_IMM, 2, 0, 0, 0)
        .op(op::STX_DW, 6, 2, at(histogram::START), 0)
        .op(op::SUB_REG, 7, 1, 0, 0)
        // d = min(d, 2^40 - 1)
        .op(op::MOV_IMM, 3, 0, 0, 1)
        .op(op::LSH_IMM, 3, 0, 0, (MAX_EXP + 1).cast_signed())
        .op(op::SUB_IMM, 3, 0, 0, 1)
        .jump(op::JLE_REG, 7, 3, 0, CLAMPED)
        .op(op::MOV_REG, 7, 3, 0, 0)
        .label(CLAMPED);
    increment(&mut a, 6, at(histogram::RUNS));
    a.op(op::LDX_DW, 1, 6, at(histogram::SUM), 0)
        .op(op::ADD_REG, 1, 7, 0, 0)
        .op(op::STX_DW, 6, 1, at(histogram::SUM), 0)
        .op(op::LDX_DW, 1, 6, at(histogram::MAX), 0)
        .jump(op::JGE_REG, 1, 7, 0, LONGEST)
        .op(op::STX_DW, 6, 7, at(histogram::MAX), 0)
        .label(LONGEST);
    bucket(&mut a, FILE);
    a.label(FILE)
        .jump(
            op::JGT_IMM,
            2,
            0,
            i32::try_from(BUCKETS - 1).unwrap_or(0),
            OUT,
        )
        .op(op::LSH_IMM, 2, 0, 0, 3)
        .op(op::ADD_REG, 6, 2, 0, 0);
    increment(&mut a, 6, at(HEADER_WORDS));
    a.label(OUT);
    ret0(&mut a);
    a.finish()
}

/// r2 = the bucket of r7, as [`histogram::bucket_of`]: r7 itself below 16, else with `e` its
/// highest bit (found by halving: 32, 16, ... 1) `((e - 4) << 4) + (r7 >> (e - 4))`. Jumps to
/// `done` (placed by the caller right after).
pub fn bucket(a: &mut Asm, done: u32) {
    a.op(op::MOV_REG, 2, 7, 0, 0)
        .jump(op::JLT_IMM, 7, 0, 1 << SUB_BITS, done)
        .op(op::MOV_IMM, 4, 0, 0, 0)
        .op(op::MOV_REG, 3, 7, 0, 0);
    for (i, step) in [32, 16, 8, 4, 2, 1].into_iter().enumerate() {
        let skip = 100 + u32::try_from(i).unwrap_or(0);
        a.op(op::MOV_REG, 5, 3, 0, 0)
            .op(op::RSH_IMM, 5, 0, 0, step)
            .jump(op::JEQ_IMM, 5, 0, 0, skip)
            .op(op::ADD_IMM, 4, 0, 0, step)
            .op(op::MOV_REG, 3, 5, 0, 0)
            .label(skip);
    }
    a.op(op::SUB_IMM, 4, 0, 0, SUB_BITS.cast_signed())
        .op(op::MOV_REG, 2, 7, 0, 0)
        .op(op::RSH_REG, 2, 4, 0, 0)
        .op(op::LSH_IMM, 4, 0, 0, SUB_BITS.cast_signed())
        .op(op::ADD_REG, 2, 4, 0, 0);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_programs_assemble() {
        let entry = entry(3).expect("entry");
        let exit = exit(3).expect("exit");
        assert_eq!(entry.last(), Some(&0x95));
        assert_eq!(exit.last(), Some(&0x95));
        // The clock is the first thing fexit does.
        assert_eq!(exit[0], crate::bpf::insn::insn(op::CALL, 0, 0, 0, 5));
        assert!(exit.len() < 100, "{}", exit.len());
    }
}
