//! A real `dbus-daemon` with a system-bus-like configuration that includes our policy file, a
//! real `ebpfstatd` serving on it, and users to call it as.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::{bin, ok};

/// A directory others may enter (tempdirs are 0700).
pub fn open_tempdir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    dir
}

fn wait_for(path: &Path, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !path.exists() {
        assert!(
            Instant::now() < deadline,
            "{what} never appeared at {}",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A private bus configured like Debian's system bus (method calls denied unless a policy
/// allows them) plus our policy.
#[derive(Debug)]
pub struct TestBus {
    child: Child,
    pub address: String,
    pub dir: tempfile::TempDir,
}

impl TestBus {
    pub fn start() -> Self {
        let dir = open_tempdir();
        let socket = dir.path().join("system_bus_socket");
        let config = dir.path().join("system.conf");
        // The policy the packages ship (`dbus/org.ebpfstat.Stats1.conf`), as the crate embeds it.
        let policy = dir.path().join("org.ebpfstat.Stats1.conf");
        std::fs::write(&policy, ebpfstat_dbus::POLICY_CONF).expect("write policy");
        std::fs::write(
            &config,
            format!(
                r#"<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-BUS Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <listen>unix:path={socket}</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="*"/>
    <deny own="*"/>
    <deny send_type="method_call"/>
    <allow send_type="signal"/>
    <allow send_requested_reply="true" send_type="method_return"/>
    <allow send_requested_reply="true" send_type="error"/>
    <allow receive_type="method_call"/>
    <allow receive_type="method_return"/>
    <allow receive_type="error"/>
    <allow receive_type="signal"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus.Introspectable"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus.Properties"/>
  </policy>
  <include>{policy}</include>
</busconfig>
"#,
                socket = socket.display(),
                policy = policy.display()
            ),
        )
        .expect("write bus config");
        let child = Command::new("dbus-daemon")
            .arg(format!("--config-file={}", config.display()))
            .arg("--nofork")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start dbus-daemon (apt install dbus-daemon)");
        wait_for(&socket, "the bus socket");
        Self {
            child,
            address: format!("unix:path={}", socket.display()),
            dir,
        }
    }
}

impl Drop for TestBus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `ebpfstatd run` on a bus and a private socket, with its own database.
#[derive(Debug)]
pub struct ApiDaemon {
    child: Child,
    pub socket: PathBuf,
    pub db: PathBuf,
    pub dir: tempfile::TempDir,
}

impl ApiDaemon {
    pub fn start(bus: Option<&TestBus>, interval: &str) -> Self {
        Self::start_on(bus, interval, None)
    }

    /// With extra flags.
    pub fn start_with(bus: Option<&TestBus>, interval: &str, extra: &[&str]) -> Self {
        Self::launch(bus, interval, None, extra)
    }

    /// With `db`, on an existing database.
    pub fn start_on(bus: Option<&TestBus>, interval: &str, db: Option<&Path>) -> Self {
        Self::launch(bus, interval, db, &[])
    }

    fn launch(bus: Option<&TestBus>, interval: &str, db: Option<&Path>, extra: &[&str]) -> Self {
        let dir = open_tempdir();
        let socket = dir.path().join("run/private");
        let db = db.map_or_else(|| dir.path().join("history.db"), Path::to_owned);
        let log = std::fs::File::create(dir.path().join("ebpfstatd.log")).expect("log");
        let child = Command::new(bin("ebpfstatd"))
            .arg("run")
            // Isolated from /etc/ebpfstat (the package tests install and edit it).
            .args(["--config", "/dev/null"])
            .arg("--db")
            .arg(&db)
            .arg("--socket")
            .arg(&socket)
            .args(["--bus", bus.map_or("none", |b| b.address.as_str())])
            .args(["--interval", interval, "--flush-interval", "1s"])
            .args(extra)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn ebpfstatd");
        wait_for(&socket, "the daemon's socket");
        if let Some(run) = socket.parent() {
            std::fs::set_permissions(run, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        }
        let d = Self {
            child,
            socket,
            db,
            dir,
        };
        d.wait_until_answering();
        d
    }

    /// Waits until the API answers a status call with a first pass taken (and so the daemon
    /// is on the bus too).
    fn wait_until_answering(&self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let out = Command::new(bin("ebpfstatctl"))
                .arg("--socket")
                .arg(&self.socket)
                .args(["--json", "status"])
                .output()
                .expect("ebpfstatctl");
            let passed = serde_json::from_slice::<serde_json::Value>(&out.stdout)
                .is_ok_and(|st| st.get("last_pass_ns").is_some());
            if out.status.success() && passed {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the daemon never answered: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("ebpfstatd.log")).unwrap_or_default()
    }

    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    pub fn stop(mut self) -> bool {
        // SAFETY: kill(2) on our own child.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        self.child.wait().is_ok_and(|s| s.success())
    }
}

impl Drop for ApiDaemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn exists(db: &str, key: &str) -> bool {
    Command::new("getent")
        .args([db, key])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Makes sure group `ebpfstat` and the user exist; the user joins the group if `member`.
pub fn ensure_user(name: &str, member: bool) {
    if !exists("group", ebpfstat_dbus::GROUP) {
        ok(Command::new("groupadd").args(["--system", ebpfstat_dbus::GROUP]));
    }
    if !exists("passwd", name) {
        ok(Command::new("useradd").args([
            "--system",
            "--no-create-home",
            "--shell",
            "/usr/sbin/nologin",
            name,
        ]));
    }
    if member {
        ok(Command::new("usermod").args(["-aG", ebpfstat_dbus::GROUP, name]));
    }
}

/// A copy of `ebpfstatctl` that any user can run (the build tree may be private).
pub fn public_ctl(dir: &Path) -> PathBuf {
    let path = dir.join("ebpfstatctl");
    std::fs::copy(bin("ebpfstatctl"), &path).expect("copy ctl");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    path
}

/// Runs `ctl args` as `user` (with its groups).
pub fn ctl_as(user: &str, ctl: &Path, args: &[&str]) -> std::process::Output {
    Command::new("setpriv")
        .args([
            &format!("--reuid={user}"),
            &format!("--regid={user}"),
            "--init-groups",
            "--",
        ])
        .arg(ctl)
        .args(args)
        .output()
        .expect("setpriv")
}
