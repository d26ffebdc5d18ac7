//! What a person types, read as they meant it: programs named by digits (bpftrace's interval
//! probe `1`) or by a name the kernel cut to 15 bytes, an unloaded id, times with any offset or
//! none, filters that name nothing, and connection mistakes; against a real daemon, with real
//! programs and a real bpftrace.

use std::process::{Command, Output};
use std::time::{Duration, Instant, SystemTime};

use ebpfstat_tests::bpftrace::Bpftrace;
use ebpfstat_tests::bus::{self, ApiDaemon};
use ebpfstat_tests::programs::wait_until_freed;
use ebpfstat_tests::*;

/// `ebpfstatctl --socket … args` (plain text), as it ran.
fn ctl_plain(d: &ApiDaemon, args: &[&str], env: &[(&str, &str)]) -> Output {
    Command::new(bin("ebpfstatctl"))
        .arg("--socket")
        .arg(&d.socket)
        .args(args)
        .envs(env.iter().copied())
        .output()
        .expect("run ebpfstatctl")
}

/// Standard output and error together, and whether it succeeded.
fn said(out: &Output) -> (String, bool) {
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (text, out.status.success())
}

/// Waits (10 s) until `args` (a JSON listing) has a program `keep` accepts.
fn until_listed(d: &ApiDaemon, args: &[&str], keep: impl Fn(&serde_json::Value) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let listed = d.ctl_json(args);
        let rows = listed["programs"].as_array().cloned().unwrap_or_default();
        if rows.iter().any(&keep) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{args:?} never listed it: {listed}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn script() -> &'static str {
    "interval:s:1 { @i = count(); } tracepoint:syscalls:sys_enter_openat { @o = count(); } \
     uprobe:/bin/bash:readline { @u = count(); }"
}

/// bpftrace names an interval probe `1` and keeps 15 bytes of `sys_enter_openat`: both are
/// found by what a person would type, and a uprobe (a kprobe program) by how it is attached.
#[test]
fn bpftrace_programs_are_found_as_people_name_them() {
    require_bpf!();
    let d = ApiDaemon::start(None, "200ms");
    let bt = Bpftrace::start(script(), "1", 1);
    let ours = bt.ids[0];
    let pid = bt.pid().to_string();
    until_listed(&d, &["list", "--owner", &pid], |p| p["id"] == ours);

    // `show 1`: the program named 1 (or, with other bpftrace scripts running, the choice
    // between them by id); never "no program with id 1".
    let (text, _) = said(&ctl_plain(&d, &["show", "1"], &[]));
    assert!(text.contains(&ours.to_string()), "{text}");
    assert!(!text.contains("no loaded program"), "{text}");
    let history = d.ctl_json(&["history", "1", "--since", "1m", "--step", "1s"]);
    let series = history["info"]["series"].as_array().expect("series");
    assert!(series.iter().any(|s| s["id"] == ours), "{history}");

    // The help's own example, for the program the kernel calls `sys_enter_opena`.
    let history = d.ctl_json(&["history", "sys_enter_openat", "--since", "1m"]);
    assert_eq!(history["info"]["series"][0]["name"], "sys_enter_opena");

    // `--type uprobe` is refused and says where uprobes are; `--attach uprobe` finds them.
    let (text, ok) = said(&ctl_plain(&d, &["list", "--type", "uprobe"], &[]));
    assert!(!ok && text.contains("--attach uprobe"), "{text}");
    until_listed(&d, &["list", "--attach", "uprobe", "--owner", &pid], |p| {
        p["name"] == "readline" && p["prog_type"] == "kprobe"
    });
    let tracepoints = d.ctl_json(&["list", "--attach", "tracepoint", "--owner", &pid]);
    let rows = tracepoints["programs"].as_array().expect("rows");
    assert!(
        !rows.is_empty() && rows.iter().all(|p| p["prog_type"] == "tracepoint"),
        "{tracepoints}"
    );
}

/// Digits that are one program's id and another's name are not guessed at: the answer says
/// both and how to pick; `id:` and `name:` pick.
#[test]
fn digits_that_are_an_id_and_a_name_ask_which() {
    require_bpf!();
    let mut fleet = Fleet::load(&format!("dg{}_", tag()), 1);
    let id = fleet.programs[0].id.to_string();
    let by_id = fleet.programs[0].name.clone();
    let by_name = fleet.add(&id, None).id;
    let d = ApiDaemon::start(None, "200ms");
    let (text, ok) = said(&ctl_plain(&d, &["show", &id], &[]));
    assert!(!ok, "{text}");
    for says in [&by_id, &format!("id:{id}"), &format!("name:{id}")] {
        assert!(text.contains(says.as_str()), "{says}: {text}");
    }
    let shown = d.ctl_json(&["show", &format!("id:{id}")]);
    assert_eq!(shown["program"]["name"], by_id.as_str());
    let shown = d.ctl_json(&["show", &format!("name:{id}")]);
    assert_eq!(shown["program"]["id"], by_name);
    let (text, ok) = said(&ctl_plain(&d, &["history", &id, "--since", "1m"], &[]));
    assert!(!ok && text.contains(&format!("id:{id}")), "{text}");
}

/// A name longer than 15 bytes finds the program whose kernel name is its first 15; `show`
/// of an unloaded id points to the history that remains, as `show NAME` does.
#[test]
fn cut_names_and_unloaded_ids_lead_somewhere() {
    require_bpf!();
    let kernel_name = format!("{:x<15}", format!("ct{}_", tag()));
    let whole = format!("{kernel_name}_whole_name");
    let mut fleet = Fleet::load(&format!("ul{}_", tag()), 1);
    let cut = fleet.add(&kernel_name, None).id;
    fleet.drive(1, 5);
    let d = ApiDaemon::start(None, "200ms");
    let shown = d.ctl_json(&["show", &whole]);
    assert_eq!(shown["program"]["id"], cut);
    let history = d.ctl_json(&["history", &whole, "--since", "1m"]);
    assert_eq!(history["info"]["series"][0]["id"], cut);

    let gone = fleet.programs.remove(0);
    let (id, name) = (gone.id, gone.name.clone());
    drop(gone);
    wait_until_freed(&[id]);
    std::thread::sleep(Duration::from_millis(1000));
    let (text, ok) = said(&ctl_plain(&d, &["show", &id.to_string()], &[]));
    assert!(!ok, "{text}");
    assert!(
        text.contains("is not loaded now; its history remains")
            && text.contains(&format!("ebpfstatctl history {name}"))
            && text.contains("ebpfstatctl history series:"),
        "{text}"
    );
}

/// `history --since` as RFC 3339 with an offset, with `Z`, and as a bare local time (said on
/// standard error) all start at the same instant.
#[test]
fn times_take_any_offset_and_bare_times_are_local() {
    require_bpf!();
    let fleet = Fleet::load(&format!("tm{}_", tag()), 1);
    fleet.drive(0, 3);
    let d = ApiDaemon::start(None, "200ms");
    std::thread::sleep(Duration::from_millis(1500));
    let since = SystemTime::now() - Duration::from_secs(1);
    let utc = humantime::format_rfc3339_seconds(since).to_string();
    let whole_ns = since
        .duration_since(SystemTime::UNIX_EPOCH)
        .expect("after 1970")
        .as_secs()
        * 1_000_000_000;
    // The same instant read at UTC+01:00 (a POSIX zone: no time zone files needed).
    let paris = humantime::format_rfc3339_seconds(since + Duration::from_secs(3600)).to_string();
    let local = paris.trim_end_matches('Z');
    let id = fleet.programs[0].id.to_string();
    let env = [("TZ", "CET-1")];
    for (when, note) in [
        (utc.clone(), false),
        (format!("{local}+01:00"), false),
        (local.to_owned(), true),
    ] {
        let args = ["--json", "history", &id, "--since", &when, "--step", "1s"];
        let out = ctl_plain(&d, &args, &env);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{when}: {err}");
        let history: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
        assert_eq!(history["points"][0]["start_ns"], whole_ns, "{when}");
        assert_eq!(
            err.contains(&format!("read as local time (UTC+01:00), that is {utc}")),
            note,
            "{when}: {err}"
        );
    }
}

/// Filters that name nothing real are refused with what they may name; a window with
/// `--cumulative` is refused, not ignored.
#[test]
fn filters_refuse_nonsense() {
    require_bpf!();
    let fleet = Fleet::load(&format!("fl{}_", tag()), 1);
    let d = ApiDaemon::start(None, "200ms");
    for (args, says) in [
        (vec!["list", "--type", "tracepint"], "tracepoint, "),
        (vec!["top", "--once", "--type", "tracepint"], "tracepoint, "),
        (vec!["maps", "--type", "tracepoint"], "percpu_hash"),
        (vec!["list", "--attach", "uprobes"], "uretprobe"),
        (vec!["maps", "--attach", "uprobe"], "maps are not attached"),
        (
            vec!["top", "--once", "--cumulative", "--window", "1h"],
            "'--cumulative' cannot be used with '--window",
        ),
        (
            vec!["top", "--once", "--cumulative", "--since", "1h"],
            "'--cumulative' cannot be used with '--since",
        ),
    ] {
        let (text, ok) = said(&ctl_plain(&d, &args, &[]));
        assert!(!ok && text.contains(says), "{args:?}: {text}");
    }
    let listed = d.ctl_json(&["list", "--type", "socket_filter"]);
    bus::by_name(&listed["programs"], &fleet.programs[0].name);
    d.ctl_json(&["maps", "--type", "array"]);
}

/// A missing `--config` file is said once; `--address` at the private socket says to use
/// `--socket`.
#[test]
fn connection_and_config_mistakes_say_what_to_do() {
    require_bpf!();
    let dir = bus::open_tempdir();
    let out = Command::new(bin("ebpfstatd"))
        .args(["run", "--config"])
        .arg(dir.path().join("missing.toml"))
        .arg("--db")
        .arg(dir.path().join("h.db"))
        .args(["--socket", "none", "--bus", "none"])
        .output()
        .expect("run ebpfstatd");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert_eq!(err.matches("No such file or directory").count(), 1, "{err}");

    let d = ApiDaemon::start(None, "200ms");
    let socket = d.socket.to_str().expect("utf-8");
    let out = Command::new(bin("ebpfstatctl"))
        .args(["--address", &format!("unix:path={socket}"), "status"])
        .output()
        .expect("run ebpfstatctl");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(err.contains(&format!("use --socket {socket}")), "{err}");
}
