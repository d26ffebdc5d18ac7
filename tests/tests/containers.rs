//! Who pays: programs held from containers — processes in cgroups laid out exactly as docker,
//! podman and containerd under kubelet lay them out (with the files where those runtimes keep
//! names), a real systemd-nspawn container and a real podman container — attributed to their
//! container, summed by `top --by`, filtered by `--container`, exported with a `container`
//! label and chosen by an alert rule's `container`.

use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;
use std::time::{Duration, Instant};

use ebpfstat_tests::bus::{ApiDaemon, open_tempdir};
use ebpfstat_tests::containers::{
    MadeCgroup, NspawnHolder, PlacedHolder, PodmanHolder, RuntimeFile, container_id,
};
use ebpfstat_tests::terminal::{on_pty, visible};
use ebpfstat_tests::{
    PROG_TYPE_SOCKET_FILTER, array_map, bin, load_program, require_bpf, run_exactly, skip_or_fail,
    tag,
};
use serde_json::Value;

const POD_UID: &str = "0c5a6f7e-1b2c-4d3e-8f90-a1b2c3d4e5f6";

/// A socket filter using `map`, run exactly `runs` times while this process holds it.
fn ran(name: &str, map: &OwnedFd, runs: u32) -> OwnedFd {
    let prog = load_program(PROG_TYPE_SOCKET_FILTER, name, None, &[map.as_fd()], 0);
    run_exactly(prog.as_fd(), runs);
    prog
}

/// Polls `ask` until `done` holds of its answer (30 s at most), and gives that answer.
fn until(what: &str, mut ask: impl FnMut() -> Value, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let v = ask();
        if done(&v) {
            return v;
        }
        assert!(Instant::now() < deadline, "waited 30 s for {what}: {v:#}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// `top --by <by> --cumulative --json` of the programs named `prefix*`: (key, programs,
/// run_cnt, map memory) by key.
fn groups(d: &ApiDaemon, by: &str, prefix: &str) -> Value {
    d.ctl_json(&[
        "top",
        "--by",
        by,
        "--cumulative",
        "--name",
        &format!("{prefix}*"),
    ])
}

fn group<'a>(groups: &'a Value, key: &str) -> &'a Value {
    groups
        .as_array()
        .and_then(|g| g.iter().find(|g| g["key"] == key))
        .unwrap_or_else(|| panic!("no group {key}: {groups:#}"))
}

#[test]
#[expect(
    clippy::too_many_lines,
    reason = "one scenario: the layouts set up, then each view of them checked"
)]
fn holders_in_each_runtimes_cgroups_are_attributed_summed_filtered_and_exported() {
    require_bpf!();
    let t = tag();
    let prefix = format!("ct{t}");
    let dir = open_tempdir();
    let textfile = dir.path().join("ebpfstat.prom");
    let cfg = dir.path().join("ebpfstatd.toml");
    // Map memory over 1 byte, of the docker container's programs only.
    std::fs::write(
        &cfg,
        "[[alert]]\nname = \"docker_maps\"\nmetric = \"map_memory\"\nthreshold = 1\n\
         container = \"docker:web*\"\n",
    )
    .expect("config");
    let d = ApiDaemon::start_with(
        None,
        "200ms",
        &[
            "--config",
            cfg.to_str().expect("utf-8"),
            "--textfile",
            textfile.to_str().expect("utf-8"),
            "--textfile-interval",
            "1s",
        ],
    );
    d.wait_passes(1);
    let (docker, podman, k8s) = (container_id(1), container_id(2), container_id(3));
    // Where docker and containerd's CRI plugin keep names (no podman name: its short id shows).
    let _names = [
        RuntimeFile::write(
            &Path::new("/var/lib/docker/containers")
                .join(&docker)
                .join("config.v2.json"),
            &format!(r#"{{"ID":"{docker}","Name":"/web-{t}","State":{{"Running":true}}}}"#),
        ),
        RuntimeFile::write(
            &Path::new("/run/containerd/io.containerd.runtime.v2.task/k8s.io")
                .join(&k8s)
                .join("config.json"),
            &format!(
                r#"{{"ociVersion":"1.1.0","annotations":{{"io.kubernetes.cri.container-type":"container","io.kubernetes.cri.sandbox-namespace":"default","io.kubernetes.cri.sandbox-name":"web-{t}","io.kubernetes.cri.container-name":"app"}}}}"#
            ),
        ),
    ];
    let base = format!("/ebpfstat-{t}");
    let uid_ = POD_UID.replace('-', "_");
    let layouts = [
        (format!("{base}/system.slice/docker-{docker}.scope"), 300),
        (
            format!("{base}/system.slice/docker-{docker}.scope/sub"),
            100,
        ),
        (format!("{base}/libpod_parent/libpod-{podman}"), 500),
        (
            format!(
                "{base}/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{uid_}.slice/cri-containerd-{k8s}.scope"
            ),
            700,
        ),
    ];
    let shared = array_map(&format!("{prefix}m"), 64, 1024);
    // Made before the holders, so removed after them.
    let cgroups: Vec<MadeCgroup> = layouts.iter().map(|(c, _)| MadeCgroup::create(c)).collect();
    let mut holders = Vec::new();
    for (i, ((_, runs), cgroup)) in layouts.iter().zip(&cgroups).enumerate() {
        let name = format!("{prefix}{i}");
        // The docker container's two programs share one map; the others have their own.
        let own = array_map(&format!("{prefix}m{i}"), 64, 1024);
        let map = if i < 2 { &shared } else { &own };
        let prog = ran(&name, map, *runs);
        // The holder in the container's cgroup holds it; this process lets go.
        holders.push(PlacedHolder::start(cgroup, prog.as_fd()));
    }
    drop(shared);
    let (docker_web, podman_short, k8s_name) = (
        format!("docker:web-{t}"),
        format!("podman:{}", &podman[..12]),
        format!("containerd:default/web-{t}/app"),
    );
    let by_container = until(
        "the holders' containers",
        || groups(&d, "container", &prefix),
        |g| g.as_array().is_some_and(|a| a.len() == 3),
    );
    eprintln!("{by_container:#}");
    let web = group(&by_container, &docker_web);
    assert_eq!(
        (web["programs"].as_u64(), web["run_cnt"].as_u64()),
        (Some(2), Some(400))
    );
    assert_eq!(group(&by_container, &podman_short)["run_cnt"], 500);
    assert_eq!(group(&by_container, &k8s_name)["run_cnt"], 700);
    // The shared map once in the docker group: as much as the podman group's one map.
    assert_eq!(
        web["map_memory_bytes"],
        group(&by_container, &podman_short)["map_memory_bytes"]
    );
    // By unit: the scopes docker and kubelet's systemd driver make; podman's cgroupfs has none.
    let by_unit = groups(&d, "unit", &prefix);
    assert_eq!(
        group(&by_unit, &format!("docker-{docker}.scope"))["run_cnt"],
        400
    );
    assert_eq!(
        group(&by_unit, &format!("cri-containerd-{k8s}.scope"))["run_cnt"],
        700
    );
    let none = by_unit
        .as_array()
        .and_then(|a| a.iter().find(|g| g["kind"] == "none"));
    assert_eq!(
        none.map(|g| g["run_cnt"].clone()),
        Some(Value::from(500)),
        "{by_unit:#}"
    );
    // By owner: every holder is a `sleep`.
    let by_owner = groups(&d, "owner", &prefix);
    assert_eq!(group(&by_owner, "sleep")["run_cnt"], 1600, "{by_owner:#}");

    // As a person sees it, on an 80-column terminal.
    let socket = d.socket.to_str().expect("utf-8");
    let args = [
        "--socket",
        socket,
        "top",
        "--by",
        "container",
        "--cumulative",
        "--once",
        "--name",
    ];
    let pattern = format!("{prefix}*");
    let args: Vec<&str> = args.into_iter().chain([pattern.as_str()]).collect();
    let (text, code) = on_pty(&bin("ebpfstatctl"), &args, 80);
    let text = visible(&text);
    eprintln!("{text}");
    assert_eq!(code, 0, "{text}");
    assert!(
        text.starts_with("3 containers of 4 programs, ranked by CPU%"),
        "{text}"
    );
    // Whole names: a column is left out rather than a name cut.
    assert!(text.contains(&k8s_name), "{text}");
    let web_line = text
        .lines()
        .find(|l| l.trim_start().starts_with(&docker_web))
        .unwrap_or_default();
    let cells: Vec<&str> = web_line.split_whitespace().collect();
    assert_eq!(cells.get(1..3), Some(&["2", "400"][..]), "{text}");

    // --container filters as --unit does: on the label, the name or the id.
    for glob in ["docker:*", "web-*", &docker[..]] {
        let list = d.ctl_json(&["list", "--container", glob, "--name", &format!("{prefix}*")]);
        let mut names: Vec<&str> = list["programs"]
            .as_array()
            .expect("rows")
            .iter()
            .filter_map(|r| r["name"].as_str())
            .collect();
        names.sort_unstable();
        assert_eq!(
            names,
            [format!("{prefix}0"), format!("{prefix}1")],
            "{glob}"
        );
    }
    // Each holder says its container: runtime, full id, name, the pod's UID.
    let shown = d.ctl_json(&["show", &format!("{prefix}3")]);
    let c = &shown["program"]["owners"][0]["container"];
    assert_eq!(c["label"], k8s_name.as_str(), "{shown:#}");
    assert_eq!(
        (c["runtime"].as_str(), c["id"].as_str()),
        (Some("containerd"), Some(&k8s[..]))
    );
    assert_eq!(c["pod_uid"], POD_UID);

    // Exported: the info line's container label.
    let info = until(
        "the textfile's container labels",
        || Value::from(std::fs::read_to_string(&textfile).unwrap_or_default()),
        |text| {
            text.as_str()
                .is_some_and(|s| s.contains(&format!("container=\"{k8s_name}\"")))
        },
    );
    let info = info.as_str().unwrap_or_default();
    let line = info
        .lines()
        .find(|l| l.starts_with("ebpfstat_program_info") && l.contains(&format!("\"{prefix}2\"")))
        .unwrap_or_else(|| panic!("no info line of {prefix}2:\n{info}"));
    assert!(
        line.contains(&format!("container=\"{podman_short}\"")),
        "{line}"
    );

    // The alert rule's container selector: the docker container's two programs, no other.
    let alerts = until(
        "the docker container's alerts",
        || d.ctl_json(&["alerts"]),
        |a| a["active"].as_array().is_some_and(|l| l.len() >= 2),
    );
    let mut alerted: Vec<&str> = alerts["active"]
        .as_array()
        .expect("active")
        .iter()
        .filter_map(|a| a["program"].as_str())
        .collect();
    alerted.sort_unstable();
    assert_eq!(
        alerted,
        [format!("{prefix}0"), format!("{prefix}1")],
        "{alerts:#}"
    );
    drop(holders);
}

/// The container label of the holders of program `name`, once the daemon has seen one.
fn holder_label(d: &ApiDaemon, name: &str) -> Value {
    let shown = until(
        &format!("{name}'s holder in its container"),
        || {
            // Not seen yet is an error until the next pass.
            let out = d.ctl(&["show", name]);
            serde_json::from_slice(&out.stdout).unwrap_or_default()
        },
        |s| {
            s["program"]["owners"]
                .as_array()
                .is_some_and(|o| o.iter().any(|o| o["container"].is_object()))
        },
    );
    let owners = shown["program"]["owners"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    owners
        .iter()
        .find(|o| o["container"].is_object())
        .map(|o| o["container"].clone())
        .unwrap_or_default()
}

#[test]
fn a_program_held_in_a_real_nspawn_container_is_the_machines() {
    require_bpf!();
    if !ebpfstat_tests::nspawn::have("systemd-nspawn")
        || !ebpfstat_tests::nspawn::have("debootstrap")
    {
        skip_or_fail(module_path!(), "needs systemd-nspawn and debootstrap");
        return;
    }
    let root = ebpfstat_tests::nspawn::base_root();
    let t = tag();
    let d = ApiDaemon::start(None, "200ms");
    d.wait_passes(1);
    let map = array_map(&format!("ns{t}m"), 8, 1);
    let name = format!("ns{t}p");
    let prog = ran(&name, &map, 250);
    let machine = format!("ebpfbox{t}");
    let unit = format!("/ebpfstat-{t}/machine.slice/systemd-nspawn@{machine}.service");
    let _box = NspawnHolder::start(&root, &unit, &machine, prog.as_fd());
    drop(prog);
    // Only the container's payload holds it now: this process let go.
    let c = holder_label(&d, &name);
    assert_eq!(c["label"], format!("nspawn:{machine}").as_str(), "{c:#}");
    let groups = d.ctl_json(&["top", "--by", "container", "--cumulative", "--name", &name]);
    let g = group(&groups, &format!("nspawn:{machine}"));
    assert_eq!(
        (g["programs"].as_u64(), g["run_cnt"].as_u64()),
        (Some(1), Some(250))
    );
}

#[test]
fn a_program_held_in_a_real_podman_container_is_named_as_podman_names_it() {
    require_bpf!();
    let dir = open_tempdir();
    let Some(image) = PodmanHolder::image(dir.path()) else {
        skip_or_fail(module_path!(), "needs podman and runc");
        return;
    };
    let t = tag();
    let d = ApiDaemon::start(None, "200ms");
    d.wait_passes(1);
    let map = array_map(&format!("pd{t}m"), 8, 1);
    let name = format!("pd{t}p");
    let prog = ran(&name, &map, 350);
    let container = format!("ebpf-web-{t}");
    let held = PodmanHolder::start(&image, &container, prog.as_fd());
    drop(prog);
    let c = holder_label(&d, &name);
    assert_eq!(c["label"], format!("podman:{container}").as_str(), "{c:#}");
    assert_eq!(c["id"], held.id.as_str());
    let groups = d.ctl_json(&["top", "--by", "container", "--cumulative", "--name", &name]);
    let g = group(&groups, &format!("podman:{container}"));
    assert_eq!(
        (g["programs"].as_u64(), g["run_cnt"].as_u64()),
        (Some(1), Some(350))
    );
    drop(held);
    let _ = std::process::Command::new("podman")
        .args(["rmi", "-f", &image])
        .output();
}

#[test]
fn b_in_the_live_view_sums_the_rows_by_container_then_unit_then_owner() {
    require_bpf!();
    if !ebpfstat_tests::terminal::Tmux::available("b_in_the_live_view") {
        return;
    }
    let t = tag();
    let d = ApiDaemon::start(None, "200ms");
    d.wait_passes(1);
    let id = container_id(9);
    let cgroup = MadeCgroup::create(&format!("/ebpfstat-b{t}/system.slice/docker-{id}.scope"));
    let map = array_map(&format!("lb{t}m"), 8, 1);
    let held: Vec<PlacedHolder> = (0..2)
        .map(|i| {
            let prog = ran(&format!("lb{t}{i}"), &map, 10);
            PlacedHolder::start(&cgroup, prog.as_fd())
        })
        .collect();
    let label = format!("docker:{}", &id[..12]);
    let tmux = ebpfstat_tests::terminal::Tmux::start(100, 30);
    tmux.type_line(&format!(
        "{} --socket {} top --name 'lb{t}*'",
        bin("ebpfstatctl").display(),
        d.socket.display()
    ));
    // The view's own words (the typed line holds the name too).
    tmux.wait_for("the programs", |s| s.contains("2 of 2 programs"));
    tmux.keys(&["b"]);
    let grouped = tmux.wait_for("the containers", |s| {
        s.contains("1 container of 2 programs") && s.contains(&label)
    });
    eprintln!("{grouped}");
    let row = grouped
        .lines()
        .find(|l| l.contains(&label))
        .unwrap_or_default();
    assert!(
        row.split_whitespace().next() == Some("2"),
        "PROGS is 2:\n{grouped}"
    );
    assert!(
        grouped.contains("PROGS") && grouped.contains("CONTAINER"),
        "{grouped}"
    );
    tmux.keys(&["b"]);
    tmux.wait_for("the units", |s| {
        s.contains(&format!("docker-{id}.scope")) || s.contains("UNIT")
    });
    tmux.keys(&["b"]);
    tmux.wait_for("the owners", |s| s.contains("OWNER") && s.contains("sleep"));
    tmux.keys(&["b"]);
    tmux.wait_for("the programs again", |s| s.contains("2 of 2 programs"));
    tmux.keys(&["q"]);
    drop(held);
}
