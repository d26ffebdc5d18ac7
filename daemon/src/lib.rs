//! ebpfstatd: samples the kernel's per-program eBPF statistics and keeps their history.
//!
//! The [`sampler`] produces plain values per pass; the [`service`] hands them to the history
//! store (the `ebpfstat-store` crate) and serves the D-Bus API (`api`), which asks the store;
//! `shared` holds what links those threads. See docs/design.md for who may import whom.
//!
//! What is public is what the binary (`main.rs`: flags, configuration, the service, `sample`)
//! and the test kit and benchmarks need (the sampler's parts, the raw `bpf()` reads, the
//! observer, alert evaluation); the rest stays inside.

pub mod alerts;
mod api;
pub mod bpf;
mod compare;
pub mod config;
mod export;
mod glob;
pub mod logging;
pub mod observer;
pub mod profile;
mod quiet;
pub mod sampler;
pub mod service;
mod shared;
mod shown;
mod units;

/// `ebpfstatd sample --json`'s pass.
pub use api::sample::PassJson;
/// The private socket's limits on peers, for the tests that hold the daemon to them.
pub use api::socket::{MAX_PEERS_PER_UID, group_id};
