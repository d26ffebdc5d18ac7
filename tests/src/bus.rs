//! A real `dbus-daemon` with a system-bus-like configuration that includes our policy file, a
//! real `ebpfstatd` serving on it, and users to call it as.

use std::ffi::OsStr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use ebpfstat_dbus::Stats1Proxy;
use serde_json::Value;

use crate::{bin, ok};

/// A directory others may enter (tempdirs are 0700).
pub fn open_tempdir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    dir
}

/// Waits (up to 60 s: a daemon starting in an emulated guest is slow) for `path` to appear.
fn wait_for(path: &Path, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
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

/// `ebpfstatd run` on a bus and a private socket, with its own database (or a given one) and its
/// log in its own directory.
#[derive(Debug)]
pub struct ApiDaemon {
    child: Child,
    /// The private socket; `none` when started with [`ApiDaemon::spawn_unserved`].
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

    /// On `db` (an existing database), with extra flags.
    pub fn start_on_with(bus: Option<&TestBus>, interval: &str, db: &Path, extra: &[&str]) -> Self {
        Self::launch(bus, interval, Some(db), extra)
    }

    /// With `db`, on an existing database.
    pub fn start_on(bus: Option<&TestBus>, interval: &str, db: Option<&Path>) -> Self {
        Self::launch(bus, interval, db, &[])
    }

    /// On `db` with neither bus nor socket (`--bus none --socket none`): there is no API to
    /// wait for, so it is returned as soon as it is spawned — for tests that stop it at any
    /// moment, startup included.
    pub fn spawn_unserved(db: &Path, interval: &str, extra: &[&str]) -> Self {
        let dir = open_tempdir();
        let child = Self::command(None, interval, db, Path::new("none"), extra)
            .stderr(Self::log_file(&dir))
            .spawn()
            .expect("spawn ebpfstatd");
        Self {
            child,
            socket: PathBuf::from("none"),
            db: db.to_owned(),
            dir,
        }
    }

    /// On `db` (an existing database), with extra flags and `env` added to its environment.
    pub fn start_on_with_env(
        interval: &str,
        db: &Path,
        extra: &[&str],
        env: &[(&str, &str)],
    ) -> Self {
        Self::launch_with(None, interval, Some(db), extra, env)
    }

    fn launch(bus: Option<&TestBus>, interval: &str, db: Option<&Path>, extra: &[&str]) -> Self {
        Self::launch_with(bus, interval, db, extra, &[])
    }

    fn launch_with(
        bus: Option<&TestBus>,
        interval: &str,
        db: Option<&Path>,
        extra: &[&str],
        env: &[(&str, &str)],
    ) -> Self {
        let dir = open_tempdir();
        let socket = dir.path().join("run/private");
        let db = db.map_or_else(|| dir.path().join("history.db"), Path::to_owned);
        let child = Self::command(bus, interval, &db, &socket, extra)
            .envs(env.iter().copied())
            .stderr(Self::log_file(&dir))
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

    fn command(
        bus: Option<&TestBus>,
        interval: &str,
        db: &Path,
        socket: &Path,
        extra: &[&str],
    ) -> Command {
        let mut cmd = Command::new(bin("ebpfstatd"));
        cmd.arg("run")
            // Isolated from /etc/ebpfstat (the package tests install and edit it).
            .args(["--config", "/dev/null"])
            .arg("--db")
            .arg(db)
            .arg("--socket")
            .arg(socket)
            .args(["--bus", bus.map_or("none", |b| b.address.as_str())])
            .args(["--interval", interval, "--flush-interval", "1s"])
            .args(extra)
            .stdout(Stdio::null());
        cmd
    }

    fn log_file(dir: &tempfile::TempDir) -> std::fs::File {
        std::fs::File::create(dir.path().join("ebpfstatd.log")).expect("log")
    }

    /// Waits (up to 60 s, as [`wait_for`]) until the API answers a status call with a first
    /// pass taken (and so the daemon is on the bus too).
    fn wait_until_answering(&self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let out = ctl_output(&self.via(), &["status"]);
            let passed = serde_json::from_slice::<Value>(&out.stdout)
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

    fn via(&self) -> [&OsStr; 2] {
        ["--socket".as_ref(), self.socket.as_os_str()]
    }

    /// Waits (up to 60 s: a guest under emulation is slow) until the daemon has taken `n` more
    /// passes.
    pub fn wait_passes(&self, n: u64) {
        let count = || {
            self.ctl_json(&["status"])["passes"]
                .as_u64()
                .expect("passes")
        };
        let target = count() + n;
        let deadline = Instant::now() + Duration::from_secs(60);
        while count() < target {
            assert!(Instant::now() < deadline, "passes stopped:\n{}", self.log());
            // Each look runs the client: not so often that it starves the daemon in a guest.
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// `ebpfstatctl --socket <socket> --json args`, asserted to succeed, its output parsed.
    pub fn ctl_json(&self, args: &[&str]) -> Value {
        ctl_json_via(&self.via(), args)
    }

    /// `ebpfstatctl --socket <socket> --json args`, as it ran (for calls expected to fail).
    pub fn ctl(&self, args: &[&str]) -> Output {
        ctl_output(&self.via(), args)
    }

    /// `ebpfstatctl --socket <socket> args`, without `--json`, as it ran.
    pub fn ctl_text(&self, args: &[&str]) -> Output {
        Command::new(bin("ebpfstatctl"))
            .args(self.via())
            .args(args)
            .output()
            .expect("run ebpfstatctl")
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("ebpfstatd.log")).unwrap_or_default()
    }

    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    pub fn pid(&self) -> libc::pid_t {
        pid_of(&self.child)
    }

    pub fn signal(&self, sig: i32) {
        // SAFETY: kill(2) on our own child's pid.
        unsafe { libc::kill(pid_of(&self.child), sig) };
    }

    /// SIGTERM and wait; whether it exited cleanly.
    pub fn stop(self) -> bool {
        self.stop_logged().0
    }

    /// [`ApiDaemon::stop`], and its log including what it wrote while stopping.
    pub fn stop_logged(mut self) -> (bool, String) {
        self.signal(libc::SIGTERM);
        let clean = self.child.wait().is_ok_and(|s| s.success());
        (clean, self.log())
    }

    /// SIGTERM and wait, keeping its directory (socket path, database) for [`Self::start_again`].
    pub fn stop_in_place(&mut self) {
        self.signal(libc::SIGTERM);
        let _ = self.child.wait();
    }

    /// After [`Self::stop_in_place`]: the daemon again, on the same database and socket (no
    /// bus), with `extra` flags.
    pub fn start_again(&mut self, interval: &str, extra: &[&str]) {
        self.child = Self::command(None, interval, &self.db, &self.socket, extra)
            .stderr(Self::log_file(&self.dir))
            .spawn()
            .expect("spawn ebpfstatd");
        self.wait_until_answering();
    }

    /// SIGKILL and wait: no chance to write what is buffered.
    pub fn kill(mut self) {
        self.signal(libc::SIGKILL);
        let _ = self.child.wait();
    }
}

impl Drop for ApiDaemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `ebpfstatctl via --json args` (`via`: `--socket <path>` or `--address <bus>`), as it ran.
fn ctl_output(via: &[impl AsRef<OsStr>], args: &[&str]) -> Output {
    Command::new(bin("ebpfstatctl"))
        .args(via)
        .arg("--json")
        .args(args)
        .output()
        .expect("run ebpfstatctl")
}

/// `ebpfstatctl via --json args`, asserted to succeed, its output parsed.
pub fn ctl_json_via(via: &[impl AsRef<OsStr>], args: &[&str]) -> Value {
    let out = ctl_output(via, args);
    assert!(
        out.status.success(),
        "ebpfstatctl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("JSON")
}

/// The runs in the points of a JSON history answer, summed.
pub fn history_runs(history: &Value) -> u64 {
    history["points"]
        .as_array()
        .expect("points")
        .iter()
        .filter_map(|p| p["run_cnt"].as_u64())
        .sum()
}

/// The row for program `name` in a JSON array of program rows, if there is one.
pub fn find_by_name<'a>(rows: &'a Value, name: &str) -> Option<&'a Value> {
    rows.as_array()?.iter().find(|r| r["name"] == name)
}

/// The row for program `name` in a JSON array of program rows.
pub fn by_name<'a>(rows: &'a Value, name: &str) -> &'a Value {
    assert!(rows.is_array(), "not an array of rows: {rows}");
    find_by_name(rows, name).unwrap_or_else(|| panic!("{name} missing from {rows}"))
}

/// A proxy on a bus (the test bus, or the system bus's address).
pub async fn proxy_on(address: &str) -> (zbus::Connection, Stats1Proxy<'static>) {
    let conn = zbus::connection::Builder::address(address)
        .build()
        .await
        .expect("connect to the bus");
    let proxy = Stats1Proxy::new(&conn).await.expect("proxy");
    (conn, proxy)
}

/// A peer-to-peer proxy over the daemon's private socket.
pub async fn proxy_on_socket(socket: &Path) -> (zbus::Connection, Stats1Proxy<'static>) {
    let stream = std::os::unix::net::UnixStream::connect(socket).expect("connect");
    let conn = zbus::connection::Builder::unix_stream(stream)
        .p2p()
        .build()
        .await
        .expect("p2p");
    let proxy = Stats1Proxy::builder(&conn)
        .path(ebpfstat_dbus::OBJECT_PATH)
        .build()
        .await
        .expect("proxy");
    (conn, proxy)
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

/// A command running `program` as `user` (with its groups), through util-linux `setpriv`.
pub fn as_user(user: &str, program: &Path) -> Command {
    let mut cmd = Command::new("setpriv");
    cmd.args([
        &format!("--reuid={user}"),
        &format!("--regid={user}"),
        "--init-groups",
        "--",
    ])
    .arg(program);
    cmd
}

/// Runs `ctl args` as `user` (with its groups).
pub fn ctl_as(user: &str, ctl: &Path, args: &[&str]) -> Output {
    as_user(user, ctl).args(args).output().expect("setpriv")
}

/// A child's pid as `kill(2)` takes it.
pub fn pid_of(child: &Child) -> libc::pid_t {
    libc::pid_t::try_from(child.id()).expect("a pid fits pid_t")
}
