//! Roll-ups: programs summed by a group they belong to (a container, a unit, a holding
//! command). A program in several groups (held by processes of two containers) counts in
//! each, so groups can add up to more than the host; within a group each program counts
//! once, and each map once however many of the group's programs use it.

use std::collections::HashMap;

use crate::rank::{Ranked, SortKey, rank};

/// Which group a program is in, for a roll-up.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum GroupKey {
    /// Named by its holders (a container label, a unit, a command).
    Named(String),
    /// Loaded, but none of its holders has one (the host's, or held by no process).
    None,
    /// No longer loaded: who held it is not known any more.
    Unloaded,
}

/// One program's part in a roll-up: its values, where it belongs, and the maps it uses now
/// with their memory.
#[derive(Debug, Clone)]
pub struct Member {
    pub id: u32,
    pub ranked: Ranked,
    pub runs_per_sec: f64,
    /// Whether its values are extrapolated (stats on for part of the time).
    pub estimated: bool,
    /// Its groups, each once (empty: [`GroupKey::None`]).
    pub groups: Vec<GroupKey>,
    pub maps: Vec<(u32, u64)>,
}

/// A group's sums.
#[derive(Debug, Clone, PartialEq)]
pub struct Group {
    pub key: GroupKey,
    pub program_ids: Vec<u32>,
    pub ranked: Ranked,
    pub runs_per_sec: f64,
    pub estimated: bool,
}

#[derive(Default)]
struct Sums {
    ids: Vec<u32>,
    run_time_ns: f64,
    runs: f64,
    observed_runs: u64,
    cpu_pct: f64,
    runs_per_sec: f64,
    estimated: bool,
    maps: HashMap<u32, u64>,
    loaded: bool,
}

impl Sums {
    fn add(&mut self, m: &Member) {
        self.ids.push(m.id);
        self.run_time_ns += m.ranked.run_time_ns;
        self.runs += m.ranked.runs;
        self.observed_runs = self.observed_runs.saturating_add(m.ranked.observed_runs);
        self.cpu_pct += m.ranked.cpu_pct;
        self.runs_per_sec += m.runs_per_sec;
        self.estimated |= m.estimated;
        self.loaded |= m.ranked.map_memory.is_some();
        self.maps.extend(m.maps.iter().copied());
    }

    fn group(self, key: GroupKey) -> Group {
        let memory = self.maps.values().fold(0u64, |a, b| a.saturating_add(*b));
        Group {
            key,
            program_ids: self.ids,
            ranked: Ranked {
                run_time_ns: self.run_time_ns,
                runs: self.runs,
                observed_runs: self.observed_runs,
                avg_ns_per_run: (self.runs > 0.0).then(|| self.run_time_ns / self.runs),
                cpu_pct: self.cpu_pct,
                map_memory: self.loaded.then_some(memory),
            },
            runs_per_sec: self.runs_per_sec,
            estimated: self.estimated,
        }
    }
}

/// The groups of `members`, ranked by `key` as programs are (largest first; ties: the group
/// met first in `members`), the first `n`.
pub fn roll_up(members: &[Member], key: SortKey, n: usize) -> Vec<Group> {
    let mut at: HashMap<&GroupKey, usize> = HashMap::new();
    let mut sums: Vec<(GroupKey, Sums)> = Vec::new();
    let none = [GroupKey::None];
    for m in members {
        let groups = if m.groups.is_empty() {
            &none[..]
        } else {
            &m.groups[..]
        };
        for (i, g) in groups.iter().enumerate() {
            // A program once per group, however many of its holders are in it.
            if groups[..i].contains(g) {
                continue;
            }
            let slot = *at.entry(g).or_insert_with(|| {
                sums.push((g.clone(), Sums::default()));
                sums.len() - 1
            });
            if let Some((_, s)) = sums.get_mut(slot) {
                s.add(m);
            }
        }
    }
    drop(at);
    let mut groups: Vec<(usize, Group)> = sums
        .into_iter()
        .map(|(k, s)| s.group(k))
        .enumerate()
        .collect();
    let tie = |g: &(usize, Group)| i64::try_from(g.0).unwrap_or(i64::MAX);
    rank(&mut groups, key, n, |g| g.1.ranked, tie);
    groups.into_iter().map(|(_, g)| g).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(id: u32, runs: u64, cpu: f64, groups: &[&str], maps: &[(u32, u64)]) -> Member {
        Member {
            id,
            ranked: Ranked {
                run_time_ns: runs as f64 * 100.0,
                runs: runs as f64,
                observed_runs: runs,
                avg_ns_per_run: Some(100.0),
                cpu_pct: cpu,
                map_memory: Some(maps.iter().map(|m| m.1).sum()),
            },
            runs_per_sec: runs as f64 / 10.0,
            estimated: false,
            groups: groups
                .iter()
                .map(|g| GroupKey::Named((*g).into()))
                .collect(),
            maps: maps.to_vec(),
        }
    }

    #[test]
    fn each_program_once_per_group_and_each_map_once() {
        let shared = [(7, 4096), (8, 100)];
        let own = [(7, 4096), (9, 1)];
        let members = [
            member(1, 10, 1.0, &["docker:web"], &shared),
            member(2, 20, 2.0, &["docker:web", "docker:web"], &own),
            // Held by processes of both: in each.
            member(3, 5, 0.5, &["docker:web", "podman:db"], &[]),
            member(4, 1, 0.1, &[], &[]),
        ];
        let g = roll_up(&members, SortKey::Runs, 10);
        let keys: Vec<&GroupKey> = g.iter().map(|g| &g.key).collect();
        let named = |s: &str| GroupKey::Named(s.into());
        assert_eq!(
            keys,
            [&named("docker:web"), &named("podman:db"), &GroupKey::None]
        );
        let web = &g[0];
        assert_eq!(web.program_ids, [1, 2, 3]);
        assert_eq!((web.ranked.runs, web.ranked.observed_runs), (35.0, 35));
        assert!((web.ranked.cpu_pct - 3.5).abs() < 1e-9);
        assert!((web.runs_per_sec - 3.5).abs() < 1e-9);
        assert_eq!(web.ranked.map_memory, Some(4096 + 100 + 1));
        assert_eq!(web.ranked.avg_ns_per_run, Some(100.0));
        assert_eq!(g[2].program_ids, [4]);
    }

    #[test]
    fn unloaded_programs_hold_no_memory_and_ties_go_to_the_group_met_first() {
        let mut gone = member(5, 0, 0.0, &[], &[]);
        gone.groups = vec![GroupKey::Unloaded];
        gone.ranked.map_memory = None;
        gone.ranked.avg_ns_per_run = None;
        let members = [
            member(6, 0, 0.0, &["b"], &[]),
            member(7, 0, 0.0, &["a"], &[]),
            gone,
        ];
        let g = roll_up(&members, SortKey::Cpu, 2);
        let keys: Vec<&GroupKey> = g.iter().map(|g| &g.key).collect();
        assert_eq!(
            keys,
            [&GroupKey::Named("b".into()), &GroupKey::Named("a".into())]
        );
        let all = roll_up(&members, SortKey::MapMem, 10);
        let last = all.last().expect("three");
        assert_eq!(
            (
                &last.key,
                last.ranked.map_memory,
                last.ranked.avg_ns_per_run
            ),
            (&GroupKey::Unloaded, None, None)
        );
    }
}
