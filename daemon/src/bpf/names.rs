//! Human names for the kernel's numeric program, map, link and attach types, in bpftool's
//! spelling (`socket_filter`, `percpu_hash`, `cgroup_inet_ingress`).

use std::any::TypeId;
use std::sync::{Mutex, PoisonError};

use aya_obj::generated::{bpf_attach_type, bpf_link_type, bpf_map_type, bpf_prog_type};

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
}
