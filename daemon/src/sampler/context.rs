//! What the rare rescans feed: per-program contexts (map memory, holders, attach points,
//! notes), map sharing and per-owner totals.

use ebpfstat_dbus::NoteCode;
use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use ebpfstat_store::idmap::IdMap;

use super::links::AttachPoint;
use super::maps::{self, MapEntry, MapSample};
use super::model::{Note, OwnerSummary, ProgramContext};
use super::owners::FdScan;
use super::procfs;

/// The last rescan's view of who holds what. Contexts are only built after one: the first pass
/// always rescans.
#[derive(Debug, Default)]
pub struct Holders {
    pub fds: FdScan,
    pub pins: HashMap<u32, Vec<String>>,
    pub links: HashMap<u32, Vec<AttachPoint>>,
}

pub struct Built {
    pub contexts: Vec<(u32, Arc<ProgramContext>)>,
    pub maps: Arc<[Arc<MapSample>]>,
    pub owners: Arc<[OwnerSummary]>,
}

/// `programs` are (program id, map ids, current context) of every live program. A context that
/// comes out the same is the current one again: a rescan of a quiet host allocates no new
/// contexts and holds no second copy of them while the last pass is still published.
pub fn build(
    programs: &[(u32, &[u32], &Arc<ProgramContext>)],
    maps: &mut IdMap<u32, MapEntry>,
    holders: &Holders,
) -> Built {
    let mut users: IdMap<u32, u32> = IdMap::default();
    // Maps and the pids holding them: through their own fds, and through the programs using
    // them.
    let mut holding = holders.fds.maps.clone();
    for (prog, ids, _) in programs {
        for id in ids.iter() {
            *users.entry(*id).or_default() += 1;
            for pid in holders.fds.progs.of(*prog) {
                holding.push(*id, pid);
            }
        }
    }
    holding.settle();
    for (id, entry) in maps.iter_mut() {
        let n = users.get(id).copied().unwrap_or(0);
        let owners: Vec<Arc<_>> = holding
            .of(*id)
            .filter_map(|pid| holders.fds.processes.get(&pid).cloned())
            .collect();
        if entry.sample.used_by_programs != n || entry.sample.owners != owners {
            let sample = Arc::make_mut(&mut entry.sample);
            sample.used_by_programs = n;
            sample.owners = owners;
        }
    }
    perf_buffers(maps);

    let contexts = programs
        .iter()
        .map(|&(id, map_ids, current)| {
            let ctx = program_context(id, map_ids, maps, holders);
            let ctx = if **current == ctx {
                Arc::clone(current)
            } else {
                Arc::new(ctx)
            };
            (id, ctx)
        })
        .collect();

    let mut map_list: Vec<Arc<MapSample>> = maps.values().map(|e| Arc::clone(&e.sample)).collect();
    ebpfstat_numbers::order::sort_by_key(&mut map_list, |m| (i64::from(m.id), 0));

    Built {
        contexts,
        maps: map_list.into(),
        owners: owner_summaries(programs, maps, &holders.fds).into(),
    }
}

/// The perf ring buffers behind `perf_event_array` maps: what their holders have mapped
/// (`anon_inode:[perf_event]`). The kernel does not say which event feeds which map, so a
/// process's buffers are counted once, on the lowest-id such map it holds.
fn perf_buffers(maps: &mut IdMap<u32, MapEntry>) {
    let mut arrays: Vec<u32> = maps
        .iter()
        .filter(|(_, m)| m.sample.map_type == "perf_event_array")
        .map(|(&id, _)| id)
        .collect();
    arrays.sort_unstable();
    let mut counted: Vec<u32> = Vec::new();
    for id in arrays {
        let Some(entry) = maps.get_mut(&id) else {
            continue;
        };
        let mut bytes = Some(0u64);
        for o in &entry.sample.owners {
            if counted.contains(&o.pid) {
                continue;
            }
            counted.push(o.pid);
            bytes = match procfs::perf_mapped_bytes(o.pid) {
                Ok(b) => bytes.map(|sum| sum + b),
                // Unreadable: the sum is not known, and says so (`null`), rather than short.
                Err(_) => None,
            };
        }
        if entry.sample.perf_buffer_bytes != bytes {
            Arc::make_mut(&mut entry.sample).perf_buffer_bytes = bytes;
        }
    }
}

fn program_context(
    id: u32,
    map_ids: &[u32],
    maps: &IdMap<u32, MapEntry>,
    holders: &Holders,
) -> ProgramContext {
    let owners = holders
        .fds
        .progs
        .of(id)
        .filter_map(|pid| holders.fds.processes.get(&pid).cloned())
        .collect();
    let pins = holders.pins.get(&id).cloned().unwrap_or_default();
    let mut ctx = ProgramContext {
        map_ids: map_ids.to_vec(),
        map_memory: maps::map_memory(map_ids, maps),
        owners,
        pins,
        attach: attach_points(
            holders.links.get(&id).map_or(&[], Vec::as_slice),
            holders.fds.perf.get(&id).map_or(&[], Vec::as_slice),
        ),
        notes: Vec::new(),
    };
    ctx.notes = notes(&ctx, maps);
    ctx
}

/// A program's attach points: its links, then what its holders' perf-event fds attach that is
/// not one of those links seen a second way.
///
/// A perf-event link (5.15+; libbpf ≥ 0.7 attaches tracepoints and k/uprobes so) is made from a
/// perf fd, which its holder may keep open: `BPF_TASK_FD_QUERY` answers for that fd too, and one
/// attachment would show twice. It shows once, as the link (it has an id). Matched within the
/// program:
/// - a link the kernel described (6.6+) drops every fd entry that reads the same (attach type
///   and target: both worded by `links::perf_point`);
/// - a link it did not describe (before 6.6) takes the description of one fd entry left, of its
///   kind when the program's type tells it, and that entry is dropped. Nothing tells such a link
///   from a plain perf fd attachment (ioctl) of the same program: if the program has both and
///   the link's fd was closed, the link takes the other's target and the other does not show.
///   The fd entries of a program are one per distinct target (`owners`), so of two such links
///   to one tracepoint, the second stays unnamed.
fn attach_points(links: &[AttachPoint], perf: &[AttachPoint]) -> Vec<AttachPoint> {
    let same = |a: &AttachPoint, b: &AttachPoint| {
        a.link_type == b.link_type && a.attach_type == b.attach_type && a.target == b.target
    };
    let mut left: Vec<&AttachPoint> = perf
        .iter()
        .filter(|p| !links.iter().any(|l| same(l, p)))
        .collect();
    let mut out = links.to_vec();
    for link in out.iter_mut().filter(|l| l.is_unnamed_perf_link()) {
        let kind = link.attach_type;
        let Some(i) = left.iter().position(|p| {
            p.link_type == link.link_type && kind.is_none_or(|k| p.attach_type == Some(k))
        }) else {
            continue;
        };
        let taken = left.remove(i);
        link.attach_type = taken.attach_type;
        link.target.clone_from(&taken.target);
    }
    out.extend(left.into_iter().cloned());
    out
}

/// The remarks a reader needs for this program's numbers; only those that apply.
pub fn notes(ctx: &ProgramContext, maps: &IdMap<u32, MapEntry>) -> Vec<Note> {
    let mut notes = Vec::new();
    let of = |keep: &dyn Fn(&MapSample) -> bool| -> Box<[u32]> {
        ctx.map_ids
            .iter()
            .filter(|id| maps.get(id).is_some_and(|m| keep(&m.sample)))
            .copied()
            .collect()
    };
    let of_type = |t: &'static str| of(&|m: &MapSample| m.map_type == t);
    for (code, ids) in [
        (NoteCode::PerfEventArray, of_type("perf_event_array")),
        (
            NoteCode::MapOfMaps,
            of(&|m: &MapSample| matches!(m.map_type, "array_of_maps" | "hash_of_maps")),
        ),
        (NoteCode::TailCalls, of_type("prog_array")),
        (
            NoteCode::SharedMaps,
            of(&|m: &MapSample| m.used_by_programs > 1),
        ),
    ] {
        if !ids.is_empty() {
            notes.push(Note { code, maps: ids });
        }
    }
    if ctx.owners.is_empty() {
        notes.push(Note {
            code: if ctx.pins.is_empty() {
                NoteCode::NoHolder
            } else {
                NoteCode::PinnedOnly
            },
            maps: Box::new([]),
        });
    }
    notes
}

fn owner_summaries(
    programs: &[(u32, &[u32], &Arc<ProgramContext>)],
    maps: &IdMap<u32, MapEntry>,
    fds: &FdScan,
) -> Vec<OwnerSummary> {
    let prog_maps: HashMap<u32, &[u32]> = programs.iter().map(|&(id, m, _)| (id, m)).collect();
    let mut held: HashMap<u32, (BTreeSet<u32>, BTreeSet<u32>)> = HashMap::new();
    for &(prog, pid) in fds.progs.pairs() {
        let Some(map_ids) = prog_maps.get(&prog) else {
            continue;
        };
        let (progs, maps_held) = held.entry(pid).or_default();
        progs.insert(prog);
        maps_held.extend(map_ids.iter().copied());
    }
    for &(map, pid) in fds.maps.pairs() {
        held.entry(pid).or_default().1.insert(map);
    }
    let mut out: Vec<OwnerSummary> = held
        .into_iter()
        .filter_map(|(pid, (progs, map_ids))| {
            let owner = fds.processes.get(&pid)?;
            let map_memory_bytes = map_ids
                .iter()
                .filter_map(|id| maps.get(id)?.sample.memlock_bytes)
                .sum();
            Some(OwnerSummary {
                owner: Arc::clone(owner),
                program_ids: progs.into_iter().collect(),
                map_ids: map_ids.into_iter().collect(),
                map_memory_bytes,
            })
        })
        .collect();
    ebpfstat_numbers::order::sort_by_key(&mut out, |o| (i64::from(o.owner.pid), 0));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sampler::links::PERF_LINK_UNNAMED;

    fn point(link_id: u32, kind: Option<&'static str>, target: &str) -> AttachPoint {
        AttachPoint {
            link_id,
            link_type: "perf_event",
            attach_type: kind,
            target: target.to_owned(),
            missed: None,
        }
    }

    fn join(links: Vec<AttachPoint>, perf: Vec<AttachPoint>) -> Vec<AttachPoint> {
        attach_points(&links, &perf)
    }

    #[test]
    fn a_perf_event_link_and_its_kept_perf_fd_show_once_as_the_link() {
        let fd = || point(0, Some("tracepoint"), "sys_enter_getppid");
        let named = || point(7, Some("tracepoint"), "sys_enter_getppid");
        let unnamed = || point(7, Some("tracepoint"), PERF_LINK_UNNAMED);
        // Described by the kernel (6.6+): the fd entry reading the same goes.
        assert_eq!(join(vec![named()], vec![fd()]), [named()]);
        // Not described (before 6.6): the link takes the fd entry's description.
        assert_eq!(join(vec![unnamed()], vec![fd()]), [named()]);
        let unknown_kind = point(7, None, PERF_LINK_UNNAMED);
        assert_eq!(join(vec![unknown_kind], vec![fd()]), [named()]);
        // Nothing to take: it stays unnamed.
        assert_eq!(join(vec![unnamed()], vec![]), [unnamed()]);
    }

    #[test]
    fn fd_entries_a_link_does_not_account_for_stay() {
        let tp = || point(0, Some("tracepoint"), "sys_enter_getppid");
        let kp = || point(0, Some("kprobe"), "do_sys_openat2");
        let named = || point(7, Some("tracepoint"), "sys_enter_getppid");
        assert_eq!(join(vec![named()], vec![tp(), kp()]), [named(), kp()]);
        // An unnamed tracepoint link takes no kprobe's description; one of unknown kind takes
        // one entry only, the first left.
        let unnamed = || point(7, Some("tracepoint"), PERF_LINK_UNNAMED);
        assert_eq!(join(vec![unnamed()], vec![kp()]), [unnamed(), kp()]);
        let unknown = point(8, None, PERF_LINK_UNNAMED);
        assert_eq!(
            join(vec![unknown], vec![kp(), tp()]),
            [point(8, Some("kprobe"), "do_sys_openat2"), tp()]
        );
        // Links of other types are left alone.
        let xdp = || AttachPoint {
            link_id: 3,
            link_type: "xdp",
            attach_type: None,
            target: "lo (ifindex 1)".to_owned(),
            missed: None,
        };
        assert_eq!(join(vec![xdp()], vec![kp()]), [xdp(), kp()]);
    }
}
