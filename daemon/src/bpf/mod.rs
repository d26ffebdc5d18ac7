//! The kernel side: raw `bpf()` commands, BTF names and type names.

pub mod btf;
pub mod names;
pub mod sys;
