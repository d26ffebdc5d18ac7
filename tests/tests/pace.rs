//! Pacing: passes slower than the sampler budget stretch the interval, say so in the log and
//! in status, and quick passes bring it back; a pass's time is the sampling thread's CPU time,
//! so a sampler kept from a core does not stretch it. A file of its own: its thousands of
//! programs would slow the passes of tests running beside it.

use std::time::{Duration, Instant};

use ebpfstat_tests::bus::ApiDaemon;
use ebpfstat_tests::terminal::{on_pty, visible};
use ebpfstat_tests::*;
use serde_json::Value;

/// The two tests run one after the other: every daemon reads every program on the host, so the
/// first one's 3000 programs made the second one's passes cost 15 ms of CPU each.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn one_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    // A test that failed holding it poisons it; the next still runs alone.
    ONE_AT_A_TIME
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn ns(v: &Value, key: &str) -> u64 {
    v[key].as_u64().unwrap_or_else(|| panic!("{key} in {v}"))
}

/// Status, polled until `done` says yes (at most `limit`).
fn status_until(d: &ApiDaemon, limit: Duration, done: impl Fn(&Value) -> bool) -> Value {
    let until = Instant::now() + limit;
    loop {
        let s = d.ctl_json(&["status"]);
        if done(&s) {
            return s;
        }
        assert!(Instant::now() < until, "gave up waiting; status: {s}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn slow_passes_stretch_the_interval_and_quick_ones_bring_it_back() {
    require_bpf!();
    let _alone = one_at_a_time();
    // Passes at 100 ms may take 1 % of one core: 1 ms each. A pass over 3000 programs makes
    // 12 000 syscalls (a microsecond or more each), so it cannot fit.
    let fleet = Fleet::load(&format!("pc{}_", tag()), 3000);
    let d = ApiDaemon::start_with(None, "100ms", &["--sampler-budget", "1%"]);
    let interval = 100_000_000;
    let s = status_until(&d, Duration::from_secs(60), |s| {
        ns(s, "paced_interval_ns") > interval
    });
    assert_eq!(
        ns(&s, "interval_ns"),
        interval,
        "the configured interval stays"
    );
    let paced = ns(&s, "paced_interval_ns");
    assert_eq!(paced % interval, 0, "a whole multiple: {s}");
    // 12 000 syscalls a pass are more CPU than the 1 ms allowed at 100 ms.
    assert!(ns(&s, "pass_cpu_ns") > 1_000_000, "{s}");
    assert_eq!(s["sampler_budget_pct"].as_f64(), Some(1.0), "{s}");
    let log = d.log();
    assert!(
        log.contains(
            "more than the sampler budget (1% of one core) allows at 100ms: sampling every"
        ),
        "{log}"
    );
    // What a person sees.
    let socket = d.socket.to_str().expect("utf-8");
    let (screen, code) = on_pty(&bin("ebpfstatctl"), &["--socket", socket, "status"], 160);
    assert_eq!(code, 0, "{screen}");
    let screen = visible(&screen);
    let line = screen
        .lines()
        .find(|l| l.starts_with("sampling: every "))
        .unwrap_or_else(|| panic!("{screen}"));
    assert!(
        line.contains("(stretched from 100ms: passes take ")
            && line.contains(" of CPU (")
            && line.contains("over the sampler budget of 1.00% of one core)"),
        "{line}"
    );

    // Without the programs, passes fit again and the interval comes back.
    drop(fleet);
    let s = status_until(&d, Duration::from_secs(90), |s| {
        ns(s, "paced_interval_ns") == interval
    });
    assert!(ns(&s, "pass_cpu_ns") < 1_000_000, "{s}");
    let log = d.log();
    assert!(log.contains("back to sampling every 100ms"), "{log}");
    assert!(d.stop());
}

/// A cgroup v1 `cpu` group holding one thread to `quota` of each period; the thread goes back
/// to the root group and the group is removed on drop.
struct CpuQuota {
    dir: std::path::PathBuf,
    tid: String,
}

impl CpuQuota {
    /// `None` where the cgroup v1 `cpu` controller is not mounted.
    fn hold(tid: &str, quota_us: u64, period_us: u64) -> Option<Self> {
        let root = std::path::Path::new("/sys/fs/cgroup/cpu");
        if !root.join("tasks").exists() {
            return None;
        }
        let dir = root.join(format!("ebpfstat-pace-{}", tag()));
        std::fs::create_dir(&dir).expect("mkdir cgroup");
        let q = Self {
            dir,
            tid: tid.to_owned(),
        };
        let write = |f: &str, v: &str| std::fs::write(q.dir.join(f), v).expect(f);
        write("cpu.cfs_period_us", &period_us.to_string());
        write("cpu.cfs_quota_us", &quota_us.to_string());
        write("tasks", tid);
        Some(q)
    }
}

impl Drop for CpuQuota {
    fn drop(&mut self) {
        let _ = std::fs::write("/sys/fs/cgroup/cpu/tasks", &self.tid);
        let _ = std::fs::remove_dir(&self.dir);
    }
}

/// The daemon's thread named `name`.
fn thread_named(pid: libc::pid_t, name: &str) -> String {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .expect("tasks")
        .filter_map(Result::ok)
        .find(|t| std::fs::read_to_string(t.path().join("comm")).is_ok_and(|c| c.trim() == name))
        .map(|t| t.file_name().to_string_lossy().into_owned())
        .unwrap_or_else(|| panic!("no thread {name}"))
}

#[test]
fn a_sampler_kept_from_a_core_does_not_stretch_the_interval() {
    require_bpf!();
    let _alone = one_at_a_time();
    // Passes that cost more than the quota below gives the thread (a host with nothing loaded
    // makes passes of 0.17 ms: ten a second fit in 2 ms, and nothing is held back).
    let _fleet = Fleet::load(&format!("pq{}_", tag()), 100);
    // 10 % of 100 ms: passes may take 10 ms of CPU each, 10 times what they take here.
    let d = ApiDaemon::start_with(None, "100ms", &["--sampler-budget", "10%"]);
    let interval = 100_000_000;
    // The sampling thread gets 2 ms of CPU a second: a pass waits for its share most of a
    // second, as on a host busy with something else, while its work stays the same.
    let sampler = thread_named(d.pid(), "sampler");
    let Some(_quota) = CpuQuota::hold(&sampler, 2_000, 1_000_000) else {
        skip_or_fail(module_path!(), "no cgroup v1 cpu controller");
        return;
    };
    let before = ns(&d.ctl_json(&["status"]), "passes");
    // Two windows of passes judged while held back.
    let s = status_until(&d, Duration::from_secs(180), |s| {
        ns(s, "passes") >= before + 40
    });
    // The scenario: passes waited longer than the budget allows (a pacing by wall time
    // would stretch the interval now), while their CPU time fits.
    assert!(ns(&s, "pass_ns") > 10_000_000, "{s}");
    assert!(ns(&s, "pass_cpu_ns") < 10_000_000, "{s}");
    assert_eq!(ns(&s, "paced_interval_ns"), interval, "{s}");
    let log = d.log();
    assert!(!log.contains("more than the sampler budget"), "{log}");
    assert!(d.stop());
}
