//! The .deb under a real systemd with a real system bus: a Debian root made by debootstrap,
//! booted with systemd-nspawn (PID 1 of this machine is not systemd), driven with nsenter.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant, SystemTime};

use ebpfstat_store::Store;
use ebpfstat_tests::nspawn::{base_root, child_named, have, target};
use ebpfstat_tests::{built_package, ok, output, require_bpf, skip_or_fail, store_config};

struct Container {
    child: Child,
    init: u32,
    dir: PathBuf,
}

impl Container {
    fn boot(dir: &Path) -> Self {
        let child = Command::new("systemd-nspawn")
            .arg("-D")
            .arg(dir)
            .args([
                "--boot",
                "--register=no",
                "--keep-unit",
                "--capability=all",
                "--system-call-filter=bpf",
                "--console=passive",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("systemd-nspawn");
        let deadline = Instant::now() + Duration::from_secs(30);
        let init = loop {
            if let Some(pid) = child_named(child.id(), "systemd") {
                break pid;
            }
            assert!(
                Instant::now() < deadline,
                "the container's systemd never started"
            );
            std::thread::sleep(Duration::from_millis(100));
        };
        let c = Self {
            child,
            init,
            dir: dir.to_owned(),
        };
        // The init may not answer at once: ask until it does.
        let deadline = Instant::now() + Duration::from_secs(60);
        let state = loop {
            let out = c.run(&["systemctl", "is-system-running", "--wait"]);
            let state = String::from_utf8_lossy(&out.stdout).trim().to_owned();
            if !state.is_empty() && state != "starting" && state != "initializing" {
                break state;
            }
            assert!(
                Instant::now() < deadline,
                "the container never finished booting"
            );
            std::thread::sleep(Duration::from_millis(300));
        };
        assert!(
            matches!(state.as_str(), "running" | "degraded"),
            "system state {state}: {}",
            String::from_utf8_lossy(&c.run(&["systemctl", "--failed", "--no-pager"]).stdout)
        );
        c
    }

    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new("nsenter");
        c.arg("-t").arg(self.init.to_string()).arg("-a").args(args);
        c
    }

    fn run(&self, args: &[&str]) -> Output {
        output(&mut self.cmd(args))
    }

    fn ok(&self, args: &[&str]) -> String {
        ok(&mut self.cmd(args))
    }

    fn as_user(&self, user: &str, args: &[&str]) -> Output {
        let mut all = vec![
            "setpriv".to_owned(),
            format!("--reuid={user}"),
            format!("--regid={user}"),
            "--init-groups".to_owned(),
        ];
        all.extend(args.iter().map(|s| (*s).to_owned()));
        let refs: Vec<&str> = all.iter().map(String::as_str).collect();
        self.run(&refs)
    }

    fn show(&self, prop: &str) -> String {
        self.ok(&["systemctl", "show", "-p", prop, "--value", "ebpfstatd"])
            .trim()
            .to_owned()
    }

    fn wait_active(&self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while self.show("ActiveState") != "active" {
            assert!(Instant::now() < deadline, "ebpfstatd never became active");
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    fn status_json(&self) -> serde_json::Value {
        serde_json::from_str(&self.ok(&["ebpfstatctl", "--json", "status"])).expect("status JSON")
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        let _ = self.run(&["systemctl", "poweroff"]);
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A child process of `parent` with this comm.

#[test]
fn the_deb_runs_under_real_systemd_with_a_real_system_bus() {
    require_bpf!();
    let deb = built_package("deb");
    let missing: Vec<&str> = ["debootstrap", "systemd-nspawn", "nsenter"]
        .into_iter()
        .filter(|t| !have(t))
        .collect();
    if deb.is_none() || !missing.is_empty() {
        skip_or_fail(
            module_path!(),
            &format!(
                "needs target/packages/*.deb ({}) and {missing:?}",
                if deb.is_some() {
                    "found"
                } else {
                    "missing: run packaging/build"
                }
            ),
        );
        return;
    }
    let deb = deb.expect("deb");
    let dir = target().join(format!("nspawn/boot-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    ok(Command::new("cp").arg("-a").arg(base_root()).arg(&dir));
    std::fs::copy(&deb, dir.join("tmp/ebpfstat.deb")).expect("copy deb");
    ok(Command::new("chroot")
        .arg(&dir)
        .args(["dpkg", "-i", "/tmp/ebpfstat.deb"]));
    ok(Command::new("chroot")
        .arg(&dir)
        .args(["useradd", "--system", "-G", "ebpfstat", "member"]));
    ok(Command::new("chroot")
        .arg(&dir)
        .args(["useradd", "--system", "outsider"]));

    let c = Container::boot(&dir);
    // Type=notify: active means READY=1 came (first pass stored, API served).
    c.wait_active();
    assert_eq!(c.show("Type"), "notify");
    assert_eq!(
        c.show("StatusText").split(" · ").nth(3),
        Some("stats enabled")
    );

    // Root over the real system bus, and a member of the group, with the installed policy.
    let st = c.status_json();
    assert_eq!(st["stats_state"], "enabled");
    let bus = "unix:path=/run/dbus/system_bus_socket";
    let member = c.as_user(
        "member",
        &["ebpfstatctl", "--address", bus, "--json", "list"],
    );
    assert!(
        member.status.success(),
        "{}",
        String::from_utf8_lossy(&member.stderr)
    );
    let outsider = c.as_user("outsider", &["ebpfstatctl", "--address", bus, "status"]);
    assert!(!outsider.status.success());
    assert!(String::from_utf8_lossy(&outsider.stderr).contains("permission denied"));
    let outsider = c.as_user(
        "outsider",
        &["ebpfstatctl", "--socket", "/run/ebpfstat/private", "status"],
    );
    assert!(String::from_utf8_lossy(&outsider.stderr).contains("permission denied"));

    // The hardening is applied: only two capabilities, and the daemon's view of the
    // filesystem is read-only outside its state directory.
    let pid = c.show("MainPID");
    let caps = c.ok(&["grep", "CapEff", &format!("/proc/{pid}/status")]);
    assert!(
        caps.trim().ends_with("0000000000280000"),
        "CAP_SYS_ADMIN|CAP_SYS_PTRACE: {caps}"
    );
    let write = |path: &str| {
        c.run(&[
            "nsenter",
            "-t",
            &pid,
            "-m",
            "sh",
            "-c",
            &format!("echo x > {path} && rm {path}"),
        ])
    };
    assert!(!write("/usr/lib/ebpfstat-probe").status.success());
    assert!(!write("/etc/ebpfstat-probe").status.success());
    assert!(write("/var/lib/ebpfstat/probe").status.success());

    // SIGKILL: systemd restarts it, and the history is still there.
    std::thread::sleep(Duration::from_secs(2));
    let oldest = st["tier_raw_oldest_ns"].clone();
    c.ok(&["systemctl", "kill", "-s", "SIGKILL", "ebpfstatd"]);
    let deadline = Instant::now() + Duration::from_secs(20);
    while c.show("NRestarts") != "1" || c.show("ActiveState") != "active" {
        assert!(Instant::now() < deadline, "not restarted after SIGKILL");
        std::thread::sleep(Duration::from_millis(200));
    }
    let after = c.status_json();
    assert_eq!(
        after["tier_raw_oldest_ns"], oldest,
        "history intact after SIGKILL"
    );
    assert!(after["series"].as_u64() >= st["series"].as_u64());
    assert_eq!(
        after["previous_run_unclean"], true,
        "the run after a SIGKILL says so"
    );

    // `systemctl reload` reads the configuration again and writes what is buffered; the
    // daemon goes on (same process).
    let pid = c.show("MainPID");
    let flushed = c.status_json()["last_flush_ns"].as_i64();
    c.ok(&["systemctl", "reload", "ebpfstatd"]);
    assert_eq!(c.show("MainPID"), pid, "reloaded in place");
    assert_eq!(c.show("ActiveState"), "active");
    assert!(
        c.status_json()["last_flush_ns"].as_i64() > flushed,
        "reload flushes"
    );
    let journal = c.ok(&["journalctl", "-u", "ebpfstatd", "--no-pager"]);
    assert!(journal.contains("read again: nothing changed"), "{journal}");

    // `systemctl stop` writes what is buffered (flushes are a minute apart otherwise).
    std::thread::sleep(Duration::from_secs(3));
    let stopped_at = SystemTime::now();
    c.ok(&["systemctl", "stop", "ebpfstatd"]);
    let journal = c.ok(&["journalctl", "-u", "ebpfstatd", "--no-pager"]);
    assert!(
        journal.contains("SIGTERM: flushing and stopping"),
        "{journal}"
    );
    let store = Store::open(store_config(dir.join("var/lib/ebpfstat/history.db"))).expect("open");
    let newest = store.status().expect("status").tiers[0]
        .newest
        .expect("raw data");
    assert!(
        stopped_at.duration_since(newest).unwrap_or_default() < Duration::from_secs(3),
        "the last passes before the stop were written"
    );
    drop(store);

    // /metrics through socket activation: systemd opens the socket (on a free port here) and
    // passes it; the service's own sandbox stays AF_UNIX-only with IPAddressDeny=any.
    let port = ebpfstat_tests::engines::free_port();
    let dropin = dir.join("etc/systemd/system/ebpfstatd-metrics.socket.d");
    std::fs::create_dir_all(&dropin).expect("drop-in dir");
    std::fs::write(
        dropin.join("port.conf"),
        format!("[Socket]\nListenStream=\nListenStream=127.0.0.1:{port}\n"),
    )
    .expect("drop-in");
    c.ok(&["systemctl", "daemon-reload"]);
    c.ok(&["systemctl", "enable", "--now", "ebpfstatd-metrics.socket"]);
    c.ok(&["systemctl", "start", "ebpfstatd"]);
    c.wait_active();
    assert_eq!(c.show("RestrictAddressFamilies"), "AF_UNIX");
    assert_eq!(
        c.status_json()["metrics_listen"],
        format!("127.0.0.1:{port}").as_str()
    );
    // The container shares the host's network: scrape it from here.
    let (code, body) = ebpfstat_tests::engines::get(port, "/metrics").expect("scrape");
    let body = String::from_utf8_lossy(&body);
    assert_eq!(code, 200, "{body}");
    assert!(
        body.contains("# TYPE ebpfstat_passes_total counter"),
        "{body}"
    );
    assert!(
        body.contains("ebpfstat_stats_state{state=\"enabled\"} 1"),
        "{body}"
    );
}
