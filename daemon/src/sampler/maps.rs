//! Maps: their shape and `memlock`, cached because map memory changes rarely.

use ebpfstat_dbus::NoteCode;
use std::os::fd::{AsFd, AsRawFd};
use std::path::Path;
use std::sync::Arc;

use ebpfstat_store::idmap::IdMap;

use ebpfstat_store::MapMemory;
use serde::Serialize;

use super::entry_kinds::{self, Entries};
use super::owners::Owner;
use super::procfs::{fdinfo_value, read_proc_text};
use crate::bpf::names;
use crate::bpf::sys::{self, ObjKind, SysResult};
use aya_obj::generated::bpf_map_type;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MapSample {
    pub id: u32,
    pub name: String,
    #[serde(rename = "type")]
    pub map_type: &'static str,
    pub key_size: u32,
    pub value_size: u32,
    pub max_entries: u32,
    pub flags: u32,
    /// `memlock:` of the map's fdinfo; `None` if the kernel did not report it.
    pub memlock_bytes: Option<u64>,
    /// Number of live programs that use the map.
    pub used_by_programs: u32,
    /// Processes holding the map: a map fd, or a program (or link) of a program using it.
    pub owners: Vec<Arc<Owner>>,
    /// Entries as last counted (each rescan, within a budget: `entries`).
    #[serde(flatten)]
    pub entries: Entries,
    /// For a `perf_event_array`: the perf ring buffers its holders have mapped, each process's
    /// counted once (on the lowest-id such map it holds); `None` for other maps, or when a
    /// holder's mappings could not be read.
    pub perf_buffer_bytes: Option<u64>,
    #[serde(skip)]
    pub type_id: u32,
}

/// Notes (as on programs) for what a map's memory does not count.
pub fn notes_of(map_type: &str) -> &'static [NoteCode] {
    match map_type {
        "perf_event_array" => &[NoteCode::PerfEventArray],
        "array_of_maps" | "hash_of_maps" => &[NoteCode::MapOfMaps],
        _ => &[],
    }
}

const BPF_F_NO_PREALLOC: u32 = 1;

/// Whether the kernel's `memlock` estimate can move while the map lives (Linux ≥ 6.4 counts
/// live elements of maps that allocate on demand); fixed-size maps are read once.
pub fn memlock_can_change(type_id: u32, flags: u32) -> bool {
    use aya_obj::generated::bpf_map_type as M;
    const ON_DEMAND: [M; 8] = [
        M::BPF_MAP_TYPE_LPM_TRIE,
        M::BPF_MAP_TYPE_SK_STORAGE,
        M::BPF_MAP_TYPE_INODE_STORAGE,
        M::BPF_MAP_TYPE_TASK_STORAGE,
        M::BPF_MAP_TYPE_CGRP_STORAGE,
        M::BPF_MAP_TYPE_HASH_OF_MAPS,
        M::BPF_MAP_TYPE_DEVMAP_HASH,
        M::BPF_MAP_TYPE_ARENA,
    ];
    flags & BPF_F_NO_PREALLOC != 0
        || ON_DEMAND.iter().any(|&t| t as u32 == type_id)
        || M::try_from(type_id).is_err()
}

/// The `memlock:` value from `/proc/self/fdinfo/<fd>` of an fd we hold.
pub fn memlock_of(fd: impl AsFd) -> Option<u64> {
    let path = format!("/proc/self/fdinfo/{}", fd.as_fd().as_raw_fd());
    let mut buf = Vec::new();
    let text = read_proc_text(Path::new(&path), &mut buf).ok()?;
    fdinfo_value(text, "memlock:")
}

pub fn read_map(id: u32) -> SysResult<MapSample> {
    let fd = sys::fd_by_id(ObjKind::Map, id)?;
    let info = sys::map_info(fd.as_fd())?;
    Ok(MapSample {
        id,
        name: c_name(&info.name),
        map_type: names::map_type(info.type_),
        key_size: info.key_size,
        value_size: info.value_size,
        max_entries: info.max_entries,
        flags: info.map_flags,
        memlock_bytes: memlock_of(&fd)
            .map(|m| ring_buffer_counted(info.type_, info.max_entries, m)),
        used_by_programs: 0,
        owners: Vec::new(),
        entries: entry_kinds::initial(info.type_, info.max_entries),
        perf_buffer_bytes: None,
        type_id: info.type_,
    })
}

/// A map's memory where the kernel's figure leaves a ring buffer out: before 6.4 the kernel
/// computes `memlock` from keys and values, which a ring buffer has none of, and says 0. Its
/// data pages are its declared size (`max_entries` bytes), so that is what it is counted at.
fn ring_buffer_counted(map_type: u32, max_entries: u32, memlock: u64) -> u64 {
    let ring = [
        bpf_map_type::BPF_MAP_TYPE_RINGBUF as u32,
        bpf_map_type::BPF_MAP_TYPE_USER_RINGBUF as u32,
    ];
    if memlock == 0 && ring.contains(&map_type) {
        u64::from(max_entries)
    } else {
        memlock
    }
}

/// The kernel's fixed 16-byte, NUL-padded object name.
pub fn c_name(raw: &[libc::c_char; 16]) -> String {
    let bytes: Vec<u8> = raw
        .iter()
        .take_while(|&&c| c != 0)
        // `c_char` is i8 or u8 by target: its byte either way.
        .map(|&c| u8::from_ne_bytes(c.to_ne_bytes()))
        .collect();
    String::from_utf8_lossy(&bytes).into_owned()
}

/// Sums the memory of `map_ids`; a map with more than one user is shared.
pub fn map_memory(map_ids: &[u32], maps: &IdMap<u32, MapEntry>) -> MapMemory {
    let mut mem = MapMemory::default();
    for id in map_ids {
        let Some(entry) = maps.get(id) else { continue };
        let bytes = entry.sample.memlock_bytes.unwrap_or(0);
        mem.total += bytes;
        if entry.sample.used_by_programs > 1 {
            mem.shared += bytes;
        } else {
            mem.own += bytes;
        }
    }
    mem
}

#[derive(Debug)]
pub struct MapEntry {
    pub sample: Arc<MapSample>,
    /// Pass in which the map was last known to exist.
    pub seen_pass: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(id: u32, bytes: u64, users: u32) -> (u32, MapEntry) {
        let sample = MapSample {
            id,
            name: String::new(),
            map_type: "array",
            key_size: 4,
            value_size: 8,
            max_entries: 1,
            flags: 0,
            memlock_bytes: Some(bytes),
            used_by_programs: users,
            owners: Vec::new(),
            entries: Entries::NotCounted("test"),
            perf_buffer_bytes: None,
            type_id: 2,
        };
        (
            id,
            MapEntry {
                sample: Arc::new(sample),
                seen_pass: 0,
            },
        )
    }

    #[test]
    fn own_and_shared_split() {
        let maps: IdMap<_, _> = [entry(1, 100, 1), entry(2, 40, 3), entry(3, 7, 1)]
            .into_iter()
            .collect();
        let m = map_memory(&[1, 2, 99], &maps);
        assert_eq!(
            m,
            MapMemory {
                total: 140,
                own: 100,
                shared: 40
            }
        );
    }

    #[test]
    fn dynamic_maps() {
        assert!(!memlock_can_change(2, 0)); // array
        assert!(!memlock_can_change(1, 0)); // preallocated hash
        assert!(memlock_can_change(1, BPF_F_NO_PREALLOC));
        assert!(memlock_can_change(11, 0)); // lpm trie
        assert!(memlock_can_change(999, 0));
    }
}
