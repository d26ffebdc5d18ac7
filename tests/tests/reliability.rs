//! Faults a device meets and what an adversary on the machine can do, reproduced for real
//! against the real daemon: each test names what must hold.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use ebpfstat_tests::bus::{ApiDaemon, ctl_json_via, open_tempdir};
use ebpfstat_tests::*;

/// `ebpfstatd run` on `db` and `socket`, no bus, as `sh -c` with `umask` first (and what else
/// `umask` is followed by: `"077; ulimit -n 1024"`).
fn daemon_command(umask: &str, db: &Path, socket: &Path, extra: &[&str]) -> Command {
    daemon_after(
        &format!("umask {umask}"),
        &bin("ebpfstatd"),
        (db, socket),
        extra,
    )
}

/// Waits (up to 10 s) until a daemon answers `status` on `socket`.
fn wait_answering(socket: &Path) {
    let deadline = Instant::now() + Duration::from_secs(10);
    let via = ["--socket".as_ref(), socket.as_os_str()];
    while !Command::new(bin("ebpfstatctl"))
        .args(via)
        .args(["--json", "status"])
        .output()
        .is_ok_and(|o| o.status.success())
    {
        assert!(
            Instant::now() < deadline,
            "no daemon answers on {}",
            socket.display()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o7777
}

#[test]
fn a_second_instance_leaves_a_live_socket_alone_and_sockets_go_on_exit() {
    require_bpf!();
    let first = ApiDaemon::start(None, "200ms");
    let dir = open_tempdir();
    // Another database, the same socket: refused, with the reason.
    let out = output(&mut daemon_command(
        "077",
        &dir.path().join("other.db"),
        &first.socket,
        &[],
    ));
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&first.socket.display().to_string())
            && err.contains("a running daemon answers on it"),
        "{err}"
    );
    // The first still answers there.
    let via = ["--socket".as_ref(), first.socket.as_os_str()];
    assert!(ctl_json_via(&via, &["status"])["passes"].as_u64() > Some(0));
    // A clean exit removes its socket.
    let socket = first.socket.clone();
    assert!(first.stop());
    assert!(!socket.exists(), "{} left behind", socket.display());

    // A socket file nobody answers on (its daemon was killed) is replaced.
    let stale = dir.path().join("stale");
    drop(std::os::unix::net::UnixListener::bind(&stale).expect("bind"));
    assert!(stale.exists());
    let child = Reaped(
        daemon_command("077", &dir.path().join("h.db"), &stale, &[])
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn"),
    );
    wait_answering(&stale);
    assert!(child.stop());
    assert!(!stale.exists());

    // A file that is not a socket is not removed.
    let plain = dir.path().join("plain");
    std::fs::write(&plain, "keep me").expect("write");
    let out = output(&mut daemon_command(
        "077",
        &dir.path().join("p.db"),
        &plain,
        &[],
    ));
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("not a socket"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(std::fs::read_to_string(&plain).expect("read"), "keep me");
}

#[test]
fn history_files_are_private_whatever_the_umask() {
    require_bpf!();
    let dir = open_tempdir();
    let db = dir.path().join("state/sub/history.db");
    let socket = dir.path().join("run/private");
    let child = Reaped(
        daemon_command("022", &db, &socket, &[])
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn"),
    );
    wait_answering(&socket);
    let wal = db.with_file_name("history.db-wal");
    assert_eq!(mode(&db), 0o600);
    assert_eq!(mode(&wal), 0o600);
    assert_eq!(mode(&dir.path().join("state")), 0o700);
    assert_eq!(mode(&dir.path().join("state/sub")), 0o700);
    // The socket is for root and group `ebpfstat`; its directory lets them reach it.
    assert_eq!(mode(&socket), 0o660);
    assert_eq!(mode(&dir.path().join("run")), 0o755);
    assert!(child.stop());
}

#[test]
fn long_strings_get_short_named_errors() {
    require_bpf!();
    let daemon = ApiDaemon::start(None, "200ms");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let (_conn, p) = bus::proxy_on_socket(&daemon.socket).await;
        let now = ebpfstat_numbers::WallNs::of(std::time::SystemTime::now()).ns();
        let hour = 3_600_000_000_000i64;
        // As long as a message on the private socket may be (64 KiB, headers included).
        let long = "x".repeat(60 << 10);
        let options = |key: &str, value: &str| {
            let mut o = ebpfstat_dbus::Options::new();
            o.insert(
                key.into(),
                zbus::OwnedVariant::from(zbus::Str::from(value.to_owned())),
            );
            o
        };
        let cases: Vec<(&str, Result<(), zbus::Error>)> = vec![
            (
                "sort key",
                p.top(now - hour, now, &long, 5, ebpfstat_dbus::Options::new())
                    .await
                    .map(drop),
            ),
            (
                "program",
                p.history(
                    &long,
                    now - hour,
                    now,
                    1_000_000_000,
                    ebpfstat_dbus::Options::new(),
                )
                .await
                .map(drop),
            ),
            ("program detail", p.program(&long).await.map(drop)),
            (
                "option name",
                p.history("1", now - hour, now, 1_000_000_000, options(&long, "raw"))
                    .await
                    .map(drop),
            ),
            (
                "tier",
                p.history("1", now - hour, now, 1_000_000_000, options("tier", &long))
                    .await
                    .map(drop),
            ),
        ];
        for (what, result) in cases {
            let e = result.expect_err(what);
            let (name, message) = ebpfstat_dbus::error_name(&e).expect("a named error");
            assert_eq!(name, "org.ebpfstat.Stats1.Error.InvalidArgument", "{what}");
            assert!(
                message.len() <= 200,
                "{what}: a {}-byte reply",
                message.len()
            );
        }
        // Beyond the message limit a peer gets no reply at all: its connection is closed.
        let (_c2, p2) = bus::proxy_on_socket(&daemon.socket).await;
        let e = p2
            .program(&"x".repeat(512 << 10))
            .await
            .expect_err("over the limit");
        assert!(ebpfstat_dbus::error_name(&e).is_none(), "{e}");
        let st = p.status().await.expect("still answering");
        assert!(u64::try_from(st.get("passes").expect("passes")).expect("u64") > 0);
    });
}

/// The private socket's `status`, as JSON.
fn status_on(socket: &Path) -> serde_json::Value {
    ctl_json_via(&["--socket".as_ref(), socket.as_os_str()], &["status"])
}

/// Waits (up to `secs`) until `ok` holds of the daemon's log.
fn wait_log(log: &Path, secs: u64, what: &str, ok: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        if ok(&text) {
            return text;
        }
        assert!(Instant::now() < deadline, "{what}; the log:\n{text}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn sighup_reloads_what_it_can_flushes_and_keeps_running() {
    require_bpf!();
    let dir = open_tempdir();
    let conf = dir.path().join("ebpfstatd.toml");
    let socket = dir.path().join("private");
    let db = dir.path().join("history.db");
    let log = dir.path().join("log");
    let settings = |interval: &str, cap: &str, db: &Path| {
        format!(
            "interval = \"{interval}\"\nmax_db_size = \"{cap}\"\nflush_interval = \"1h\"\n\
             db = \"{}\"\nsocket = \"{}\"\nbus = \"none\"\n",
            db.display(),
            socket.display()
        )
    };
    std::fs::write(&conf, settings("200ms", "64MiB", &db)).expect("write");
    let child = Reaped(
        Command::new(bin("ebpfstatd"))
            .arg("run")
            .arg("--config")
            .arg(&conf)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("log"))
            .spawn()
            .expect("spawn"),
    );
    wait_answering(&socket);
    let first_flush = status_on(&socket)["last_flush_ns"].as_i64();

    // Another interval and cap (applied now), another database (at the next start).
    let other = dir.path().join("other.db");
    std::fs::write(&conf, settings("500ms", "32MiB", &other)).expect("write");
    child.signal(libc::SIGHUP);
    let text = wait_log(&log, 10, "the reload to be logged", |t| {
        t.contains("read again")
    });
    for said in [
        "interval 200ms → 500ms",
        "max_db_size 64MiB → 32MiB",
        "needs a restart to take effect: db",
    ] {
        assert!(text.contains(said), "{said} missing from:\n{text}");
    }
    let st = status_on(&socket);
    assert_eq!(st["interval_ns"].as_u64(), Some(500_000_000), "{st}");
    assert_eq!(st["cap_bytes"].as_u64(), Some(32 << 20), "{st}");
    assert_eq!(st["db_path"].as_str(), Some(db.to_str().expect("utf-8")));
    // It flushed: what was buffered since the first pass is written (flush_interval is 1 h).
    assert!(st["last_flush_ns"].as_i64() > first_flush, "{st}");
    assert!(!other.exists(), "the database moves only at the next start");

    // A configuration that does not parse changes nothing; the daemon runs on.
    std::fs::write(&conf, "interval = \"soon\"\n").expect("write");
    child.signal(libc::SIGHUP);
    wait_log(&log, 10, "the refusal to be logged", |t| {
        t.contains("configuration not reloaded")
    });
    let passes = status_on(&socket)["passes"].as_u64().unwrap_or(0);
    std::thread::sleep(Duration::from_millis(1200));
    let st = status_on(&socket);
    assert!(st["passes"].as_u64().unwrap_or(0) > passes, "{st}");
    assert_eq!(st["interval_ns"].as_u64(), Some(500_000_000));
    assert!(child.stop());
}

#[test]
fn a_deleted_database_is_noticed_and_written_back_whole() {
    require_bpf!();
    let dir = open_tempdir();
    let db = dir.path().join("history.db");
    let fleet = Fleet::load(&format!("rm{}_", tag()), 1);
    let name = fleet.programs[0].name.clone();
    let daemon = ApiDaemon::start_on(None, "100ms", Some(&db));
    fleet.drive(0, 10);
    // Flushed once a second: the runs are in the file when it goes.
    std::thread::sleep(Duration::from_millis(1500));
    std::fs::remove_file(&db).expect("rm history.db");
    let _ = std::fs::remove_file(db.with_file_name("history.db-wal"));
    let deadline = Instant::now() + Duration::from_secs(5);
    while !db.exists() {
        assert!(
            Instant::now() < deadline,
            "never written back: {}",
            daemon.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    fleet.drive(0, 5);
    std::thread::sleep(Duration::from_millis(300));
    let (clean, log) = daemon.stop_logged();
    assert!(clean, "{log}");
    assert!(log.contains("was deleted while in use"), "{log}");
    // Everything stored before and after is in the file at its path.
    let store = ebpfstat_store::Store::open(store_config(&db)).expect("open");
    assert_eq!(store.integrity_check().expect("check"), "ok");
    let series = stored_series(&store, &name);
    let now = std::time::SystemTime::now();
    let h = store
        .history(
            &ebpfstat_store::ProgramRef::Series(series.series_id),
            now - Duration::from_secs(600),
            now + Duration::from_secs(60),
            Duration::from_secs(60),
            Some(ebpfstat_store::Tier::Raw),
        )
        .expect("history");
    let runs: u64 = h.points.iter().map(|p| p.run_cnt).sum();
    assert_eq!(runs, 15, "the runs before the deletion and after it");
}

fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .expect("fd dir")
        .count()
}

/// Whether the daemon closed `s` (a read sees the end, or a reset).
fn closed_by_daemon(s: &mut std::os::unix::net::UnixStream) -> bool {
    use std::io::Read;
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let mut buf = [0u8; 256];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return true,
            Err(_) => return false,
        }
    }
}

#[test]
#[expect(
    clippy::too_many_lines,
    reason = "one scenario read top to bottom: each step checks what the step before left"
)]
fn hostile_peers_cannot_crash_bloat_or_starve_the_daemon() {
    use std::io::{BufRead, Write};
    use std::os::unix::net::UnixStream;
    require_bpf!();
    let dir = open_tempdir();
    let db = dir.path().join("history.db");
    let socket = dir.path().join("private");
    let fleet = Fleet::load(&format!("hp{}_", tag()), 20);
    // The unit's memory limit, for real.
    let cage = MemoryCage::create(&format!("ebpfstat-hp{}", tag()), 128 << 20).expect("cgroup");
    // systemd's default soft limit, and no room to raise it: only the caps protect sampling.
    let prelude = format!("077; ulimit -n 1024; echo $$ > {}", cage.procs().display());
    let child = Reaped(
        daemon_command(&prelude, &db, &socket, &[])
            .stderr(std::fs::File::create(dir.path().join("log")).expect("log"))
            .spawn()
            .expect("spawn"),
    );
    let pid = child.0.id();
    wait_answering(&socket);
    let passes = || status_on(&socket)["passes"].as_u64().unwrap_or(0);

    // A handshake line ending in a lone \n made zbus panic, and the release build abort.
    let mut s = UnixStream::connect(&socket).expect("connect");
    s.write_all(b"\n").expect("write");
    assert!(closed_by_daemon(&mut s));
    let before = passes();
    std::thread::sleep(Duration::from_millis(600));
    assert!(passes() > before, "the daemon died or stopped sampling");

    // Authenticated peers declaring a 127 MiB message: turned away at the header.
    let hwm = status_kb(pid, "VmHWM:");
    let mut peers = Vec::new();
    for _ in 0..3 {
        let mut s = UnixStream::connect(&socket).expect("connect");
        s.write_all(b"\0AUTH EXTERNAL 30\r\n").expect("auth");
        let mut reply = String::new();
        std::io::BufReader::new(&s)
            .read_line(&mut reply)
            .expect("reply");
        assert!(reply.starts_with("OK "), "{reply}");
        s.write_all(b"BEGIN\r\n").expect("begin");
        let mut header = vec![b'l', 1, 0, 1];
        header.extend((127u32 << 20).to_le_bytes());
        header.extend(1u32.to_le_bytes());
        header.extend(16u32.to_le_bytes());
        s.write_all(&header).expect("header");
        peers.push(s);
    }
    for s in &mut peers {
        assert!(closed_by_daemon(s), "a peer declaring 127 MiB was served");
    }
    let grew = status_kb(pid, "VmHWM:").saturating_sub(hwm);
    assert!(grew < 16 << 10, "peak RSS grew by {grew} kB");
    assert_eq!(cage.oom_kills().expect("oom count"), 0);
    let peak = cage.peak_bytes().expect("peak");
    assert!(peak < 64 << 20, "the cgroup peaked at {peak} bytes");

    // 500 idle connections under a 1024-descriptor limit: at most the cap are held, each for
    // the handshake timeout; sampling reads every program meanwhile.
    let base_fds = open_fds(pid);
    let flood: Vec<UnixStream> = (0..500)
        .filter_map(|_| UnixStream::connect(&socket).ok())
        .collect();
    std::thread::sleep(Duration::from_millis(500));
    let held = open_fds(pid) - base_fds;
    assert!(
        held <= 64 + 4,
        "{held} descriptors held for {} peers",
        flood.len()
    );
    fleet.drive(3, 7);
    std::thread::sleep(Duration::from_secs(6));
    // The handshake timeout let them all go; the API answers again.
    assert!(
        open_fds(pid) <= base_fds + 4,
        "{} descriptors",
        open_fds(pid)
    );
    let st = status_on(&socket);
    assert!(st["programs"].as_u64() >= Some(20), "{st}");
    assert_eq!(st["failed_passes"].as_u64(), Some(0), "{st}");
    assert!(child.stop());
    assert_eq!(cage.oom_kills().expect("oom count"), 0);
    drop(flood);
    let store = ebpfstat_store::Store::open(store_config(&db)).expect("open");
    let series = stored_series(&store, &fleet.programs[3].name);
    let now = std::time::SystemTime::now();
    let h = store
        .history(
            &ebpfstat_store::ProgramRef::Series(series.series_id),
            now - Duration::from_secs(600),
            now + Duration::from_secs(60),
            Duration::from_secs(60),
            Some(ebpfstat_store::Tier::Raw),
        )
        .expect("history");
    let runs: u64 = h.points.iter().map(|p| p.run_cnt).sum();
    assert_eq!(
        runs, 7,
        "the runs made during the flood were seen and stored"
    );
}

/// The id of group `name` on this host, if it has one.
fn group_of_name(name: &str) -> Option<u32> {
    let out = output(Command::new("getent").args(["group", name]));
    let line = String::from_utf8_lossy(&out.stdout).into_owned();
    line.split(':').nth(2)?.trim().parse().ok()
}

#[test]
fn the_textfile_is_readable_by_group_ebpfstat_alone() {
    use std::os::unix::fs::MetadataExt;
    require_bpf!();
    let dir = open_tempdir();
    let textfile = dir.path().join("ebpfstat.prom");
    let daemon = ApiDaemon::start_with(
        None,
        "200ms",
        &[
            "--textfile",
            textfile.to_str().expect("utf-8"),
            "--textfile-interval",
            "1s",
        ],
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while !textfile.exists() {
        assert!(Instant::now() < deadline, "no textfile: {}", daemon.log());
        std::thread::sleep(Duration::from_millis(50));
    }
    // It names programs, holders and units, as the API does for root and group ebpfstat: not
    // every local user (it was 0644).
    assert_eq!(mode(&textfile), 0o640);
    // The group the package creates, where this host has it; else the daemon's own (root's).
    let gid = std::fs::metadata(&textfile).expect("stat").gid();
    assert_eq!(gid, group_of_name("ebpfstat").unwrap_or(0));
    let (clean, log) = daemon.stop_logged();
    assert!(clean, "{log}");
}

/// `ebpfstatd run` on `db` with neither bus nor socket, to its end (at most 10 s): whether it
/// succeeded, and its stderr.
fn run_briefly(db: &Path) -> (bool, String) {
    let mut child = Reaped(
        Command::new(bin("ebpfstatd"))
            .args([
                "run",
                "--config",
                "/dev/null",
                "--bus",
                "none",
                "--socket",
                "none",
            ])
            .arg("--db")
            .arg(db)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn"),
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = child.0.try_wait().expect("wait") {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "ebpfstatd ran on {}",
            db.display()
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut err = String::new();
    if let Some(mut e) = child.0.stderr.take() {
        std::io::Read::read_to_string(&mut e, &mut err).expect("stderr");
    }
    (status.success(), err)
}

/// The tables of the SQLite file at `path`.
fn tables_of(path: &Path) -> Vec<String> {
    let conn = rusqlite::Connection::open(path).expect("open");
    let mut q = conn
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
        .expect("prepare");
    q.query_map([], |r| r.get(0))
        .expect("query")
        .collect::<Result<_, _>>()
        .expect("names")
}

#[test]
fn a_database_through_a_link_or_of_another_program_is_refused() {
    let dir = open_tempdir();
    // Another program's SQLite file, readable by all.
    let other = dir.path().join("other.db");
    rusqlite::Connection::open(&other)
        .and_then(|c| c.execute_batch("CREATE TABLE notes (x TEXT);"))
        .expect("another program's file");
    std::fs::set_permissions(&other, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    // Through a link, ebpfstatd added its tables to it and kept its mode.
    let link = dir.path().join("history.db");
    std::os::unix::fs::symlink(&other, &link).expect("link");
    let (ok, err) = run_briefly(&link);
    assert!(!ok, "{err}");
    assert!(
        err.contains(&format!("database {} is a symbolic link", link.display())),
        "{err}"
    );
    // Named itself, it is not ebpfstat's either.
    let (ok, err) = run_briefly(&other);
    assert!(!ok, "{err}");
    assert!(
        err.contains(&format!(
            "database {} is not an ebpfstat history database",
            other.display()
        )),
        "{err}"
    );
    assert_eq!(tables_of(&other), ["notes"]);
    assert_eq!(mode(&other), 0o644);
}

#[test]
fn calibrate_in_a_loop_measures_and_logs_once_a_minute() {
    require_bpf!();
    let daemon = ApiDaemon::start(None, "200ms");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let (_conn, p) = bus::proxy_on_socket(&daemon.socket).await;
        // Each call measured again (holding the sampler ~0.2 s) and logged a line.
        for _ in 0..40 {
            let (ns_per_run, _, _) = p.calibrate().await.expect("Calibrate");
            assert!(ns_per_run > 0.0);
        }
        let passes = || async {
            let st = p.status().await.expect("Status");
            u64::try_from(st.get("passes").expect("passes")).expect("u64")
        };
        let before = passes().await;
        tokio::time::sleep(Duration::from_millis(600)).await;
        assert!(passes().await > before, "sampling stopped");
    });
    let (clean, log) = daemon.stop_logged();
    assert!(clean, "{log}");
    let lines = log
        .lines()
        .filter(|l| l.contains("run-time stats cost"))
        .count();
    // At start, and for the first call.
    assert!(lines <= 2, "{lines} calibration lines:\n{log}");
}

#[test]
fn a_killed_run_is_said_by_the_next_and_a_stopped_one_is_not() {
    require_bpf!();
    let dir = open_tempdir();
    let db = dir.path().join("history.db");
    let unclean = |d: &ApiDaemon| d.ctl_json(&["status"])["previous_run_unclean"].clone();
    let first = ApiDaemon::start_on(None, "200ms", Some(&db));
    assert_eq!(unclean(&first), false, "a new database");
    assert!(first.stop());
    let second = ApiDaemon::start_on(None, "200ms", Some(&db));
    assert_eq!(unclean(&second), false, "the run before stopped in order");
    // Answering means its first pass is written: the next run finds at least that.
    let first_pass = second.ctl_json(&["status"])["last_pass_ns"]
        .as_i64()
        .expect("last_pass_ns");
    second.kill();

    let third = ApiDaemon::start_on(None, "200ms", Some(&db));
    let st = third.ctl_json(&["status"]);
    assert_eq!(st["previous_run_unclean"], true, "{st}");
    let written = st["previous_run_last_written_ns"].as_i64().unwrap_or(0);
    // Ticks are stored to the microsecond.
    assert!(
        written + 1_000 >= first_pass,
        "{written} < {first_pass}: {st}"
    );
    let log = third.log();
    assert_eq!(
        log.matches("the previous run of the daemon did not stop cleanly")
            .count(),
        1,
        "{log}"
    );
    let events = third.ctl_json(&["events"]);
    let kinds: Vec<&str> = events
        .as_array()
        .expect("events")
        .iter()
        .filter_map(|e| e["kind"].as_str())
        .collect();
    assert_eq!(kinds, ["unclean_stop"], "{events}");
    // What a person sees.
    let socket = third.socket.to_str().expect("utf-8");
    let (screen, code) = terminal::on_pty(&bin("ebpfstatctl"), &["--socket", socket, "status"], 80);
    assert_eq!(code, 0, "{screen}");
    let screen = terminal::visible(&screen);
    assert!(
        screen.contains("previous run: did not stop cleanly (killed, crashed or the power"),
        "{screen}"
    );
    assert!(third.stop());

    // Stopped in order: the next run says nothing, and the event stays in the record.
    let fourth = ApiDaemon::start_on(None, "200ms", Some(&db));
    assert_eq!(unclean(&fourth), false);
    assert!(!fourth.log().contains("did not stop cleanly"));
    assert_eq!(
        fourth.ctl_json(&["events"]).as_array().map(Vec::len),
        Some(1)
    );
    assert!(fourth.stop());
}

/// Programs named `ebpfstat_probe` among the rows of a `list --json` answer.
fn probes_in(list: &serde_json::Value) -> usize {
    list["programs"]
        .as_array()
        .expect("programs")
        .iter()
        .filter(|p| p["name"] == "ebpfstat_probe")
        .count()
}

#[test]
fn another_daemons_probe_is_shown_nowhere_without_all() {
    require_bpf!();
    let port = engines::free_port();
    let addr = format!("127.0.0.1:{port}");
    let d = ApiDaemon::start_with(None, "200ms", &["--metrics-listen", &addr]);
    // A second instance on a database of its own: its probe stays loaded while it runs.
    let other = ApiDaemon::start(None, "1s");
    let deadline = Instant::now() + Duration::from_secs(20);
    while probes_in(&d.ctl_json(&["list", "--all"])) == 0 {
        assert!(
            Instant::now() < deadline,
            "the other daemon's probe is never seen"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(probes_in(&d.ctl_json(&["list"])), 0);
    let (code, body) = engines::get(port, "/metrics").expect("/metrics");
    assert_eq!(code, 200);
    let text = String::from_utf8_lossy(&body);
    assert!(!text.contains("name=\"ebpfstat_probe\""), "{text}");
    // Status counts what `list` shows. Other tests load and unload programs meanwhile: a
    // pair of answers from one pass agrees (the pass time says which pass each read).
    let agree = (0..20).any(|_| {
        let st = d.ctl_json(&["status"]);
        let list = d.ctl_json(&["list"]);
        let same_pass = st["last_pass_ns"] == list["time_ns"];
        let listed = list["programs"].as_array().map(Vec::len);
        same_pass
            && st["programs"]
                .as_u64()
                .and_then(|n| usize::try_from(n).ok())
                == listed
    });
    assert!(agree, "status counts what list shows");
    drop(other);
    assert!(d.stop());
}
