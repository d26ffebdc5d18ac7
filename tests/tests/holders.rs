//! Finding which processes hold which programs reads every process's fd table, and anyone can
//! open many descriptors: the scan is bounded per pass, so sampling keeps its pace and its
//! counts while unprivileged processes hold hundreds of thousands of fds.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use ebpfstat_tests::bus::ApiDaemon;
use ebpfstat_tests::*;

/// `n` processes of `nobody`, each holding `fds` descriptors (duplicates of one, so the
/// kernel's memory is the fd tables only), ready when this returns.
fn hoarders(n: usize, fds: usize) -> Vec<Reaped> {
    let hoard = format!(
        "exec 3</dev/null; for ((i = 0; i < {fds}; i++)); do exec {{f}}<&3; done; echo ready; \
         exec sleep 600"
    );
    let children: Vec<Reaped> = (0..n)
        .map(|_| {
            Reaped(
                Command::new("sh")
                    .arg("-c")
                    .arg(format!(
                        "ulimit -n {}; exec setpriv --reuid=nobody --regid=nogroup \
                         --clear-groups bash -c \"$0\"",
                        fds + 64
                    ))
                    .arg(&hoard)
                    .stdout(Stdio::piped())
                    .stderr(Stdio::inherit())
                    .spawn()
                    .expect("spawn"),
            )
        })
        .collect();
    let mut children = children;
    for c in &mut children {
        let mut line = String::new();
        BufReader::new(c.0.stdout.as_mut().expect("stdout"))
            .read_line(&mut line)
            .expect("ready");
        assert_eq!(line.trim(), "ready");
    }
    children
}

fn passes(d: &ApiDaemon) -> u64 {
    d.ctl_json(&["status"])["passes"].as_u64().expect("passes")
}

/// A process of `nobody` starting a short-lived one every 50 ms: the set of processes changes
/// at every pass, so every rescan reads the fd tables.
fn churn() -> Reaped {
    Reaped(
        Command::new("setpriv")
            .args([
                "--reuid=nobody",
                "--regid=nogroup",
                "--clear-groups",
                "sh",
                "-c",
            ])
            .arg("while :; do /bin/true; sleep 0.05; done")
            .spawn()
            .expect("spawn"),
    )
}

/// The longest time between two passes while `secs` go by, as `status` shows them (its
/// `last_pass_ns`, read every 50 ms), and how many passes there were.
fn longest_gap(d: &ApiDaemon, secs: u64) -> (Duration, u64) {
    let last = |d: &ApiDaemon| {
        d.ctl_json(&["status"])["last_pass_ns"]
            .as_u64()
            .unwrap_or(0)
    };
    let (start, before) = (Instant::now(), passes(d));
    let (mut seen, mut at, mut longest) = (last(d), Instant::now(), Duration::ZERO);
    while start.elapsed() < Duration::from_secs(secs) {
        std::thread::sleep(Duration::from_millis(50));
        let now = last(d);
        if now != seen {
            (seen, at) = (now, Instant::now());
        }
        longest = longest.max(at.elapsed());
    }
    (longest, passes(d) - before)
}

#[test]
fn descriptors_held_by_anyone_do_not_slow_sampling() {
    require_bpf!();
    let fleet = Fleet::load(&format!("fd{}_", tag()), 1);
    // A rescan every pass, as after loads: the fd tables are read as often as they can be.
    let d = ApiDaemon::start_with(None, "200ms", &["--rescan-every", "1"]);
    let id = fleet.programs[0].id;
    // 40 processes with 20 000 fds each: 800 000 entries, 40 passes' worth of scanning.
    let hoard = hoarders(40, 20_000);
    let churn = churn();
    fleet.drive(0, 7);
    let (gap, during) = longest_gap(&d, 10);
    eprintln!("{during} passes in 10 s; the longest time without one: {gap:?}");
    // Reading every table in a pass made passes of seconds (4 passes in these 10 s, 2.8 s
    // without one); a piece of 20 000 entries is tens of milliseconds.
    assert!(
        during >= 12 && gap < Duration::from_secs(2),
        "{during} passes, {gap:?} without one"
    );
    drop(churn);
    // The scan goes on a piece a pass and ends: the holder of the program is still found.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let show = d.ctl_json(&["show", &id.to_string()]);
        let pids: Vec<u64> = show["program"]["owners"]
            .as_array()
            .map(|o| o.iter().filter_map(|o| o["pid"].as_u64()).collect())
            .unwrap_or_default();
        if pids.contains(&u64::from(std::process::id())) {
            break;
        }
        assert!(Instant::now() < deadline, "no holder found: {show}");
        std::thread::sleep(Duration::from_millis(500));
    }
    let status = d.ctl_json(&["status"]);
    assert_eq!(status["failed_passes"].as_u64(), Some(0), "{status}");
    drop(hoard);
    let h = d.ctl_json(&["history", &id.to_string(), "--since", "5m", "--step", "1m"]);
    let runs: u64 = h["points"]
        .as_array()
        .expect("points")
        .iter()
        .filter_map(|p| p["run_cnt"].as_u64())
        .sum();
    assert_eq!(runs, 7, "every run is in the history: {h}");
    assert!(d.stop());
}
