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
    /// A kprobe link's missed hits, where the kernel reports them (Linux 6.7), as last read.
    pub missed: Option<u64>,
}

/// An attachment through a perf-event fd (tracepoint, k/uprobe) or a legacy raw tracepoint
/// fd, as `BPF_TASK_FD_QUERY` describes it: not a link, so it has no link id (0).
pub fn perf_attach(q: &sys::FdQuery) -> AttachPoint {
    perf_point(0, q.fd_type, &q.name, q.probe_offset, q.probe_addr)
}

/// Where a perf event attaches a program, in words: the one home of that formatting, for a
/// holder's perf fd (`BPF_TASK_FD_QUERY`) and a perf-event link the kernel describes (6.6+)
/// alike, so that the two read the same and can be matched (`context::attach_points`).
/// `fd_type` is a `BPF_FD_TYPE_*`.
fn perf_point(link_id: u32, fd_type: u32, name: &str, offset: u64, addr: u64) -> AttachPoint {
    let target = match fd_type {
        // k(ret)probe: a function and offset, or a bare address.
        2 | 3 if name.is_empty() => format!("{addr:#x}"),
        2..=5 if offset != 0 => format!("{name}+{offset:#x}"),
        _ => name.to_owned(),
    };
    AttachPoint {
        link_id,
        link_type: "perf_event",
        attach_type: Some(names::perf_attach_kind(fd_type)),
        target,
        missed: None,
    }
}

/// The target of a perf-event link that nothing describes: before Linux 6.6 the kernel leaves
/// its info empty, and no holder kept the perf fd for `BPF_TASK_FD_QUERY` to answer.
pub const PERF_LINK_UNNAMED: &str = "perf event (the kernel names it from Linux 6.6)";

impl AttachPoint {
    /// A perf-event link the kernel did not describe (before Linux 6.6).
    pub fn is_unnamed_perf_link(&self) -> bool {
        self.link_id != 0 && self.link_type == "perf_event" && self.target == PERF_LINK_UNNAMED
    }
}

/// Every link on the host, grouped by program id. A link that vanishes mid-walk is skipped.
pub fn scan(cgroup2: Option<&Path>) -> Result<HashMap<u32, Vec<AttachPoint>>, SysError> {
    let mut by_prog: HashMap<u32, Vec<AttachPoint>> = HashMap::new();
    let mut cgroups = CgroupNames::new(cgroup2);
    let mut ifaces = IfNames::default();
    // A uprobe's file is a path: up to PATH_MAX with its NUL.
    let mut name = [0u8; 4096];
    let mut id = 0;
    while let Some(next) = sys::next_id(ObjKind::Link, id)? {
        id = next;
        let Ok(fd) = sys::fd_by_id(ObjKind::Link, id) else {
            continue;
        };
        let Ok(read) = sys::link_info(fd.as_fd(), &mut name) else {
            continue;
        };
        let mut point = describe(&read.info, &name, &mut cgroups, &mut ifaces);
        if point.is_unnamed_perf_link() {
            point.attach_type = perf_kind_of(read.info.prog_id);
        }
        point.missed = read.kprobe_missed();
        by_prog.entry(read.info.prog_id).or_default().push(point);
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
    if t == L::BPF_LINK_TYPE_PERF_EVENT as u32 {
        return perf_link(info, name);
    }
    let u = &info.__bindgen_anon_1;
    // SAFETY (for each union read below): the kernel filled the union member that matches
    // `info.type_`, which is the one each arm reads; all members are plain integers.
    let (attach_type, target) =
        if t == L::BPF_LINK_TYPE_RAW_TRACEPOINT as u32 || t == L::BPF_LINK_TYPE_ITER as u32 {
            (None, c_text(name))
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
        missed: None,
    }
}

/// A NUL-terminated name the kernel wrote into `buf`.
fn c_text(buf: &[u8]) -> String {
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end]).into_owned()
}

/// A perf-event link (5.15+): from Linux 6.6 the kernel says what it attaches as a fd query of
/// its perf event would; before, `perf_event` is left zero and the link is unnamed.
fn perf_link(info: &bpf_link_info, name: &[u8]) -> AttachPoint {
    use aya_obj::generated::bpf_perf_event_type as P;
    const UPROBE: u32 = P::BPF_PERF_EVENT_UPROBE as u32;
    const URETPROBE: u32 = P::BPF_PERF_EVENT_URETPROBE as u32;
    const KPROBE: u32 = P::BPF_PERF_EVENT_KPROBE as u32;
    const KRETPROBE: u32 = P::BPF_PERF_EVENT_KRETPROBE as u32;
    const TRACEPOINT: u32 = P::BPF_PERF_EVENT_TRACEPOINT as u32;
    const EVENT: u32 = P::BPF_PERF_EVENT_EVENT as u32;
    // SAFETY: a perf-event link's info is the `perf_event` member (all zero before 6.6); it and
    // each member of its inner union read below (the one `type_` names) are plain integers.
    let perf = unsafe { info.__bindgen_anon_1.perf_event };
    let of = perf.__bindgen_anon_1;
    let point = |attach_type, target| AttachPoint {
        link_id: info.id,
        link_type: "perf_event",
        attach_type,
        target,
        missed: None,
    };
    // To the BPF_FD_TYPE_* a fd query of the same perf event answers, with its offset, address.
    let (fd_type, offset, addr) = match perf.type_ {
        TRACEPOINT => (1, 0, 0),
        KPROBE | KRETPROBE => {
            // SAFETY: see above.
            let k = unsafe { of.kprobe };
            let fd_type = if perf.type_ == KPROBE { 2 } else { 3 };
            (fd_type, u64::from(k.offset), k.addr)
        }
        UPROBE | URETPROBE => {
            // SAFETY: see above.
            let offset = u64::from(unsafe { of.uprobe.offset });
            (if perf.type_ == UPROBE { 4 } else { 5 }, offset, 0)
        }
        EVENT => {
            // A perf_event program on a counter: a kind fd queries do not have.
            // SAFETY: see above.
            let ev = unsafe { of.event };
            let pmu = match ev.type_ {
                0 => "hardware".to_owned(),
                1 => "software".to_owned(),
                3 => "hw_cache".to_owned(),
                4 => "raw".to_owned(),
                5 => "breakpoint".to_owned(),
                n => format!("pmu {n}"),
            };
            let target = format!("{pmu} event {:#x}", ev.config);
            return point(Some("perf_event"), target);
        }
        _ => return point(None, PERF_LINK_UNNAMED.to_owned()),
    };
    perf_point(info.id, fd_type, &c_text(name), offset, addr)
}

/// The attach kind a program's perf-event link must be, when its type leaves only one: a
/// tracepoint program attaches to tracepoints (a kprobe program may be any of four kinds).
fn perf_kind_of(prog_id: u32) -> Option<&'static str> {
    use aya_obj::generated::bpf_prog_type as P;
    let fd = sys::fd_by_id(ObjKind::Prog, prog_id).ok()?;
    let info = sys::prog_info(fd.as_fd(), &mut Vec::new()).ok()?;
    match info.type_ {
        t if t == P::BPF_PROG_TYPE_TRACEPOINT as u32 => Some(names::perf_attach_kind(1)),
        t if t == P::BPF_PROG_TYPE_PERF_EVENT as u32 => Some("perf_event"),
        _ => None,
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

#[cfg(test)]
mod tests {
    use super::*;
    use aya_obj::generated::{bpf_link_type as L, bpf_perf_event_type as P};

    fn perf_info(kind: P) -> bpf_link_info {
        // SAFETY: the kernel's link info is plain integers, for which all-zero is valid.
        let mut info: bpf_link_info = unsafe { std::mem::zeroed() };
        info.type_ = L::BPF_LINK_TYPE_PERF_EVENT as u32;
        info.id = 9;
        info.__bindgen_anon_1.perf_event.type_ = kind as u32;
        info
    }

    #[test]
    fn a_perf_event_link_reads_as_a_fd_query_of_its_event_does() {
        let describe = |info: &bpf_link_info, name: &[u8]| {
            describe(
                info,
                name,
                &mut CgroupNames::new(None),
                &mut IfNames::default(),
            )
        };
        let tp = describe(
            &perf_info(P::BPF_PERF_EVENT_TRACEPOINT),
            b"sys_enter_getppid\0",
        );
        let query = sys::FdQuery {
            prog_id: 1,
            fd_type: 1,
            name: "sys_enter_getppid".to_owned(),
            probe_offset: 0,
            probe_addr: 0,
        };
        assert_eq!(
            tp,
            AttachPoint {
                link_id: 9,
                ..perf_attach(&query)
            }
        );
        assert_eq!(tp.attach_type, Some("tracepoint"));

        let mut kretprobe = perf_info(P::BPF_PERF_EVENT_KRETPROBE);
        kretprobe
            .__bindgen_anon_1
            .perf_event
            .__bindgen_anon_1
            .kprobe
            .offset = 0x10;
        let k = describe(&kretprobe, b"do_sys_openat2\0");
        assert_eq!(
            (k.attach_type, k.target.as_str()),
            (Some("kretprobe"), "do_sys_openat2+0x10")
        );
        let mut uprobe = perf_info(P::BPF_PERF_EVENT_UPROBE);
        uprobe
            .__bindgen_anon_1
            .perf_event
            .__bindgen_anon_1
            .uprobe
            .offset = 0x1140;
        let u = describe(&uprobe, b"/usr/bin/true\0");
        assert_eq!(
            (u.attach_type, u.target.as_str()),
            (Some("uprobe"), "/usr/bin/true+0x1140")
        );

        // Before 6.6: nothing filled.
        let old = describe(&perf_info(P::BPF_PERF_EVENT_UNSPEC), b"\0");
        assert!(old.is_unnamed_perf_link(), "{old:?}");
        assert_eq!((old.link_type, old.attach_type), ("perf_event", None));
    }
}
