//! Human names for the kernel's numeric program, map, link and attach types, in bpftool's
//! spelling (`socket_filter`, `percpu_hash`, `cgroup_inet_ingress`).

use std::any::TypeId;
use std::sync::{Mutex, PoisonError};

use aya_obj::generated::{bpf_attach_type, bpf_link_type, bpf_map_type, bpf_prog_type};

/// The bytes of a program's or map's name the kernel keeps (`BPF_OBJ_NAME_LEN`, 16, with its
/// NUL): a longer name is cut to this.
pub const KERNEL_NAME_MAX: usize = 15;

/// Types newer than the bindings print as `unknown(N)` rather than failing.
///
/// One copy of each name for the life of the process: a few dozen distinct strings, shared by
/// every program and map (thousands of them) instead of one allocation each. The cache is keyed
/// on the raw (kind, value), so a name already known costs no allocation.
fn name_of<E: TryFrom<u32> + std::fmt::Debug + 'static>(value: u32, prefix: &str) -> &'static str {
    static SEEN: Mutex<Vec<(TypeId, u32, &'static str)>> = Mutex::new(Vec::new());
    let kind = TypeId::of::<E>();
    let mut seen = SEEN.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(&(_, _, known)) = seen.iter().find(|e| e.0 == kind && e.1 == value) {
        return known;
    }
    let name = match E::try_from(value) {
        Ok(known) => {
            let debug = format!("{known:?}");
            debug
                .strip_prefix(prefix)
                .unwrap_or(&debug)
                .to_ascii_lowercase()
        }
        Err(_) => format!("unknown({value})"),
    };
    // Kinds can share a spelling (`unknown(N)`): still one copy.
    let leaked = match seen.iter().find(|e| e.2 == name) {
        Some(e) => e.2,
        None => Box::leak(name.into_boxed_str()),
    };
    seen.push((kind, value, leaked));
    leaked
}

pub fn prog_type(value: u32) -> &'static str {
    name_of::<bpf_prog_type>(value, "BPF_PROG_TYPE_")
}

pub fn map_type(value: u32) -> &'static str {
    name_of::<bpf_map_type>(value, "BPF_MAP_TYPE_")
}

pub fn link_type(value: u32) -> &'static str {
    name_of::<bpf_link_type>(value, "BPF_LINK_TYPE_")
}

pub fn attach_type(value: u32) -> &'static str {
    name_of::<bpf_attach_type>(value, "BPF_")
}

/// How a program is attached through a perf-event fd (or a legacy raw tracepoint fd), by the
/// `BPF_FD_TYPE_*` that `BPF_TASK_FD_QUERY` reports; any other is `perf_event`.
pub fn perf_attach_kind(fd_type: u32) -> &'static str {
    usize::try_from(fd_type)
        .ok()
        .and_then(|i| PERF_ATTACH_KINDS.get(i))
        .copied()
        .unwrap_or("perf_event")
}

/// `BPF_FD_TYPE_RAW_TRACEPOINT` (0) to `BPF_FD_TYPE_URETPROBE` (5).
const PERF_ATTACH_KINDS: [&str; 6] = [
    "raw_tracepoint",
    "tracepoint",
    "kprobe",
    "kretprobe",
    "uprobe",
    "uretprobe",
];

/// Every name `name` gives to a value this kernel's bindings know.
fn known(name: fn(u32) -> &'static str) -> Vec<&'static str> {
    // Each enum here has fewer than 128 values; past its end, names are `unknown(N)`.
    (0..128)
        .map(name)
        .filter(|t| !t.starts_with("unknown") && !t.starts_with("__") && *t != "unspec")
        .collect()
}

/// The program types there are, in bpftool's spelling: what a type filter may name.
pub fn prog_types() -> Vec<&'static str> {
    known(prog_type)
}

/// The map types there are, likewise.
pub fn map_types() -> Vec<&'static str> {
    known(map_type)
}

/// Every way a program can be attached, as its attach points say it: a link type (`xdp`,
/// `tcx`, `uprobe_multi`), an attach type (`cgroup_inet_ingress`, `trace_fentry`) or how it
/// is attached through a perf-event fd (`uprobe`, `tracepoint`): what an attach filter may name.
pub fn attach_kinds() -> Vec<&'static str> {
    let mut all = known(link_type);
    all.extend(known(attach_type));
    all.extend(PERF_ATTACH_KINDS);
    all.sort_unstable();
    all.dedup();
    all
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bpftool_spelling() {
        assert_eq!(prog_type(1), "socket_filter");
        assert_eq!(map_type(5), "percpu_hash");
        assert_eq!(link_type(3), "cgroup");
        assert_eq!(attach_type(0), "cgroup_inet_ingress");
        assert_eq!(map_type(4000), "unknown(4000)");
    }

    #[test]
    fn what_filters_may_name() {
        let types = prog_types();
        assert!(types.contains(&"tracepoint") && types.contains(&"kprobe"));
        assert!(!types.contains(&"uprobe"), "uprobes are kprobe programs");
        assert!(map_types().contains(&"percpu_hash"));
        let kinds = attach_kinds();
        for k in [
            "uprobe",
            "uretprobe",
            "tracepoint",
            "xdp",
            "cgroup_inet_ingress",
        ] {
            assert!(kinds.contains(&k), "{k}: {kinds:?}");
        }
        assert_eq!(perf_attach_kind(4), "uprobe");
        assert_eq!(perf_attach_kind(9), "perf_event");
    }
}
