//! `/metrics` against clients that hold connections without asking anything: any local user
//! can connect, so scrapes must still be answered, and what was turned away is counted.

use std::process::{Command, Stdio};
use std::time::Duration;

use ebpfstat_tests::bus::ApiDaemon;
use ebpfstat_tests::engines::{free_port, get};
use ebpfstat_tests::*;

/// Eight loops, as `nobody`, that connect, send one byte of a request and hold the connection
/// for 1.9 s before connecting again: slowloris.
fn slowloris(port: u16) -> Vec<Reaped> {
    let script = format!(
        "while :; do exec 3<>/dev/tcp/127.0.0.1/{port} || {{ sleep 0.1; continue; }}; \
         printf G >&3; sleep 1.9; exec 3>&-; done"
    );
    (0..8)
        .map(|_| {
            Reaped(
                Command::new("setpriv")
                    .args([
                        "--reuid=nobody",
                        "--regid=nogroup",
                        "--clear-groups",
                        "bash",
                        "-c",
                        &script,
                    ])
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()
                    .expect("setpriv"),
            )
        })
        .collect()
}

#[test]
fn scrapes_are_answered_while_anyone_trickles_requests() {
    require_bpf!();
    let fleet = Fleet::load(&format!("sl{}_", tag()), 1);
    fleet.drive(0, 3);
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let daemon = ApiDaemon::start_with(None, "200ms", &["--metrics-listen", &addr]);
    let attackers = slowloris(port);
    // Every place is taken by the trickling connections by now.
    std::thread::sleep(Duration::from_secs(3));
    let answered = (0..30)
        .filter(|_| {
            std::thread::sleep(Duration::from_millis(100));
            get(port, "/metrics").is_ok_and(|(status, _)| status == 200)
        })
        .count();
    let status = daemon.ctl_json(&["status"]);
    drop(attackers);
    assert_eq!(answered, 30, "scrapes answered during the attack; {status}");
    let evicted = status["metrics_evicted"].as_u64().expect("metrics_evicted");
    assert!(evicted >= 1, "trickling connections let go: {status}");
    assert_eq!(status["metrics_refused"].as_u64(), Some(0), "{status}");
    assert_eq!(status["failed_passes"].as_u64(), Some(0), "{status}");
    assert!(daemon.stop());
}
