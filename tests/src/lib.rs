//! Test kit: real eBPF programs in the real kernel, driven so their run counts are known
//! exactly; the processes, mounts, buses and simulated hosts the end-to-end tests need.
//!
//! By concern: [`bpftrace`] (a real third-party loader), [`process`] (commands, binaries, packages, skipping), [`programs`] (loading and
//! driving programs), [`fleet`] (filters on loopback sockets), [`mounts`] (bpffs, tmpfs,
//! cgroups), [`bus`] (a real dbus-daemon and a real ebpfstatd on it), [`synthetic`] (a
//! simulated host feeding a store), [`stores`] (opening stores as the product does) and
//! [`terminal`] (commands on a pseudo-terminal, as a person sees them), [`tracing`] (programs
//! attached as tracers attach them, without links).

pub mod bpftrace;
pub mod bus;
pub mod containers;
pub mod engines;
pub mod fleet;
pub mod guest;
pub mod kernel;
pub mod mounts;
pub mod nspawn;
pub mod process;
pub mod profiled;
pub mod programs;
pub mod receiver;
pub mod stores;
pub mod synthetic;
pub mod terminal;
pub mod tracing;

pub use ebpfstatd::sampler::maps::memlock_of;
pub use fleet::{FilterProgram, Fleet};
pub use mounts::{Bpffs, MemoryCage, TestCgroup, Tmpfs};
pub use process::*;
pub use programs::*;
pub use stores::{default_retention, store_config, stored_series};
