//! The arm64 package under a real systemd (a module of `kernels.rs`, so that its guest boots
//! beside the matrix's): Debian 12's arm64 6.1 kernel boots the systemd root
//! (`tests/guests/make-root arm64 target/guests systemd`) with systemd as PID 1 under qemu
//! (`vng --systemd`), and a script in the guest installs the arm64 .deb with `dpkg -i` and checks
//! what `boot.rs` checks of the amd64 one in systemd-nspawn: the service reaches active,
//! `ebpfstatctl` answers over the real system bus with exact counts of a real program
//! (Debian's bpftrace on a tracepoint only this script hits), and a restart keeps the history.

use std::path::{Path, PathBuf};
use std::time::Instant;

use ebpfstat_tests::guest::{self, Machine, target_dir};
use ebpfstat_tests::{built_package_for, skip_or_fail};
use serde_json::Value;

/// Where the guest sees the host folder with the script and the package.
const SHARE: &str = "/run/check";

/// `ionice -p` (busybox) makes one `ioprio_get` call, a syscall nothing else in the guest makes.
const CALLS: u64 = 9;

/// Run in the guest as root by virtme-init (from `serial-getty@`, once systemd reached
/// multi-user.target), with this folder at /run/check. Prints one `ARM-SERVICE {json}` line;
/// the test judges it. Every query goes to the system bus's address (no fallback to the
/// daemon's private socket).
const SCRIPT: &str = r#"exec 2>&1
bus=unix:path=/run/dbus/system_bus_socket
# Every step is bounded and said, so a step that hangs is named in the log, not a timeout.
step() { echo "arm-service: $* ($(date -u +%T))"; }
ctl() { timeout 120 ebpfstatctl --address "$bus" --json "$@"; }
json() { local out; out=$("$@") && [ -n "$out" ] && printf '%s' "$out" | tr -d '\n' || printf null; }
utc() { date -u +%Y-%m-%dT%H:%M:%SZ; }
active() { systemctl is-active ebpfstatd; }
wait_active() { for _ in $(seq 120); do [ "$(active)" = active ] && return; sleep 0.5; done; }
main_pid() { systemctl show -p MainPID --value ebpfstatd; }
bus_owner() { busctl --system --no-legend list | awk '$1 == "org.ebpfstat.Stats1" { print $2 }'; }
state=$(timeout 120 systemctl is-system-running --wait)
failed=$(systemctl --failed --no-legend --plain | awk '{ print $1 }' | tr '\n' ' ')
dpkg -i /run/check/ebpfstat.deb; dpkg=$?
wait_active
pid_before=$(main_pid); owner_before=$(bus_owner)
since=$(utc)
bpftrace -e 'tracepoint:syscalls:sys_enter_ioprio_get { @runs = count(); }' > /tmp/bt.out 2>&1 &
bt=$!
# Its program, once the daemon sees it attached (bpftrace compiles slowly under TCG).
id=
end=$((SECONDS + 300))
while [ $SECONDS -lt $end ]; do
    id=$(grep -h '^prog_id:' /proc/$bt/fdinfo/* 2>/dev/null | awk '{ print $2 }' | head -1)
    [ -n "$id" ] && ctl show "$id" 2>/dev/null | grep -q sys_enter_ioprio_get && break
    id=; sleep 0.5
done
echo "arm-service: bpftrace's program: ${id:-none}"
sleep 2
for _ in $(seq CALLS); do ionice -p $$ > /dev/null; done
sleep 5  # passes sample the runs
until=$(utc)
step show; show=$(json ctl show "$id")
step history; before=$(json ctl history "$id" --since "$since" --until "$until" --step 1s)
step restart; timeout 300 systemctl restart ebpfstatd; restart=$?
wait_active
step history again; after=$(json ctl history "$id" --since "$since" --until "$until" --step 1s)
step status; status=$(json ctl status)
step "bpftrace's end"; kill -INT $bt
for _ in $(seq 120); do kill -0 $bt 2> /dev/null || break; sleep 0.5; done
kill -KILL $bt 2> /dev/null; wait $bt
# After bpftrace's count: reading a unit's properties makes systemd call ioprio_get.
pid_after=$(main_pid); owner_after=$(bus_owner)
[ -n "$owner_after" ] || journalctl -b -u ebpfstatd -u dbus --no-pager | tail -n 30
bt_runs=$(sed -n 's/^@runs: //p' /tmp/bt.out)
printf 'ARM-SERVICE {"init":"%s","system_state":"%s","failed_units":"%s","dpkg_status":%d,"active":"%s","restart_status":%d,"main_pids":[%s,%s],"bus_owners":[%s,%s],"bpftrace_runs":%s,"show":%s,"history_before":%s,"history_after":%s,"status":%s}\n' \
    "$(cat /proc/1/comm)" "$state" "$failed" "$dpkg" "$(active)" "$restart" \
    "${pid_before:-0}" "${pid_after:-0}" "${owner_before:-0}" "${owner_after:-0}" \
    "${bt_runs:-null}" "$show" "$before" "$after" "$status"
"#;

/// What must survive a restart of each point of a history answer.
fn points(history: &Value) -> Vec<[Value; 4]> {
    history["points"]
        .as_array()
        .unwrap_or_else(|| panic!("no points: {history}"))
        .iter()
        .map(|p| ["start_ns", "samples", "run_cnt", "cum_run_cnt"].map(|k| p[k].clone()))
        .collect()
}

fn runs(history: &Value) -> u64 {
    points(history).iter().filter_map(|p| p[2].as_u64()).sum()
}

/// The package installed, active, on the system bus under its own main process.
fn check_service(r: &Value) {
    assert_eq!(r["init"], "systemd", "systemd is PID 1: {r}");
    assert_eq!(r["dpkg_status"], 0, "dpkg -i: {r}");
    assert_eq!(r["restart_status"], 0, "systemctl restart: {r}");
    assert_eq!(r["active"], "active", "{r}");
    let (pids, owners) = (&r["main_pids"], &r["bus_owners"]);
    assert_ne!(pids[0], 0, "no main process: {r}");
    assert_ne!(pids[0], pids[1], "a new process after the restart: {r}");
    assert_eq!(owners, pids, "the service owns org.ebpfstat.Stats1: {r}");
    let status = &r["status"];
    assert_eq!(status["stats_state"], "enabled", "{status}");
    assert_eq!(status["failed_passes"], 0, "{status}");
    assert_eq!(status["previous_run_unclean"], false, "{status}");
}

/// Exact runs, the same in the kernel's view (bpftrace's own count) and the daemon's.
fn check_program(r: &Value) {
    let shown = &r["show"];
    let program = &shown["program"];
    assert_eq!(r["bpftrace_runs"], CALLS, "bpftrace's own count: {r}");
    assert_eq!(program["since_load"]["run_cnt"], CALLS, "{shown}");
    assert_eq!(program["prog_type"], "tracepoint", "{shown}");
    assert!(
        program["owners"]
            .as_array()
            .is_some_and(|o| o.iter().any(|o| o["comm"] == "bpftrace")),
        "bpftrace owns it: {shown}"
    );
    assert_eq!(
        shown["attach"][0]["target"], "sys_enter_ioprio_get",
        "{shown}"
    );
}

/// The samples stored before the restart are all there after it.
fn check_history(r: &Value) {
    let (before, after) = (&r["history_before"], &r["history_after"]);
    assert_eq!(runs(before), CALLS, "{before}");
    let sampled = points(before)
        .iter()
        .filter(|p| p[1].as_u64() > Some(0))
        .count();
    assert!(sampled >= 5, "passes before the restart: {before}");
    assert_eq!(
        points(after),
        points(before),
        "the same points after the restart: {after}"
    );
    assert_eq!(
        after["info"]["series"][0]["series_id"],
        before["info"]["series"][0]["series_id"]
    );
}

/// The root `tests/guests/make-root arm64 target/guests systemd` made (systemd as init, udev,
/// a system bus, dpkg), if it and virtme-ng (`tests/guests/prepare`) are there.
fn systemd_root() -> Option<PathBuf> {
    let dir = target_dir().join("guests/arm64-systemd");
    (dir.join("complete").exists() && guest::vng_ready()).then(|| dir.join("root"))
}

/// Boots the root's kernel (Debian 12's arm64 6.1) with 2 CPUs and 1 GiB, with systemd as
/// PID 1 (`vng --systemd`, experimental in virtme-ng): virtme-init runs `bash check.sh` from
/// `serial-getty@` after multi-user.target, with `/etc`, `/usr`, `/var`, `/tmp` writable (tmpfs
/// overlays: nothing reaches the root) and `share` at [`SHARE`].
fn boot(root: &Path, share: &Path) -> String {
    let vmlinuz = guest::kernel_in(root).expect("a kernel in the root's /boot");
    let mut args = Machine {
        cpus: 2,
        memory_mib: 1024,
    }
    .args();
    args.extend(["--arch".into(), "arm64".into(), "--root".into()]);
    args.push(root.into());
    args.extend(["--systemd".into(), "--rodir".into()]);
    args.push(format!("{SHARE}={}", share.display()).into());
    args.extend(["--exec".into(), format!("bash {SHARE}/check.sh").into()]);
    guest::run_vng(&vmlinuz, &args, "arm64-systemd")
}

/// A folder the guest sees at [`SHARE`]: the script and the package.
fn share(deb: &Path) -> PathBuf {
    let dir = target_dir()
        .join("guests")
        .join(format!("arm-service-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create the shared folder");
    std::fs::copy(deb, dir.join("ebpfstat.deb")).expect("copy the .deb");
    let script = SCRIPT.replace("CALLS", &CALLS.to_string());
    std::fs::write(dir.join("check.sh"), script).expect("write the script");
    dir
}

#[test]
fn the_arm64_deb_runs_under_systemd_with_a_real_system_bus() {
    let test = module_path!();
    let Some(root) = systemd_root() else {
        let why = "no arm64 systemd root: run `bash tests/guests/make-root arm64 target/guests \
                   systemd` (and `bash tests/guests/prepare` for virtme-ng)";
        skip_or_fail(test, why);
        return;
    };
    let Some(deb) = built_package_for("deb", "arm64") else {
        let why = "no arm64 .deb: run `packaging/cross build aarch64-unknown-linux-gnu` and \
                   `packaging/cross package aarch64-unknown-linux-gnu target/packages`";
        skip_or_fail(test, why);
        return;
    };
    let dir = share(&deb);
    let started = Instant::now();
    let output = boot(&root, &dir);
    let _ = std::fs::remove_dir_all(&dir);
    eprintln!("booted, installed and checked in {:?}", started.elapsed());
    let r = guest::report(&output, "ARM-SERVICE");
    eprintln!(
        "system {} (failed units: {}), bpftrace's program ran {} times",
        r["system_state"], r["failed_units"], r["bpftrace_runs"]
    );
    check_service(&r);
    check_program(&r);
    check_history(&r);
}
