//! `maps` benchmark: what counting map entries costs. 1000 hash maps of 10 000 entries each
//! (made and filled here): CPU per entry counted in batches (the daemon's way for hash maps)
//! against key by key (its fallback, and the kernel's floor for a walk: one call per key), the
//! CPU to count them all once, how many rescans the daemon's 20 ms budget spreads that over,
//! and what that adds to a pass at the default `rescan_every`.
//!
//! Run as root: `cargo bench -p ebpfstat-tests --bench maps` (`-- --maps N --entries M`).

use std::os::fd::{AsFd, OwnedFd};

use ebpfstat_tests::kernel::{map_create, map_key_count, map_update};
use ebpfstat_tests::{is_root, map_id, thread_cpu_ns};
use ebpfstatd::sampler::entries::{self, BUDGET_CPU_NS};
use ebpfstatd::sampler::{host, maps};

const HASH: u32 = 1;

fn arg(name: &str, default: u32) -> u32 {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .map_or(default, |v| v.parse().expect("a number"))
}

fn fill(n_maps: u32, entries: u32) -> Vec<OwnedFd> {
    (0..n_maps)
        .map(|i| {
            let fd = map_create(HASH, (4, 8, entries), &format!("bm{i}")).expect("map");
            for k in 0..entries {
                map_update(fd.as_fd(), &k.to_ne_bytes(), &[0; 8]).expect("update");
            }
            fd
        })
        .collect()
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return; // `cargo bench -- --list` and test discovery
    }
    if !is_root() {
        eprintln!("maps benchmark: needs root (bpf() with CAP_SYS_ADMIN); skipped");
        return;
    }
    ebpfstat_tests::raise_fd_limit();
    let (n_maps, per_map) = (arg("--maps", 1000), arg("--entries", 10_000));
    let fds = fill(n_maps, per_map);
    let samples: Vec<maps::MapSample> = fds
        .iter()
        .map(|fd| maps::read_map(map_id(fd.as_fd())).expect("read map"))
        .collect();
    let cpus = host::possible_cpus();
    let total = u64::from(n_maps) * u64::from(per_map);

    let start = thread_cpu_ns();
    for s in &samples {
        let (n, _) = entries::count(s, cpus).expect("count").expect("counted");
        assert_eq!(n, u64::from(per_map));
    }
    let batch_ns = (thread_cpu_ns() - start) as f64;
    let start = thread_cpu_ns();
    for fd in &fds {
        assert_eq!(
            map_key_count(fd.as_fd(), 4).expect("walk"),
            u64::from(per_map)
        );
    }
    let keys_ns = (thread_cpu_ns() - start) as f64;

    let rescans = (batch_ns / BUDGET_CPU_NS as f64).ceil();
    let every = ebpfstatd::config::Effective::default().rescan_every as f64;
    println!("\nmaps: {n_maps} hash maps × {per_map} entries ({total} entries), CPU (user+sys)");
    println!("{:>28} | {:>12} | {:>10}", "", "ns / entry", "all, ms");
    for (what, ns) in [
        ("batches (daemon)", batch_ns),
        ("key by key (floor of a walk)", keys_ns),
    ] {
        println!(
            "{what:>28} | {:>12.1} | {:>10.1}",
            ns / total as f64,
            ns / 1e6
        );
    }
    println!(
        "batches against key by key: {:.2}× the CPU",
        batch_ns / keys_ns
    );
    println!(
        "the 20 ms budget spreads one count of every map over {rescans} rescans; at rescan_every \
         = {every} that adds at most {:.2} ms CPU a pass on average",
        (BUDGET_CPU_NS as f64).min(batch_ns) / every / 1e6
    );
}
