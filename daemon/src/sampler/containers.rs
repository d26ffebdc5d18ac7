//! Which container a process runs in, from its cgroup path, as each runtime lays the path out
//! (docs/containers.md has the table): the runtime, the full id, a Kubernetes pod's UID, and the
//! name where the runtime keeps it readable on the host. Read once per cgroup and cached: a
//! container's processes share it, and a name file is read once, bounded in size.

use std::collections::HashMap;
use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use ebpfstat_dbus::Container;
use json::Json;

/// Length of a container id (hex) as docker, podman, containerd and CRI-O make them.
const ID_LEN: usize = 64;
/// The most bytes of a runtime's file read for a name: podman's list of every container is
/// the largest (a few hundred bytes each).
const MAX_NAME_FILE: u64 = 4 << 20;
/// Cgroups remembered; past this the cache starts again (containers come and go).
const MAX_CACHED: usize = 4096;

fn is_id(s: &str) -> bool {
    s.len() == ID_LEN
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// A systemd unit name's `\xNN` escapes undone (`foo\x2dbar` → `foo-bar`); one that would
/// make a control character (a NUL, which no D-Bus string may hold) stays as written.
fn unescape(s: &str) -> String {
    let mut out = Vec::with_capacity(s.len());
    let mut rest = s.as_bytes();
    while let Some((&b, tail)) = rest.split_first() {
        let hex = tail
            .strip_prefix(b"x")
            .and_then(|t| t.get(..2))
            .filter(|h| h.iter().all(u8::is_ascii_hexdigit))
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok())
            .filter(|v| !v.is_ascii_control());
        match (b, hex) {
            (b'\\', Some(v)) => {
                out.push(v);
                rest = tail.get(3..).unwrap_or_default();
            }
            _ => {
                out.push(b);
                rest = tail;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// What one path component says: a container of a runtime (id, and for a machine or an LXC
/// container its name), a runtime's helper that is not the container (conmon, nspawn's
/// supervisor, LXC's monitor), or nothing.
enum Part {
    In(&'static str, String),
    Helper,
    Nothing,
}

fn part(c: &str, parent: Option<&str>) -> Part {
    let scope = c.strip_suffix(".scope");
    let id_after = |prefix: &str| {
        scope
            .unwrap_or(c)
            .strip_prefix(prefix)
            .filter(|id| is_id(id))
            .map(str::to_owned)
    };
    if c.starts_with("libpod-conmon-") || c.starts_with("crio-conmon-") {
        return Part::Helper;
    }
    // nspawn's own process, beside its payload; LXC's monitor, at the top of the tree (a
    // container's process naming a cgroup so below does not leave its container).
    let nspawn_unit = |p: &str| p.starts_with("systemd-nspawn@") || p.starts_with("machine-");
    if (c == "supervisor" && parent.is_some_and(nspawn_unit))
        || (c.starts_with("lxc.monitor") && parent.is_none())
    {
        return Part::Helper;
    }
    for (prefix, runtime) in [
        ("docker-", "docker"),
        ("libpod-payload-", "podman"),
        ("libpod-", "podman"),
        ("cri-containerd-", "containerd"),
        ("nerdctl-", "containerd"),
        ("crio-", "cri-o"),
    ] {
        if let Some(id) = id_after(prefix) {
            return Part::In(runtime, id);
        }
    }
    if let Some(n) = c
        .strip_prefix("systemd-nspawn@")
        .and_then(|n| n.strip_suffix(".service"))
        .or_else(|| scope.and_then(|s| s.strip_prefix("machine-")))
        .filter(|n| !n.is_empty())
    {
        return Part::In("nspawn", unescape(n));
    }
    if let Some(n) = c.strip_prefix("lxc.payload.").filter(|n| !n.is_empty()) {
        return Part::In("lxc", n.to_owned());
    }
    // cgroupfs drivers: a bare id under docker's or Kubernetes' parents, an LXC name under /lxc.
    match parent {
        Some("docker") if is_id(c) => Part::In("docker", c.to_owned()),
        Some(p) if p.starts_with("pod") && is_id(c) => Part::In("containerd", c.to_owned()),
        Some("lxc") => Part::In("lxc", c.to_owned()),
        _ => Part::Nothing,
    }
}

/// A Kubernetes pod's UID, from kubelet's `…pod<uid>.slice` (dashes written as `_`) or
/// `pod<uid>` component.
fn pod_uid(path: &str) -> Option<String> {
    path.split('/').find_map(|c| {
        let c = c.strip_suffix(".slice").unwrap_or(c);
        let uid = c.rsplit_once("pod").map(|(_, u)| u)?;
        let uid = uid.replace('_', "-");
        (uid.len() == 36 && uid.bytes().all(|b| b == b'-' || b.is_ascii_hexdigit())).then_some(uid)
    })
}

/// The container a cgroup path is in, as the path says (the innermost, for a container in a
/// container); no name but a machine's or LXC container's.
pub fn of_path(path: &str) -> Option<Container> {
    let parts: Vec<&str> = path.split('/').filter(|c| !c.is_empty()).collect();
    let found = (0..parts.len()).rev().find_map(|i| {
        let parent = i.checked_sub(1).and_then(|p| parts.get(p)).copied();
        match part(parts.get(i)?, parent) {
            Part::Nothing => None,
            Part::Helper => Some(None),
            Part::In(runtime, id) => Some(Some((runtime, id))),
        }
    })??;
    let (runtime, id) = found;
    let named = matches!(runtime, "nspawn" | "lxc");
    Some(Container {
        runtime: runtime.to_owned(),
        name: if named { id.clone() } else { String::new() },
        pod_uid: if runtime == "containerd" || runtime == "cri-o" {
            pod_uid(path).unwrap_or_default()
        } else {
            String::new()
        },
        id,
    })
}

/// Containers by cgroup path, names read from the files under `root` (`/` but in tests).
#[derive(Debug)]
pub struct Cache {
    root: PathBuf,
    known: HashMap<String, Option<Arc<Container>>>,
}

impl Default for Cache {
    fn default() -> Self {
        Self::new(Path::new("/"))
    }
}

impl Cache {
    pub fn new(root: &Path) -> Self {
        Self {
            root: root.to_owned(),
            known: HashMap::new(),
        }
    }

    /// The container of a cgroup path, its name looked up the first time the path is seen.
    pub fn of(&mut self, cgroup: &str) -> Option<Arc<Container>> {
        if let Some(known) = self.known.get(cgroup) {
            return known.clone();
        }
        if self.known.len() >= MAX_CACHED {
            self.known.clear();
        }
        let found = of_path(cgroup).map(|mut c| {
            if c.name.is_empty() {
                c.name = name(&self.root, &c).unwrap_or_default();
            }
            Arc::new(c)
        });
        self.known.insert(cgroup.to_owned(), found.clone());
        found
    }
}

/// Where the runtime keeps a container's name; `None` when it is not there (a rootless
/// runtime's files are under its user's home, which is not looked in) or cannot be read.
fn name(root: &Path, c: &Container) -> Option<String> {
    let at = |p: String| root.join(p);
    let found = match c.runtime.as_str() {
        // `"Name": "/web-1"`.
        "docker" => read(&at(format!(
            "var/lib/docker/containers/{}/config.v2.json",
            c.id
        )))
        .and_then(|d| Some(d.get("Name")?.str()?.trim_start_matches('/').to_owned())),
        // `[{"id": …, "names": ["web"]}, …]`.
        "podman" => ["containers.json", "volatile-containers.json"]
            .iter()
            .filter_map(|f| {
                read(&at(format!(
                    "var/lib/containers/storage/overlay-containers/{f}"
                )))
            })
            .find_map(|list| {
                let id = Some(c.id.as_str());
                let one = list
                    .items()
                    .iter()
                    .find(|s| s.get("id").and_then(Json::str) == id)?;
                Some(one.get("names")?.items().first()?.str()?.to_owned())
            }),
        "containerd" => ["run/containerd", "run/k3s/containerd"]
            .iter()
            .find_map(|d| {
                read(&at(format!(
                    "{d}/io.containerd.runtime.v2.task/k8s.io/{}/config.json",
                    c.id
                )))
            })
            .and_then(|s| kubernetes(&s, CONTAINERD_KEYS)),
        "cri-o" => read(&at(format!(
            "run/containers/storage/overlay-containers/{}/userdata/config.json",
            c.id
        )))
        .and_then(|s| kubernetes(&s, CRIO_KEYS)),
        _ => None,
    };
    // A name is shown and sent over D-Bus: no control characters (a NUL would break a reply).
    found.filter(|n| !n.is_empty()).map(|n| {
        n.chars()
            .map(|c| if c.is_control() { '\u{FFFD}' } else { c })
            .collect()
    })
}

/// A JSON file, at most [`MAX_NAME_FILE`] bytes of it; `None` if absent, unreadable or not
/// JSON (said in the debug log: a name is a courtesy, the container is known anyway).
fn read(path: &Path) -> Option<Json> {
    let mut text = Vec::new();
    let read = std::fs::File::open(path)
        .and_then(|f| f.take(MAX_NAME_FILE).read_to_end(&mut text))
        .map_err(|e| e.to_string())
        .and_then(|_| Json::parse(&text));
    match read {
        Ok(v) => Some(v),
        Err(e) => {
            tracing::debug!("container name: {}: {e}", path.display());
            None
        }
    }
}

/// The annotations of a Kubernetes container's namespace, pod and name: containerd's CRI
/// plugin's and CRI-O's (kubelet's labels).
const CONTAINERD_KEYS: [&str; 3] = [
    "io.kubernetes.cri.sandbox-namespace",
    "io.kubernetes.cri.sandbox-name",
    "io.kubernetes.cri.container-name",
];
const CRIO_KEYS: [&str; 3] = [
    "io.kubernetes.pod.namespace",
    "io.kubernetes.pod.name",
    "io.kubernetes.container.name",
];

/// An OCI runtime spec's `namespace/pod/container`, from its annotations, or `namespace/pod`
/// for a pod's sandbox (no container name).
fn kubernetes(spec: &Json, keys: [&str; 3]) -> Option<String> {
    let notes = spec.get("annotations")?;
    let [ns, pod, name] = keys.map(|k| notes.get(k).and_then(Json::str));
    let (ns, pod) = (ns?, pod?);
    Some(match name {
        Some(n) if !n.is_empty() => format!("{ns}/{pod}/{n}"),
        _ => format!("{ns}/{pod}"),
    })
}

mod json;
#[cfg(test)]
mod tests;
