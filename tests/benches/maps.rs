//! `maps` benchmark: what counting map entries costs. 1000 hash maps of 10 000 entries each
//! (made and filled here): CPU to count them all by the kernel's own element counters (one
//! read of the daemon's map iterator, Linux 6.6+), in batches (the daemon's way for hash maps
//! before 6.6) and key by key (its fallback, and the kernel's floor for a walk: one call per
//! key), how many rescans the daemon's 20 ms budget spreads batches over, and what that adds
//! to a pass at the default `rescan_every`.
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
    let iter_ns = by_iterator(&samples, per_map);

    let rescans = (batch_ns / BUDGET_CPU_NS as f64).ceil();
    let every = ebpfstatd::config::Effective::default().rescan_every as f64;
    println!("\nmaps: {n_maps} hash maps × {per_map} entries ({total} entries), CPU (user+sys)");
    println!("{:>30} | {:>12} | {:>10}", "", "ns / entry", "all, ms");
    let mut rows = vec![
        ("batches (daemon before 6.6)", batch_ns),
        ("key by key (floor of a walk)", keys_ns),
    ];
    if let Some(ns) = iter_ns {
        rows.insert(0, ("kernel counters (daemon 6.6+)", ns));
    }
    for (what, ns) in rows {
        println!(
            "{what:>30} | {:>12.3} | {:>10.2}",
            ns / total as f64,
            ns / 1e6
        );
    }
    println!(
        "batches against key by key: {:.2}× the CPU",
        batch_ns / keys_ns
    );
    match iter_ns {
        Some(ns) => println!(
            "kernel counters against batches: {:.4}× the CPU; every map counted at every rescan",
            ns / batch_ns
        ),
        None => println!("kernel counters: this kernel has no map iterator for the daemon"),
    }
    println!(
        "the 20 ms budget spreads one count of every map over {rescans} rescans; at rescan_every \
         = {every} that adds at most {:.2} ms CPU a pass on average",
        (BUDGET_CPU_NS as f64).min(batch_ns) / every / 1e6
    );
}

/// CPU of one read of the daemon's map iterator (every map's count); `None` where the kernel
/// has none. Each of `samples` must read `per_map`.
fn by_iterator(samples: &[maps::MapSample], per_map: u32) -> Option<f64> {
    let counter = match ebpfstatd::sampler::map_iter::MapCounter::load() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("maps benchmark: no map iterator: {e}");
            return None;
        }
    };
    let start = thread_cpu_ns();
    let counts = counter.counts().expect("iterator read");
    let ns = (thread_cpu_ns() - start) as f64;
    for s in samples {
        let n = counts.iter().find(|(id, _)| *id == s.id).map(|c| c.1);
        assert_eq!(n, Some(i64::from(per_map)), "map {}", s.id);
    }
    Some(ns)
}
