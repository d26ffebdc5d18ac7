//! `sampler` benchmark: CPU per program per pass of the sampler, next to the raw syscall floor
//! and `bpftool prog show --json`, measured in the same run; and the peak RSS of
//! `ebpfstatd sample` with 1000 programs loaded.
//!
//! Run as root: `cargo build --release -p ebpfstatd && cargo bench -p ebpfstat-tests --bench sampler`
//! (`-- --rescan`: only the table of what a rescan's parts cost).

use std::os::fd::AsFd;
use std::process::{Command, Stdio};

use ebpfstat_tests::{Fleet, bin, child_usage, is_root, thread_cpu_ns};
use ebpfstatd::bpf::sys::{self, ObjKind};
use ebpfstatd::sampler::{Sampler, SamplerConfig, links, owners, pins};

const PASSES: usize = 41;
const BPFTOOL_RUNS: usize = 21;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn mean(v: &[f64]) -> f64 {
    v.iter().sum::<f64>() / v.len() as f64
}

/// CPU ns of each of `runs` calls of `f`.
fn cpu_runs(runs: usize, mut f: impl FnMut()) -> Vec<f64> {
    (0..runs)
        .map(|_| {
            let start = thread_cpu_ns();
            f();
            (thread_cpu_ns() - start) as f64
        })
        .collect()
}

/// The floor: next_id + get_fd_by_id + get_info_by_fd + close for every program.
fn floor_pass() -> usize {
    let mut n = 0;
    let mut id = 0;
    let mut no_maps = Vec::new();
    while let Ok(Some(next)) = sys::next_id(ObjKind::Prog, id) {
        id = next;
        if let Ok(fd) = sys::fd_by_id(ObjKind::Prog, id)
            && sys::prog_info(fd.as_fd(), &mut no_maps).is_ok()
        {
            n += 1;
        }
    }
    n
}

struct Row {
    programs: usize,
    ours_median: f64,
    ours_mean: f64,
    floor: f64,
    bpftool: Option<f64>,
}

fn measure(n: usize) -> Row {
    let fleet = Fleet::load(&format!("bn{n}_"), n);
    let mut sampler = Sampler::new(SamplerConfig {
        rescan_every: ebpfstatd::config::Effective::default().rescan_every,
    });
    // Warm-up: first sight reads metadata, maps and owners.
    let on_host = sampler.pass().programs.len();
    sampler.pass();
    assert!(on_host >= fleet.programs.len());
    let per_prog = |v: Vec<f64>| {
        v.into_iter()
            .map(|ns| ns / on_host as f64)
            .collect::<Vec<_>>()
    };

    let ours = per_prog(cpu_runs(PASSES, || {
        std::hint::black_box(sampler.pass());
    }));
    let floor = per_prog(cpu_runs(PASSES, || {
        std::hint::black_box(floor_pass());
    }));
    let bpftool = which("bpftool").then(|| {
        let runs: Vec<f64> = (0..BPFTOOL_RUNS)
            .map(|_| child_usage(Command::new("bpftool").args(["prog", "show", "--json"])).0)
            .collect();
        median(runs) / on_host as f64
    });
    let ids = fleet.ids();
    drop(fleet);
    ebpfstat_tests::wait_until_freed(&ids);
    Row {
        programs: on_host,
        ours_median: median(ours.clone()),
        ours_mean: mean(&ours),
        floor: median(floor),
        bpftool,
    }
}

/// What one rescan's parts cost with `n` programs held by this process: median CPU µs of
/// each of `PASSES` calls. A rescan runs every `rescan_every` passes and when programs appear.
fn rescan_parts(n: usize) -> Vec<(&'static str, f64)> {
    let _fleet = Fleet::load(&format!("rs{n}_"), n);
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").expect("mountinfo");
    let mounts = pins::mounts(&mountinfo);
    let us = |v: Vec<f64>| median(v) / 1000.0;
    let proc_root = std::path::Path::new("/proc");
    let pass_with = |rescan_every| {
        let mut sampler = Sampler::new(SamplerConfig { rescan_every });
        sampler.pass();
        sampler.pass();
        us(cpu_runs(PASSES, || {
            std::hint::black_box(sampler.pass());
        }))
    };
    let whole = pass_with(1) - pass_with(u64::MAX);
    vec![
        ("periodic rescan, mean", whole),
        (
            "owners (/proc/*/fd)",
            us(cpu_runs(PASSES, || {
                std::hint::black_box(owners::scan(proc_root));
            })),
        ),
        (
            "owners check (pids)",
            us(cpu_runs(PASSES, || {
                std::hint::black_box(owners::Processes::now(proc_root));
            })),
        ),
        (
            "pins (bpffs)",
            us(cpu_runs(PASSES, || {
                std::hint::black_box(pins::scan(&mounts.bpffs));
            })),
        ),
        (
            "links",
            us(cpu_runs(PASSES, || {
                std::hint::black_box(links::scan(mounts.cgroup2.as_deref()).ok());
            })),
        ),
    ]
}

fn which(tool: &str) -> bool {
    Command::new(tool)
        .arg("version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return; // `cargo bench -- --list` and test discovery
    }
    if !is_root() {
        eprintln!("sampler benchmark: needs root (bpf() with CAP_SYS_ADMIN); skipped");
        return;
    }
    ebpfstat_tests::raise_fd_limit();
    if std::env::args().any(|a| a == "--rescan") {
        print_rescan_parts();
        return;
    }
    let rows: Vec<Row> = [100, 1000].into_iter().map(measure).collect();

    let rss_kib = {
        let _fleet = Fleet::load("rss_", 1000);
        let daemon = bin("ebpfstatd");
        child_usage(Command::new(&daemon).args(["sample", "--json"])).1
    };

    println!(
        "\nsampler: CPU (user+sys) per program per pass, median of {PASSES} passes \
         (bpftool: {BPFTOOL_RUNS} runs)"
    );
    println!(
        "{:>9} | {:>14} | {:>12} | {:>11} | {:>12} | {:>10} | {:>16}",
        "programs",
        "ebpfstat µs",
        "(mean) µs",
        "floor µs",
        "bpftool µs",
        "vs floor",
        "bpftool/ebpfstat"
    );
    for r in &rows {
        let us = |ns: f64| ns / 1000.0;
        let bpftool = r
            .bpftool
            .map_or("n/a".to_owned(), |b| format!("{:.2}", us(b)));
        let speedup = r
            .bpftool
            .map_or("n/a".to_owned(), |b| format!("{:.1}x", b / r.ours_median));
        println!(
            "{:>9} | {:>14.2} | {:>12.2} | {:>11.2} | {:>12} | {:>9.2}x | {:>16}",
            r.programs,
            us(r.ours_median),
            us(r.ours_mean),
            us(r.floor),
            bpftool,
            r.ours_median / r.floor,
            speedup
        );
    }
    println!(
        "peak RSS of `ebpfstatd sample --json` with 1000 programs: {:.2} MiB (target ≤ 6 MiB)",
        rss_kib as f64 / 1024.0
    );
    println!("targets: ≤ 1.5x the floor, ≥ 5x cheaper than bpftool");
    print_rescan_parts();
}

fn print_rescan_parts() {
    let n = 300;
    let parts = rescan_parts(n);
    println!("\nrescan parts with {n} programs held here: median CPU µs of {PASSES} calls");
    for (part, us) in &parts {
        println!("{part:>20} | {us:>9.1}");
    }
}
