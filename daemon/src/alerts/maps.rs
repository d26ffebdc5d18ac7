//! Alerts on maps (`map_fill_pct`): one state machine per (rule, map), beside the programs'.
//! A map is judged when a rescan read it again (its entries are counted then, and hold till
//! the next); a map gone clears its alerts. A map alert names the map where a program alert
//! names its program: its id, name and type.

use std::collections::HashMap;
use std::sync::Arc;

use ebpfstat_store::AlertRecord;

use super::change::{About, Judged, Why, change, gone};
use super::key::{Key, Moment, State, put_key, step_keys};
use super::rules::Rule;
use crate::sampler::owners::Owner;

/// One map as a rescan saw it.
#[derive(Debug, Clone)]
pub struct MapSubject<'a> {
    pub id: u32,
    pub name: &'a str,
    pub map_type: &'static str,
    /// Entries of max entries, percent; `None` when not counted (a rule keeps its state).
    pub fill_pct: Option<f64>,
    pub owners: &'a [Arc<Owner>],
    /// Full and kernel names of the live programs using it.
    pub programs: Vec<&'a str>,
}

/// A map with alerts that are not quiet.
#[derive(Debug)]
struct Watched {
    name: Box<str>,
    map_type: &'static str,
    keys: Vec<(u16, Key)>,
}

impl Watched {
    fn about(&self, id: u32) -> About<'_> {
        About {
            prog_id: id,
            program: &self.name,
            prog_type: self.map_type,
        }
    }
}

/// The per-map side of an [`Evaluator`].
#[derive(Debug, Default)]
pub struct MapAlerts {
    maps: HashMap<u32, Watched>,
    /// Raised before a restart, by (rule, map id): carried on if the same map is there.
    restored: HashMap<(u16, u32), AlertRecord>,
}

impl MapAlerts {
    pub(super) fn is_empty(&self) -> bool {
        self.maps.values().all(|m| m.keys.is_empty()) && self.restored.is_empty()
    }

    pub(super) fn restore_later(&mut self, rule: u16, r: AlertRecord) {
        self.restored.insert((rule, r.prog_id), r);
    }

    /// Each map's keys, with what its alerts are about.
    pub(super) fn each_keys(&mut self, mut f: impl FnMut(&mut Vec<(u16, Key)>, &About<'_>)) {
        for (&id, m) in &mut self.maps {
            let mut keys = std::mem::take(&mut m.keys);
            f(&mut keys, &m.about(id));
            m.keys = keys;
        }
    }

    /// The keys raised now.
    pub(super) fn raised<'a>(&'a self, mut f: impl FnMut(u16, About<'a>, &'a Key)) {
        for (&id, m) in &self.maps {
            for (i, key) in &m.keys {
                if key.raised_since().is_some() {
                    f(*i, m.about(id), key);
                }
            }
        }
    }

    pub(super) fn raised_count(&self) -> usize {
        let mut n = 0;
        self.raised(|_, _, _| n += 1);
        n
    }
}

/// Whether `rule` covers map `m`: its map, program, unit and container globs.
fn covers(rule: &Rule, m: &MapSubject<'_>) -> bool {
    rule.metric.per_map()
        && rule.map.as_ref().is_none_or(|g| g.matches(m.name))
        && rule
            .program
            .as_ref()
            .is_none_or(|g| m.programs.iter().any(|p| g.matches(p)))
        && rule.holders_fit(m.owners)
}

impl MapAlerts {
    /// Judges the pass's maps (all of them: a map not among them is gone) under `rules`; what
    /// changed goes to `out`.
    pub(super) fn evaluate(
        &mut self,
        (rules, limit): (&[Rule], usize),
        maps: &[MapSubject<'_>],
        now: &Moment,
        out: &mut Judged,
    ) {
        let map_rules: Vec<u16> = (0..rules.len())
            .filter(|&i| rules[i].metric.per_map())
            .filter_map(|i| u16::try_from(i).ok())
            .collect();
        let alerts = self;
        let mut seen = HashMap::with_capacity(maps.len());
        for m in maps {
            let mut w = alerts.maps.remove(&m.id).unwrap_or_else(|| Watched {
                name: m.name.into(),
                map_type: m.map_type,
                keys: Vec::new(),
            });
            let covered: Vec<u16> = map_rules
                .iter()
                .copied()
                .filter(|&i| covers(&rules[usize::from(i)], m))
                .collect();
            restore(&mut alerts.restored, &covered, m, &mut w.keys, now);
            let about = About {
                prog_id: m.id,
                program: m.name,
                prog_type: m.map_type,
            };
            step_keys(
                rules,
                &covered,
                &mut w.keys,
                |_, _| m.fill_pct,
                now,
                |rule, v, state, since| {
                    out.push(limit, || {
                        change(rule, &about, v, state, Why::Crossed, since, now.wall)
                    });
                },
            );
            clear_uncovered(&mut w, m.id, (rules, &covered), now, (limit, out));
            seen.insert(m.id, w);
        }
        for (id, w) in alerts.maps.drain() {
            for (i, key) in &w.keys {
                let why = (&w.about(id), Why::Unloaded);
                cleared(rules, (*i, key), why, now, (limit, out));
            }
        }
        seen.retain(|_, w| !w.keys.is_empty());
        alerts.maps = seen;
        for ((i, _), r) in alerts.restored.drain() {
            if let Some(rule) = rules.get(usize::from(i)) {
                out.push(limit, || gone(rule, &r, now));
            }
        }
    }
}

/// Alerts raised on map `m` before a restart carry on under a rule still covering it.
fn restore(
    restored: &mut HashMap<(u16, u32), AlertRecord>,
    covered: &[u16],
    m: &MapSubject<'_>,
    keys: &mut Vec<(u16, Key)>,
    now: &Moment,
) {
    for &i in covered {
        if let Some(r) = restored.remove(&(i, m.id)) {
            if r.program == m.name {
                put_key(keys, i, Key::restored(r.value, r.since, now));
            } else {
                restored.insert((i, m.id), r);
            }
        }
    }
}

/// Rules that no longer cover a map (its holders changed) clear its alerts.
fn clear_uncovered(
    w: &mut Watched,
    id: u32,
    (rules, covered): (&[Rule], &[u16]),
    now: &Moment,
    (limit, out): (usize, &mut Judged),
) {
    let mut keys = std::mem::take(&mut w.keys);
    keys.retain(|(i, key)| {
        let kept = covered.binary_search(i).is_ok();
        if !kept {
            cleared(
                rules,
                (*i, key),
                (&w.about(id), Why::Unmatched),
                now,
                (limit, out),
            );
        }
        kept
    });
    w.keys = keys;
}

/// Says the alert of rule `i` cleared for `why`, if `key` has it raised.
fn cleared(
    rules: &[Rule],
    (i, key): (u16, &Key),
    (about, why): (&About<'_>, Why),
    now: &Moment,
    (limit, out): (usize, &mut Judged),
) {
    if let (Some(since), Some(rule)) = (key.raised_since(), rules.get(usize::from(i))) {
        out.push(limit, || {
            change(rule, about, key.value, State::Cleared, why, since, now.wall)
        });
    }
}
