//! The kernel side: raw `bpf()` commands, BTF names and type names, and what the map iterator
//! needs of the kernel's own BTF.

pub mod btf;
pub mod insn;
pub mod names;
pub mod sys;
pub mod vmlinux;
