//! eBPF instructions as the kernel reads them, for the daemon's own programs (the map iterator,
//! the profile's fentry and fexit): built here, never compiled, since a device has no clang.
//!
//! [`Asm`] keeps forward jumps by label so a program reads top to bottom; offsets are worked
//! out when it is finished.

/// One instruction: opcode, registers, offset, immediate.
pub const fn insn(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> u64 {
    (code as u64)
        | (((dst | (src << 4)) as u64) << 8)
        | ((off.cast_unsigned() as u64) << 16)
        | ((imm.cast_unsigned() as u64) << 32)
}

/// Opcodes used (class | op | source), as `include/uapi/linux/bpf.h` composes them.
pub mod op {
    pub const MOV_IMM: u8 = 0xb7;
    pub const MOV_REG: u8 = 0xbf;
    pub const ADD_IMM: u8 = 0x07;
    pub const ADD_REG: u8 = 0x0f;
    pub const SUB_IMM: u8 = 0x17;
    pub const SUB_REG: u8 = 0x1f;
    pub const LSH_IMM: u8 = 0x67;
    pub const RSH_IMM: u8 = 0x77;
    pub const RSH_REG: u8 = 0x7f;
    /// `dst = *(u64 *)(src + off)`
    pub const LDX_DW: u8 = 0x79;
    /// `*(u64 *)(dst + off) = src`
    pub const STX_DW: u8 = 0x7b;
    /// `*(u32 *)(dst + off) = imm`
    pub const ST_W: u8 = 0x62;
    pub const JEQ_IMM: u8 = 0x15;
    pub const JGT_IMM: u8 = 0x25;
    pub const JLT_IMM: u8 = 0xa5;
    pub const JGE_REG: u8 = 0x3d;
    pub const JLE_REG: u8 = 0xbd;
    pub const CALL: u8 = 0x85;
    pub const EXIT: u8 = 0x95;
    /// The first half of a 64-bit immediate load.
    pub const LD_IMM64: u8 = 0x18;
}

/// `src` of a 64-bit immediate load whose immediate is a map's fd.
pub const PSEUDO_MAP_FD: u8 = 1;
/// `src` of a call whose immediate is a kernel function's BTF id.
pub const PSEUDO_KFUNC_CALL: u8 = 2;

/// A program being written: instructions, and jumps waiting for their label.
#[derive(Debug, Default)]
pub struct Asm {
    insns: Vec<u64>,
    /// (index of the jump, label)
    jumps: Vec<(usize, u32)>,
    /// Where each label was placed.
    labels: Vec<(u32, usize)>,
}

/// A label used but never placed, or placed before its jump (only forward jumps are built).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("eBPF assembly: label {0} is not placed after its jump")]
pub struct AsmError(pub u32);

impl Asm {
    pub fn op(&mut self, code: u8, dst: u8, src: u8, off: i16, imm: i32) -> &mut Self {
        self.insns.push(insn(code, dst, src, off, imm));
        self
    }

    /// A conditional (or `ja`) jump to `label`, placed later.
    pub fn jump(&mut self, code: u8, dst: u8, src: u8, imm: i32, label: u32) -> &mut Self {
        self.jumps.push((self.insns.len(), label));
        self.op(code, dst, src, 0, imm)
    }

    pub fn label(&mut self, label: u32) -> &mut Self {
        self.labels.push((label, self.insns.len()));
        self
    }

    /// `r<dst> = <map>`: a map's fd as a 64-bit immediate, which binds the map to the program.
    pub fn ld_map(&mut self, dst: u8, map_fd: i32) -> &mut Self {
        self.op(op::LD_IMM64, dst, PSEUDO_MAP_FD, 0, map_fd)
            .op(0, 0, 0, 0, 0)
    }

    pub fn call(&mut self, helper: i32) -> &mut Self {
        self.op(op::CALL, 0, 0, 0, helper)
    }

    /// The instructions, each jump's offset set to its label.
    pub fn finish(mut self) -> Result<Vec<u64>, AsmError> {
        for &(at, label) in &self.jumps {
            let to = self
                .labels
                .iter()
                .find(|(l, _)| *l == label)
                .map(|(_, to)| *to)
                .filter(|to| *to > at)
                .ok_or(AsmError(label))?;
            let off = i16::try_from(to - at - 1).map_err(|_| AsmError(label))?;
            self.insns[at] |= u64::from(off.cast_unsigned()) << 16;
        }
        Ok(self.insns)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instructions_encode_as_the_kernel_reads_them() {
        // r0 = 0 and exit, as the probe writes them.
        assert_eq!(insn(op::MOV_IMM, 0, 0, 0, 0), 0xb7);
        assert_eq!(insn(op::EXIT, 0, 0, 0, 0), 0x95);
        // *(u64 *)(r10 - 8) = r0: dst 10, off -8.
        assert_eq!(insn(op::STX_DW, 10, 0, -8, 0), 0x0000_0000_fff8_0a7b);
        // A kfunc call: src 2, the BTF id as immediate.
        assert_eq!(
            insn(op::CALL, 0, PSEUDO_KFUNC_CALL, 0, 1234),
            (1234 << 32) | 0x2085
        );
    }

    #[test]
    fn jumps_land_on_their_labels() {
        let mut a = Asm::default();
        a.jump(op::JEQ_IMM, 0, 0, 0, 1) // 0: to 3, offset 2
            .op(op::MOV_IMM, 0, 0, 0, 1)
            .ld_map(1, 7) // 2 and 3... the label is after it
            .label(1)
            .op(op::EXIT, 0, 0, 0, 0);
        let insns = a.finish().expect("placed");
        assert_eq!(insns.len(), 5);
        assert_eq!((insns[0] >> 16) & 0xffff, 3);
        assert_eq!(insns[2], insn(op::LD_IMM64, 1, PSEUDO_MAP_FD, 0, 7));
        let mut bad = Asm::default();
        bad.label(1).jump(op::JEQ_IMM, 0, 0, 0, 1);
        assert_eq!(bad.finish(), Err(AsmError(1)));
        let mut never = Asm::default();
        never.jump(op::JEQ_IMM, 0, 0, 0, 9);
        assert_eq!(never.finish(), Err(AsmError(9)));
    }
}
