//! Real Prometheus-compatible engines on 127.0.0.1 (Debian's `prometheus`, `promtool`,
//! `prometheus-node-exporter`, `victoria-metrics`), each a child process with its own
//! directory and port, killed when dropped; and the little HTTP the tests speak to them.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::bus::open_tempdir;
use crate::skip_or_fail;

/// Whether the engines' binaries are installed; skips (fails under CI=true) when not.
pub fn engines_available(test: &str) -> bool {
    let missing: Vec<&str> = [
        "prometheus",
        "promtool",
        "prometheus-node-exporter",
        "victoria-metrics",
    ]
    .into_iter()
    .filter(|b| !Path::new("/usr/bin").join(b).exists())
    .collect();
    if missing.is_empty() {
        return true;
    }
    skip_or_fail(
        test,
        &format!("{} missing (tests/setup installs them)", missing.join(", ")),
    );
    false
}

/// A port nothing listens on now.
pub fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    l.local_addr().expect("local addr").port()
}

/// An engine process: killed and reaped when dropped.
#[derive(Debug)]
pub struct Engine {
    child: Child,
    pub port: u16,
    pub dir: tempfile::TempDir,
    /// How it was started and where it says it is ready: to start it again.
    program: String,
    args: Vec<String>,
    ready: String,
}

impl Drop for Engine {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Engine {
    fn spawn(cmd: Command, port: u16, dir: tempfile::TempDir, ready: &str) -> Self {
        let program = cmd.get_program().to_string_lossy().into_owned();
        let args: Vec<String> = cmd
            .get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        let child = Self::run(&program, &args, &dir);
        let e = Self {
            child,
            port,
            dir,
            program,
            args,
            ready: ready.to_owned(),
        };
        e.wait_up();
        e
    }

    /// Until it answers `ready` over HTTP; a TLS engine (no `ready`) until its port opens.
    fn wait_up(&self) {
        if self.ready.is_empty() {
            wait_port(self.port);
        } else {
            self.wait_ready(&self.ready);
        }
    }

    fn run(program: &str, args: &[String], dir: &tempfile::TempDir) -> Child {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.path().join("log"))
            .expect("log");
        Command::new(program)
            .args(args)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("{program} {args:?}: {e}"))
    }

    /// Stops it (SIGTERM, as an operator would), keeping its data and port for
    /// [`Engine::start_again`].
    pub fn stop(&mut self) {
        // SAFETY: kill(2) on our own child's pid.
        unsafe { libc::kill(i32::try_from(self.child.id()).expect("pid"), libc::SIGTERM) };
        let _ = self.child.wait();
    }

    /// After [`Engine::stop`]: the same engine on the same data and port.
    pub fn start_again(&mut self) {
        self.child = Self::run(&self.program, &self.args, &self.dir);
        self.wait_up();
    }

    /// Prometheus taking remote writes and scraping nothing; `web_config`: its
    /// `--web.config.file` (TLS, basic authentication).
    pub fn prometheus_receiver(web_config: Option<&Path>) -> Self {
        let dir = open_tempdir();
        let port = free_port();
        let config = dir.path().join("prometheus.yml");
        std::fs::write(&config, "global:\n  scrape_interval: 1h\n").expect("config");
        let mut cmd = Command::new("prometheus");
        cmd.arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--web.enable-remote-write-receiver");
        if let Some(web) = web_config {
            cmd.arg(format!("--web.config.file={}", web.display()));
            // Readiness is asked over plain HTTP; a TLS receiver is waited for by its port.
            return Self::spawn(cmd, port, dir, "");
        }
        Self::spawn(cmd, port, dir, "/-/ready")
    }

    fn wait_ready(&self, path: &str) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if get(self.port, path).is_ok_and(|(status, _)| status == 200) {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!(
            "engine on {} never answered {path}: {}",
            self.port,
            self.log()
        );
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("log")).unwrap_or_default()
    }

    /// node_exporter with only its textfile collector, reading `dir`.
    pub fn node_exporter(textfiles: &Path) -> Self {
        let port = free_port();
        let mut cmd = Command::new("prometheus-node-exporter");
        cmd.arg("--collector.disable-defaults")
            .arg("--collector.textfile")
            .arg(format!(
                "--collector.textfile.directory={}",
                textfiles.display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"));
        Self::spawn(cmd, port, open_tempdir(), "/metrics")
    }

    /// Prometheus scraping `targets` every second, or serving blocks already in `tsdb`.
    pub fn prometheus(targets: &[u16], tsdb: Option<PathBuf>) -> Self {
        let dir = open_tempdir();
        let port = free_port();
        let targets: Vec<String> = targets.iter().map(|p| format!("'127.0.0.1:{p}'")).collect();
        let config = dir.path().join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
                 scrape_configs:\n  - job_name: device\n    static_configs:\n      \
                 - targets: [{}]\n",
                targets.join(", ")
            ),
        )
        .expect("config");
        let data = tsdb.unwrap_or_else(|| dir.path().join("data"));
        let mut cmd = Command::new("prometheus");
        cmd.arg(format!("--config.file={}", config.display()))
            .arg(format!("--storage.tsdb.path={}", data.display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            // Blocks of a backfill are old: keep them.
            .arg("--storage.tsdb.retention.time=10y");
        Self::spawn(cmd, port, dir, "/-/ready")
    }

    pub fn victoria_metrics() -> Self {
        let dir = open_tempdir();
        let port = free_port();
        let mut cmd = Command::new("victoria-metrics");
        cmd.arg(format!(
            "-storageDataPath={}",
            dir.path().join("data").display()
        ))
        .arg(format!("-httpListenAddr=127.0.0.1:{port}"))
        // Backfilled samples may be older than the default retention's start.
        .arg("-retentionPeriod=100y")
        // Samples of the last 30 s are hidden from queries by default; backfill is recent.
        .arg("-search.latencyOffset=0s");
        Self::spawn(cmd, port, dir, "/health")
    }

    /// An instant PromQL query (Prometheus and VictoriaMetrics share the API); `at` in
    /// seconds since the epoch. Returns `data.result`.
    pub fn query(&self, promql: &str, at: Option<f64>) -> Value {
        let mut path = format!("/api/v1/query?query={}", url_encode(promql));
        if let Some(t) = at {
            path.push_str(&format!("&time={t:.3}"));
        }
        let (status, body) = get(self.port, &path).expect("query");
        let v: Value = serde_json::from_slice(&body)
            .unwrap_or_else(|e| panic!("{promql}: {e}: {}", String::from_utf8_lossy(&body)));
        assert_eq!(status, 200, "{promql}: {v}");
        v["data"]["result"].clone()
    }

    /// Each series' value of an instant query, by its `name` label.
    pub fn values_by_name(&self, promql: &str, at: Option<f64>) -> Vec<(String, f64)> {
        let mut out: Vec<(String, f64)> = self
            .query(promql, at)
            .as_array()
            .expect("a vector")
            .iter()
            .map(|r| {
                let name = r["metric"]["name"].as_str().unwrap_or("").to_owned();
                let v = r["value"][1]
                    .as_str()
                    .expect("a value")
                    .parse()
                    .expect("a number");
                (name, v)
            })
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }
}

/// Waits (30 s at most) until something listens on 127.0.0.1:`port`.
fn wait_port(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "port {port} never opened");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `GET path` on 127.0.0.1:`port`: (status, body).
pub fn get(port: u16, path: &str) -> std::io::Result<(u16, Vec<u8>)> {
    request(
        port,
        &format!("GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n"),
        &[],
    )
}

/// `HEAD path`: (status, body, which should be empty).
pub fn head(port: u16, path: &str) -> std::io::Result<(u16, Vec<u8>)> {
    request(
        port,
        &format!("HEAD {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n"),
        &[],
    )
}

/// `POST path` with `body`.
pub fn post(port: u16, path: &str, body: &[u8]) -> std::io::Result<(u16, Vec<u8>)> {
    let head = format!(
        "POST {path} HTTP/1.0\r\nHost: 127.0.0.1\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    request(port, &head, body)
}

fn request(port: u16, head: &str, body: &[u8]) -> std::io::Result<(u16, Vec<u8>)> {
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(60)))?;
    s.write_all(head.as_bytes())?;
    s.write_all(body)?;
    let mut reply = Vec::new();
    s.read_to_end(&mut reply)?;
    let split = reply
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| std::io::Error::other("no header end"))?;
    let status = std::str::from_utf8(&reply[..split])
        .ok()
        .and_then(|h| h.split_whitespace().nth(1))
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| std::io::Error::other("no status"))?;
    Ok((status, reply[split + 4..].to_vec()))
}

/// Percent-encodes a query parameter.
pub fn url_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                char::from(b).to_string()
            }
            b => format!("%{b:02X}"),
        })
        .collect()
}
