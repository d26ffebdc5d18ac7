//! `ebpfstatd run` as a real process: real programs with known run counts, real signals, a
//! real SQLite file read back afterwards.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, SystemTime};

use ebpfstat_store::{ProgramRef, Store, Tier};
use ebpfstat_tests::bus::ApiDaemon;
use ebpfstat_tests::*;

fn open(db: &Path) -> Store {
    Store::open(store_config(db)).expect("reopen store")
}

/// Σ run_cnt stored for the program named `name`, and its last cumulative value.
fn stored_runs(store: &Store, name: &str) -> (u64, u64) {
    let series = stored_series(store, name);
    let now = SystemTime::now();
    let h = store
        .history(
            &ProgramRef::Series(series.series_id),
            now - Duration::from_secs(3600),
            now + Duration::from_secs(60),
            Duration::from_secs(60),
            Some(Tier::Raw),
        )
        .expect("history");
    let sum = h.points.iter().map(|p| p.run_cnt).sum();
    let cum = h.points.last().map_or(0, |p| p.cum_run_cnt);
    (sum, cum)
}

fn sleep_ms(ms: u64) {
    std::thread::sleep(Duration::from_millis(ms));
}

#[test]
fn stored_history_matches_real_run_counts() {
    require_bpf!();
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("state/history.db");
    let fleet = Fleet::load(&format!("dh{}_", tag()), 2);
    // Started: its baseline pass is taken.
    let daemon = ApiDaemon::start_on(None, "100ms", Some(&db));
    fleet.drive(0, 10);
    sleep_ms(300);
    fleet.drive(0, 20);
    fleet.drive(1, 5);
    sleep_ms(300);
    fleet.drive(0, 30);
    sleep_ms(300);
    let (clean, log) = daemon.stop_logged();
    assert!(clean, "clean exit: {log}");

    let store = open(&db);
    assert_eq!(store.integrity_check().expect("check"), "ok");
    assert_eq!(stored_runs(&store, &fleet.programs[0].name), (60, 60));
    assert_eq!(stored_runs(&store, &fleet.programs[1].name), (5, 5));
}

#[test]
fn sigkill_loses_at_most_the_flush_window_and_restart_recovers_the_counts() {
    require_bpf!();
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("history.db");
    let fleet = Fleet::load(&format!("dk{}_", tag()), 1);
    let name = fleet.programs[0].name.clone();
    let daemon = ApiDaemon::start_on(None, "100ms", Some(&db));
    fleet.drive(0, 7);
    sleep_ms(2500); // two flushes
    fleet.drive(0, 5);
    sleep_ms(200); // sampled, most likely not flushed
    daemon.kill();

    let store = open(&db);
    assert_eq!(store.integrity_check().expect("check"), "ok");
    let (after_kill, _) = stored_runs(&store, &name);
    assert!(
        (7..=12).contains(&after_kill),
        "stored {after_kill}: the flushed 7 survive, at most the last window (5) is lost"
    );
    drop(store);

    // The next run continues the series from its stored counters: the gap's runs are counted.
    let daemon = ApiDaemon::start_on(None, "100ms", Some(&db));
    // It reopens the WAL left behind without a shared-memory index (none to dirty on flash).
    let shm = format!("{}-shm", db.display());
    let maps = std::fs::read_to_string(format!("/proc/{}/maps", daemon.pid())).expect("maps");
    assert!(!maps.contains(&shm), "{shm} is mapped");
    assert!(!Path::new(&shm).exists(), "{shm} exists");
    assert!(daemon.stop());
    let store = open(&db);
    assert_eq!(stored_runs(&store, &name), (12, 12));
    let series: Vec<_> = store
        .all_series()
        .expect("series")
        .into_iter()
        .filter(|s| s.full_name == name)
        .collect();
    assert_eq!(series.len(), 1, "one series across the restart");
}

#[test]
fn sigkill_at_any_moment_never_corrupts_the_database() {
    require_bpf!();
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("history.db");
    let fleet = Fleet::load(&format!("dc{}_", tag()), 20);
    for round in 0..6u64 {
        let daemon = ApiDaemon::spawn_unserved(&db, "100ms", &["--flush-interval", "200ms"]);
        for i in 0..20 {
            fleet.drive(i, 1 + round);
        }
        sleep_ms(300 + round * 170);
        daemon.kill();
        let store = open(&db);
        assert_eq!(
            store.integrity_check().expect("check"),
            "ok",
            "round {round}"
        );
        // The daemon ran and wrote (a rejected command line would leave nothing to check).
        if round > 0 {
            let series = store.all_series().expect("series");
            assert!(series.len() >= 20, "round {round}: {} series", series.len());
        }
    }
}

#[test]
fn corrupt_database_is_moved_aside_and_logged_once() {
    require_bpf!();
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("history.db");
    std::fs::write(
        &db,
        b"this is not a database, just bytes on flash".repeat(100),
    )
    .expect("write");
    let daemon = ApiDaemon::start_on(None, "100ms", Some(&db));
    let log = daemon.log();
    assert!(daemon.stop());
    let lines: Vec<&str> = log.lines().filter(|l| l.contains("unreadable")).collect();
    assert_eq!(lines.len(), 1, "{log}");
    assert!(lines[0].contains(&db.display().to_string()) && lines[0].contains(".corrupt-"));
    assert_eq!(open(&db).integrity_check().expect("check"), "ok");
}

#[test]
fn damaged_pages_are_one_error_line() {
    require_bpf!();
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("history.db");
    let fleet = Fleet::load(&format!("dp{}_", tag()), 5);
    let daemon = ApiDaemon::start_on(None, "100ms", Some(&db));
    for i in 0..5 {
        fleet.drive(i, 3);
    }
    sleep_ms(1500);
    assert!(daemon.stop());
    // Garbage over three table pages: the integrity check lists one problem per page.
    let mut bytes = std::fs::read(&db).expect("read");
    assert!(bytes.len() >= 6 * 2048, "{} bytes", bytes.len());
    for (i, b) in bytes.iter_mut().enumerate().take(5 * 2048).skip(2 * 2048) {
        *b = u8::try_from(i * 7 % 251).expect("below 251");
    }
    std::fs::write(&db, bytes).expect("write");

    let daemon = ApiDaemon::start_on(None, "100ms", Some(&db));
    let (clean, log) = daemon.stop_logged();
    assert!(clean, "{log}");
    let errors: Vec<&str> = log.lines().filter(|l| l.contains(" ERROR ")).collect();
    assert_eq!(errors.len(), 1, "{log}");
    // Every line of the log is a line of its own (a time stamp first), none a continuation.
    assert!(log.lines().all(|l| l.starts_with("20")), "{log}");
    assert!(
        errors[0].contains("unreadable") && errors[0].contains("more)"),
        "{log}"
    );
}

#[test]
fn unusable_database_path_fails_before_sampling() {
    require_root!();
    let ro = Tmpfs::mount("ro").expect("read-only tmpfs");
    let db = ro.path().join("history.db");
    let out = Command::new(bin("ebpfstatd"))
        .args(["run", "--config", "/dev/null", "--db"])
        .arg(&db)
        .output()
        .expect("run");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!(
            "cannot use database directory {}",
            ro.path().display()
        )) && err.contains("Read-only file system"),
        "{err}"
    );
}

/// `ebpfstatd --check-config` on a file holding `text`: whether it passed, and its stderr.
fn check_config(text: &str) -> (bool, String) {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("ebpfstatd.toml");
    std::fs::write(&file, text).expect("write");
    let out = Command::new(bin("ebpfstatd"))
        .arg("--config")
        .arg(&file)
        .arg("--check-config")
        .output()
        .expect("run ebpfstatd");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn check_config_refuses_paths_the_daemon_could_not_use() {
    // A NUL byte passed, then broke every Status (no D-Bus string may hold one).
    let (ok, err) = check_config("textfile = \"/var/lib/node/a\\u0000b.prom\"\n");
    assert!(!ok, "{err}");
    assert!(
        err.contains("line 1: textfile = /var/lib/node/a\\0b.prom is out of range")
            && err.contains("without NUL bytes"),
        "{err}"
    );
    // A relative database landed wherever the daemon was started.
    let (ok, err) = check_config("db = \"history.db\"\n");
    assert!(!ok, "{err}");
    assert!(
        err.contains("line 1: db = history.db is out of range: an absolute path"),
        "{err}"
    );
}

#[test]
fn check_config_refuses_metrics_beyond_loopback_unless_meant() {
    let (ok, err) = check_config("metrics_listen = \"0.0.0.0:80\"\n");
    assert!(!ok, "{err}");
    assert!(
        err.contains("metrics_listen = \"0.0.0.0:80\" is not a loopback address")
            && err.contains("set metrics_public = true"),
        "{err}"
    );
    let (ok, err) = check_config("metrics_listen = \"0.0.0.0:80\"\nmetrics_public = true\n");
    assert!(ok, "{err}");
    let (ok, err) = check_config("metrics_listen = \"127.0.0.1:9435\"\n");
    assert!(ok, "{err}");
}

#[test]
fn output_to_a_closed_pipe_ends_quietly() {
    // `ebpfstatd --check-config | head -1`: the reader is gone before the daemon writes.
    let mut cases: Vec<&[&str]> = vec![
        &["--config", "/dev/null", "--check-config"],
        &["--help"],
        &["sample", "--help"],
        &["--version"],
    ];
    if bpf_available(module_path!()) {
        cases.push(&["sample", "--json", "--count", "3", "--interval", "100ms"]);
        cases.push(&["sample", "--count", "2", "--interval", "100ms"]);
    }
    for args in cases {
        let (reader, writer) = std::io::pipe().expect("pipe");
        drop(reader);
        let out = Command::new(bin("ebpfstatd"))
            .args(args)
            .stdout(writer)
            .output()
            .expect("run ebpfstatd");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success() && err.is_empty(),
            "{args:?}: {:?}: {err}",
            out.status
        );
    }
}
