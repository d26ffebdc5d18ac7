//! Attach points, where the kernel tells them: BPF links and what they attach to.

use std::collections::HashMap;
use std::os::fd::AsFd;
use std::path::Path;

use aya_obj::generated::{bpf_link_info, bpf_link_type as L};
use serde::Serialize;

use crate::bpf::names;
use crate::bpf::sys::{self, ObjKind, SysError};

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AttachPoint {
    pub link_id: u32,
    pub link_type: &'static str,
    pub attach_type: Option<&'static str>,
    /// What it is attached to, in words: an interface, a cgroup path, a tracepoint...
    pub target: String,
}

/// An attachment through a perf-event fd (tracepoint, k/uprobe) or a legacy raw tracepoint
/// fd, as `BPF_TASK_FD_QUERY` describes it: not a link, so it has no link id (0).
pub fn perf_attach(q: &sys::FdQuery) -> AttachPoint {
    let kind = names::perf_attach_kind(q.fd_type);
    let target = match q.fd_type {
        // k(ret)probe: a function and offset, or a bare address.
        2 | 3 if q.name.is_empty() => format!("{:#x}", q.probe_addr),
        2..=5 if q.probe_offset != 0 => format!("{}+{:#x}", q.name, q.probe_offset),
        _ => q.name.clone(),
    };
    AttachPoint {
        link_id: 0,
        link_type: "perf_event",
        attach_type: Some(kind),
        target,
    }
}

/// Every link on the host, grouped by program id. A link that vanishes mid-walk is skipped.
pub fn scan(cgroup2: Option<&Path>) -> Result<HashMap<u32, Vec<AttachPoint>>, SysError> {
    let mut by_prog: HashMap<u32, Vec<AttachPoint>> = HashMap::new();
    let mut cgroups = CgroupNames::new(cgroup2);
    let mut ifaces = IfNames::default();
    let mut name = [0u8; 256];
    let mut id = 0;
    while let Some(next) = sys::next_id(ObjKind::Link, id)? {
        id = next;
        let Ok(fd) = sys::fd_by_id(ObjKind::Link, id) else {
            continue;
        };
        let Ok(info) = sys::link_info(fd.as_fd(), &mut name) else {
            continue;
        };
        let point = describe(&info, &name, &mut cgroups, &mut ifaces);
        by_prog.entry(info.prog_id).or_default().push(point);
    }
    Ok(by_prog)
}

fn describe(
    info: &bpf_link_info,
    name: &[u8],
    cgroups: &mut CgroupNames,
    ifaces: &mut IfNames,
) -> AttachPoint {
    let t = info.type_;
    let u = &info.__bindgen_anon_1;
    let text = |buf: &[u8]| {
        let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
        String::from_utf8_lossy(&buf[..end]).into_owned()
    };
    // SAFETY (for each union read below): the kernel filled the union member that matches
    // `info.type_`, which is the one each arm reads; all members are plain integers.
    let (attach_type, target) =
        if t == L::BPF_LINK_TYPE_RAW_TRACEPOINT as u32 || t == L::BPF_LINK_TYPE_ITER as u32 {
            (None, text(name))
        } else if t == L::BPF_LINK_TYPE_TRACING as u32 {
            // SAFETY: see above.
            let tr = unsafe { u.tracing };
            (
                Some(tr.attach_type),
                format!("btf_obj {} type {}", tr.target_obj_id, tr.target_btf_id),
            )
        } else if t == L::BPF_LINK_TYPE_CGROUP as u32 {
            // SAFETY: see above.
            let cg = unsafe { u.cgroup };
            (Some(cg.attach_type), cgroups.name(cg.cgroup_id))
        } else if t == L::BPF_LINK_TYPE_NETNS as u32 {
            // SAFETY: see above.
            let ns = unsafe { u.netns };
            (
                Some(ns.attach_type),
                format!("netns inode {}", ns.netns_ino),
            )
        } else if t == L::BPF_LINK_TYPE_XDP as u32 {
            // SAFETY: see above.
            (None, ifaces.describe(unsafe { u.xdp.ifindex }))
        } else if t == L::BPF_LINK_TYPE_TCX as u32 {
            // SAFETY: see above.
            let tcx = unsafe { u.tcx };
            (Some(tcx.attach_type), ifaces.describe(tcx.ifindex))
        } else if t == L::BPF_LINK_TYPE_NETKIT as u32 {
            // SAFETY: see above.
            let nk = unsafe { u.netkit };
            (Some(nk.attach_type), ifaces.describe(nk.ifindex))
        } else if t == L::BPF_LINK_TYPE_NETFILTER as u32 {
            // SAFETY: see above.
            let nf = unsafe { u.netfilter };
            (
                None,
                format!("pf {} hook {} priority {}", nf.pf, nf.hooknum, nf.priority),
            )
        } else if t == L::BPF_LINK_TYPE_STRUCT_OPS as u32 {
            // SAFETY: see above.
            let map_id = unsafe { u.struct_ops.map_id };
            (None, format!("struct_ops map {map_id}"))
        } else if t == L::BPF_LINK_TYPE_KPROBE_MULTI as u32 {
            // SAFETY: see above.
            (None, format!("{} kprobes", unsafe { u.kprobe_multi.count }))
        } else if t == L::BPF_LINK_TYPE_UPROBE_MULTI as u32 {
            // SAFETY: see above.
            (None, format!("{} uprobes", unsafe { u.uprobe_multi.count }))
        } else {
            (None, String::new())
        };
    AttachPoint {
        link_id: info.id,
        link_type: names::link_type(t),
        attach_type: attach_type.map(names::attach_type),
        target,
    }
}

/// ifindex → interface name, read from sysfs rather than with an ioctl so the service needs no
/// socket for it; listed once per scan, and only if a link asks.
#[derive(Default)]
struct IfNames {
    by_index: Option<HashMap<u32, String>>,
}

impl IfNames {
    /// `eth0 (ifindex 2)`, or the bare index when the interface is gone or in another netns.
    fn describe(&mut self, ifindex: u32) -> String {
        let table = self.by_index.get_or_insert_with(|| {
            let mut t = HashMap::new();
            let entries = std::fs::read_dir("/sys/class/net").into_iter().flatten();
            for e in entries.flatten() {
                let index = std::fs::read_to_string(e.path().join("ifindex"));
                if let Some(index) = index.ok().and_then(|i| i.trim().parse::<u32>().ok()) {
                    // The first entry listed wins, as a linear search would find it.
                    t.entry(index)
                        .or_insert_with(|| e.file_name().to_string_lossy().into_owned());
                }
            }
            t
        });
        match table.get(&ifindex) {
            Some(n) => format!("{n} (ifindex {ifindex})"),
            None => format!("ifindex {ifindex}"),
        }
    }
}

/// cgroup id → path. On cgroup2 the id is the inode number of the cgroup's directory; the tree
/// is walked once per scan, and only if a cgroup link asks.
struct CgroupNames<'a> {
    root: Option<&'a Path>,
    by_inode: Option<HashMap<u64, String>>,
}

impl<'a> CgroupNames<'a> {
    fn new(root: Option<&'a Path>) -> Self {
        Self {
            root,
            by_inode: None,
        }
    }

    fn name(&mut self, id: u64) -> String {
        let root = self.root;
        let table = self.by_inode.get_or_insert_with(|| {
            let mut t = HashMap::new();
            if let Some(root) = root {
                index_cgroups(root, root, 0, &mut t);
            }
            t
        });
        table
            .get(&id)
            .cloned()
            .unwrap_or_else(|| format!("cgroup id {id}"))
    }
}

fn index_cgroups(root: &Path, dir: &Path, depth: usize, out: &mut HashMap<u64, String>) {
    use std::os::unix::fs::MetadataExt;
    if depth > 16 || out.len() > 20_000 {
        return;
    }
    if let Ok(meta) = std::fs::metadata(dir) {
        let rel = dir.strip_prefix(root).unwrap_or(dir);
        out.insert(meta.ino(), format!("/{}", rel.display()));
    }
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            index_cgroups(root, &entry.path(), depth + 1, out);
        }
    }
}
