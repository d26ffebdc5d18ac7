use super::*;

const H: &str = "4a5e22d5f23a85da6e8db2f9243b017478832e65bf08be6c18f0f3ad32d89b6e";
const P: &str = "9f1c0b6e2d3a4f5b6c7d8e9fa0b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e6f7a8b9";
const UID: &str = "0c5a6f7e-1b2c-4d3e-8f90-a1b2c3d4e5f6";
const UID_ID: &str = "1111111111111111111111111111111111111111111111111111111111111111";

fn found(path: &str) -> Option<(String, String, String)> {
    of_path(path).map(|c| (c.runtime, c.id, c.pod_uid))
}

fn is(path: &str, runtime: &str) {
    let c = of_path(path).unwrap_or_else(|| panic!("{path}: no container"));
    assert_eq!((c.runtime.as_str(), c.id.as_str()), (runtime, H), "{path}");
}

#[test]
fn each_runtimes_layout_gives_its_container() {
    // podman: systemd driver (crun adds /container), cgroupfs (seen here), pods, quadlet.
    is(&format!("/machine.slice/libpod-{H}.scope"), "podman");
    is(
        &format!("/machine.slice/libpod-{H}.scope/container"),
        "podman",
    );
    is(&format!("/libpod_parent/libpod-{H}"), "podman");
    is(&format!("/libpod_parent/{P}/libpod-{H}"), "podman");
    is(
        &format!("/machine.slice/machine-libpod_pod_{P}.slice/libpod-{H}.scope"),
        "podman",
    );
    is(
        &format!("/system.slice/web.service/libpod-payload-{H}"),
        "podman",
    );
    is(
        &format!("/user.slice/user-1000.slice/user@1000.service/user.slice/libpod-{H}.scope"),
        "podman",
    );
    // docker: systemd and cgroupfs drivers.
    is(&format!("/system.slice/docker-{H}.scope"), "docker");
    is(&format!("/docker/{H}"), "docker");
    // containerd under kubelet (systemd and cgroupfs), guaranteed pods without a QoS level,
    // CRI-O, nerdctl; and a kind node (Kubernetes in docker): the innermost wins.
    let uid_ = UID.replace('-', "_");
    let k8s = format!(
        "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{uid_}.slice/cri-containerd-{H}.scope"
    );
    assert_eq!(
        found(&k8s),
        Some(("containerd".into(), H.into(), UID.into()))
    );
    let guaranteed = format!("/kubepods/pod{UID}/{H}");
    assert_eq!(
        found(&guaranteed),
        Some(("containerd".into(), H.into(), UID.into()))
    );
    is(&format!("/kubepods/besteffort/pod{UID}/crio-{H}"), "cri-o");
    is(
        &format!("/kubepods.slice/kubepods-pod{uid_}.slice/crio-{H}.scope"),
        "cri-o",
    );
    is(&format!("/system.slice/nerdctl-{H}.scope"), "containerd");
    is(
        &format!("/system.slice/docker-{P}.scope/kubepods/pod{UID}/{H}"),
        "containerd",
    );
}

#[test]
fn machines_and_lxc_are_named_by_their_path() {
    let c = |p: &str| of_path(p).map(|c| (c.runtime, c.id, c.name));
    let named = |r: &str, n: &str| Some((r.to_owned(), n.to_owned(), n.to_owned()));
    assert_eq!(
        c("/machine.slice/systemd-nspawn@box.service/payload/system.slice/x.service"),
        named("nspawn", "box")
    );
    assert_eq!(
        c("/machine.slice/machine-foo\\x2dbar.scope/payload/init.scope"),
        named("nspawn", "foo-bar")
    );
    assert_eq!(c("/lxc.payload.c1/init.scope"), named("lxc", "c1"));
    // Escapes that would be control characters stay as written; malformed ones too.
    assert_eq!(
        c("/machine.slice/machine-a\\x00b\\x+fc.scope"),
        named("nspawn", "a\\x00b\\x+fc")
    );
    // A cgroup named like a runtime's helper, inside a container, is still the container's.
    assert_eq!(c("/lxc.payload.c1/supervisor"), named("lxc", "c1"));
    assert_eq!(c("/lxc.payload.c1/lxc.monitor.x"), named("lxc", "c1"));
    assert_eq!(c("/lxc/web/ns"), named("lxc", "web"));
}

#[test]
fn helpers_and_hosts_are_in_no_container() {
    for path in [
        "/".to_owned(),
        "/system.slice/cilium.service".to_owned(),
        "/user.slice/user-0.slice/session-3.scope".to_owned(),
        format!("/machine.slice/libpod-conmon-{H}.scope"),
        format!("/kubepods/burstable/pod{UID}/crio-conmon-{H}"),
        "/machine.slice/systemd-nspawn@box.service/supervisor".to_owned(),
        "/lxc.monitor.c1".to_owned(),
        // Not an id: 63 hex digits, upper case.
        format!("/system.slice/docker-{}.scope", &H[1..]),
        format!("/docker/{}", H.to_uppercase()),
    ] {
        assert_eq!(found(&path), None, "{path}");
    }
}

#[test]
fn names_come_from_each_runtimes_files_once() {
    let root = tempfile::tempdir().expect("tempdir");
    let write = |rel: &str, text: &str| {
        let p = root.path().join(rel);
        std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        std::fs::write(p, text).expect("write");
    };
    write(
        &format!("var/lib/docker/containers/{H}/config.v2.json"),
        r#"{"ID":"x","Name":"/web-1","Config":{"Hostname":"4a5e"}}"#,
    );
    write(
        "var/lib/containers/storage/overlay-containers/volatile-containers.json",
        &format!(
            r#"[{{"id":"{P}","names":["other"]}},{{"id":"{H}","names":["ebpf-web"],"flags":{{}}}}]"#
        ),
    );
    write(
        &format!("run/k3s/containerd/io.containerd.runtime.v2.task/k8s.io/{H}/config.json"),
        r#"{"ociVersion":"1.1.0","annotations":{"io.kubernetes.cri.sandbox-namespace":"kube-system","io.kubernetes.cri.sandbox-name":"cilium-x7","io.kubernetes.cri.container-name":"agent"}}"#,
    );
    write(
        &format!("run/containers/storage/overlay-containers/{H}/userdata/config.json"),
        r#"{"annotations":{"io.kubernetes.pod.namespace":"default","io.kubernetes.pod.name":"falco-1"}}"#,
    );
    let mut cache = Cache::new(root.path());
    let mut label = |p: String| cache.of(&p).and_then(|c| c.label());
    assert_eq!(
        label(format!("/docker/{H}")).as_deref(),
        Some("docker:web-1")
    );
    assert_eq!(
        label(format!("/libpod_parent/libpod-{H}")).as_deref(),
        Some("podman:ebpf-web")
    );
    assert_eq!(
        label(format!("/kubepods/pod{UID}/{H}")).as_deref(),
        Some("containerd:kube-system/cilium-x7/agent")
    );
    assert_eq!(
        label(format!("/kubepods/pod{UID}/crio-{H}")).as_deref(),
        Some("cri-o:default/falco-1")
    );
    // A name with a control character (a NUL no D-Bus string may hold) shows U+FFFD there.
    write(
        &format!("var/lib/docker/containers/{UID_ID}/config.v2.json"),
        r#"{"Name":"/we\u0000b\u001b[2J"}"#,
    );
    assert_eq!(
        label(format!("/docker/{UID_ID}")).as_deref(),
        Some("docker:we\u{FFFD}b\u{FFFD}[2J")
    );
    // No file: the short id.
    assert_eq!(
        label(format!("/docker/{P}")).as_deref(),
        Some("docker:9f1c0b6e2d3a")
    );
    // Read once: a renamed container keeps the name it had when its cgroup was first seen.
    write(
        &format!("var/lib/docker/containers/{H}/config.v2.json"),
        r#"{"Name":"/renamed"}"#,
    );
    assert_eq!(
        label(format!("/docker/{H}")).as_deref(),
        Some("docker:web-1")
    );
    // A file that is not what it should be gives no name, and no failure.
    write(
        &format!("var/lib/docker/containers/{P}/config.v2.json"),
        "[1, 2",
    );
    let mut fresh = Cache::new(root.path());
    let c = fresh.of(&format!("/docker/{P}")).expect("a container");
    assert_eq!((c.name.as_str(), c.id.as_str()), ("", P));
}
