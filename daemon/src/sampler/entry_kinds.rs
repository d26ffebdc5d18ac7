//! What a map's entries are, as the sampler keeps them: counted (how, when) or not (why), and
//! how each map type can be counted. The counting itself is [`super::entries`].

use std::time::SystemTime;

use aya_obj::generated::bpf_map_type as M;
use ebpfstat_dbus::CountedBy;
use ebpfstat_numbers::WallNs;

/// Entries of a map, as last counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Entries {
    Counted {
        n: u64,
        by: CountedBy,
        /// When it was counted.
        at: WallNs,
    },
    /// Why this map's entries are not counted.
    NotCounted(&'static str),
}

/// As `ebpfstatd sample --json` writes a map's entries (flattened into the map): `entries`,
/// `entries_counted_by` and `entries_note`, `null` where there is none, as `ebpfstatctl` does.
impl serde::Serialize for Entries {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let (n, by, note) = match *self {
            Self::Counted { n, by, .. } => (Some(n), Some(by.as_str()), None),
            Self::NotCounted(why) => (None, None, Some(why)),
        };
        let mut m = s.serialize_map(Some(3))?;
        m.serialize_entry("entries", &n)?;
        m.serialize_entry("entries_counted_by", &by)?;
        m.serialize_entry("entries_note", &note)?;
        m.end()
    }
}

/// How a map of this type can be counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// A hash map: in batches, or key by key where the kernel has no batches for it.
    Batch {
        per_cpu: bool,
    },
    /// Key by key.
    Keys,
    /// Every slot exists: entries are max entries by definition.
    Array,
    Never(&'static str),
}

pub fn method(type_id: u32) -> Method {
    let Ok(t) = M::try_from(type_id) else {
        return Method::Never("a map type newer than this daemon");
    };
    match t {
        M::BPF_MAP_TYPE_HASH | M::BPF_MAP_TYPE_LRU_HASH | M::BPF_MAP_TYPE_HASH_OF_MAPS => {
            Method::Batch { per_cpu: false }
        }
        M::BPF_MAP_TYPE_PERCPU_HASH | M::BPF_MAP_TYPE_LRU_PERCPU_HASH => {
            Method::Batch { per_cpu: true }
        }
        M::BPF_MAP_TYPE_LPM_TRIE
        | M::BPF_MAP_TYPE_DEVMAP_HASH
        | M::BPF_MAP_TYPE_SOCKHASH
        | M::BPF_MAP_TYPE_STACK_TRACE
        | M::BPF_MAP_TYPE_CGROUP_STORAGE
        | M::BPF_MAP_TYPE_PERCPU_CGROUP_STORAGE => Method::Keys,
        M::BPF_MAP_TYPE_ARRAY | M::BPF_MAP_TYPE_PERCPU_ARRAY => Method::Array,
        M::BPF_MAP_TYPE_PROG_ARRAY
        | M::BPF_MAP_TYPE_PERF_EVENT_ARRAY
        | M::BPF_MAP_TYPE_CGROUP_ARRAY
        | M::BPF_MAP_TYPE_ARRAY_OF_MAPS
        | M::BPF_MAP_TYPE_DEVMAP
        | M::BPF_MAP_TYPE_SOCKMAP
        | M::BPF_MAP_TYPE_CPUMAP
        | M::BPF_MAP_TYPE_XSKMAP
        | M::BPF_MAP_TYPE_REUSEPORT_SOCKARRAY => {
            Method::Never("an array of descriptors: the kernel lists its slots, filled or not")
        }
        M::BPF_MAP_TYPE_RINGBUF | M::BPF_MAP_TYPE_USER_RINGBUF => {
            Method::Never("a ring buffer holds records, not entries")
        }
        _ => Method::Never("the kernel cannot list this type's entries"),
    }
}

/// A map's entries before it is counted: known for arrays, the reason for maps never counted.
pub fn initial(type_id: u32, max_entries: u32) -> Entries {
    match method(type_id) {
        Method::Array => Entries::Counted {
            n: u64::from(max_entries),
            by: CountedBy::Array,
            at: WallNs::of(SystemTime::now()),
        },
        Method::Never(why) => Entries::NotCounted(why),
        Method::Batch { .. } | Method::Keys => Entries::NotCounted("not counted yet"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_type_has_a_way_or_a_reason() {
        assert_eq!(method(1), Method::Batch { per_cpu: false });
        assert_eq!(method(10), Method::Batch { per_cpu: true });
        assert_eq!(method(2), Method::Array);
        assert_eq!(method(11), Method::Keys);
        assert!(matches!(method(4), Method::Never(_)));
        assert!(matches!(method(27), Method::Never(_)));
        assert!(matches!(method(9999), Method::Never(_)));
    }
}
