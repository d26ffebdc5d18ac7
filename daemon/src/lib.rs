//! ebpfstatd: samples the kernel's per-program eBPF statistics and keeps their history.
//!
//! The [`sampler`] produces plain values per pass; the [`service`] hands them to the history
//! store (the `ebpfstat-store` crate) and serves the D-Bus [`api`], which asks the store;
//! [`shared`] holds what links those threads. See docs/design.md for who may import whom.

pub mod alerts;
pub mod api;
pub mod bpf;
pub mod compare;
pub mod config;
pub mod export;
pub mod glob;
pub mod observer;
pub mod quiet;
pub mod sampler;
pub mod service;
pub mod shared;
pub mod units;
