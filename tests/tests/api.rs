//! The D-Bus API end to end: a real dbus-daemon with our policy, the daemon's private socket,
//! real programs with known run counts, `ebpfstatctl --json` and raw D-Bus calls.

use std::process::Command;
use std::time::{Duration, Instant, SystemTime};

use ebpfstat_dbus::{Options, Stats1Proxy};
use ebpfstat_numbers::WallNs;
use ebpfstat_tests::bus::{
    ApiDaemon, TestBus, by_name, ctl_as, ctl_json_via, ensure_user, open_tempdir, proxy_on,
    proxy_on_socket, public_ctl,
};
use ebpfstat_tests::*;

fn sleep_ms(ms: u64) {
    std::thread::sleep(Duration::from_millis(ms));
}

#[test]
fn ctl_json_reports_exact_counts_on_the_bus_and_the_socket() {
    require_bpf!();
    let bus = TestBus::start();
    let fleet = Fleet::load(&format!("ap{}_", tag()), 2);
    let daemon = ApiDaemon::start(Some(&bus), "200ms");
    sleep_ms(500);
    fleet.drive(0, 7);
    fleet.drive(1, 3);
    sleep_ms(600);
    let (p0, p1) = (&fleet.programs[0].name, &fleet.programs[1].name);
    let sock = daemon.socket.to_str().expect("utf-8").to_owned();
    for via in [
        ["--address", bus.address.as_str()],
        ["--socket", sock.as_str()],
    ] {
        let top = ctl_json_via(
            &via,
            &["top", "--window", "1m", "--sort", "runs", "-n", "1000"],
        );
        assert_eq!(by_name(&top, p0)["run_cnt"], 7, "{via:?}");
        assert_eq!(by_name(&top, p1)["run_cnt"], 3, "{via:?}");
        let names: Vec<&str> = top
            .as_array()
            .expect("rows")
            .iter()
            .filter_map(|r| r["name"].as_str())
            .filter(|n| *n == p0 || *n == p1)
            .collect();
        assert_eq!(names, vec![p0.as_str(), p1.as_str()], "sorted by runs");

        // Cumulative: since load, from the live counters.
        let cum = ctl_json_via(
            &via,
            &["top", "--cumulative", "--sort", "runs", "-n", "1000"],
        );
        assert_eq!(by_name(&cum, p0)["run_cnt"], 7);
        let list = ctl_json_via(&via, &["list"]);
        let row = by_name(&list["programs"], p1);
        assert_eq!(row["since_load"]["run_cnt"], 3);
        assert_eq!(row["owners"][0]["pid"], std::process::id());
        assert!(
            row["notes"]
                .as_array()
                .expect("notes")
                .iter()
                .any(|n| n == "shared_maps")
        );
        let show = ctl_json_via(&via, &["show", &fleet.programs[0].id.to_string()]);
        assert_eq!(show["program"]["since_load"]["run_cnt"], 7);
        assert_eq!(show["maps"].as_array().map(Vec::len), Some(2));
    }
    // Per interval: the window after more runs holds only those.
    sleep_ms(400);
    let before = SystemTime::now();
    sleep_ms(300);
    fleet.drive(0, 4);
    sleep_ms(600);
    let since = humantime::format_rfc3339_nanos(before).to_string();
    let top = daemon.ctl_json(&["top", "--since", &since, "--sort", "runs", "-n", "1000"]);
    assert_eq!(by_name(&top, p0)["run_cnt"], 4);
    assert_eq!(by_name(&top, p1)["run_cnt"], 0);
    assert!(daemon.stop());
}

#[test]
fn history_follows_a_program_across_unload_and_reload() {
    require_bpf!();
    let daemon = ApiDaemon::start(None, "200ms");
    let mut fleet = Fleet::load(&format!("hr{}_", tag()), 0);
    let name = format!("reload{}", tag());
    fleet.add(&name, None);
    sleep_ms(500);
    fleet.drive(0, 5);
    sleep_ms(500);
    let gone = fleet.programs.remove(0);
    let gone_id = gone.id;
    drop(gone);
    wait_until_freed(&[gone_id]);
    sleep_ms(500);
    fleet.add(&name, None);
    sleep_ms(500);
    fleet.drive(0, 4);
    sleep_ms(600);
    let h = daemon.ctl_json(&["history", &name, "--since", "5m", "--step", "1s"]);
    let series = h["info"]["series"].as_array().expect("series");
    assert_eq!(series.len(), 2, "two loads: {series:?}");
    assert_eq!(series.iter().filter(|s| s["alive"] == true).count(), 1);
    let points = h["points"].as_array().expect("points");
    let runs = bus::history_runs(&h);
    assert_eq!(runs, 9);
    assert_eq!(
        points.last().and_then(|p| p["cum_run_cnt"].as_u64()),
        Some(9)
    );
    assert_eq!(h["info"]["tier"], "raw");
    // The unloaded one alone, by series.
    let old = series
        .iter()
        .find(|s| s["alive"] == false)
        .expect("old series");
    let spec = format!("series:{}", old["series_id"]);
    let h = daemon.ctl_json(&["history", &spec, "--since", "5m", "--step", "1m"]);
    let runs = bus::history_runs(&h);
    assert_eq!(runs, 5);
}

#[test]
fn live_introspection_equals_the_committed_xml() {
    require_bpf!();
    let bus = TestBus::start();
    let _daemon = ApiDaemon::start(Some(&bus), "1s");
    let out = Command::new("dbus-send")
        .arg(format!("--bus={}", bus.address))
        .args([
            "--print-reply=literal",
            "--dest=org.ebpfstat.Stats1",
            "/org/ebpfstat/Stats1",
            "org.freedesktop.DBus.Introspectable.Introspect",
        ])
        .output()
        .expect("dbus-send");
    let live = String::from_utf8_lossy(&out.stdout);
    let iface = |xml: &str| -> String {
        let start = xml
            .find("<interface name=\"org.ebpfstat.Stats1\">")
            .expect("interface");
        let end = start + xml[start..].find("</interface>").expect("end") + "</interface>".len();
        xml[start..end].to_owned()
    };
    assert_eq!(iface(&live), iface(ebpfstat_dbus::INTROSPECTION_XML));
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

fn error_name(e: &zbus::Error) -> String {
    match ebpfstat_dbus::error_name(e) {
        Some((name, _)) => name.to_owned(),
        None => match e {
            zbus::Error::FDO(f) => format!("{f:?}"),
            other => format!("{other:?}"),
        },
    }
}

async fn passes(p: &Stats1Proxy<'_>) -> u64 {
    let st = p.status().await.expect("status");
    u64::try_from(st.get("passes").expect("passes")).expect("u64")
}

#[test]
#[expect(
    clippy::too_many_lines,
    reason = "one scenario read top to bottom: each step checks what the step before left"
)]
fn bad_input_gets_named_errors_and_the_daemon_keeps_sampling() {
    require_bpf!();
    let bus = TestBus::start();
    let mut daemon = ApiDaemon::start(Some(&bus), "100ms");
    let address = bus.address.clone();
    runtime().block_on(async move {
        let (conn, p) = proxy_on(&address).await;
        let now = WallNs::of(SystemTime::now()).ns();
        let hour = 3_600_000_000_000i64;
        let mut bad_option = Options::new();
        bad_option.insert("colour".into(), zbus::OwnedVariant::from(1u32));
        let mut wrong_type = Options::new();
        wrong_type.insert("max_points".into(), zbus::OwnedVariant::from(5i64));
        let huge = "x".repeat(1 << 20);
        let cases: Vec<(&str, Result<(), zbus::Error>, &str)> = vec![
            (
                "id beyond 32 bits",
                p.history(
                    "99999999999",
                    now - hour,
                    now,
                    1_000_000_000,
                    Options::new(),
                )
                .await
                .map(drop),
                "InvalidArgument",
            ),
            (
                "unknown program id",
                p.history("3999999999", now - hour, now, 1_000_000_000, Options::new())
                    .await
                    .map(drop),
                "NoSuchProgram",
            ),
            (
                "unknown name",
                p.program("no-such-program-anywhere").await.map(drop),
                "NoSuchProgram",
            ),
            (
                "n = 0",
                p.top(now - hour, now, "cpu", 0, Options::new())
                    .await
                    .map(drop),
                "InvalidArgument",
            ),
            (
                "n = 10^9",
                p.top(now - hour, now, "cpu", 1_000_000_000, Options::new())
                    .await
                    .map(drop),
                "InvalidArgument",
            ),
            (
                "inverted range",
                p.top(now, now - hour, "cpu", 5, Options::new())
                    .await
                    .map(drop),
                "InvalidArgument",
            ),
            (
                "absurd range",
                p.top(-hour * 24 * 365 * 100, i64::MAX, "cpu", 5, Options::new())
                    .await
                    .map(drop),
                "InvalidArgument",
            ),
            (
                "unknown sort",
                p.top(now - hour, now, "loudness", 5, Options::new())
                    .await
                    .map(drop),
                "InvalidArgument",
            ),
            (
                "unknown option",
                p.top(now - hour, now, "cpu", 5, bad_option).await.map(drop),
                "InvalidArgument",
            ),
            (
                "option of the wrong type",
                p.history("1", now - hour, now, 1_000_000_000, wrong_type)
                    .await
                    .map(drop),
                "InvalidArgument",
            ),
            (
                "huge string",
                p.history(&huge, now - hour, now, 1_000_000_000, Options::new())
                    .await
                    .map(drop),
                "InvalidArgument",
            ),
            (
                "zero step",
                p.history("1", now - hour, now, 0, Options::new())
                    .await
                    .map(drop),
                "InvalidArgument",
            ),
        ];
        for (what, result, want) in cases {
            let e = result.expect_err(what);
            let name = error_name(&e);
            assert_eq!(
                name,
                format!("org.ebpfstat.Stats1.Error.{want}"),
                "{what}: {e}"
            );
            assert!(!e.to_string().is_empty());
            // The daemon still samples after each.
            let before = passes(&p).await;
            tokio::time::sleep(Duration::from_millis(250)).await;
            assert!(passes(&p).await > before, "{what}: sampling stopped");
        }
        // Wrong argument types: the call's signature does not match the method.
        let reply = conn
            .call_method(
                Some(ebpfstat_dbus::BUS_NAME),
                ebpfstat_dbus::OBJECT_PATH,
                Some(ebpfstat_dbus::INTERFACE),
                "Top",
                &("yesterday", 5u8),
            )
            .await
            .expect_err("wrong types");
        assert!(error_name(&reply).contains("InvalidArgs"), "{reply:?}");
        let before = passes(&p).await;
        tokio::time::sleep(Duration::from_millis(250)).await;
        assert!(passes(&p).await > before);
    });
    // ebpfstatctl says what went wrong in words, from the named errors.
    let long = "x".repeat(600);
    for (args, want) in [
        (
            ["show", "no-such-program"],
            "no such program: no program was ever seen named \"no-such-program\"",
        ),
        (
            ["show", long.as_str()],
            "invalid argument: program is 600 bytes long; at most 512 are accepted",
        ),
    ] {
        let out = daemon.ctl(&args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?}");
        assert!(stderr.contains(want), "{args:?}: {stderr}");
    }
    assert!(daemon.is_running(), "{}", daemon.log());
}

#[test]
fn callers_outside_root_and_the_group_are_denied() {
    require_bpf!();
    let member = "ebpfstat-member";
    let outsider = "ebpfstat-outsider";
    ensure_user(member, true);
    ensure_user(outsider, false);
    let bus = TestBus::start();
    let daemon = ApiDaemon::start(Some(&bus), "500ms");
    let dir = open_tempdir();
    let ctl = public_ctl(dir.path());
    let sock = daemon.socket.to_str().expect("utf-8").to_owned();
    {
        use std::os::unix::fs::{MetadataExt, PermissionsExt};
        let meta = std::fs::metadata(&daemon.socket).expect("socket");
        assert_eq!(meta.permissions().mode() & 0o777, 0o660);
        assert_eq!(Some(meta.gid()), ebpfstatd::group_id("ebpfstat"));
    }
    for via in [
        ["--address", bus.address.as_str()],
        ["--socket", sock.as_str()],
    ] {
        let out = ctl_as(outsider, &ctl, &[via[0], via[1], "status"]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{via:?}: outsider got an answer");
        assert!(
            err.contains("permission denied") && err.contains("group `ebpfstat`"),
            "{via:?}: {err}"
        );
        let out = ctl_as(member, &ctl, &[via[0], via[1], "--json", "status"]);
        assert!(
            out.status.success(),
            "{via:?}: member refused: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn a_flood_of_clients_does_not_delay_a_tick() {
    require_bpf!();
    let daemon = ApiDaemon::start(None, "1s");
    let socket = daemon.socket.clone();
    let started = Instant::now();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    // One fewer clients than one user may hold open at once (the cap turns more away): the
    // daemon may not yet have seen the last `ebpfstatctl status` of the start-up wait go, and
    // would count it. 10 000 queries in all.
    let clients = u32::try_from(ebpfstatd::MAX_PEERS_PER_UID - 1).expect("fits");
    let each = 10_000 / clients;
    let (late, dropped, passes, queries) = rt.block_on(async move {
        let mut tasks = Vec::new();
        for c in 0..clients {
            let socket = socket.clone();
            tasks.push(tokio::spawn(async move {
                let (_conn, p) = proxy_on_socket(&socket).await;
                let now = WallNs::of(SystemTime::now()).ns();
                let mut ok = 0u32;
                for q in 0..each {
                    let r = match (c + q) % 3 {
                        0 => p
                            .top(now - 600_000_000_000, now, "cpu", 10, Options::new())
                            .await
                            .map(drop),
                        1 => p.snapshot(Options::new()).await.map(drop),
                        _ => p.status().await.map(drop),
                    };
                    r.expect("query");
                    ok += 1;
                }
                ok
            }));
        }
        let mut total = 0;
        for t in tasks {
            total += t.await.expect("client");
        }
        let (_conn, p) = proxy_on_socket(&socket).await;
        let st = p.status().await.expect("status");
        let get = |k: &str| u64::try_from(st.get(k).expect(k)).expect("u64");
        (
            get("late_passes"),
            get("dropped_passes"),
            get("passes"),
            total,
        )
    });
    let elapsed = started.elapsed().as_secs();
    eprintln!("{queries} queries in {elapsed} s; {passes} passes, {late} late, {dropped} dropped");
    assert_eq!(queries, clients * each);
    assert_eq!((late, dropped), (0, 0), "{}", daemon.log());
    assert!(passes + 1 >= elapsed, "{passes} passes in {elapsed} s");
}
