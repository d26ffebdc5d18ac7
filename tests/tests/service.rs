//! The daemon as a service: the sd_notify protocol against a real NOTIFY_SOCKET, and the
//! configuration file.

use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use ebpfstat_store::{ProgramRef, Store, Tier};
use ebpfstat_tests::*;

fn check_config(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(bin("ebpfstatd"))
        .args(args)
        .arg("--check-config")
        .output()
        .expect("run ebpfstatd");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn defaults_apply_without_a_file() {
    let (ok, out, _) = check_config(&["--config", "/dev/null"]);
    assert!(ok);
    for line in [
        "interval = \"1s\"",
        "db = \"/var/lib/ebpfstat/history.db\"",
        "flush_interval = \"1m\"",
        "raw_retention = \"6h\"",
        "minute_retention = \"7d\"",
        "hour_retention = \"90d\"",
        "max_db_size = \"64MiB\"",
        "bus = \"system\"",
        "socket = \"/run/ebpfstat/private\"",
    ] {
        assert!(out.contains(line), "{line} missing from\n{out}");
    }
}

#[test]
fn the_shipped_file_documents_exactly_the_defaults() {
    let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("../packaging/ebpfstatd.toml");
    let text = std::fs::read_to_string(&shipped).expect("read shipped config");
    let (ok, as_shipped, err) = check_config(&["--config", shipped.to_str().expect("utf-8")]);
    assert!(ok, "{err}");
    // Every key is there, commented, with its default: uncommented, nothing changes.
    let dir = tempfile::tempdir().expect("tempdir");
    let uncommented = dir.path().join("all.toml");
    let keys: String = text
        .lines()
        // `#key = value`; the alert examples are commented `# ` and are not keys.
        .filter_map(|l| l.strip_prefix('#'))
        .filter(|l| !l.starts_with(' ') && l.contains(" = "))
        .map(|l| format!("{l}\n"))
        .collect();
    assert_eq!(
        keys.lines().count(),
        ebpfstatd::config::defs().len(),
        "{keys}"
    );
    std::fs::write(&uncommented, keys).expect("write");
    let (ok, all_keys, err) = check_config(&["--config", uncommented.to_str().expect("utf-8")]);
    assert!(ok, "{err}");
    let settings = |s: &str| s.lines().skip(1).map(str::to_owned).collect::<Vec<_>>();
    assert_eq!(settings(&all_keys), settings(&as_shipped));
}

#[test]
fn bad_keys_and_values_are_named_and_nothing_is_touched() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cases = [
        (
            "interval = \"1s\"\nflush_intervall = \"10s\"\n",
            &[
                "line 2",
                "flush_intervall",
                "expected one of",
                "`flush_interval`",
            ][..],
        ),
        (
            "\n\nraw_retention = \"six hours\"\n",
            &["line 3", "raw_retention", "\"6h\""][..],
        ),
        (
            "max_db_size = \"lots\"\n",
            &["line 1", "max_db_size", "MiB"][..],
        ),
        (
            "bus = \"carrier-pigeon\"\n",
            &["bus", "system, session, none"][..],
        ),
        ("log_level = \"chatty\"\n", &["log_level", "`debug`"][..]),
        ("interval = \"0s\"\n", &["interval", "zero"][..]),
        ("rescan_every = 0\n", &["rescan_every", "at least 1"][..]),
        ("interval = 1\n", &["interval", "string"][..]),
    ];
    for (i, (text, needles)) in cases.iter().enumerate() {
        let file = dir.path().join(format!("bad{i}.toml"));
        std::fs::write(&file, text).expect("write");
        let (ok, _, err) = check_config(&["--config", file.to_str().expect("utf-8")]);
        assert!(!ok, "{text}");
        for n in *needles {
            assert!(err.contains(n), "{text:?}: {n:?} missing from {err}");
        }
        // Running with it exits non-zero before creating the database.
        let db = dir.path().join(format!("state{i}/history.db"));
        let out = Command::new(bin("ebpfstatd"))
            .args(["run", "--config"])
            .arg(&file)
            .arg("--db")
            .arg(&db)
            .output()
            .expect("run");
        assert_eq!(out.status.code(), Some(1));
        assert!(
            !db.parent().expect("dir").exists(),
            "the database directory was created"
        );
    }
}

#[test]
fn flags_override_the_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("c.toml");
    std::fs::write(
        &file,
        "interval = \"5s\"\ndb = \"/srv/h.db\"\nmax_db_size = \"8MiB\"\n",
    )
    .expect("write");
    let path = file.to_str().expect("utf-8");
    let (ok, out, _) = check_config(&[
        "--config",
        path,
        "--interval",
        "2s",
        "--max-db-size",
        "1GiB",
    ]);
    assert!(ok);
    assert!(out.contains("interval = \"2s\""), "{out}");
    assert!(out.contains("db = \"/srv/h.db\""), "{out}");
    assert!(out.contains("max_db_size = \"1GiB\""), "{out}");
}

/// Messages received on the notify socket, with when they came.
fn collect(sock: &UnixDatagram, until: Instant, log: &mut Vec<(Instant, String)>) {
    let mut buf = [0u8; 4096];
    while Instant::now() < until {
        if let Ok(n) = sock.recv(&mut buf) {
            log.push((
                Instant::now(),
                String::from_utf8_lossy(&buf[..n]).into_owned(),
            ));
        }
    }
}

#[test]
#[expect(
    clippy::too_many_lines,
    reason = "one scenario read top to bottom: each step checks what the step before left"
)]
fn sd_notify_ready_status_watchdog_and_stopping() {
    require_bpf!();
    let dir = tempfile::tempdir().expect("tempdir");
    let notify = dir.path().join("notify");
    let sock = UnixDatagram::bind(&notify).expect("bind NOTIFY_SOCKET");
    sock.set_read_timeout(Some(Duration::from_millis(50)))
        .expect("timeout");
    let db = dir.path().join("history.db");
    let socket = dir.path().join("private");
    // A program of its own, loaded all along: other tests' programs come and go.
    let fleet = Fleet::load(&format!("sdn{}_", tag()), 1);
    let started = Instant::now();
    let mut child = Command::new(bin("ebpfstatd"))
        .args(["run", "--config", "/dev/null", "--bus", "none", "--socket"])
        .arg(&socket)
        .arg("--db")
        .arg(&db)
        // Only the first pass and SIGTERM write: what is stored at the end came from the stop.
        .args([
            "--interval",
            "200ms",
            "--flush-interval",
            "10min",
            "--debug-stall-after",
            "25",
        ])
        .env("NOTIFY_SOCKET", &notify)
        .env("WATCHDOG_USEC", "2000000")
        .env_remove("WATCHDOG_PID")
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn");
    let mut log = Vec::new();
    // 25 passes at 200 ms stall the sampler after 5 s; watch 3 s more.
    collect(&sock, started + Duration::from_secs(8), &mut log);
    // SAFETY: kill(2) on our own child.
    unsafe { libc::kill(bus::pid_of(&child), libc::SIGTERM) };
    collect(&sock, Instant::now() + Duration::from_secs(2), &mut log);
    assert!(child.wait().expect("wait").success());

    let at = |needle: &str| {
        log.iter()
            .position(|(_, m)| m.split('\n').any(|l| l == needle))
    };
    let ready = at("READY=1").expect("READY=1 sent");
    let status = log
        .iter()
        .position(|(_, m)| m.starts_with("STATUS=") && m.contains("database"))
        .expect("STATUS sent");
    assert!(
        status < ready,
        "the first pass is written (and reported) before READY"
    );
    assert!(
        log[ready].0 - started < Duration::from_secs(3),
        "ready within 3 s"
    );
    let pings: Vec<Instant> = log
        .iter()
        .filter(|(_, m)| m.trim_end() == "WATCHDOG=1")
        .map(|(t, _)| *t)
        .collect();
    assert!(pings.len() >= 4, "{} pings", pings.len());
    for pair in pings.windows(2) {
        let gap = pair[1] - pair[0];
        assert!(
            gap >= Duration::from_millis(900) && gap <= Duration::from_millis(1500),
            "pings every WATCHDOG_USEC/2 = 1 s, got {gap:?}"
        );
    }
    let last_ping = *pings.last().expect("pings");
    assert!(
        last_ping - started < Duration::from_millis(5600),
        "pings stop once the sampler stalls at ~5 s (last at {:?})",
        last_ping - started
    );
    let stopping = at("STOPPING=1").expect("STOPPING=1 sent");
    assert!(stopping > ready);

    // The passes buffered since the first one were written on SIGTERM.
    let store = Store::open(store_config(&db)).expect("open");
    let now = std::time::SystemTime::now();
    let all = store.all_series().expect("series");
    let first_tick_only = all.is_empty();
    if !first_tick_only {
        let ours = stored_series(&store, &fleet.programs[0].name);
        let h = store
            .history(
                &ProgramRef::Series(ours.series_id),
                now - Duration::from_secs(60),
                now,
                Duration::from_secs(1),
                Some(Tier::Raw),
            )
            .expect("history");
        let samples: u32 = h.points.iter().map(|p| p.samples).sum();
        assert!(samples >= 20, "{samples} passes stored");
    }
    let status = store.status().expect("status");
    let raw = &status.tiers[0];
    let span = raw
        .newest
        .zip(raw.oldest)
        .map(|(n, o)| n.duration_since(o).unwrap_or_default());
    assert!(
        span.is_some_and(|s| s >= Duration::from_secs(4)),
        "the stored ticks span the run: {span:?}"
    );
}

#[test]
fn settings_out_of_range_are_refused_with_the_range() {
    for (flags, needle) in [
        (
            &["--interval", "1ms"][..],
            "--interval 1ms is out of range: between 100ms and 1h",
        ),
        (&["--interval", "1ns"][..], "--interval 1ns is out of range"),
        (
            &["--interval", "100d"][..],
            "--interval 100d is out of range",
        ),
        (
            &["--interval", "500000000y"][..],
            "is out of range: between 100ms and 1h",
        ),
        (
            &["--flush-interval", "2h"][..],
            "--flush-interval 2h is out of range",
        ),
        (
            &["--raw-retention", "1s"][..],
            "--raw-retention 1s is out of range: between 1m and 30d",
        ),
        (
            &["--max-db-size", "0B"][..],
            "--max-db-size 0B is out of range: between 1MiB and 1TiB",
        ),
    ] {
        let mut args = vec!["--config", "/dev/null"];
        args.extend_from_slice(flags);
        let (ok, _, err) = check_config(&args);
        assert!(!ok, "{flags:?} accepted");
        assert!(err.contains(needle), "{flags:?}: {err}");
    }
    // In the file, with the line.
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("c.toml");
    std::fs::write(&file, "db = \"/srv/h.db\"\n\ninterval = \"100d\"\n").expect("write");
    let (ok, _, err) = check_config(&["--config", file.to_str().expect("utf-8")]);
    assert!(!ok);
    assert!(
        err.contains("line 3: interval = 100d is out of range: between 100ms and 1h"),
        "{err}"
    );
}

#[test]
fn an_interval_longer_than_the_watchdog_keeps_it_fed() {
    require_bpf!();
    let dir = tempfile::tempdir().expect("tempdir");
    let notify = dir.path().join("notify");
    let sock = UnixDatagram::bind(&notify).expect("bind NOTIFY_SOCKET");
    sock.set_read_timeout(Some(Duration::from_millis(50)))
        .expect("timeout");
    let started = Instant::now();
    let mut child = Command::new(bin("ebpfstatd"))
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
        .arg(dir.path().join("history.db"))
        .args(["--interval", "1h"])
        .env("NOTIFY_SOCKET", &notify)
        .env("WATCHDOG_USEC", "2000000")
        .env_remove("WATCHDOG_PID")
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn");
    let mut log = Vec::new();
    collect(&sock, started + Duration::from_secs(5), &mut log);
    // SAFETY: kill(2) on our own child.
    unsafe { libc::kill(bus::pid_of(&child), libc::SIGTERM) };
    assert!(child.wait().expect("wait").success());
    let pings: Vec<Instant> = log
        .iter()
        .filter(|(_, m)| m.trim_end() == "WATCHDOG=1")
        .map(|(t, _)| *t)
        .collect();
    // One pass in all, yet a ping every WATCHDOG_USEC/2 = 1 s while it waits for the next.
    assert!(pings.len() >= 4, "{} pings in 5 s", pings.len());
    for pair in pings.windows(2) {
        let gap = pair[1] - pair[0];
        assert!(gap <= Duration::from_millis(1500), "a gap of {gap:?}");
    }
}

#[test]
fn a_thread_that_panics_ends_the_daemon_with_an_error_naming_it() {
    require_bpf!();
    let dir = tempfile::tempdir().expect("tempdir");
    let out = Command::new(bin("ebpfstatd"))
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
        .arg(dir.path().join("history.db"))
        .args(["--interval", "100ms", "--debug-panic-after", "3"])
        .output()
        .expect("run");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "exited cleanly:\n{err}");
    assert!(
        err.contains("the sampler thread panicked")
            && err.contains("testing aid: the sampler panics after 3 passes"),
        "{err}"
    );
    // What was buffered before is written on the way out.
    let store = Store::open(store_config(dir.path().join("history.db"))).expect("open");
    assert!(store.status().expect("status").tiers[0].newest.is_some());
}
