//! Human names for the kernel's numeric program, map, link and attach types, in bpftool's
//! spelling (`socket_filter`, `percpu_hash`, `cgroup_inet_ingress`).

use std::sync::{Mutex, PoisonError};

use aya_obj::generated::{bpf_attach_type, bpf_link_type, bpf_map_type, bpf_prog_type};

/// One copy of each name for the life of the process: a few dozen distinct strings, shared by
/// every program and map (thousands of them) instead of one allocation each.
fn intern(s: String) -> &'static str {
    static SEEN: Mutex<Vec<&'static str>> = Mutex::new(Vec::new());
    let mut seen = SEEN.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(&known) = seen.iter().find(|k| **k == s) {
        return known;
    }
    let leaked: &'static str = Box::leak(s.into_boxed_str());
    seen.push(leaked);
    leaked
}

fn from_debug(debug: String, prefix: &str) -> String {
    debug
        .strip_prefix(prefix)
        .unwrap_or(&debug)
        .to_ascii_lowercase()
}

/// Types newer than the bindings print as `unknown(N)` rather than failing.
fn name_of<E: TryFrom<u32> + std::fmt::Debug>(value: u32, prefix: &str) -> &'static str {
    intern(match E::try_from(value) {
        Ok(known) => from_debug(format!("{known:?}"), prefix),
        Err(_) => format!("unknown({value})"),
    })
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
