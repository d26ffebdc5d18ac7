//! ebpfstatd: samples the kernel's per-program eBPF statistics and keeps their history.
//!
//! The [`sampler`] produces plain values per pass; later layers (storage, the D-Bus API)
//! consume them.

pub mod api;
pub mod bpf;
pub mod config;
pub mod observer;
pub mod sampler;
pub mod service;
pub mod store;
pub mod units;
