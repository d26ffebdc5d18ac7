//! How many entries a map holds: counted the cheapest exact way the kernel offers for its type,
//! or not at all (with the reason) — never an estimate.
//!
//! Hash maps are counted by the kernel itself where it keeps element counters (Linux 6.6, read
//! for every map at once by the daemon's map iterator: [`super::map_iter`]), else read in
//! batches (`BPF_MAP_LOOKUP_BATCH`, one call per few hundred elements); other listable maps key
//! by key (`BPF_MAP_GET_NEXT_KEY`, one call per element). Neither moves
//! an LRU map's recency. Counting costs CPU in proportion to the entries, so each rescan counts
//! maps in id order from where the last one stopped, until [`BUDGET_CPU_NS`] is spent.

use std::os::fd::{AsFd, BorrowedFd};
use std::sync::Arc;
use std::time::SystemTime;

use ebpfstat_dbus::CountedBy;
use ebpfstat_numbers::WallNs;
use ebpfstat_store::idmap::IdMap;

pub use super::entry_kinds::Entries;
use super::entry_kinds::{Method, method};
use super::errors::ErrorLog;
use super::host;
use super::map_iter::MapCounter;
use super::maps::{MapEntry, MapSample};
use crate::bpf::sys::{self, BatchBufs, ObjKind, SysError};

/// CPU one rescan may spend counting entries (thread time). A map begun is counted to its end,
/// so one larger than the budget is still counted, alone in its rescan.
pub const BUDGET_CPU_NS: u64 = 20_000_000;

/// Bytes of keys and values one batch read may take: its element count follows from the map's
/// sizes (at least one bucket's worth; the kernel says when a bucket needs more).
const BATCH_BYTES: usize = 64 * 1024;

/// Counts maps' entries, in id order from after `cursor` (wrapping), until the budget is spent;
/// `cursor` is left at the last map counted. Maps not reached keep their last count.
pub fn count_some(
    maps: &mut IdMap<u32, MapEntry>,
    (cursor, counter): (&mut u32, Option<&MapCounter>),
    possible_cpus: Option<u32>,
    errors: &mut ErrorLog,
) {
    let by_kernel = counter.is_some_and(|c| from_counters(maps, c, errors));
    let mut ids: Vec<u32> = maps
        .iter()
        .filter(|(_, m)| match method(m.sample.type_id) {
            Method::Batch { .. } => !by_kernel,
            Method::Keys => true,
            Method::Array | Method::Never(_) => false,
        })
        .map(|(&id, _)| id)
        .collect();
    ids.sort_unstable();
    let split = ids.partition_point(|&id| id <= *cursor);
    ids.rotate_left(split);
    let start = host::thread_cpu_ns();
    for id in ids {
        if host::thread_cpu_ns().saturating_sub(start) >= BUDGET_CPU_NS {
            break;
        }
        let Some(m) = maps.get_mut(&id) else { continue };
        *cursor = id;
        match count(&m.sample, possible_cpus) {
            Ok(Some((n, by))) => {
                let at = WallNs::of(SystemTime::now());
                Arc::make_mut(&mut m.sample).entries = Entries::Counted { n, by, at };
            }
            Ok(None) => {}
            Err(e) => errors.per_map(id, &e),
        }
    }
}

/// Every hash map's entries from the kernel's own counters (one read for all); false when the
/// read failed (said), and they are counted by batches this time.
fn from_counters(maps: &mut IdMap<u32, MapEntry>, c: &MapCounter, errors: &mut ErrorLog) -> bool {
    let counts = match c.counts() {
        Ok(counts) => counts,
        Err(e) => {
            errors.fatal("the map iterator", &e);
            return false;
        }
    };
    let at = WallNs::of(SystemTime::now());
    for (id, n) in counts {
        let Some(m) = maps.get_mut(&id) else { continue };
        // Summed per CPU while others update it, a count can dip below zero for an instant:
        // not a count, and the last one stays.
        if let (Method::Batch { .. }, Ok(n)) = (method(m.sample.type_id), u64::try_from(n)) {
            let by = CountedBy::Kernel;
            Arc::make_mut(&mut m.sample).entries = Entries::Counted { n, by, at };
        }
    }
    true
}

/// Counts the entries of one map; `Ok(None)` if it is gone, or of a type not read to be counted
/// (arrays are known from their shape: [`super::entry_kinds::initial`]).
pub fn count(
    m: &MapSample,
    possible_cpus: Option<u32>,
) -> Result<Option<(u64, CountedBy)>, SysError> {
    let how = method(m.type_id);
    if matches!(how, Method::Array | Method::Never(_)) {
        return Ok(None);
    }
    let fd = match sys::fd_by_id(ObjKind::Map, m.id) {
        Ok(fd) => fd,
        Err(e) if e.is_gone() => return Ok(None),
        Err(e) => return Err(e),
    };
    let key_size = usize::try_from(m.key_size).unwrap_or(usize::MAX);
    let keys = |fd| by_keys(fd, key_size, m.max_entries).map(|n| Some((n, CountedBy::Keys)));
    let Method::Batch { per_cpu } = how else {
        return keys(fd.as_fd());
    };
    let value_size = usize::try_from(m.value_size).unwrap_or(usize::MAX);
    let value_size = match (per_cpu, possible_cpus) {
        (false, _) => value_size,
        // The kernel lays out one 8-byte-aligned value per possible CPU.
        (true, Some(cpus)) => match usize::try_from(cpus) {
            Ok(c) => value_size.next_multiple_of(8).saturating_mul(c),
            Err(_) => return keys(fd.as_fd()),
        },
        (true, None) => return keys(fd.as_fd()),
    };
    match by_batches(fd.as_fd(), key_size, value_size) {
        Ok(n) => Ok(Some((n, CountedBy::Batch))),
        // Before 5.6, or a hash type without batches: key by key.
        Err(e) if no_batches(&e) => keys(fd.as_fd()),
        Err(e) => Err(e),
    }
}

/// The kernel has no batch reads for this map (or at all).
fn no_batches(e: &SysError) -> bool {
    const ENOTSUPP: i32 = 524;
    matches!(
        e.errno(),
        Some(libc::EINVAL | libc::EOPNOTSUPP | ENOTSUPP | libc::ENOSYS)
    )
}

fn by_batches(fd: BorrowedFd<'_>, key_size: usize, value_size: usize) -> Result<u64, SysError> {
    let per_element = key_size.saturating_add(value_size).max(1);
    let mut count = u32::try_from((BATCH_BYTES / per_element).max(1)).unwrap_or(u32::MAX);
    let mut token = vec![0u8; key_size.max(8)];
    let mut keys = Vec::new();
    let mut values = Vec::new();
    let mut total = 0u64;
    let mut first = true;
    loop {
        let n = usize::try_from(count).unwrap_or(usize::MAX);
        keys.resize(n.saturating_mul(key_size), 0);
        values.resize(n.saturating_mul(value_size), 0);
        let mut bufs = BatchBufs {
            key_size,
            value_size,
            count,
            keys: &mut keys,
            values: &mut values,
            token: &mut token,
        };
        match sys::map_lookup_batch(fd, &mut bufs, first) {
            Ok(read) => {
                total += u64::from(read.count);
                if read.last {
                    return Ok(total);
                }
                first = false;
            }
            // One bucket holds more elements than `count`: read it with room for them.
            Err(e) if e.errno() == Some(libc::ENOSPC) => count = count.saturating_mul(2),
            Err(e) => return Err(e),
        }
    }
}

/// Key by key. A key deleted under the walk sends the kernel back to the first key, so a walk
/// longer than the map can be is a map changing too fast to count: that is an error, not a
/// number.
fn by_keys(fd: BorrowedFd<'_>, key_size: usize, max_entries: u32) -> Result<u64, SysError> {
    let mut key = vec![0u8; key_size];
    let mut next = vec![0u8; key_size];
    let mut total = 0u64;
    let mut have = false;
    while sys::map_next_key(fd, key_size, have.then_some(key.as_slice()), &mut next)? {
        total += 1;
        if total > u64::from(max_entries) {
            return Err(SysError {
                call: "BPF_MAP_GET_NEXT_KEY",
                source: std::io::Error::other(
                    "the map changed under the walk more than once per entry",
                ),
            });
        }
        std::mem::swap(&mut key, &mut next);
        have = true;
    }
    Ok(total)
}
