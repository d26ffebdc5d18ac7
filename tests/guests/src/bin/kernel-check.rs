//! What the product does on the kernel it runs on, checked from inside a guest
//! (`tests/guests/tests/kernels.rs` boots each kernel of the matrix under qemu and runs this there, with
//! `EBPFSTAT_BIN_DIR` naming the daemon and client built for the guest's architecture).
//!
//! `kernel-check` runs the matrix's checks: real programs with known counts, asked through
//! `ebpfstatctl`; a mismatch panics with what was seen. `kernel-check device N SECONDS` runs the
//! daemon with its embedded defaults beside N socket filters and reports its cost. Either ends by
//! printing one line, `KERNEL-CHECK {json}`, with what it measured.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use ebpfstat_tests::bpftrace::Bpftrace;
use ebpfstat_tests::bus::{ApiDaemon, by_name, ctl_json_via, history_runs, open_tempdir};
use ebpfstat_tests::profiled::{SlowPathFilter, tracing_links_of, tracing_links_on};
use ebpfstat_tests::terminal::Tmux;
use ebpfstat_tests::{
    ATTACH_XDP, Fleet, PROG_TYPE_XDP, Reaped, bin, costly_filter, kernel, load_program, own_comm,
    prog_id, raise_fd_limit, run_exactly, status_kb, tracing,
};
use ebpfstatd::profile;
use ebpfstatd::sampler::host::parse_major_minor;
use serde_json::{Value, json};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let report = match args.iter().map(String::as_str).collect::<Vec<_>>()[..] {
        [] => matrix(),
        ["device", n, secs] => device(
            n.parse().expect("a program count"),
            secs.parse().expect("seconds"),
        ),
        ["profile-shown"] => profile_shown(),
        _ => panic!("usage: kernel-check [device PROGRAMS SECONDS | profile-shown]"),
    };
    println!("KERNEL-CHECK {report}");
}

/// The kernel's release and (major, minor).
fn release() -> (String, (u32, u32)) {
    let text = std::fs::read_to_string("/proc/sys/kernel/osrelease").expect("osrelease");
    let text = text.trim().to_owned();
    let version = parse_major_minor(&text).unwrap_or_else(|| panic!("a release: {text}"));
    (text, version)
}

/// What the matrix loads, held until it has been checked.
struct Loaded {
    fleet: Fleet,
    tracepoint: tracing::Attached,
    raw: tracing::Attached,
    /// A tracepoint through a perf-event link whose perf fd was closed: only the link names it.
    perf_link: tracing::Attached,
    xdp: (OwnedFd, OwnedFd),
    /// A 64 KiB ring buffer: its memory is said on every kernel.
    ring: OwnedFd,
    /// Maps filled to known counts: [`filled_maps`].
    maps: Filled,
    bpftrace: Option<Bpftrace>,
}

/// A hash map holding 137 entries, a per-CPU hash 42, an LRU map given 192 keys for 64 slots
/// (what it kept: the kernel's own key walk), a hash of maps 5, and a trie 9 (key by key).
struct Filled {
    hash: OwnedFd,
    percpu: OwnedFd,
    lru: OwnedFd,
    lru_kept: u64,
    outer: OwnedFd,
    _inner: OwnedFd,
    trie: OwnedFd,
}

const MAP_TYPE_RINGBUF: u32 = 27;
const MAP_TYPE_HASH: u32 = 1;
const MAP_TYPE_LPM_TRIE: u32 = 11;
const MAP_TYPE_ARRAY: u32 = 2;
const MAP_TYPE_PERCPU_HASH: u32 = 5;
const MAP_TYPE_LRU_HASH: u32 = 9;
const MAP_TYPE_HASH_OF_MAPS: u32 = 13;
const RING_BYTES: u32 = 64 * 1024;

const VERSIONED: &str = "kcver";

/// Loads everything, drives it with known counts between passes, then asks the daemon once.
/// (Under emulation each pass and each client call is slow: the waits are few and shared.)
fn matrix() -> Value {
    raise_fd_limit();
    let (release, version) = release();
    eprintln!("kernel-check: kernel {release}, {}", std::env::consts::ARCH);
    let start = Instant::now();
    let stage = |what: &str| eprintln!("kernel-check: {what} ({:.1?})", start.elapsed());
    let d = ApiDaemon::start(None, "500ms");
    // bpftrace compiles its script for a while under emulation: first, so the rest overlaps.
    let bpftrace = has_bpftrace().then(|| {
        Bpftrace::start(
            "tracepoint:syscalls:sys_enter_getppid { @c = count(); }",
            "sys_enter_getpp",
            1,
        )
    });
    let loaded = load(bpftrace);
    stage("loaded");
    d.wait_passes(2);
    drive(&loaded);
    // One name, two versions: v1 runs 30 times and is unloaded, v2 runs 50 times.
    let v1 = costly_filter(VERSIONED, 1);
    d.wait_passes(2);
    run_exactly(v1.as_fd(), 30);
    d.wait_passes(2);
    drop(v1);
    let v2 = costly_filter(VERSIONED, 5);
    d.wait_passes(2);
    run_exactly(v2.as_fd(), 50);
    d.wait_passes(2);
    stage("driven");
    let mut report = json!({"kernel": release, "arch": std::env::consts::ARCH});
    filters(&d, &loaded.fleet, version, &mut report);
    ring_buffer(&d, &loaded, version, &mut report);
    map_entries(&d, &loaded, &mut report);
    tracepoints(&d, &loaded, &mut report);
    reload(&d, &mut report);
    xdp_link(&d, &loaded, &mut report);
    perf_link(&d, &loaded, version, &mut report);
    match &loaded.bpftrace {
        Some(bt) => bpftrace_program(&d, bt, &mut report),
        None => eprintln!("kernel-check: no bpftrace on this root"),
    }
    profile(&d, &mut report);
    probe_misses(&d, version, &mut report);
    status(&d, &mut report);
    // Emulated ARM guests are slow, and their trampolines end profiles the same way.
    if std::env::consts::ARCH == "x86_64" {
        live_profile(&d, &mut report);
        drop(d);
        profile_ends(&mut report);
    }
    stage("checked");
    report
}

fn load(bpftrace: Option<Bpftrace>) -> Loaded {
    // Filled first, so the rescan new programs bring counts them full.
    let maps = filled_maps();
    let prog = load_program(PROG_TYPE_XDP, "kcxdp", None, &[], 2);
    let link = kernel::link_create(prog.as_fd(), 1, ATTACH_XDP).expect("an XDP link on lo");
    Loaded {
        fleet: Fleet::load("kcf", 2),
        tracepoint: tracing::tracepoint("syscalls", "sys_enter_ioprio_get", "kctp"),
        raw: tracing::raw_tracepoint("oom_score_adj_update", "kcraw"),
        perf_link: tracing::tracepoint_link("syscalls", "sys_enter_getpgid", "kclink", false),
        xdp: (prog, link),
        ring: kernel::map_create(MAP_TYPE_RINGBUF, (0, 0, RING_BYTES), "kcring")
            .expect("a ring buffer"),
        maps,
        bpftrace,
    }
}

fn filled_maps() -> Filled {
    let fill = |fd: BorrowedFd<'_>, n: u32, value: &[u8]| {
        for k in 0..n {
            kernel::map_update(fd, &k.to_ne_bytes(), value).expect("update");
        }
    };
    let hash = kernel::map_create(MAP_TYPE_HASH, (4, 8, 1000), "kchash").expect("a hash map");
    fill(hash.as_fd(), 137, &[1; 8]);
    let cpus = ebpfstatd::sampler::host::possible_cpus().expect("possible CPUs");
    let percpu =
        kernel::map_create(MAP_TYPE_PERCPU_HASH, (4, 8, 500), "kcpercpu").expect("a per-CPU hash");
    fill(
        percpu.as_fd(),
        42,
        &vec![1; 8 * usize::try_from(cpus).expect("cpus")],
    );
    let lru = kernel::map_create(MAP_TYPE_LRU_HASH, (4, 8, 64), "kclru").expect("an LRU map");
    fill(lru.as_fd(), 192, &[1; 8]);
    let lru_kept = kernel::map_key_count(lru.as_fd(), 4).expect("the LRU map's keys");
    let inner = kernel::map_create(MAP_TYPE_ARRAY, (4, 8, 1), "kcinner").expect("an inner map");
    let outer = kernel::map_create_with(
        MAP_TYPE_HASH_OF_MAPS,
        (4, 4, 16),
        0,
        Some(inner.as_fd()),
        "kcouter",
    )
    .expect("a hash of maps");
    fill(outer.as_fd(), 5, &inner.as_raw_fd().to_ne_bytes());
    let trie =
        kernel::map_create_with(MAP_TYPE_LPM_TRIE, (8, 8, 100), 1, None, "kctrie").expect("a trie");
    for i in 0u8..9 {
        let mut key = 32u32.to_ne_bytes().to_vec();
        key.extend_from_slice(&[10, 0, 0, i]);
        kernel::map_update(trie.as_fd(), &key, &[1; 8]).expect("trie update");
    }
    Filled {
        hash,
        percpu,
        lru,
        lru_kept,
        outer,
        _inner: inner,
        trie,
    }
}

/// Entries as counted, and how (`[137, "kernel"]` from 6.6, `[137, "batch"]` before); the LRU
/// map's with what the kernel's key walk found, `[n, how, kept]`.
fn map_entries(d: &ApiDaemon, loaded: &Loaded, report: &mut Value) {
    let maps = d.ctl_json(&["maps"]);
    let entries = |fd: BorrowedFd<'_>| {
        let id = ebpfstat_tests::map_id(fd);
        let row = maps
            .as_array()
            .and_then(|m| m.iter().find(|m| m["id"] == id))
            .unwrap_or_else(|| panic!("map {id} missing: {maps}"));
        json!([row["entries"], row["entries_counted_by"]])
    };
    let m = &loaded.maps;
    let mut lru = entries(m.lru.as_fd());
    if let Some(a) = lru.as_array_mut() {
        a.push(json!(m.lru_kept));
    }
    report["map_entries"] = json!({
        "hash": entries(m.hash.as_fd()),
        "percpu": entries(m.percpu.as_fd()),
        "lru": lru,
        "outer": entries(m.outer.as_fd()),
        "trie": entries(m.trie.as_fd()),
    });
}

/// Known counts: 40 and 7 datagrams, 9 `ioprio_get` and 5 OOM score writes (syscalls nothing
/// else here makes), and 6 `getppid` for bpftrace.
fn drive(loaded: &Loaded) {
    loaded.fleet.drive(0, 40);
    loaded.fleet.drive(1, 7);
    for _ in 0..9 {
        // SAFETY: ioprio_get(IOPRIO_WHO_PROCESS, 0) reads our own priority; no memory passed.
        unsafe { libc::syscall(libc::SYS_ioprio_get, 1, 0) };
    }
    let adj = std::fs::read_to_string("/proc/self/oom_score_adj").expect("oom_score_adj");
    for _ in 0..5 {
        std::fs::write("/proc/self/oom_score_adj", adj.trim()).expect("the same score again");
    }
    for _ in 0..6 {
        // SAFETY: getppid takes nothing and cannot fail.
        unsafe { libc::getppid() };
    }
}

/// Socket filters run by datagrams: exact counts in `top`, their map memory as the kernel's
/// fdinfo says it, this process as their owner, and what the memory figure means here.
fn filters(d: &ApiDaemon, fleet: &Fleet, version: (u32, u32), report: &mut Value) {
    let rows = d.ctl_json(&["top", "--cumulative"]);
    for (p, runs) in fleet.programs.iter().zip([40u64, 7]) {
        let row = by_name(&rows, &p.name);
        assert_eq!(row["since_load"]["run_cnt"], runs, "{row}");
        let owners = row["owners"].as_array().expect("owners");
        assert!(
            owners
                .iter()
                .any(|o| o["pid"] == std::process::id() && o["comm"] == own_comm()),
            "this process holds {}: {row}",
            p.name
        );
    }
    let maps = d.ctl_json(&["maps"]);
    let own = &fleet.programs[0];
    let row = maps
        .as_array()
        .and_then(|m| m.iter().find(|m| m["id"] == own.own_map_id))
        .unwrap_or_else(|| panic!("map {} missing: {maps}", own.own_map_id));
    let fdinfo = fdinfo_memlock(own.own_map.as_fd());
    assert_eq!(
        row["memlock_bytes"], fdinfo,
        "the kernel's fdinfo says {fdinfo}: {row}"
    );
    let meaning = d.ctl_json(&["list"])["memlock_meaning"].clone();
    // Before 6.4 (`map_mem_usage`) the kernel's figure is computed from the declared sizes.
    let expected = if version >= (6, 4) {
        "estimate"
    } else {
        "max-size"
    };
    assert_eq!(meaning, expected, "memlock meaning on {version:?}");
    report["filter_runs"] = json!([40, 7]);
    report["map_memlock_bytes"] = json!(fdinfo);
    report["memlock_meaning"] = meaning;
}

/// A ring buffer's memory: the kernel's figure from 6.4; before, the kernel says 0 (its formula
/// counts keys and values) and the daemon counts the declared size.
fn ring_buffer(d: &ApiDaemon, loaded: &Loaded, version: (u32, u32), report: &mut Value) {
    let id = ebpfstat_tests::map_id(loaded.ring.as_fd());
    let maps = d.ctl_json(&["maps"]);
    let row = maps
        .as_array()
        .and_then(|m| m.iter().find(|m| m["id"] == id))
        .unwrap_or_else(|| panic!("ring buffer {id} missing: {maps}"));
    let fdinfo = fdinfo_memlock(loaded.ring.as_fd());
    if version >= (6, 4) {
        assert_eq!(row["memlock_bytes"], fdinfo, "{row}");
    } else {
        assert_eq!(fdinfo, 0, "the kernel's figure before 6.4");
        assert_eq!(row["memlock_bytes"], RING_BYTES, "{row}");
    }
    report["ring_buffer"] = json!({"fdinfo": fdinfo, "shown": row["memlock_bytes"]});
}

/// The `memlock:` line of the fdinfo of a descriptor this process holds, read here rather than
/// through the daemon's own reader.
fn fdinfo_memlock(fd: BorrowedFd<'_>) -> u64 {
    let text =
        std::fs::read_to_string(format!("/proc/self/fdinfo/{}", fd.as_raw_fd())).expect("fdinfo");
    text.lines()
        .find_map(|l| l.strip_prefix("memlock:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no memlock in fdinfo:\n{text}"))
}

/// A tracepoint through a perf event and a raw tracepoint: exact counts, and where each is
/// attached.
fn tracepoints(d: &ApiDaemon, loaded: &Loaded, report: &mut Value) {
    let rows = d.ctl_json(&["top", "--cumulative"]);
    assert_eq!(by_name(&rows, "kctp")["since_load"]["run_cnt"], 9);
    assert_eq!(by_name(&rows, "kcraw")["since_load"]["run_cnt"], 5);
    let shown = d.ctl_json(&["show", &loaded.tracepoint.id.to_string()]);
    assert_eq!(
        shown["attach"],
        json!([{"link_id": 0, "link_type": "perf_event", "attach_type": "tracepoint",
                "target": "sys_enter_ioprio_get", "missed": null}]),
        "{shown}"
    );
    let shown = d.ctl_json(&["show", &loaded.raw.id.to_string()]);
    let attach = &shown["attach"][0];
    assert_eq!(attach["target"], "oom_score_adj_update", "{shown}");
    report["tracepoint_runs"] = json!([9, 5]);
    report["raw_tracepoint_attach"] = attach.clone();
}

/// The history by name holds both versions' runs, each load its own.
fn reload(d: &ApiDaemon, report: &mut Value) {
    let h = d.ctl_json(&["history", VERSIONED, "--since", "30m", "--step", "1s"]);
    let loads = h["info"]["series"].as_array().expect("info.series");
    assert_eq!(loads.len(), 2, "both loads: {}", h["info"]);
    assert_ne!(loads[0]["tag"], loads[1]["tag"], "two versions");
    assert_eq!(history_runs(&h), 80, "both versions' runs: {h}");
    report["history_runs_across_reload"] = json!(80);
}

/// An XDP program attached to the loopback through a link: its link type and target.
fn xdp_link(d: &ApiDaemon, loaded: &Loaded, report: &mut Value) {
    let shown = d.ctl_json(&["show", &prog_id(loaded.xdp.0.as_fd()).to_string()]);
    let attach = &shown["attach"][0];
    assert_eq!(attach["link_type"], "xdp", "{shown}");
    assert_eq!(attach["target"], "lo (ifindex 1)", "{shown}");
    report["xdp_attach"] = attach.clone();
}

/// A perf-event link: the kernel describes it from 6.6; before, nothing names its tracepoint
/// once its holder closed the perf fd, and the daemon says so.
fn perf_link(d: &ApiDaemon, loaded: &Loaded, version: (u32, u32), report: &mut Value) {
    let shown = d.ctl_json(&["show", &loaded.perf_link.id.to_string()]);
    let attach = shown["attach"].as_array().expect("attach");
    assert_eq!(attach.len(), 1, "one attach point: {shown}");
    let point = &attach[0];
    assert_ne!(point["link_id"], 0, "{shown}");
    assert_eq!(point["link_type"], "perf_event", "{shown}");
    assert_eq!(point["attach_type"], "tracepoint", "{shown}");
    let target = if version >= (6, 6) {
        "sys_enter_getpgid"
    } else {
        "perf event (the kernel names it from Linux 6.6)"
    };
    assert_eq!(point["target"], target, "{shown}");
    report["perf_link_attach"] = point.clone();
}

/// Kprobes that miss: a kretprobe on the clock_nanosleep syscall made in tracefs with 2
/// instances (`r2:`), while 100 threads sleep in it at once: those finding no free instance
/// are missed. Linux 6.7 reports that on the link, and the daemon's figure is the kernel's own
/// `kprobe_profile` count; before 6.7 it is not reported, and said as such (`null`).
fn probe_misses(d: &ApiDaemon, version: (u32, u32), report: &mut Value) {
    let syscall = match std::env::consts::ARCH {
        "x86_64" => "__x64_sys_clock_nanosleep",
        "aarch64" => "__arm64_sys_clock_nanosleep",
        _ => "sys_clock_nanosleep",
    };
    let made =
        std::panic::catch_unwind(|| tracing::kretprobe_tracefs(syscall, 2, "kcmiss", "kcmiss"));
    let Ok(probe) = made else {
        report["probe_misses"] = json!({"refused": "no kretprobe on clock_nanosleep here"});
        return;
    };
    d.wait_passes(2);
    std::thread::scope(|s| {
        for _ in 0..100 {
            s.spawn(|| std::thread::sleep(Duration::from_millis(300)));
        }
    });
    d.wait_passes(2);
    let shown = d.ctl_json(&["show", &probe.id.to_string()]);
    let point = &shown["attach"][0];
    // Before 6.6 a perf-event link whose perf descriptor was closed is not named.
    let kind = if version >= (6, 6) {
        json!("kretprobe")
    } else {
        Value::Null
    };
    assert_eq!(point["attach_type"], kind, "{shown}");
    let missed = point["missed"].clone();
    // kprobe_profile: event, hits, missed.
    let profile = std::fs::read_to_string("/sys/kernel/tracing/kprobe_profile").unwrap_or_default();
    let kernel_missed = profile.lines().find_map(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        (f.first() == Some(&"kcmiss"))
            .then(|| f.get(2)?.parse::<u64>().ok())
            .flatten()
    });
    if version >= (6, 7) {
        assert!(missed.as_u64().is_some_and(|m| m >= 1), "{shown}");
        assert_eq!(
            missed.as_u64(),
            kernel_missed,
            "the daemon's figure is the kernel's: {profile}"
        );
    } else {
        assert!(
            missed.is_null(),
            "before 6.7 no kprobe reports misses: {shown}"
        );
    }
    let runs = shown["program"]["since_load"]["run_cnt"].clone();
    report["probe_misses"] =
        json!({"missed": missed, "kprobe_profile": kernel_missed, "runs": runs});
    drop(probe);
    tracing::remove_tracefs_kprobe("kcmiss");
}

fn has_bpftrace() -> bool {
    Command::new("bpftrace")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Debian's bpftrace, a loader nobody here wrote: its tracepoint program's owner, attach point
/// and runs (six `getppid` calls; other processes may make more).
fn bpftrace_program(d: &ApiDaemon, bt: &Bpftrace, report: &mut Value) {
    let id = bt.ids[0];
    let shown = d.ctl_json(&["show", &id.to_string()]);
    let program = &shown["program"];
    assert!(
        program["owners"]
            .as_array()
            .expect("owners")
            .iter()
            .any(|o| o["pid"] == bt.pid() && o["comm"] == "bpftrace"),
        "{shown}"
    );
    assert_eq!(shown["attach"][0]["target"], "sys_enter_getppid", "{shown}");
    let runs = program["since_load"]["run_cnt"].as_u64().expect("runs");
    assert!(runs >= 6, "six getppid calls: {shown}");
    report["bpftrace_runs"] = json!(runs);
}

/// A profile of a filter whose every 20th packet takes a path of 2000 divisions: p90 in the
/// fast mode, p99 in the slow one, the runs traced the kernel's count, nothing left attached.
/// On a kernel without BPF trampolines (32-bit ARM), the words that say so.
fn profile(d: &ApiDaemon, report: &mut Value) {
    let filter = SlowPathFilter::load("kcslow");
    let id = prog_id(filter.prog.as_fd());
    // The kernel's own mean of each path, untraced.
    let mean = |len: usize| {
        ebpfstatd::bpf::sys::prog_test_run(filter.prog.as_fd(), &vec![0u8; len], 200)
            .expect("test run")
            .duration_ns
    };
    let paths_ns = json!([mean(64), mean(164)]);
    d.wait_passes(2);
    let child = match wait_attached(
        id,
        spawn_profile(d, &["--json", "profile", "kcslow", "--for", "10s"]),
    ) {
        Ok(child) => child,
        Err(out) => {
            let err = String::from_utf8_lossy(&out.stderr).trim().to_owned();
            assert!(
                err.contains("not supported: the kernel refused to trace kcslow"),
                "{err}"
            );
            report["profile"] = json!({ "refused": err });
            return;
        }
    };
    let longs = filter.drive(2000, 20);
    let out = child.wait_with_output().expect("output");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let p: Value = serde_json::from_slice(&out.stdout).expect("profile JSON");
    eprintln!("kernel-check: profile {p}");
    assert_eq!(
        (p["runs"].as_u64(), p["kernel_runs"].as_u64()),
        (Some(2000), Some(2000)),
        "{p}"
    );
    assert_eq!(longs, 100);
    let counted: u64 = p["buckets"]
        .as_array()
        .expect("buckets")
        .iter()
        .map(|b| b["count"].as_u64().expect("count"))
        .sum();
    assert_eq!(counted, 2000, "{p}");
    let at = |k: &str| p[k].as_u64().unwrap_or_else(|| panic!("{k}: {p}"));
    // Where p90 and p99 fall is judged by the host, which knows the kernel (kernels.rs).
    assert!(
        at("max_ns") >= at("p99_ns") && at("p99_ns") >= at("p90_ns"),
        "{p}"
    );
    assert!(
        p["added_ns_per_run"].as_f64().is_some_and(|a| a > 0.0),
        "{p}"
    );
    wait_detached(d, id);
    report["profile"] = json!({
        "runs": p["runs"], "p50_ns": p["p50_ns"], "p90_ns": p["p90_ns"], "p99_ns": p["p99_ns"],
        "max_ns": p["max_ns"], "added_ns_per_run": p["added_ns_per_run"],
        "floor_ns": p["floor_ns"], "ended": p["ended"], "untraced_paths_ns": paths_ns,
    });
}

/// `ebpfstatctl --socket … args` started, its output piped.
fn spawn_profile(d: &ApiDaemon, args: &[&str]) -> Child {
    Command::new(bin("ebpfstatctl"))
        .arg("--socket")
        .arg(&d.socket)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn ebpfstatctl profile")
}

/// Waits until both tracing programs are on program `id`; the client's output if it ended
/// first (the kernel refused).
fn wait_attached(id: u32, mut child: Child) -> Result<Child, Output> {
    let deadline = Instant::now() + Duration::from_secs(90);
    while tracing_links_on(id) < 2 {
        if child.try_wait().expect("wait").is_some() {
            return Err(child.wait_with_output().expect("output"));
        }
        assert!(Instant::now() < deadline, "the profile never attached");
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(child)
}

/// [`wait_attached`] on a kernel known to trace.
fn attached(id: u32, child: Child) -> Child {
    wait_attached(id, child)
        .unwrap_or_else(|out| panic!("{}", String::from_utf8_lossy(&out.stderr)))
}

/// Waits until nothing of a profile is left: no tracing link on `id`, none of the daemon's
/// tracing programs loaded, and `list --all` shows none of them.
fn wait_detached(d: &ApiDaemon, id: u32) {
    const OWN: [&str; 2] = [profile::ENTRY_NAME, profile::EXIT_NAME];
    let listed = || {
        d.ctl_json(&["list", "--all"])["programs"]
            .as_array()
            .expect("rows")
            .iter()
            .filter(|r| r["name"].as_str().is_some_and(|n| OWN.contains(&n)))
            .count()
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while tracing_links_on(id) > 0 || tracing_links_of(&OWN) > 0 || listed() > 0 {
        assert!(Instant::now() < deadline, "tracing left attached");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A profile's other ends, on a daemon of its own whose stats budget is 0.001 % of a core
/// (10 µs of tracing a second): a second profile of the same program is refused while one
/// runs; a client killed mid-profile leaves nothing attached; driven runs stop a profile once
/// its tracing has cost the budget, well before its time.
fn profile_ends(report: &mut Value) {
    let d = ApiDaemon::start_with(None, "500ms", &["--stats-overhead-budget", "0.001%"]);
    let filter = SlowPathFilter::load("kcends");
    let id = prog_id(filter.prog.as_fd());
    d.wait_passes(2);
    let mut first = attached(
        id,
        spawn_profile(&d, &["profile", "kcends", "--for", "60s"]),
    );
    let second = d.ctl(&["profile", "kcends", "--for", "1s"]);
    let busy = String::from_utf8_lossy(&second.stderr).trim().to_owned();
    assert!(
        !second.status.success() && busy.contains("is being profiled already"),
        "{busy}"
    );
    let killed = Instant::now();
    first.kill().expect("kill the client");
    first.wait().expect("reap the client");
    wait_detached(&d, id);
    let detached_s = killed.elapsed().as_secs_f64();

    let mut third = attached(
        id,
        spawn_profile(&d, &["--json", "profile", "kcends", "--for", "60s"]),
    );
    let deadline = Instant::now() + Duration::from_secs(50);
    while third.try_wait().expect("wait").is_none() {
        assert!(
            Instant::now() < deadline,
            "the budget never stopped the profile"
        );
        filter.drive(20, 0);
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = third.wait_with_output().expect("output");
    let p: Value = serde_json::from_slice(&out.stdout).expect("profile JSON");
    assert_eq!(p["ended"], "budget", "{p}");
    wait_detached(&d, id);
    report["profile_ends"] = json!({
        "busy": busy, "detached_after_kill_s": detached_s,
        "budget": { "runs": p["runs"], "seconds": p["seconds"],
                    "added_ns_per_run": p["added_ns_per_run"] },
    });
}

/// The live view's `P` on a kernel that traces, as a person sees it (tmux: the amd64 guests run
/// the host's root): the box fills with the percentiles and the histogram of 2000 runs, one in
/// 20 slow; Esc and q leave nothing attached.
fn live_profile(d: &ApiDaemon, report: &mut Value) {
    if !Tmux::available("kernel-check live_profile") {
        return;
    }
    let filter = SlowPathFilter::load("kclive");
    let id = prog_id(filter.prog.as_fd());
    d.wait_passes(2);
    let t = Tmux::start(100, 45);
    t.type_line(&format!(
        "{} --socket {} top --name kclive",
        bin("ebpfstatctl").display(),
        d.socket.display()
    ));
    let slow = Duration::from_secs(60);
    t.wait_for_within("the program's row", slow, |s| s.contains("1 of 1 programs"));
    t.keys(&["P"]);
    t.wait_for_within("the profile box", slow, |s| {
        s.contains("profile (Esc closes)")
    });
    let deadline = Instant::now() + slow;
    while tracing_links_on(id) < 2 {
        assert!(Instant::now() < deadline, "{}", t.screen());
        std::thread::sleep(Duration::from_millis(20));
    }
    filter.drive(2000, 20);
    let done = t.wait_for_within("the profile's answer", slow, |s| {
        s.contains("runs traced over")
    });
    eprintln!("{done}");
    assert!(
        done.contains("2.0k runs traced") && done.contains("P99.9") && done.contains("FROM"),
        "{done}"
    );
    t.keys(&["Escape"]);
    t.wait_for_within("the box closed", slow, |s| {
        !s.contains("profile (Esc closes)")
    });
    t.keys(&["q"]);
    wait_detached(d, id);
    report["live_profile"] = json!(done);
}

/// `ebpfstatctl profile` as a person reads it, for the docs: the slow-path filter driven with
/// one long packet in 20 while a text profile of 5 s runs.
fn profile_shown() -> Value {
    let d = ApiDaemon::start(None, "500ms");
    let filter = SlowPathFilter::load("my_filter");
    let id = prog_id(filter.prog.as_fd());
    d.wait_passes(2);
    let child = attached(
        id,
        spawn_profile(&d, &["profile", "my_filter", "--for", "5s"]),
    );
    filter.drive(2000, 20);
    let out = child.wait_with_output().expect("output");
    json!({
        "stdout": String::from_utf8_lossy(&out.stdout),
        "stderr": String::from_utf8_lossy(&out.stderr),
    })
}

/// The daemon's own word: stats on, no pass failed, its cost.
fn status(d: &ApiDaemon, report: &mut Value) {
    let st = d.ctl_json(&["status"]);
    assert_eq!(st["failed_passes"], 0, "{st}");
    assert_eq!(st["stats_state"], "enabled", "{st}");
    for key in [
        "passes",
        "late_passes",
        "pass_ns",
        "pass_cpu_ns",
        "daemon_peak_rss_bytes",
    ] {
        report[key] = st[key].clone();
    }
}

/// The daemon with its embedded defaults beside `n` socket filters for `secs` seconds: no late
/// pass, still alive, and what it cost.
fn device(n: usize, secs: u64) -> Value {
    let (release, _) = release();
    let fleet = Fleet::load("dev", n);
    let dir = open_tempdir();
    let socket = dir.path().join("private");
    let child = Reaped(
        Command::new(bin("ebpfstatd"))
            .args(["run", "--config", "/dev/null", "--bus", "none"])
            .arg("--db")
            .arg(dir.path().join("history.db"))
            .arg("--socket")
            .arg(&socket)
            .stdout(Stdio::null())
            .spawn()
            .expect("spawn ebpfstatd"),
    );
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(secs) {
        for i in 0..fleet.programs.len() {
            fleet.drive(i, 1);
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    let st = ctl_json_via(&["--socket".as_ref(), socket.as_os_str()], &["status"]);
    let pid = child.0.id();
    let hwm_kb = status_kb(pid, "VmHWM:");
    assert_eq!(st["failed_passes"], 0, "{st}");
    assert_eq!(st["late_passes"], 0, "no late pass: {st}");
    let programs = st["programs"].as_u64().expect("programs");
    let loaded = u64::try_from(n).expect("a count");
    assert!(programs >= loaded, "{programs} of {n} programs seen");
    json!({
        "kernel": release, "programs": programs, "seconds": secs,
        "vm_hwm_kib": hwm_kb, "passes": st["passes"], "pass_ns": st["pass_ns"],
        "pass_cpu_ns": st["pass_cpu_ns"], "missed_passes": st["missed_passes"],
        "db_bytes": st["db_bytes"],
    })
}
