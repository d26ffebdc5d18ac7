//! The sampler against real programs in the real kernel, with exact run counts.

use std::collections::HashSet;
use std::io::{BufRead, BufReader};
use std::os::fd::AsFd;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use ebpfstat_tests::tracing;
use ebpfstat_tests::*;
use ebpfstatd::sampler::{Pass, ProgramSample, Sampler, SamplerConfig};
use serde_json::Value;

fn sampler() -> Sampler {
    Sampler::new(SamplerConfig {
        rescan_every: ebpfstatd::config::Effective::default().rescan_every,
    })
}

fn find(pass: &Pass, id: u32) -> &ProgramSample {
    pass.programs
        .iter()
        .find(|p| p.meta.id == id)
        .unwrap_or_else(|| panic!("program {id} missing from pass {}", pass.seq))
}

fn note_codes(p: &ProgramSample) -> Vec<&str> {
    p.context.notes.iter().map(|n| n.code.as_str()).collect()
}

#[test]
#[expect(
    clippy::too_many_lines,
    reason = "one scenario read top to bottom: each step checks what the step before left"
)]
fn exact_run_counts_names_maps_and_memory() {
    require_bpf!();
    let prefix = format!("ex{}_", tag());
    let fleet = Fleet::load(&prefix, 3);
    let mut sampler = sampler();

    let first = sampler.pass();
    assert_eq!(first.stats_state.to_string(), "enabled");
    assert!(first.errors.is_empty(), "errors: {:?}", first.errors);
    for p in &fleet.programs {
        let s = find(&first, p.id);
        assert_eq!(s.interval, None, "first sight is a baseline");
        assert_eq!(s.counters.run_cnt, 0);
    }

    fleet.drive(0, 5);
    fleet.drive(1, 17);
    let second = sampler.pass();
    let elapsed = second.elapsed_ns.expect("elapsed on the second pass");
    assert!(elapsed > 0);
    let own_comm = own_comm();
    let pid = std::process::id();
    for (i, (p, driven)) in fleet.programs.iter().zip([5u64, 17, 0]).enumerate() {
        let s = find(&second, p.id);
        let iv = s.interval.expect("interval on the second pass");
        assert_eq!(iv.delta_run_cnt, driven, "program {i}");
        assert_eq!(s.counters.run_cnt, driven);
        assert_eq!(iv.elapsed_ns, elapsed);
        if driven == 0 {
            assert_eq!(iv.delta_run_time_ns, 0);
            assert_eq!(iv.avg_ns_per_run, None);
        } else {
            assert!(iv.delta_run_time_ns > 0);
            let avg = iv.delta_run_time_ns as f64 / driven as f64;
            assert_eq!(iv.avg_ns_per_run, Some(avg));
            let cpu = iv.delta_run_time_ns as f64 * 100.0 / elapsed as f64;
            assert!((iv.cpu_pct - cpu).abs() < 1e-9);
            assert!((iv.cpu_pct_all_cores - cpu / f64::from(second.online_cpus)).abs() < 1e-9);
            assert!((iv.runs_per_sec - driven as f64 * 1e9 / elapsed as f64).abs() < 1e-6);
        }
        assert_eq!(s.meta.name, p.name);
        assert_eq!(s.meta.full_name, p.name);
        assert_eq!(s.meta.prog_type, "socket_filter");
        assert_eq!(s.meta.tag.len(), 16);
        assert!(s.meta.xlated_size > 0);

        let ids: HashSet<u32> = s.context.map_ids.iter().copied().collect();
        assert_eq!(ids, HashSet::from([p.own_map_id, fleet.shared_map_id]));
        let own = memlock_of(p.own_map.as_fd()).expect("own memlock");
        let shared = memlock_of(fleet.shared_map.as_fd()).expect("shared memlock");
        assert!(own > 0 && shared > 0);
        assert_eq!(s.context.map_memory.own, own);
        assert_eq!(s.context.map_memory.shared, shared);
        assert_eq!(s.context.map_memory.total, own + shared);
        assert!(note_codes(s).contains(&"shared_maps"));

        let owner = s
            .context
            .owners
            .iter()
            .find(|o| o.pid == pid)
            .expect("this test process owns the program");
        assert_eq!(owner.comm, own_comm);
    }
    let shared_map = second
        .maps
        .iter()
        .find(|m| m.id == fleet.shared_map_id)
        .expect("shared map listed");
    assert_eq!(shared_map.used_by_programs, 3);
    assert_eq!(shared_map.map_type, "array");
    assert_eq!((shared_map.key_size, shared_map.value_size), (4, 8));
    assert_eq!(shared_map.max_entries, 64);

    // Per owner, the shared map counts once.
    let me = second
        .owners
        .iter()
        .find(|o| o.owner.pid == pid)
        .expect("owner summary for this process");
    for p in &fleet.programs {
        assert!(me.program_ids.contains(&p.id));
        assert!(me.map_ids.contains(&p.own_map_id));
    }
    assert_eq!(
        me.map_ids
            .iter()
            .filter(|&&m| m == fleet.shared_map_id)
            .count(),
        1
    );
}

#[test]
fn unloaded_program_vanishes_and_new_one_is_counted_from_its_load() {
    require_bpf!();
    let prefix = format!("ul{}_", tag());
    let mut fleet = Fleet::load(&prefix, 2);
    let mut sampler = sampler();
    let first = sampler.pass();
    let gone = fleet.programs.remove(0);
    let gone_id = gone.id;
    drop(gone);

    // The kernel frees programs lazily (about a second): the pass must not fail meanwhile.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let pass = sampler.pass();
        assert!(pass.errors.is_empty(), "errors: {:?}", pass.errors);
        find(&pass, fleet.programs[0].id);
        if !pass.programs.iter().any(|p| p.meta.id == gone_id) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "program {gone_id} never vanished"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(find(&first, gone_id).interval.is_none());

    fleet.drive(0, 3);
    fleet.add(&format!("{prefix}n"), None);
    let new = fleet.programs[1].id;
    fleet.drive(1, 9);
    let pass = sampler.pass();
    // Stats were held on since before its load: it is counted from its load, its first
    // interval holds the runs since (no spike: they all came after the load).
    let first = find(&pass, new);
    assert!(first.meta.counted_from_load, "{:?}", first.meta);
    assert_eq!(first.interval.map(|i| i.delta_run_cnt), Some(9));
    assert_eq!(first.counters.run_cnt, 9);
    assert_eq!(
        find(&pass, fleet.programs[0].id)
            .interval
            .map(|i| i.delta_run_cnt),
        Some(3)
    );
    fleet.drive(1, 4);
    let pass = sampler.pass();
    assert_eq!(find(&pass, new).interval.map(|i| i.delta_run_cnt), Some(4));
}

#[test]
fn truncated_name_is_completed_from_btf() {
    require_bpf!();
    let mut fleet = Fleet::load(&format!("bt{}_", tag()), 0);
    let full = "ebpfstat_a_rather_long_function_name";
    fleet.add(&full[..15], Some(full));
    let id = fleet.programs[0].id;
    let pass = sampler().pass();
    let s = find(&pass, id);
    assert_eq!(s.meta.name, "ebpfstat_a_rath");
    assert_eq!(s.meta.full_name, full);
    assert!(s.meta.btf_id.is_some());
}

#[test]
fn pinned_and_kernel_held_programs_say_so() {
    require_bpf!();
    let bpffs = match Bpffs::mount() {
        Ok(m) => m,
        Err(e) => panic!("mounting bpffs: {e}"),
    };
    let t = tag();
    let pinned = load_program(PROG_TYPE_SOCKET_FILTER, &format!("pin{t}"), None, &[], 0);
    let pinned_id = prog_id(pinned.as_fd());
    let pin_path = bpffs.pin(pinned.as_fd(), "prog");
    drop(pinned);

    let attached = load_program(PROG_TYPE_SOCKET_FILTER, &format!("sock{t}"), None, &[], 0);
    let attached_id = prog_id(attached.as_fd());
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
    attach_filter(&socket, attached.as_fd()).expect("attach");
    drop(attached);

    let pass = sampler().pass();
    let p = find(&pass, pinned_id);
    assert!(p.context.owners.is_empty());
    assert_eq!(p.context.pins, vec![pin_path.display().to_string()]);
    let note = p
        .context
        .notes
        .iter()
        .find(|n| n.code.as_str() == "pinned_only")
        .expect("pinned_only note");
    assert!(
        note.text(&p.context.pins)
            .contains(&pin_path.display().to_string())
    );

    let s = find(&pass, attached_id);
    assert!(s.context.owners.is_empty() && s.context.pins.is_empty());
    assert!(note_codes(s).contains(&"no_holder"));
    drop(socket);
}

#[test]
fn cgroup_link_is_an_attach_point_and_its_holder_an_owner() {
    require_bpf!();
    let t = tag();
    let cgroup = TestCgroup::create(&format!("ebpfstat-test-{t}")).expect("test cgroup");
    let prog = load_program(PROG_TYPE_CGROUP_SKB, &format!("cg{t}"), None, &[], 1);
    let id = prog_id(prog.as_fd());
    let link = kernel::link_create(
        prog.as_fd(),
        std::os::fd::AsRawFd::as_raw_fd(&cgroup.dir).cast_unsigned(),
        ATTACH_CGROUP_INET_INGRESS,
    )
    .expect("BPF_LINK_CREATE");
    drop(prog); // only the link fd holds it now

    let pass = sampler().pass();
    let s = find(&pass, id);
    assert_eq!(s.meta.prog_type, "cgroup_skb");
    assert_eq!(s.context.attach.len(), 1);
    let a = &s.context.attach[0];
    assert_eq!(a.link_type, "cgroup");
    assert_eq!(a.attach_type, Some("cgroup_inet_ingress"));
    assert_eq!(a.target, cgroup.relative);
    assert!(
        s.context.owners.iter().any(|o| o.pid == std::process::id()),
        "the link fd makes this process an owner"
    );
    drop(link);
}

fn spawn_sample(args: &[&str]) -> std::process::Child {
    Command::new(bin("ebpfstatd"))
        .arg("sample")
        .args(args)
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn ebpfstatd sample")
}

fn json_program(pass: &Value, id: u32) -> &Value {
    pass["programs"]
        .as_array()
        .expect("programs array")
        .iter()
        .find(|p| p["id"] == id)
        .unwrap_or_else(|| panic!("program {id} missing"))
}

#[test]
fn sample_json_reports_exact_deltas() {
    require_bpf!();
    let fleet = Fleet::load(&format!("js{}_", tag()), 2);
    let mut child = spawn_sample(&["--json", "--count", "2", "--interval", "2s"]);
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let first: Value =
        serde_json::from_str(&lines.next().expect("line 1").expect("read")).expect("json");
    fleet.drive(0, 7);
    fleet.drive(1, 2);
    let second: Value =
        serde_json::from_str(&lines.next().expect("line 2").expect("read")).expect("json");
    assert!(child.wait().expect("wait").success());

    assert_eq!(first["stats_state"], "enabled");
    // What the kernel's figure is (docs/kernels.md): a usage estimate from 6.4.
    let release = first["kernel"]["release"].as_str().expect("release");
    let since_6_4 =
        ebpfstatd::sampler::host::parse_major_minor(release).is_some_and(|v| v >= (6, 4));
    let meaning = if since_6_4 { "estimate" } else { "max-size" };
    assert_eq!(first["kernel"]["memlock"], meaning);
    let p0 = json_program(&first, fleet.programs[0].id);
    // A baseline: no interval, so no span and nothing counted over it (docs/json.md).
    assert!(p0["span_ns"].is_null() && p0["run_cnt"].is_null(), "{p0}");
    for key in [
        "id",
        "name",
        "full_name",
        "prog_type",
        "tag",
        "load_time_ns",
        "since_load",
        "map_ids",
        "map_memory_bytes",
        "map_memory_own_bytes",
        "map_memory_shared_bytes",
        "owners",
        "notes",
    ] {
        assert!(p0.get(key).is_some(), "missing {key}");
    }
    let owner = &p0["owners"][0];
    assert_eq!(owner["pid"], std::process::id());
    assert_eq!(owner["comm"], own_comm());
    assert!(owner.get("unit").is_some());

    for (p, n) in fleet.programs.iter().zip([7u64, 2]) {
        let s = json_program(&second, p.id);
        assert_eq!(s["run_cnt"], n);
        assert_eq!(s["since_load"]["run_cnt"], n);
        assert!(s["run_time_ns"].as_u64().expect("run time") > 0);
        assert_eq!(s["span_ns"], second["elapsed_ns"]);
        assert_eq!(s["name"], p.name.as_str());
    }
}

/// Runs `ebpfstatd sample --json` without CAP_SYS_ADMIN and returns its one pass.
fn sample_without_sys_admin() -> Value {
    let out = Command::new("setpriv")
        .args([
            "--bounding-set",
            "-sys_admin",
            "--inh-caps",
            "-sys_admin",
            "--",
        ])
        .arg(bin("ebpfstatd"))
        .args(["sample", "--json"])
        .output()
        .expect("run setpriv");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("json")
}

#[test]
fn missing_capability_is_reported_precisely() {
    require_bpf!();
    let pass = sample_without_sys_admin();
    let state = pass["stats_state"].as_str().expect("state");
    // Another test may hold the sysctl at 1 for a moment; both answers name the cause.
    if state != "enabled-by-sysctl" {
        assert!(
            state.starts_with("unavailable: BPF_ENABLE_STATS failed"),
            "{state}"
        );
        assert!(state.contains("CAP_SYS_ADMIN"), "{state}");
    }
    assert_eq!(pass["programs"].as_array().map(Vec::len), Some(0));
    let errors: Vec<&str> = pass["errors"]
        .as_array()
        .expect("errors")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(errors.len(), 3, "{errors:?}");
    for (e, what) in errors.iter().zip(["programs", "links", "maps"]) {
        assert!(e.starts_with(&format!("cannot enumerate {what}: ")), "{e}");
        assert!(e.contains("Operation not permitted"), "{e}");
        assert!(e.ends_with("(needs CAP_SYS_ADMIN)"), "{e}");
    }
}

/// Restores `kernel.bpf_stats_enabled` even if the test fails.
struct SysctlGuard(String);

impl Drop for SysctlGuard {
    fn drop(&mut self) {
        let _ = std::fs::write("/proc/sys/kernel/bpf_stats_enabled", &self.0);
    }
}

#[test]
fn stats_enabled_by_sysctl_is_recognised() {
    require_bpf!();
    let path = "/proc/sys/kernel/bpf_stats_enabled";
    let old = std::fs::read_to_string(path).expect("read sysctl");
    let _guard = SysctlGuard(old);
    std::fs::write(path, "1").expect("write sysctl");
    let pass = sample_without_sys_admin();
    assert_eq!(pass["stats_state"], "enabled-by-sysctl");
}

#[test]
fn xdp_link_names_its_interface() {
    require_bpf!();
    // XDP_PASS on loopback: traffic is unaffected while the link exists.
    let prog = load_program(PROG_TYPE_XDP, &format!("xdp{}", tag()), None, &[], 2);
    let id = prog_id(prog.as_fd());
    let link = kernel::link_create(prog.as_fd(), 1, ATTACH_XDP).expect("XDP link on lo");
    let pass = sampler().pass();
    let s = find(&pass, id);
    assert_eq!(s.meta.prog_type, "xdp");
    let a = &s.context.attach;
    assert_eq!(a.len(), 1);
    assert_eq!(a[0].link_type, "xdp");
    assert_eq!(a[0].target, "lo (ifindex 1)");
    drop(link);
}

/// Tracers attach without links: a tracepoint through a perf event, a raw tracepoint by
/// `BPF_RAW_TRACEPOINT_OPEN`. Both are named, with the exact runs of the syscalls made.
#[test]
fn perf_event_and_raw_tracepoint_attachments_are_named() {
    require_bpf!();
    let tp = tracing::tracepoint(
        "syscalls",
        "sys_enter_ioprio_get",
        &format!("tpio{}", tag()),
    );
    let raw = tracing::raw_tracepoint("oom_score_adj_update", &format!("rawoom{}", tag()));
    let mut sampler = sampler();
    let base = sampler.pass();
    let runs = |pass: &Pass, id: u32| find(pass, id).counters.run_cnt;
    let (tp0, raw0) = (runs(&base, tp.id), runs(&base, raw.id));
    // ioprio_get and setting our OOM score: what nothing else on this host does while we do
    // (renaming a thread was not: the test harness names each test's thread as it starts).
    for _ in 0..7 {
        // SAFETY: ioprio_get(IOPRIO_WHO_PROCESS, 0) reads our own priority; no memory passed.
        unsafe { libc::syscall(libc::SYS_ioprio_get, 1, 0) };
    }
    let adj = std::fs::read_to_string("/proc/self/oom_score_adj").expect("oom_score_adj");
    for _ in 0..5 {
        std::fs::write("/proc/self/oom_score_adj", adj.trim()).expect("the same score again");
    }
    let pass = sampler.pass();
    assert_eq!(runs(&pass, tp.id) - tp0, 7);
    assert_eq!(runs(&pass, raw.id) - raw0, 5);

    let attach = &find(&pass, tp.id).context.attach;
    assert_eq!(attach.len(), 1, "{attach:?}");
    assert_eq!(
        (
            attach[0].link_type,
            attach[0].attach_type,
            attach[0].target.as_str()
        ),
        ("perf_event", Some("tracepoint"), "sys_enter_ioprio_get")
    );
    let attach = &find(&pass, raw.id).context.attach;
    assert_eq!(attach.len(), 1, "{attach:?}");
    assert_eq!(attach[0].target, "oom_score_adj_update", "{attach:?}");
    assert!(
        matches!(attach[0].link_type, "raw_tracepoint" | "perf_event"),
        "{attach:?}"
    );
    // The holder is this process, through the perf event.
    let owners = &find(&pass, tp.id).context.owners;
    assert!(
        owners.iter().any(|o| o.pid == std::process::id()),
        "{owners:?}"
    );
    if !tracing::kprobes_available() {
        eprintln!(
            "kprobes: /sys/kernel/tracing/kprobe_events is missing on this kernel, so no kprobe \
             or uprobe attachment is tested here"
        );
    }
}

/// libbpf (≥ 0.7, on 5.15+) attaches a tracepoint through a perf-event link made from a perf
/// event it may keep open: the link is the one attach point, named as the tracepoint, whether
/// the perf fd is kept or closed. Before 6.6 the kernel does not name a link, only a kept perf
/// fd (`BPF_TASK_FD_QUERY`): with it closed the link says so.
#[test]
fn a_tracepoint_through_a_perf_event_link_shows_once() {
    require_bpf!();
    const TP: &str = "sys_enter_sched_rr_get_interval";
    let t = tag();
    let kept = tracing::tracepoint_link("syscalls", TP, &format!("tplk{t}"), true);
    let closed = tracing::tracepoint_link("syscalls", TP, &format!("tplc{t}"), false);
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").expect("osrelease");
    let named_by_kernel =
        ebpfstatd::sampler::host::parse_major_minor(release.trim()).is_some_and(|v| v >= (6, 6));
    let mut sampler = sampler();
    let base = sampler.pass();
    let runs = |pass: &Pass, id: u32| find(pass, id).counters.run_cnt;
    // sched_rr_get_interval: what nothing else on this host calls while we do (the tracepoint's
    // programs run on every CPU, whatever the CPU its perf event was opened on).
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    for _ in 0..6 {
        // SAFETY: sched_rr_get_interval(0, &ts) writes our own interval into `ts`, alive here.
        unsafe { libc::syscall(libc::SYS_sched_rr_get_interval, 0, &raw mut ts) };
    }
    let pass = sampler.pass();
    for (a, how) in [(&kept, "perf fd kept"), (&closed, "perf fd closed")] {
        assert_eq!(runs(&pass, a.id) - runs(&base, a.id), 6, "{how}");
        let attach = &find(&pass, a.id).context.attach;
        assert_eq!(attach.len(), 1, "{how}: {attach:?}");
        let p = &attach[0];
        assert_eq!(p.link_id, link_id(a.attachment.as_fd()), "{how}: {p:?}");
        let target = if named_by_kernel || a.perf_event.is_some() {
            TP
        } else {
            ebpfstatd::sampler::links::PERF_LINK_UNNAMED
        };
        assert_eq!(
            (p.link_type, p.attach_type, p.target.as_str()),
            ("perf_event", Some("tracepoint"), target),
            "{how}, on Linux {}",
            release.trim()
        );
    }
    eprintln!(
        "Linux {}: perf fd kept {:?}, closed {:?}",
        release.trim(),
        find(&pass, kept.id).context.attach,
        find(&pass, closed.id).context.attach
    );
}

/// The `link_id:` of a link fd this process holds, from its fdinfo (5.8+).
fn link_id(link: std::os::fd::BorrowedFd<'_>) -> u32 {
    use std::os::fd::AsRawFd;
    let path = format!("/proc/self/fdinfo/{}", link.as_raw_fd());
    let info = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    info.lines()
        .find_map(|l| l.strip_prefix("link_id:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no link_id in {path}: {info}"))
}
