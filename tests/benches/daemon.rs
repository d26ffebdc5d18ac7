//! `daemon` benchmark: what the running daemon costs a device, all of it (sampling, rescans,
//! storage, roll-ups, the observer, the idle API), measured from outside the process over a
//! minute, against the syscall floor measured in the same run: per program per pass, the CPU of
//! `GET_NEXT_ID` + `GET_FD_BY_ID` + `GET_INFO_BY_FD` + `close`. Also its peak RSS and stripped
//! size.
//!
//! Run as root: `cargo build --release --workspace && cargo bench -p ebpfstat-tests --bench daemon`
//! (`-- --quick`: 20 s windows; `-- --scale`: 5000 programs too; `-- --churn`: RSS, series and
//! `top --window 1h` latency before and after 3000 programs come and go; `-- --hold N`: N
//! programs and a daemon held for two minutes, for a profiler; `-- --only N`: one row, N programs).

use std::os::fd::AsFd;
use std::time::{Duration, Instant};

use ebpfstat_tests::bus::ApiDaemon;
use ebpfstat_tests::{Fleet, bin, cpu_ns, is_root, status_kb, thread_cpu_ns};
use ebpfstatd::bpf::sys::{self, ObjKind};

/// The floor, per program: one walk of every program with the four calls a pass needs.
fn floor_walk() -> f64 {
    let start = thread_cpu_ns();
    let mut n = 0u32;
    let mut id = 0;
    while let Ok(Some(next)) = sys::next_id(ObjKind::Prog, id) {
        id = next;
        if let Ok(fd) = sys::fd_by_id(ObjKind::Prog, id)
            && sys::prog_info(fd.as_fd(), &mut Vec::new()).is_ok()
        {
            n += 1;
        }
    }
    (thread_cpu_ns() - start) as f64 / f64::from(n.max(1))
}

struct Row {
    programs: usize,
    ns_per_program_tick: f64,
    floor: f64,
    passes: u64,
    late: u64,
    cpu_pct: f64,
    hwm_kib: u64,
    /// Lowest and highest ratio of the 10 s parts.
    parts: (f64, f64),
    /// Mean pass time and the interval in use, from status.
    pass_ms: f64,
    paced_s: f64,
}

fn measure(programs: usize, window: Duration) -> Row {
    let fleet = Fleet::load(&format!("dm{programs}_"), programs);
    // Defaults but for where it keeps things: 1 s passes, 1 min flushes, budget mode.
    let d = ApiDaemon::start_with(None, "1s", &["--flush-interval", "1m"]);
    let pid = d.pid();
    // Past the first rescans and the calibration.
    std::thread::sleep(Duration::from_secs(5));
    let count = |k: &str| d.ctl_json(&["status"])[k].as_u64().expect(k);
    let (p0, l0, c0) = (count("passes"), count("late_passes"), cpu_ns(pid));
    // Some programs run meanwhile, as on a device.
    // The floor is measured meanwhile, a walk every step: the host's noise hits both alike.
    let busy = programs / 5;
    let step = Duration::from_millis(500);
    let mut waited = Duration::ZERO;
    let mut floors = Vec::new();
    // The ratio in each 10 s part too (one pass a second): how much the host's noise moves it.
    let mut parts = Vec::new();
    let (mut part_cpu, mut part_floors, mut part_start) = (c0, Vec::new(), Instant::now());
    while waited < window {
        for i in 0..busy {
            fleet.drive(i, 1);
        }
        let f = floor_walk();
        floors.push(f);
        part_floors.push(f);
        std::thread::sleep(step);
        waited += step;
        if part_floors.len() == 20 {
            let cpu = cpu_ns(pid);
            part_floors.sort_by(f64::total_cmp);
            let per_tick =
                (cpu - part_cpu) as f64 / part_start.elapsed().as_secs_f64() / programs as f64;
            parts.push(per_tick / part_floors[part_floors.len() / 2]);
            (part_cpu, part_start) = (cpu, Instant::now());
            part_floors.clear();
        }
    }
    parts.sort_by(f64::total_cmp);
    floors.sort_by(f64::total_cmp);
    let floor = floors[floors.len() / 2];
    let c1 = cpu_ns(pid);
    let (p1, l1) = (count("passes"), count("late_passes"));
    let (pass_ns, paced_ns) = (count("pass_ns"), count("paced_interval_ns"));
    let hwm_kib = status_kb(pid, "VmHWM:");
    assert!(d.stop());
    let passes = p1 - p0;
    let cpu = (c1 - c0) as f64;
    Row {
        programs,
        ns_per_program_tick: cpu / passes.max(1) as f64 / programs as f64,
        floor,
        passes,
        late: l1 - l0,
        cpu_pct: cpu / window.as_nanos() as f64 * 100.0,
        hwm_kib,
        parts: (
            parts.first().copied().unwrap_or(f64::NAN),
            parts.last().copied().unwrap_or(f64::NAN),
        ),
        pass_ms: pass_ns as f64 / 1e6,
        paced_s: paced_ns as f64 / 1e9,
    }
}

/// Size of a stripped copy of the release daemon.
fn stripped_bytes() -> u64 {
    let dir = tempfile::tempdir().expect("tempdir");
    let copy = dir.path().join("ebpfstatd");
    std::fs::copy(bin("ebpfstatd"), &copy).expect("copy");
    let ok = std::process::Command::new("strip")
        .arg(&copy)
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok, "strip (binutils) failed");
    std::fs::metadata(&copy).expect("size").len()
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    if !is_root() {
        eprintln!("daemon benchmark: needs root (the daemon samples real programs); skipped");
        return;
    }
    if let Some(n) = std::env::args().skip_while(|a| a != "--hold").nth(1) {
        // For a profiler: N programs and a daemon, held for two minutes.
        let n: usize = n.parse().expect("a number of programs");
        let _fleet = Fleet::load("hold_", n);
        let d = ApiDaemon::start_with(None, "1s", &["--flush-interval", "1m"]);
        println!("daemon pid {}", d.pid());
        std::thread::sleep(Duration::from_secs(120));
        return;
    }
    if std::env::args().any(|a| a == "--churn") {
        churn();
        return;
    }
    let quick = std::env::args().any(|a| a == "--quick");
    let scale = std::env::args().any(|a| a == "--scale");
    let window = Duration::from_secs(if quick { 20 } else { 60 });
    let mut sizes = vec![300, 1000];
    if scale {
        sizes.push(5000);
    }
    if let Some(n) = std::env::args().skip_while(|a| a != "--only").nth(1) {
        sizes = vec![n.parse().expect("a number of programs")];
    }
    let rows: Vec<Row> = sizes.into_iter().map(|n| measure(n, window)).collect();
    println!(
        "\ndaemon: release ebpfstatd run at 1 s (flush 1 min, budget mode, API idle), {} s \
         measured from /proc after 5 s; 20 % of programs run every 0.5 s",
        window.as_secs()
    );
    println!(
        "{:>9} {:>16} {:>12} {:>8} {:>11} {:>7} {:>5} {:>8} {:>10} {:>8} {:>6}",
        "programs",
        "ns/program-tick",
        "floor ns",
        "ratio",
        "10 s parts",
        "passes",
        "late",
        "CPU %",
        "VmHWM MiB",
        "pass ms",
        "every"
    );
    for r in &rows {
        println!(
            "{:>9} {:>16.0} {:>12.0} {:>8.2} {:>11} {:>7} {:>5} {:>8.3} {:>10.2} {:>8.2} {:>5}s",
            r.programs,
            r.ns_per_program_tick,
            r.floor,
            r.ns_per_program_tick / r.floor,
            format!("{:.2}–{:.2}", r.parts.0, r.parts.1),
            r.passes,
            r.late,
            r.cpu_pct,
            r.hwm_kib as f64 / 1024.0,
            r.pass_ms,
            r.paced_s
        );
    }
    let size = stripped_bytes();
    println!(
        "stripped ebpfstatd: {size} bytes ({:.2} MiB)",
        size as f64 / 1048576.0
    );
    for r in &rows {
        println!(
            "daemon: programs={} ratio={:.2} hwm_mib={:.2}",
            r.programs,
            r.ns_per_program_tick / r.floor,
            r.hwm_kib as f64 / 1024.0
        );
    }
}

/// Wall time of `ebpfstatctl top --window 1h`, the median of 7, from outside.
fn top_latency_ms(d: &ApiDaemon) -> f64 {
    let mut ms: Vec<f64> = (0..7)
        .map(|_| {
            let t = Instant::now();
            let out = d.ctl(&["top", "--window", "1h", "-n", "20"]);
            assert!(out.status.success(), "{out:?}");
            t.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    ms.sort_by(f64::total_cmp);
    ms[ms.len() / 2]
}

struct ChurnRow {
    when: &'static str,
    loaded: u64,
    series: u64,
    rss_kib: u64,
    hwm_kib: u64,
    top_ms: f64,
}

fn churn_row(when: &'static str, d: &ApiDaemon) -> ChurnRow {
    let s = d.ctl_json(&["status"]);
    let n = |k: &str| s[k].as_u64().expect(k);
    ChurnRow {
        when,
        loaded: n("programs"),
        series: n("series"),
        rss_kib: status_kb(d.pid(), "VmRSS:"),
        hwm_kib: status_kb(d.pid(), "VmHWM:"),
        top_ms: top_latency_ms(d),
    }
}

/// 300 programs stay; 3000 more come and go, 300 at a time, each batch sampled for 3 s; then
/// 3000 more, to show memory stays where the first churn left it.
fn churn() {
    let steady = Fleet::load("cs_", 300);
    let d = ApiDaemon::start_with(None, "1s", &["--flush-interval", "1m"]);
    let busy = |f: &Fleet| (0..f.programs.len()).step_by(5).for_each(|i| f.drive(i, 1));
    // `steps` half-seconds of the steady programs running, and of `also` if there are some.
    let run_for = |steps: usize, also: Option<&Fleet>| {
        for _ in 0..steps {
            busy(&steady);
            also.into_iter().for_each(busy);
            std::thread::sleep(Duration::from_millis(500));
        }
    };
    // Batches of 300 that each live 3 s, measured as `during` while the last one lives; after
    // them, past the next rescan, so every ended program has left the sampler's and store's sets.
    let churn_batches = |batches: std::ops::Range<usize>, during: Option<&'static str>| {
        let last = batches.end - 1;
        let mut row = None;
        for batch in batches {
            let come_and_go = Fleet::load(&format!("cg{batch}_"), 300);
            run_for(6, Some(&come_and_go));
            if batch == last {
                row = during.map(|label| churn_row(label, &d));
            }
        }
        run_for(70, None);
        row
    };
    run_for(10, None);
    let mut rows = vec![churn_row("before", &d)];
    rows.extend(churn_batches(0..10, Some("with the last 300")));
    rows.push(churn_row("after", &d));
    churn_batches(10..20, None);
    rows.push(churn_row("after 6000", &d));
    assert!(d.stop());
    println!(
        "\nchurn: release ebpfstatd at 1 s; 300 programs stay, 3000 come and go, then 3000 more (batches of \
         300, 3 s each); top latency = median of 7 `ebpfstatctl top --window 1h` from outside"
    );
    println!(
        "{:<18} {:>8} {:>7} {:>10} {:>10} {:>8}",
        "", "loaded", "series", "RSS MiB", "VmHWM MiB", "top ms"
    );
    for r in &rows {
        println!(
            "{:<18} {:>8} {:>7} {:>10.2} {:>10.2} {:>8.1}",
            r.when,
            r.loaded,
            r.series,
            r.rss_kib as f64 / 1024.0,
            r.hwm_kib as f64 / 1024.0,
            r.top_ms
        );
    }
}
