//! Fleet export end to end, with real engines on 127.0.0.1: the node_exporter textfile read by
//! a real node_exporter and scraped by a real Prometheus; history exported as OpenMetrics,
//! imported with `promtool tsdb create-blocks-from openmetrics` into a real Prometheus and
//! into a real VictoriaMetrics. Real programs driven to known run counts throughout.

use std::time::{Duration, Instant, SystemTime};

use ebpfstat_tests::bus::{ApiDaemon, history_runs, open_tempdir};
use ebpfstat_tests::engines::{Engine, engines_available, free_port, get, head, post};
use ebpfstat_tests::*;

fn sleep_ms(ms: u64) {
    std::thread::sleep(Duration::from_millis(ms));
}

fn secs(t: SystemTime) -> f64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .expect("after 1970")
        .as_secs_f64()
}

/// Polls `f` until it returns true, for at most `limit`.
fn eventually(limit: Duration, what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !f() {
        assert!(Instant::now() < deadline, "never: {what}");
        sleep_ms(250);
    }
}

#[test]
fn the_textfile_reaches_prometheus_through_node_exporter() {
    require_bpf!();
    if !engines_available(module_path!()) {
        return;
    }
    let prefix = format!("ft{}_", tag());
    let fleet = Fleet::load(&prefix, 2);
    fleet.drive(0, 7);
    fleet.drive(1, 3);
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
    let node = Engine::node_exporter(dir.path());
    let prom = Engine::prometheus(&[node.port], None);
    let runs = format!("ebpfstat_program_runs_total{{name=~\"{prefix}.*\"}}");
    let (p0, p1) = (&fleet.programs[0].name, &fleet.programs[1].name);
    let want = vec![(p0.clone(), 7.0), (p1.clone(), 3.0)];
    eventually(Duration::from_secs(30), "Prometheus has the runs", || {
        prom.values_by_name(&runs, None) == want
    });
    // More runs reach it too, at the next rewrite and scrape.
    fleet.drive(0, 5);
    let want = vec![(p0.clone(), 12.0), (p1.clone(), 3.0)];
    eventually(
        Duration::from_secs(30),
        "Prometheus has the new runs",
        || prom.values_by_name(&runs, None) == want,
    );
    // The metadata joins on id: owner is this test process, the holder of the programs.
    let info = prom.query(&format!("ebpfstat_program_info{{name=\"{p0}\"}}"), None);
    let comm = std::fs::read_to_string("/proc/self/comm").expect("comm");
    assert_eq!(info[0]["metric"]["owner"], comm.trim_end(), "{info}");
    assert_eq!(info[0]["metric"]["type"], "socket_filter");
    assert_eq!(
        info[0]["metric"]["id"],
        fleet.programs[0].id.to_string().as_str()
    );
    let state = prom.query("ebpfstat_stats_state", None);
    assert_eq!(state.as_array().map(Vec::len), Some(1), "{state}");
    let passes = prom.query("ebpfstat_passes_total", None);
    assert!(
        passes[0]["value"][1].as_str().is_some_and(|v| v != "0"),
        "{passes}"
    );
    // node_exporter read the file without complaint.
    let (_, metrics) = get(node.port, "/metrics").expect("node metrics");
    let metrics = String::from_utf8_lossy(&metrics);
    assert!(
        metrics.contains("node_textfile_scrape_error 0"),
        "{metrics}"
    );
    assert!(daemon.stop());
}

#[test]
fn prometheus_scrapes_the_endpoint() {
    require_bpf!();
    if !engines_available(module_path!()) {
        return;
    }
    let prefix = format!("fs{}_", tag());
    let fleet = Fleet::load(&prefix, 2);
    fleet.drive(0, 4);
    fleet.drive(1, 9);
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let daemon = ApiDaemon::start_with(None, "200ms", &["--metrics-listen", &addr]);
    assert_eq!(
        daemon.ctl_json(&["status"])["metrics_listen"],
        addr.as_str()
    );
    let prom = Engine::prometheus(&[port], None);
    let runs = format!("ebpfstat_program_runs_total{{name=~\"{prefix}.*\"}}");
    let (p0, p1) = (&fleet.programs[0].name, &fleet.programs[1].name);
    let want = vec![(p0.clone(), 4.0), (p1.clone(), 9.0)];
    eventually(
        Duration::from_secs(30),
        "Prometheus scraped the runs",
        || prom.values_by_name(&runs, None) == want,
    );
    // Prometheus asked for OpenMetrics and was understood: its scrape is healthy.
    let up = prom.query("up", None);
    assert_eq!(up[0]["value"][1], "1", "{up}");
    let info = prom.query(&format!("ebpfstat_program_info{{name=\"{p1}\"}}"), None);
    assert_eq!(info[0]["metric"]["type"], "socket_filter", "{info}");

    // Idle connections take a slot for at most a few seconds, then scrapes are answered.
    let idle: Vec<std::net::TcpStream> = (0..200)
        .filter_map(|_| std::net::TcpStream::connect(&addr).ok())
        .collect();
    assert!(idle.len() >= 8, "{}", idle.len());
    let passes = daemon.ctl_json(&["status"])["passes"]
        .as_u64()
        .expect("passes");
    sleep_ms(3000);
    let (status, body) = get(port, "/metrics").expect("a scrape after the idle ones");
    assert_eq!(status, 200);
    let body = String::from_utf8_lossy(&body);
    assert!(
        body.contains(&format!("name=\"{p0}\",type=\"socket_filter\"}} 4\n")),
        "{body}"
    );
    assert!(
        daemon.ctl_json(&["status"])["passes"]
            .as_u64()
            .expect("passes")
            > passes
    );
    drop(idle);
    assert_eq!(get(port, "/nope").expect("404").0, 404);
    assert_eq!(head(port, "/metrics").expect("HEAD"), (200, Vec::new()));
    assert_eq!(post(port, "/metrics", b"x").expect("405").0, 405);

    // An address in use: said in status, and the daemon samples on.
    let second = ApiDaemon::start_with(None, "200ms", &["--metrics-listen", &addr]);
    let status = second.ctl_json(&["status"]);
    let error = status["metrics_error"].as_str().expect("text");
    assert!(
        error.starts_with(&format!("cannot serve /metrics on {addr}: "))
            && error.contains("in use"),
        "{error}"
    );
    assert!(
        status["metrics_listen"].is_null(),
        "served nowhere: {status}"
    );
    assert!(second.stop());
    assert!(daemon.stop());
}

#[test]
fn an_unwritable_textfile_is_reported_and_sampling_goes_on() {
    require_bpf!();
    let daemon = ApiDaemon::start_with(
        None,
        "200ms",
        &[
            "--textfile",
            "/nonexistent-dir/ebpfstat.prom",
            "--textfile-interval",
            "1s",
        ],
    );
    let mut status = daemon.ctl_json(&["status"]);
    eventually(Duration::from_secs(10), "status names the textfile", || {
        status = daemon.ctl_json(&["status"]);
        status["textfile_error"].is_string()
    });
    let error = status["textfile_error"].as_str().expect("text");
    assert!(
        error.starts_with("cannot write the textfile /nonexistent-dir/ebpfstat.prom: ")
            && error.contains("No such file or directory"),
        "{error}"
    );
    assert!(status["last_error"].as_str().expect("text").contains(error));
    let passes = status["passes"].as_u64().expect("passes");
    sleep_ms(1000);
    assert!(
        daemon.ctl_json(&["status"])["passes"]
            .as_u64()
            .expect("passes")
            > passes
    );
    assert!(daemon.log().contains("cannot write the textfile"));
    assert!(daemon.stop());

    // A path node_exporter would not read is refused before anything starts.
    let out = std::process::Command::new(bin("ebpfstatd"))
        .args([
            "run",
            "--config",
            "/dev/null",
            "--textfile",
            "/tmp/ebpfstat.txt",
        ])
        .output()
        .expect("run");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("textfile") && err.contains("ending in .prom"),
        "{err}"
    );
}

#[test]
#[expect(
    clippy::too_many_lines,
    reason = "one scenario read top to bottom: each step checks what the step before left"
)]
fn exported_history_backfills_prometheus_and_victoria_metrics() {
    require_bpf!();
    if !engines_available(module_path!()) {
        return;
    }
    let prefix = format!("fb{}_", tag());
    let fleet = Fleet::load(&prefix, 3);
    let daemon = ApiDaemon::start(None, "200ms");
    let since = SystemTime::now() - Duration::from_secs(1);
    // Runs in different seconds, so the export has several steps with data.
    for (round, counts) in [[7, 0, 1], [2, 3, 0], [0, 4, 5]].iter().enumerate() {
        for (i, &n) in counts.iter().enumerate() {
            fleet.drive(i, n);
        }
        if round < 2 {
            sleep_ms(1100);
        }
    }
    // Stored (flushed every second), then the range ends a second before now: a pass taken
    // just before `until` may not be stored yet, and one export would see it and the next not.
    sleep_ms(2500);
    let until = SystemTime::now() - Duration::from_secs(1);
    let (from, to) = (
        humantime::format_rfc3339_nanos(since).to_string(),
        humantime::format_rfc3339_nanos(until).to_string(),
    );
    let mut stored = Vec::new();
    for p in &fleet.programs {
        let h = daemon.ctl_json(&[
            "history", &p.name, "--since", &from, "--until", &to, "--step", "1s",
        ]);
        stored.push((p.name.clone(), history_runs(&h) as f64));
    }
    assert_eq!(
        stored.iter().map(|s| s.1).collect::<Vec<_>>(),
        [9.0, 7.0, 6.0]
    );

    let dir = open_tempdir();
    let export = |file: &str, page: &str| {
        let path = dir.path().join(file);
        let out = daemon.ctl(&[
            "export",
            "--since",
            &from,
            "--until",
            &to,
            "--step",
            "1s",
            "--name",
            &format!("{prefix}*"),
            "--page-points",
            page,
            "-o",
            path.to_str().expect("utf-8"),
        ]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        std::fs::read_to_string(path).expect("export")
    };
    let whole = export("whole.om", "20000");
    assert!(whole.ends_with("# EOF\n"), "{whole}");
    assert_eq!(whole.matches("# EOF").count(), 1);
    // Small pages join into the same text.
    assert_eq!(export("paged.om", "2"), whole);

    // Last minus first value of each series over the range: the runs stored in it.
    let at = secs(until) + 1.0;
    let increase = format!(
        "max_over_time(ebpfstat_program_runs_total{{name=~\"{prefix}.*\"}}[1h]) - \
         min_over_time(ebpfstat_program_runs_total{{name=~\"{prefix}.*\"}}[1h])"
    );

    let blocks = dir.path().join("tsdb");
    let out = output(
        std::process::Command::new("promtool")
            .args(["tsdb", "create-blocks-from", "openmetrics"])
            .arg(dir.path().join("whole.om"))
            .arg(&blocks),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let prom = Engine::prometheus(&[], Some(blocks));
    assert_eq!(prom.values_by_name(&increase, Some(at)), stored);

    let vm = Engine::victoria_metrics();
    let (status, body) =
        post(vm.port, "/api/v1/import/prometheus", whole.as_bytes()).expect("import");
    assert_eq!(status, 204, "{}", String::from_utf8_lossy(&body));
    get(vm.port, "/internal/force_flush").expect("flush");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let got = vm.values_by_name(&increase, Some(at));
        if got == stored {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "VictoriaMetrics: {got:?}, stored {stored:?}; all: {}; at {at}; {}",
            vm.query("ebpfstat_program_runs_total", None),
            vm.log()
                .lines()
                .rev()
                .take(6)
                .collect::<Vec<_>>()
                .join("\n")
        );
        sleep_ms(250);
    }

    // A reader that goes away ends the export quietly; the daemon samples on.
    let passes = daemon.ctl_json(&["status"])["passes"]
        .as_u64()
        .expect("passes");
    let piped = output(std::process::Command::new("bash").arg("-c").arg(format!(
        "{} --socket {} export --since {from} --until {to} --step 1s --page-points 1 | head -c 10 \
         >/dev/null; exit ${{PIPESTATUS[0]}}",
        bin("ebpfstatctl").display(),
        daemon.socket.display()
    )));
    assert!(piped.status.success(), "{piped:?}");
    assert!(piped.stderr.is_empty(), "{piped:?}");
    sleep_ms(500);
    assert!(
        daemon.ctl_json(&["status"])["passes"]
            .as_u64()
            .expect("passes")
            > passes
    );

    // An absurd range is refused in words.
    let out = daemon.ctl(&["export", "--since", "1970-01-02T00:00:00Z", "--step", "1s"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("steps per program"), "{err}");
    assert!(daemon.stop());
}

/// The last time stamp (ms, as written) of each series of `family` in an export.
fn last_stamps(text: &str, family: &str) -> std::collections::BTreeMap<String, String> {
    text.lines()
        .filter(|l| l.starts_with(family))
        .filter_map(|l| {
            let (series, rest) = l.split_once("} ")?;
            Some((
                series.trim_start_matches(family).to_owned(),
                rest.split(' ').nth(1)?.to_owned(),
            ))
        })
        .collect()
}

/// An export's text and the rows the store read for it (the daemon counts them in status).
fn export_counted(daemon: &ApiDaemon, args: &[&str]) -> (String, u64) {
    let rows = || {
        daemon.ctl_json(&["status"])["store_rows_read"]
            .as_u64()
            .expect("store_rows_read")
    };
    let before = rows();
    let out = daemon.ctl(&[&["export"], args].concat());
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    (
        String::from_utf8(out.stdout).expect("utf-8"),
        rows() - before,
    )
}

#[test]
fn small_export_pages_cost_what_they_return_and_families_end_together() {
    require_bpf!();
    let prefix = format!("fp{}_", tag());
    let fleet = Fleet::load(&prefix, 3);
    let daemon = ApiDaemon::start(None, "200ms");
    let since = humantime::format_rfc3339_nanos(SystemTime::now()).to_string();
    for round in 0..4 {
        for i in 0..3 {
            fleet.drive(i, round + i as u64);
        }
        sleep_ms(700);
    }
    // Up to now, while passes go on being stored: pages of one point take long enough for
    // passes to come between the first family and the second.
    let glob = format!("{prefix}*");
    let args = [
        "--since",
        &since,
        "--step",
        "200ms",
        "--name",
        &glob,
        "--page-points",
        "1",
    ];
    let (text, _) = export_counted(&daemon, &args);
    let (runs, time) = (
        last_stamps(&text, "ebpfstat_program_runs_total"),
        last_stamps(&text, "ebpfstat_program_run_time_seconds_total"),
    );
    assert_eq!(runs.len(), 3, "{text}");
    assert_eq!(runs, time, "every family ends at the same step");

    // A range in the past, stored: paged and whole exports are the same text.
    sleep_ms(1500);
    let until = humantime::format_rfc3339_nanos(SystemTime::now() - Duration::from_secs(1));
    let until = until.to_string();
    let ranged = |page: &'static str| {
        let mut a = vec!["--since", &since, "--until", &until, "--step", "200ms"];
        a.extend(["--name", &glob, "--page-points", page]);
        export_counted(&daemon, &a)
    };
    let (whole, _) = ranged("20000");
    let (paged, rows_a) = ranged("1");
    assert_eq!(paged, whole);
    // A page a point: about as many pages as samples.
    let pages = whole.lines().filter(|l| l.starts_with("ebpfstat_")).count();
    assert!(pages > 30, "{pages} samples");

    // 300 more series in the store, none of them exported: a page reads what it writes, not
    // every series stored (before, each page read them all: 300 rows more per page).
    let others = Fleet::load(&format!("fo{}_", tag()), 300);
    eventually(Duration::from_secs(30), "the others stored", || {
        daemon.ctl_json(&["list", "--name", &format!("fo{}_*", tag())])["programs"]
            .as_array()
            .is_some_and(|p| p.len() == 300)
    });
    drop(others);
    sleep_ms(1500);
    let (again, rows_b) = ranged("1");
    assert_eq!(again, whole);
    // The export walks past the new series once a family to find there is nothing after.
    assert!(
        rows_b <= rows_a + 2 * 2 * 300,
        "{rows_a} rows read before, {rows_b} with 300 more series, over {pages} pages"
    );
    assert!(daemon.stop());
}

/// An export that starts after the newest stored sample (passes every 10 s, asked for the last
/// 2 s) is every family with no samples, where the page's end, fixed at the newest sample, fell
/// before its start and the store refused the range.
#[test]
fn an_export_from_after_the_newest_sample_is_empty() {
    require_bpf!();
    // A program the export would list, had it samples in the range.
    let _fleet = Fleet::load(&format!("ee{}_", tag()), 1);
    let daemon = ApiDaemon::start(None, "10s");
    // The first pass is stored at start; the next is 10 s away.
    sleep_ms(3000);
    let out = daemon.ctl(&["export", "--since", "2s", "--step", "10s"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("# TYPE ebpfstat_program_runs counter"),
        "{text}"
    );
    assert!(
        !text.lines().any(|l| l.starts_with("ebpfstat_")),
        "no samples: {text}"
    );
    assert!(text.ends_with("# EOF\n"), "{text}");
    assert!(daemon.stop());
}
