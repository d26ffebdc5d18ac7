//! `Groups`: programs summed by the container, unit or command of the processes holding them,
//! over a window (the store's rows, as `Top` ranks them) or since load (the newest pass). The
//! sums are `ebpfstat_numbers::rollup`'s; here is only where each program belongs.

use std::collections::HashMap;
use std::sync::Arc;

use ebpfstat_dbus::{self as wire, Error};
use ebpfstat_numbers::SortKey;
use ebpfstat_numbers::rollup::{self, GroupKey, Member};
use ebpfstat_store::TopRow;

use super::filter::HeldNow;
use crate::sampler::owners::Owner;
use crate::sampler::{Pass, ProgramSample};

pub use wire::GroupBy;

/// `Groups`' `group_by` argument.
pub fn group_by(s: &str) -> Result<GroupBy, Error> {
    s.parse()
        .map_err(|e: wire::UnknownWord| Error::InvalidArgument(e.to_string()))
}

/// The groups a program's holders put it in (a group once per holder in it).
fn keys(by: GroupBy, owners: &[Arc<Owner>]) -> Vec<GroupKey> {
    owners
        .iter()
        .filter_map(|o| match by {
            GroupBy::Container => o.container.as_deref().and_then(wire::Container::label),
            GroupBy::Unit => o.unit.clone(),
            GroupBy::Owner => Some(o.comm.clone()),
        })
        .map(GroupKey::Named)
        .collect()
}

/// Each map's memory now, by id.
fn map_memory(pass: &Pass) -> HashMap<u32, u64> {
    pass.maps
        .iter()
        .map(|m| (m.id, m.memlock_bytes.unwrap_or(0)))
        .collect()
}

/// The maps a program uses, with their memory.
fn maps_of(p: &crate::sampler::ProgramContext, memory: &HashMap<u32, u64>) -> Vec<(u32, u64)> {
    p.map_ids
        .iter()
        .map(|id| (*id, memory.get(id).copied().unwrap_or(0)))
        .collect()
}

/// A window's rows grouped; `held` is what the programs loaded now have (`pass` its maps).
pub fn of_window(
    rows: &[TopRow],
    held: &HeldNow,
    pass: Option<&Pass>,
    by: GroupBy,
    rank: (SortKey, usize),
) -> Vec<wire::Group> {
    let memory = pass.map(map_memory).unwrap_or_default();
    let now = |r: &TopRow| {
        r.series
            .alive
            .then(|| held.get(&r.series.prog_id))
            .flatten()
    };
    let members: Vec<Member> = rows
        .iter()
        .map(|r| Member {
            id: r.series.prog_id,
            ranked: r.ranked(),
            runs_per_sec: r.rates.est_runs_per_sec,
            estimated: r.rates.estimated,
            // Loaded but not in the newest pass (it came after): its holders are not known yet.
            groups: match now(r) {
                Some(c) => keys(by, &c.owners),
                None if r.series.alive => Vec::new(),
                None => vec![GroupKey::Unloaded],
            },
            maps: now(r).map(|c| maps_of(c, &memory)).unwrap_or_default(),
        })
        .collect();
    summed(&members, rank)
}

/// The groups of `members`, the first `n` by the key, as the wire carries them.
fn summed(members: &[Member], (key, n): (SortKey, usize)) -> Vec<wire::Group> {
    rollup::roll_up(members, key, n)
        .into_iter()
        .map(group)
        .collect()
}

/// The programs of the newest pass grouped, on their values since load.
pub fn since_load(
    programs: &[&ProgramSample],
    pass: &Pass,
    by: GroupBy,
    rank: (SortKey, usize),
) -> Vec<wire::Group> {
    let memory = map_memory(pass);
    let members: Vec<Member> = programs
        .iter()
        .map(|p| Member {
            id: p.meta.id,
            ranked: p.ranked_since_load(),
            runs_per_sec: p.since_load.runs_per_sec.unwrap_or(0.0),
            estimated: false,
            groups: keys(by, &p.context.owners),
            maps: maps_of(&p.context, &memory),
        })
        .collect();
    summed(&members, rank)
}

#[expect(
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss,
    reason = "sums of counters, below 2^53 as the rows' own; `as` saturates"
)]
fn group(g: rollup::Group) -> wire::Group {
    let (key, kind) = match g.key {
        GroupKey::Named(k) => (k, "named"),
        GroupKey::None => (String::new(), "none"),
        GroupKey::Unloaded => (String::new(), "unloaded"),
    };
    wire::Group {
        key,
        kind: kind.to_owned(),
        programs: u32::try_from(g.program_ids.len()).unwrap_or(u32::MAX),
        program_ids: g.program_ids,
        run_cnt: g.ranked.runs as u64,
        run_time_ns: g.ranked.run_time_ns as u64,
        avg_ns_per_run: g.ranked.avg_ns_per_run.unwrap_or(-1.0),
        runs_per_sec: g.runs_per_sec,
        cpu_pct: g.ranked.cpu_pct,
        estimated: g.estimated,
        map_memory_bytes: g.ranked.map_memory.unwrap_or(0),
    }
}
