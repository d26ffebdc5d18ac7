//! Profiles on this machine's kernel: the histogram's buckets as the kernel computes them, the
//! errors a person gets (no BTF; a kernel that refuses tracing programs, as this VM's does), and
//! who may ask. The profiles themselves run on Debian's kernels, which allow fentry on BPF
//! programs (`kernel-check`, booted by `tests/guests/tests/kernels.rs`).

use std::os::fd::AsFd;
use std::os::unix::fs::PermissionsExt;
use std::process::Command;
use std::time::{Duration, Instant};

use ebpfstat_tests::bus::{ApiDaemon, TestBus};
use ebpfstat_tests::profiled::{SlowPathFilter, tracing_links_of};
use ebpfstat_tests::*;
use ebpfstatd::bpf::insn::{Asm, op};
use ebpfstatd::bpf::sys::{self, ProgSpec};
use ebpfstatd::profile;
use ebpfstatd::profile::histogram::{MAX_NS, bucket_of};
use ebpfstatd::profile::programs::bucket;

/// The bucket the fexit program's instructions give `ns`, run by this kernel: a socket filter
/// with `ns` in r7 and the same instructions, returning the bucket.
fn kernel_bucket(ns: u64) -> u32 {
    const DONE: u32 = 1;
    let mut a = Asm::default();
    let low = u32::try_from(ns & 0xffff_ffff).expect("32 bits");
    let high = u32::try_from(ns >> 32).expect("32 bits");
    a.op(op::LD_IMM64, 7, 0, 0, low.cast_signed())
        .op(0, 0, 0, 0, high.cast_signed());
    bucket(&mut a, DONE);
    a.label(DONE)
        .op(op::MOV_REG, 0, 2, 0, 0)
        .op(op::EXIT, 0, 0, 0, 0);
    let prog = sys::prog_load(&ProgSpec {
        prog_type: PROG_TYPE_SOCKET_FILTER,
        insns: &a.finish().expect("assembled"),
        name: "bucket_check",
        btf: None,
        attach: None,
        attach_prog: None,
    })
    .expect("the verifier takes the bucket instructions");
    sys::prog_test_run(prog.as_fd(), &[0u8; 64], 1)
        .expect("test run")
        .retval
}

#[test]
fn the_kernel_files_durations_in_the_buckets_the_daemon_reads() {
    require_bpf!();
    let mut values: Vec<u64> = (0..40).collect();
    for e in 4..40 {
        let p = 1u64 << e;
        values.extend([p - 1, p, p + 1, p + p / 3, p + p / 2 + 7]);
    }
    values.push(MAX_NS);
    for ns in values.into_iter().filter(|v| *v <= MAX_NS) {
        assert_eq!(
            kernel_bucket(ns) as usize,
            bucket_of(ns),
            "{ns} ns: the kernel's bucket"
        );
    }
}

#[test]
fn the_test_filter_takes_its_slow_path_on_long_packets_only() {
    require_bpf!();
    let f = SlowPathFilter::load("profpaths");
    // Runs are counted while stats are on.
    let _stats = ebpfstatd::sampler::stats::StatsSwitch::acquire(std::path::Path::new("/proc"));
    let ns = |len: usize| {
        let packet = vec![0u8; len];
        sys::prog_test_run(f.prog.as_fd(), &packet, 2000)
            .expect("test run")
            .duration_ns
    };
    let (short, long) = (ns(64), ns(164));
    eprintln!("short {short} ns, long {long} ns per run");
    assert!(long > 10 * short.max(1), "short {short} ns, long {long} ns");
    assert_eq!(f.drive(40, 20), 2);
}

/// The daemon's own programs, which nothing may leave behind.
const OWN: [&str; 3] = [profile::ENTRY_NAME, profile::EXIT_NAME, profile::CAL_NAME];

fn own_programs_listed(d: &ApiDaemon) -> Vec<String> {
    d.ctl_json(&["list", "--all"])["programs"]
        .as_array()
        .expect("rows")
        .iter()
        .filter_map(|r| r["name"].as_str())
        .filter(|n| OWN.contains(n))
        .map(str::to_owned)
        .collect()
}

#[test]
fn a_program_without_btf_or_a_kernel_without_tracing_is_said_in_words() {
    require_bpf!();
    let d = ApiDaemon::start(None, "200ms");
    let _plain = Fleet::load("pnb", 1);
    let slow = SlowPathFilter::load("profslow");
    d.wait_passes(2);

    let out = d.ctl_text(&["profile", "pnb0", "--for", "1s"]);
    let err = String::from_utf8_lossy(&out.stderr);
    eprintln!("{err}");
    assert!(
        !out.status.success()
            && err.contains("not supported: pnb0 (id ")
            && err.contains("was loaded without BTF")
            && err.contains("Programs loaded with BTF can be profiled"),
        "{err}"
    );
    let out = d.ctl_text(&["profile", "profslow", "--for", "11m"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("a profile lasts from 100ms to 10m"), "{err}");

    // This machine's kernel refuses tracing programs: said, with what profiling needs.
    let out = d.ctl(&["profile", "profslow", "--for", "2s"]);
    let err = String::from_utf8_lossy(&out.stderr);
    eprintln!("{err}");
    if out.status.success() {
        // A kernel that traces: the runs are counted (the guests check the rest).
        let p: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
        assert_eq!(p["runs"], p["kernel_runs"], "{p}");
    } else {
        assert!(
            err.contains("not supported: the kernel refused to trace profslow (id ")
                && err.contains("BPF trampolines"),
            "{err}"
        );
    }
    drop(slow);
    let deadline = Instant::now() + Duration::from_secs(10);
    while tracing_links_of(&OWN) > 0 || !own_programs_listed(&d).is_empty() {
        assert!(Instant::now() < deadline, "{:?}", own_programs_listed(&d));
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn as_nobody(args: &[&std::ffi::OsStr]) -> std::process::Output {
    Command::new("setpriv")
        .args(["--reuid=nobody", "--regid=nogroup", "--clear-groups"])
        .arg(bin("ebpfstatctl"))
        .args(args)
        .output()
        .expect("setpriv")
}

#[test]
fn an_unprivileged_caller_is_refused_on_the_bus_and_the_private_socket() {
    require_bpf!();
    let bus = TestBus::start();
    let d = ApiDaemon::start(Some(&bus), "200ms");
    let _slow = SlowPathFilter::load("profnobody");
    d.wait_passes(2);
    // The socket opened to everyone: the daemon's own check of its peer refuses.
    // The bus's socket is reachable too: its policy refuses.
    for path in [d.dir.path(), d.socket.as_path(), bus.dir.path()] {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o777)).expect("chmod");
    }
    let address = bus.address.clone();
    for via in [
        ["--socket".as_ref(), d.socket.as_os_str()],
        ["--address".as_ref(), address.as_ref()],
    ] {
        let mut args: Vec<&std::ffi::OsStr> = via.to_vec();
        args.extend(["profile", "profnobody", "--for", "1s"].map(std::ffi::OsStr::new));
        let out = as_nobody(&args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success()
                && err.contains("permission denied: querying ebpfstatd needs root or membership"),
            "{via:?}: {err}"
        );
    }
    assert_eq!(tracing_links_of(&OWN), 0);
}

#[test]
fn shift_p_in_the_live_view_profiles_the_selected_program_in_a_box() {
    require_bpf!();
    if !terminal::Tmux::available("shift_p_in_the_live_view") {
        return;
    }
    let d = ApiDaemon::start(None, "200ms");
    let slow = SlowPathFilter::load("proflive");
    d.wait_passes(2);
    let t = terminal::Tmux::start(100, 30);
    t.type_line(&format!(
        "{} --socket {} top --name proflive",
        bin("ebpfstatctl").display(),
        d.socket.display()
    ));
    // The view's own words: the typed command line holds the name too, and a key sent while
    // the shell still reads the line is lost when the view takes the terminal.
    t.wait_for("the program's row", |s| s.contains("1 of 1 programs"));
    t.keys(&["P"]);
    let box_ = t.wait_for("the profile box", |s| s.contains("profile (Esc closes)"));
    eprintln!("{box_}");
    // Runs while a kernel that traces times them (this one refuses at once).
    slow.drive(100, 10);
    // The answer: this machine's kernel refuses tracing programs, a Debian kernel traces.
    let done = t.wait_for("the profile's answer", |s| {
        s.contains("not itself a tracing program") || s.contains("runs traced over")
    });
    eprintln!("{done}");
    if done.contains("runs traced over") {
        assert!(done.contains("P99.9"), "{done}");
    }
    t.keys(&["Escape"]);
    let after = t.wait_for("the box closed", |s| !s.contains("profile (Esc closes)"));
    assert!(after.contains("proflive"), "the table again:\n{after}");
    t.keys(&["q"]);
}
