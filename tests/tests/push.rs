//! Remote write end to end: the daemon pushes to a real Prometheus (`--web.enable-remote-write-
//! receiver`) and a real VictoriaMetrics on 127.0.0.1, real programs driven to known run
//! counts; an outage of the receivers with a daemon restart in it; receivers that fail, then
//! take, or refuse.

use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime};

use ebpfstat_tests::bus::{ApiDaemon, open_tempdir};
use ebpfstat_tests::engines::{self, Engine, engines_available, get};
use ebpfstat_tests::fleet::Fleet;
use ebpfstat_tests::receiver::{ScriptedReceiver, set_pushed};
use ebpfstat_tests::*;
use serde_json::Value;

fn sleep_ms(ms: u64) {
    std::thread::sleep(Duration::from_millis(ms));
}

/// Polls `f` until it returns true, for at most `limit`.
fn eventually(limit: Duration, what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !f() {
        assert!(Instant::now() < deadline, "never: {what}");
        sleep_ms(250);
    }
}

fn now_ns() -> i64 {
    let d = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .expect("after 1970");
    i64::try_from(d.as_nanos()).expect("fits")
}

/// A configuration file pushing to each url every second at a step of a second, as device
/// `edge-17`; `extra` lines go into every table.
fn config(urls: &[String], extra: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = open_tempdir();
    let path = dir.path().join("ebpfstatd.toml");
    let tables: String = urls
        .iter()
        .map(|u| {
            format!(
                "[[remote_write]]\nurl = \"{u}\"\ninterval = \"1s\"\nstep = \"1s\"\n\
                 labels = {{ device = \"edge-17\" }}\n{extra}\n"
            )
        })
        .collect();
    std::fs::write(&path, tables).expect("config");
    (dir, path)
}

fn write_url(e: &Engine, path: &str) -> String {
    format!("http://127.0.0.1:{}{path}", e.port)
}

/// A Prometheus and a VictoriaMetrics taking remote writes, and a configuration pushing to
/// both (its directory kept alive by the caller).
fn receivers() -> (Engine, Engine, tempfile::TempDir, PathBuf) {
    let (prom, vm) = (
        Engine::prometheus_receiver(None),
        Engine::victoria_metrics(),
    );
    let urls = [
        write_url(&prom, "/api/v1/write"),
        write_url(&vm, "/api/v1/write"),
    ];
    let (dir, cfg) = config(&urls, "");
    (prom, vm, dir, cfg)
}

/// Waits until every target's receiver has everything stored up to `at_ns`.
fn wait_pushed(daemon: &ApiDaemon, at_ns: i64) {
    eventually(Duration::from_secs(90), "every target acknowledged", || {
        let st = daemon.ctl_json(&["status"]);
        let targets = st["remote_write"].as_array().cloned().unwrap_or_default();
        !targets.is_empty()
            && targets
                .iter()
                .all(|t| t["position_ns"].as_i64().unwrap_or(0) >= at_ns)
    });
}

/// VictoriaMetrics' raw samples of a program's runs: (time ms, value) in its order.
fn vm_samples(vm: &Engine, name: &str) -> Vec<(i64, f64)> {
    let _ = get(vm.port, "/internal/force_flush");
    let selector = format!("ebpfstat_program_runs_total{{name=\"{name}\",device=\"edge-17\"}}");
    let path = format!("/api/v1/export?match[]={}", engines::url_encode(&selector));
    let (status, body) = get(vm.port, &path).expect("export");
    assert_eq!(status, 200);
    let text = String::from_utf8(body).expect("utf-8");
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("json line"))
        .collect();
    assert_eq!(lines.len(), 1, "one series for {name}: {text}");
    let times = lines[0]["timestamps"].as_array().expect("timestamps");
    let values = lines[0]["values"].as_array().expect("values");
    times
        .iter()
        .zip(values)
        .map(|(t, v)| (t.as_i64().expect("ms"), v.as_f64().expect("value")))
        .collect()
}

/// The most runs Prometheus holds for each program of the fleet, for device `edge-17`.
fn prometheus_runs(p: &Engine, prefix: &str) -> Vec<(String, f64)> {
    p.values_by_name(
        &format!(
            "max_over_time(ebpfstat_program_runs_total{{name=~\"{prefix}.*\",device=\"edge-17\"}}[10m])"
        ),
        None,
    )
}

#[test]
fn pushed_runs_reach_prometheus_and_victoria_metrics_exactly() {
    require_bpf!();
    if !engines_available(module_path!()) {
        return;
    }
    let prefix = format!("rw{}_", tag());
    let fleet = Fleet::load(&prefix, 3);
    let (prom, vm, _dir, cfg) = receivers();
    let started_ms = now_ns() / 1_000_000;
    let daemon = ApiDaemon::start_with(None, "200ms", &["--config", cfg.to_str().expect("utf-8")]);
    wait_first_step(&daemon, &fleet, started_ms);
    for (round, counts) in [[7, 0, 1], [2, 3, 0], [0, 4, 5]].iter().enumerate() {
        for (i, &n) in counts.iter().enumerate() {
            fleet.drive(i, n);
        }
        if round < 2 {
            sleep_ms(1100);
        }
    }
    let driven = now_ns();
    wait_pushed(&daemon, driven + 1_000_000_000);
    let want: Vec<(String, f64)> = fleet
        .programs
        .iter()
        .zip([9.0, 7.0, 6.0])
        .map(|(p, n)| (p.name.clone(), n))
        .collect();
    eventually(Duration::from_secs(30), "Prometheus has every run", || {
        prometheus_runs(&prom, &prefix) == want
    });
    for (p, (_, n)) in fleet.programs.iter().zip(&want) {
        let samples = vm_samples(&vm, &p.name);
        assert_eq!(
            samples.last().map(|s| s.1),
            Some(*n),
            "{}: {samples:?}",
            p.name
        );
        // From 0 (the program's runs before its first step) up, one sample a second.
        assert_eq!(samples.first().map(|s| s.1), Some(0.0), "{samples:?}");
        assert!(samples.windows(2).all(|w| w[0].0 < w[1].0), "{samples:?}");
    }
    // The device's own families came too, with its labels.
    let passes = prom.query("ebpfstat_passes_total{device=\"edge-17\"}", None);
    assert_eq!(passes.as_array().map(Vec::len), Some(1), "{passes}");
    let st = daemon.ctl_json(&["status"]);
    for t in st["remote_write"].as_array().expect("targets") {
        assert_eq!(t["last_error"], "", "{t}");
        assert!(t["samples_sent"].as_u64().unwrap_or(0) > 0, "{t}");
    }
}

/// Waits until the store has a whole second of each program that has ended, so that the
/// first step pushed of each comes before the runs a test drives next (a busy machine may
/// delay the daemon's first passes past them).
fn wait_first_step(daemon: &ApiDaemon, fleet: &Fleet, from_ms: i64) {
    daemon.wait_passes(1);
    eventually(
        Duration::from_secs(30),
        "a stored second of each program",
        || {
            // A step ending a whole second before the current one: no later pass can land in it.
            let ended_ms = now_ns() / 1_000_000_000 * 1000 - 1000;
            ended_ms > from_ms
                && fleet
                    .programs
                    .iter()
                    .all(|p| !stored_steps(daemon, &p.name, (from_ms, ended_ms)).is_empty())
        },
    );
}

/// What the store holds of a program at each whole second of `[from_ms, to_ms]`: (end of the
/// step in ms, its runs since load), the steps with samples only.
fn stored_steps(daemon: &ApiDaemon, name: &str, (from_ms, to_ms): (i64, i64)) -> Vec<(i64, f64)> {
    let at = |ms: i64| {
        let t =
            SystemTime::UNIX_EPOCH + Duration::from_millis(u64::try_from(ms).expect("after 1970"));
        humantime::format_rfc3339_millis(t).to_string()
    };
    let h = daemon.ctl_json(&[
        "history",
        name,
        "--since",
        &at(from_ms),
        "--until",
        &at(to_ms),
        "--step",
        "1s",
        "--max-points",
        "5000",
    ]);
    h["points"]
        .as_array()
        .expect("points")
        .iter()
        .filter(|p| p["samples"].as_u64().unwrap_or(0) > 0)
        .map(|p| {
            let end = p["end_ns"].as_i64().expect("end") / 1_000_000;
            (end, p["cum_run_cnt"].as_f64().expect("cum"))
        })
        .collect()
}

#[test]
#[expect(
    clippy::too_many_lines,
    reason = "one scenario read top to bottom: the outage, the restart in it, what came after"
)]
fn an_outage_with_a_restart_in_it_loses_nothing_and_sends_nothing_twice() {
    require_bpf!();
    if !engines_available(module_path!()) {
        return;
    }
    let prefix = format!("ro{}_", tag());
    let fleet = Fleet::load(&prefix, 2);
    let (mut prom, mut vm, _dir, cfg) = receivers();
    let flags = ["--config", cfg.to_str().expect("utf-8")];
    let mut daemon = ApiDaemon::start_with(None, "200ms", &flags);
    let drive_for = |secs: u64| {
        for s in 0..secs {
            fleet.drive(0, 3);
            fleet.drive(1, s % 3);
            sleep_ms(1000);
        }
    };
    drive_for(3);
    wait_pushed(&daemon, now_ns() - 1_000_000_000);
    // The receivers stop for a minute; the programs go on running; the daemon is restarted
    // in the middle of it.
    let outage_from = now_ns();
    prom.stop();
    vm.stop();
    drive_for(30);
    daemon.stop_in_place();
    sleep_ms(1500);
    daemon.start_again("200ms", &flags);
    drive_for(30);
    let st = daemon.ctl_json(&["status"]);
    let backlog = st["remote_write"][0]["backlog_ns"]
        .as_i64()
        .expect("backlog");
    assert!(backlog >= 50_000_000_000, "the outage is a backlog: {st}");
    assert!(
        st["remote_write"][0]["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("cannot connect")),
        "{st}"
    );
    prom.start_again();
    vm.start_again();
    let driven = now_ns();
    wait_pushed(&daemon, driven + 1_000_000_000);
    // Driven: 3 s before, 30 s, 30 s (the drive restarts its count at each call).
    let second: f64 = [3, 30, 30]
        .iter()
        .map(|&n| (0..n).map(|s| f64::from(s % 3)).sum::<f64>())
        .sum();
    let total = [3.0 * 63.0, second];
    for (p, n) in fleet.programs.iter().zip(total) {
        let samples = vm_samples(&vm, &p.name);
        assert_eq!(
            samples.last().map(|s| s.1),
            Some(n),
            "{}: {samples:?}",
            p.name
        );
        // No time twice, in order.
        assert!(samples.windows(2).all(|w| w[0].0 < w[1].0), "{samples:?}");
        // Every step the store has, through the outage and the restart, exactly: the first
        // sample (the value before the first step) aside.
        let (first, last) = (samples[1].0, samples[samples.len() - 1].0);
        let stored = stored_steps(&daemon, &p.name, (first - 1000, last));
        assert_eq!(&samples[1..], &stored[..], "{}", p.name);
        let in_outage = samples
            .iter()
            .filter(|s| s.0 * 1_000_000 > outage_from)
            .count();
        assert!(in_outage >= 55, "{in_outage} steps of the outage");
    }
    let counts = prometheus_runs(&prom, &prefix);
    let want: Vec<(String, f64)> = fleet
        .programs
        .iter()
        .zip(total)
        .map(|(p, n)| (p.name.clone(), n))
        .collect();
    assert_eq!(counts, want);
    // Prometheus has the same steps VictoriaMetrics has.
    let name = &fleet.programs[0].name;
    let r = prom.query(
        &format!("count_over_time(ebpfstat_program_runs_total{{name=\"{name}\"}}[10m])"),
        None,
    );
    let n: usize = r[0]["value"][1]
        .as_str()
        .expect("count")
        .parse()
        .expect("a whole count");
    assert_eq!(n, vm_samples(&vm, name).len());
}

#[test]
fn a_failing_receiver_gets_the_same_batch_again_and_a_refusal_drops_it() {
    require_bpf!();
    let fleet = Fleet::load(&format!("rf{}_", tag()), 1);
    // Two failures, a success, then a refusal; then successes.
    let receiver = ScriptedReceiver::start(&[500, 503, 204, 400]);
    let url = format!("http://127.0.0.1:{}/api/v1/write", receiver.port);
    let (_dir, cfg) = config(&[url], "");
    let daemon = ApiDaemon::start_with(None, "200ms", &["--config", cfg.to_str().expect("utf-8")]);
    fleet.drive(0, 5);
    eventually(Duration::from_secs(60), "six requests", || {
        receiver.received().len() >= 6
    });
    let got = receiver.received();
    // The failed batch, sent again as it was: the same bytes three times.
    assert_eq!(got[0].body, got[1].body);
    assert_eq!(got[1].body, got[2].body);
    assert!(
        got[0].head.contains("Content-Encoding: snappy"),
        "{}",
        got[0].head
    );
    assert_eq!(
        got.iter().map(|r| r.status).take(4).collect::<Vec<_>>(),
        [500, 503, 204, 400]
    );
    // After the refusal, the next batch is another one.
    assert_ne!(got[3].body, got[4].body);
    let st = daemon.ctl_json(&["status"]);
    let t = &st["remote_write"][0];
    assert_eq!(
        (t["retries"].as_u64(), t["dropped"].as_u64()),
        (Some(2), Some(1)),
        "{t}"
    );
    let log = daemon.log();
    assert_eq!(log.matches("HTTP 500").count(), 1, "{log}");
    assert_eq!(log.matches("refused a batch").count(), 1, "{log}");
    assert!(
        log.contains("(HTTP 400: status 400 from the script); dropped"),
        "{log}"
    );
}

/// Runs `cmd` (openssl, htpasswd) in `dir`, asserted to succeed; its output.
fn run_in(dir: &std::path::Path, cmd: &str, args: &[&str]) -> String {
    let out = std::process::Command::new(cmd)
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| panic!("{cmd}: {e}"));
    assert!(
        out.status.success(),
        "{cmd} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A CA, a server certificate for `localhost` and 127.0.0.1 and a client certificate, each
/// signed by the CA, in `dir` (`ca.crt`, `server.{crt,key}`, `client.{crt,key}`).
fn make_pki(dir: &std::path::Path) {
    run_in(
        dir,
        "openssl",
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.crt",
            "-days",
            "2",
            "-subj",
            "/CN=ebpfstat test CA",
        ],
    );
    for (name, ext) in [
        ("server", "subjectAltName=DNS:localhost,IP:127.0.0.1"),
        ("client", "extendedKeyUsage=clientAuth"),
    ] {
        let (key, csr, crt) = (
            format!("{name}.key"),
            format!("{name}.csr"),
            format!("{name}.crt"),
        );
        run_in(
            dir,
            "openssl",
            &[
                "req",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-nodes",
                "-keyout",
                &key,
                "-out",
                &csr,
                "-subj",
                &format!("/CN={name}"),
            ],
        );
        std::fs::write(dir.join(format!("{name}.ext")), ext).expect("ext");
        run_in(
            dir,
            "openssl",
            &[
                "x509",
                "-req",
                "-in",
                &csr,
                "-CA",
                "ca.crt",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-out",
                &crt,
                "-days",
                "2",
                "-extfile",
                &format!("{name}.ext"),
            ],
        );
    }
}

/// `curl` against a TLS receiver with the client certificate and basic authentication.
fn curl_query(dir: &std::path::Path, port: u16, promql: &str) -> Value {
    let url = format!(
        "https://localhost:{port}/api/v1/query?query={}",
        engines::url_encode(promql)
    );
    let out = run_in(
        dir,
        "curl",
        &[
            "-sS",
            "--cacert",
            "ca.crt",
            "--cert",
            "client.crt",
            "--key",
            "client.key",
            "-u",
            "edge:s3cret pass",
            &url,
        ],
    );
    serde_json::from_str::<Value>(&out).expect("json")["data"]["result"].clone()
}

#[test]
fn tls_with_a_client_certificate_and_basic_auth_reaches_prometheus() {
    use std::os::unix::fs::PermissionsExt as _;
    require_bpf!();
    if !engines_available(module_path!()) {
        return;
    }
    let pki = open_tempdir();
    let dir = pki.path();
    make_pki(dir);
    let hash = run_in(dir, "htpasswd", &["-nbBC", "5", "edge", "s3cret pass"]);
    let hash = hash.trim().trim_start_matches("edge:");
    let web = dir.join("web.yml");
    std::fs::write(
        &web,
        format!(
            "tls_server_config:\n  cert_file: {d}/server.crt\n  key_file: {d}/server.key\n  \
             client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: {d}/ca.crt\n\
             basic_auth_users:\n  edge: '{hash}'\n",
            d = dir.display()
        ),
    )
    .expect("web config");
    let password = dir.join("password");
    std::fs::write(&password, "s3cret pass\n").expect("password");
    std::fs::set_permissions(&password, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    let prom = Engine::prometheus_receiver(Some(&web));
    let d = dir.display();
    let good = format!(
        "[[remote_write]]\nurl = \"https://localhost:{p}/api/v1/write\"\ninterval = \"1s\"\n\
         step = \"1s\"\nlabels = {{ device = \"edge-17\" }}\n\
         basic_auth = {{ username = \"edge\", password_file = \"{d}/password\" }}\n\
         tls = {{ ca_file = \"{d}/ca.crt\", cert_file = \"{d}/client.crt\", key_file = \"{d}/client.key\" }}\n",
        p = prom.port
    );
    // The same receiver by its address, trusting only the system's roots: refused.
    let untrusted = format!(
        "[[remote_write]]\nurl = \"https://127.0.0.1:{p}/api/v1/write\"\ninterval = \"1s\"\n\
         step = \"1s\"\n",
        p = prom.port
    );
    let cfg = dir.join("ebpfstatd.toml");
    std::fs::write(&cfg, format!("{good}\n{untrusted}")).expect("config");
    let fleet = Fleet::load(&format!("rt{}_", tag()), 1);
    let daemon = ApiDaemon::start_with(None, "200ms", &["--config", cfg.to_str().expect("utf-8")]);
    fleet.drive(0, 11);
    let name = &fleet.programs[0].name;
    let promql = format!("ebpfstat_program_runs_total{{name=\"{name}\",device=\"edge-17\"}}");
    eventually(Duration::from_secs(60), "the runs over TLS", || {
        let r = curl_query(dir, prom.port, &promql);
        r[0]["value"][1].as_str() == Some("11")
    });
    let st = daemon.ctl_json(&["status"]);
    let targets = st["remote_write"].as_array().expect("targets");
    assert_eq!(targets[0]["last_error"], "", "{st}");
    let refused = targets[1]["last_error"].as_str().unwrap_or("");
    assert!(
        refused.contains("certificate") && refused.contains("TLS with https://127.0.0.1"),
        "{refused}"
    );
    // The secret is never written anywhere the daemon says things.
    assert!(!daemon.log().contains("s3cret"), "{}", daemon.log());
}

#[test]
fn max_backlog_bounds_what_an_outage_sends_again() {
    use ebpfstat_tests::synthetic::Workload;
    let dir = open_tempdir();
    let db = dir.path().join("history.db");
    // An hour of two programs at 1-second passes, ending now: the receiver has none of it.
    let start = SystemTime::now() - Duration::from_secs(3600 + 60);
    {
        let mut store = ebpfstat_store::Store::open(store_config(&db)).expect("open");
        let mut work = Workload::starting("sim", 2, 1.0, start);
        store.ingest(work.host.tick()).expect("baseline");
        work.fill(&mut store, 3600, || {});
    }
    let receiver = ScriptedReceiver::start(&[]);
    let url = format!("http://127.0.0.1:{}/api/v1/write", receiver.port);
    set_pushed(&db, &url, start);
    let (_cfg_dir, cfg) = config(&[url], "max_backlog = \"10m\"");
    let daemon =
        ApiDaemon::start_on_with(None, "1s", &db, &["--config", cfg.to_str().expect("utf-8")]);
    eventually(Duration::from_secs(60), "caught up", || {
        let t = &daemon.ctl_json(&["status"])["remote_write"][0];
        t["requests"].as_u64().unwrap_or(0) > 0
            && t["backlog_ns"].as_i64().unwrap_or(i64::MAX) < 5_000_000_000
    });
    let t = &daemon.ctl_json(&["status"])["remote_write"][0];
    let samples = t["samples_sent"].as_u64().expect("samples");
    // Two programs, two counters, a sample a second: the last 10 minutes are about 2,400
    // samples (and the live families once); the whole hour would be 14,400.
    assert!((2_000..5_000).contains(&samples), "{samples} samples: {t}");
}

#[test]
fn check_config_refuses_a_secret_others_may_read_and_names_the_table() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = open_tempdir();
    let token = dir.path().join("token");
    std::fs::write(&token, "t0ken\n").expect("token");
    std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let cfg = dir.path().join("ebpfstatd.toml");
    std::fs::write(
        &cfg,
        format!(
            "[[remote_write]]\nurl = \"http://127.0.0.1:9/api/v1/write\"\nbearer_token_file = \"{}\"\n",
            token.display()
        ),
    )
    .expect("config");
    let check = |cfg: &std::path::Path| {
        std::process::Command::new(bin("ebpfstatd"))
            .args(["run", "--check-config", "--config"])
            .arg(cfg)
            .output()
            .expect("run")
    };
    let out = check(&cfg);
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{said}");
    assert!(
        said.contains("remote_write \"http://127.0.0.1:9/api/v1/write\""),
        "{said}"
    );
    assert!(
        said.contains("no one else may read or write (chmod 600; it is 644"),
        "{said}"
    );
    assert!(!said.contains("t0ken"), "{said}");
    std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    let out = check(&cfg);
    let shown = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        shown.contains("[[remote_write]]\nurl = \"http://127.0.0.1:9/api/v1/write\""),
        "{shown}"
    );
    assert!(!shown.contains("t0ken"), "{shown}");
    // A second table on the same url, and a step shorter than the interval: each said.
    std::fs::write(
        &cfg,
        "interval = \"5s\"\n[[remote_write]]\nurl = \"http://h/\"\nstep = \"2s\"\n",
    )
    .expect("config");
    let said = String::from_utf8_lossy(&check(&cfg).stderr).into_owned();
    assert!(
        said.contains("step 2s is shorter than the interval (5s)"),
        "{said}"
    );
}

#[test]
fn the_shipped_example_is_a_valid_table_but_for_its_files() {
    let shipped = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../packaging/ebpfstatd.toml"),
    )
    .expect("shipped configuration");
    // The commented `[[remote_write]]` example, uncommented.
    let example: String = shipped
        .lines()
        .skip_while(|l| *l != "# [[remote_write]]")
        .take_while(|l| l.starts_with("# "))
        .map(|l| format!("{}\n", &l[2..]))
        .collect();
    assert!(example.contains("url = "), "{example}");
    let dir = open_tempdir();
    let cfg = dir.path().join("ebpfstatd.toml");
    std::fs::write(&cfg, &example).expect("config");
    let out = std::process::Command::new(bin("ebpfstatd"))
        .args(["run", "--check-config", "--config"])
        .arg(&cfg)
        .output()
        .expect("run");
    let said = String::from_utf8_lossy(&out.stderr);
    // It reads whole: what stops it is the password file this host does not have.
    assert!(
        said.contains("/etc/ebpfstat/push-password: No such file or directory"),
        "{example}\n{said}"
    );
}
