//! `fleet` benchmark: what fleet export costs the device.
//!
//! 1. Scrapes: 1000 real programs, the release daemon at 1 s with `/metrics`; a scrape a
//!    second (as Prometheus asks, OpenMetrics) for 30 s against 30 s without: scrape latency
//!    and size, the daemon's CPU with and without, and whether any pass came late.
//! 2. Backfill: a store holding 7 days of 500 programs at 1-second passes (simulated, ending
//!    now), the release daemon on it, `ebpfstatctl export --since 7d --step 1m`: time, bytes,
//!    pages, the client's peak RSS and the daemon's peak RSS before and after.
//!
//! Run as root: `cargo build --release --workspace && cargo bench -p ebpfstat-tests --bench fleet`
//! (`-- --quick`: 1 day of history, 10 s windows).

use std::io::{Read, Write};
use std::process::Command;
use std::time::{Duration, Instant, SystemTime};

use ebpfstat_tests::bus::ApiDaemon;
use ebpfstat_tests::engines::free_port;
use ebpfstat_tests::synthetic::Workload;
use ebpfstat_tests::{Fleet, bin, child_usage, cpu_ns, is_root, status_kb, store_config};

const DAY: u64 = 86_400;

/// Bytes of `data` once `gzip -6` compressed it (what a scraper asking for gzip would get).
fn gzipped(data: &[u8]) -> usize {
    let mut gz = Command::new("gzip")
        .arg("-6")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("gzip");
    let mut stdin = gz.stdin.take().expect("stdin");
    let data = data.to_vec();
    let writer = std::thread::spawn(move || stdin.write_all(&data).expect("feed gzip"));
    let out = gz.wait_with_output().expect("gzip output");
    writer.join().expect("writer");
    out.stdout.len()
}

/// One scrape as Prometheus makes it: (wall time, body).
fn scrape(port: u16) -> (Duration, Vec<u8>) {
    let start = Instant::now();
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.write_all(
        b"GET /metrics HTTP/1.1\r\nHost: x\r\nAccept: application/openmetrics-text;version=1.0.0\r\n\r\n",
    )
    .expect("request");
    let mut reply = Vec::new();
    s.read_to_end(&mut reply).expect("reply");
    assert!(
        reply.starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&reply[..64.min(reply.len())])
    );
    let took = start.elapsed();
    let body = reply
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map_or_else(Vec::new, |p| reply[p + 4..].to_vec());
    (took, body)
}

/// The value `num`/`den` of the way up the sorted values.
fn percentile(v: &mut [f64], num: usize, den: usize) -> f64 {
    v.sort_by(f64::total_cmp);
    v[(v.len() - 1) * num / den]
}

fn scrapes(window: Duration) {
    let programs = 1000;
    let _fleet = Fleet::load("fl_", programs);
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let d = ApiDaemon::start_with(
        None,
        "1s",
        &["--flush-interval", "1m", "--metrics-listen", &addr],
    );
    let pid = d.pid();
    std::thread::sleep(Duration::from_secs(3));
    let count = |k: &str| d.ctl_json(&["status"])[k].as_u64().expect(k);

    let c0 = cpu_ns(pid);
    std::thread::sleep(window);
    let idle_cpu = (cpu_ns(pid) - c0) as f64 / window.as_nanos() as f64 * 100.0;

    let (p0, l0, c1) = (count("passes"), count("late_passes"), cpu_ns(pid));
    let started = Instant::now();
    let mut latencies = Vec::new();
    let mut body = Vec::new();
    while started.elapsed() < window {
        let (took, got) = scrape(port);
        latencies.push(took.as_secs_f64() * 1e3);
        body = got;
        std::thread::sleep(Duration::from_secs(1).saturating_sub(took));
    }
    let elapsed = started.elapsed();
    let scraping_cpu = (cpu_ns(pid) - c1) as f64 / elapsed.as_nanos() as f64 * 100.0;
    let (p1, l1) = (count("passes"), count("late_passes"));
    let hwm = status_kb(pid, "VmHWM:");
    assert!(d.stop());
    let n = latencies.len();
    let (bytes, gz) = (body.len(), gzipped(&body));
    println!(
        "\nfleet: scrapes of /metrics (OpenMetrics) with {programs} programs, release daemon at 1 s, \
         one a second for {} s",
        window.as_secs()
    );
    println!(
        "{:>8} {:>10} {:>9} {:>10} {:>10} {:>9} {:>11} {:>13} {:>6} {:>5} {:>10}",
        "scrapes",
        "bytes",
        "gzip",
        "median ms",
        "p99 ms",
        "max ms",
        "CPU % idle",
        "CPU % scraped",
        "passes",
        "late",
        "VmHWM MiB"
    );
    let (median, p99, max) = (
        percentile(&mut latencies, 1, 2),
        percentile(&mut latencies, 99, 100),
        percentile(&mut latencies, 1, 1),
    );
    println!(
        "{n:>8} {bytes:>10} {gz:>9} {median:>10.2} {p99:>10.2} {max:>9.2} {idle_cpu:>11.3} {scraping_cpu:>13.3} {:>6} {:>5} {:>10.2}",
        p1 - p0,
        l1 - l0,
        hwm as f64 / 1024.0
    );
    println!(
        "a scrape costs {:.2} ms of daemon CPU ({:.0} bytes per program); passes late while scraped: {}",
        (scraping_cpu - idle_cpu) / 100.0 * 1000.0,
        bytes as f64 / programs as f64,
        l1 - l0
    );
}

fn backfill(days: u64) {
    let programs = 500;
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("history.db");
    let made = Instant::now();
    {
        let start = SystemTime::now() - Duration::from_secs(days * DAY + 60);
        let mut store = ebpfstat_store::Store::open(store_config(&db)).expect("open");
        let mut work = Workload::starting("sim", programs, 0.2, start);
        store.ingest(work.host.tick()).expect("baseline");
        work.fill(&mut store, days * DAY, || {});
    }
    let made = made.elapsed();
    let d = ApiDaemon::start_on(None, "1s", Some(&db));
    let pid = d.pid();
    std::thread::sleep(Duration::from_secs(2));
    let hwm_before = status_kb(pid, "VmHWM:");
    let out = dir.path().join("export.om");
    let since = format!("{days}d");
    let started = Instant::now();
    let (cpu_ns, ctl_kib) = child_usage(
        Command::new(bin("ebpfstatctl"))
            .args(["--socket", d.socket.to_str().expect("utf-8")])
            .args(["export", "--since", &since, "--step", "1m", "-o"])
            .arg(&out),
    );
    let took = started.elapsed();
    let hwm_after = status_kb(pid, "VmHWM:");
    assert!(d.stop());
    let text = std::fs::read_to_string(&out).expect("export");
    assert!(text.ends_with("# EOF\n"));
    let samples = text.lines().filter(|l| !l.starts_with('#')).count();
    let bytes = text.len();
    println!(
        "\nfleet: `ebpfstatctl export --since {days}d --step 1m` of {programs} programs \
         (store simulated in {:.0} s)",
        made.as_secs_f64()
    );
    println!(
        "{:>10} {:>9} {:>7} {:>7} {:>10} {:>13} {:>15} {:>12}",
        "bytes",
        "samples",
        "pages",
        "wall s",
        "ctl CPU s",
        "ctl RSS MiB",
        "daemon HWM MiB",
        "B/prog/day"
    );
    println!(
        "{bytes:>10} {samples:>9} {:>7} {:>7.1} {:>10.2} {:>13.2} {:>15} {:>12.0}",
        samples.div_ceil(ebpfstat_dbus::DEFAULT_EXPORT_POINTS as usize),
        took.as_secs_f64(),
        cpu_ns / 1e9,
        ctl_kib as f64 / 1024.0,
        format!(
            "{:.2} → {:.2}",
            hwm_before as f64 / 1024.0,
            hwm_after as f64 / 1024.0
        ),
        bytes as f64 / programs as f64 / days as f64
    );
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    if !is_root() {
        eprintln!("fleet benchmark: needs root (real programs); skipped");
        return;
    }
    ebpfstat_tests::raise_fd_limit();
    let quick = std::env::args().any(|a| a == "--quick");
    scrapes(Duration::from_secs(if quick { 10 } else { 30 }));
    backfill(if quick { 1 } else { 7 });
}
