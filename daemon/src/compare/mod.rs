//! Version comparison: a program's identity across reloads is its full name and type; each tag
//! is a version. Two versions are compared from stored history: cost per run by a rank method
//! on per-step averages (`stats`), and runs/s, CPU %, map memory and code size beside it.

pub mod stats;

use std::collections::HashSet;
use std::time::{Duration, SystemTime};

use ebpfstat_numbers::Share;
use ebpfstat_numbers::rates::{change_pct, cpu_pct, per_sec};
use ebpfstat_numbers::time::duration_ns;
use ebpfstat_store::{
    Event, History, KIND_VERSION, ProgramRef, QueryError, SeriesRow, Store, StoreError,
};

#[derive(Debug, thiserror::Error)]
pub enum CompareError {
    #[error(transparent)]
    Query(#[from] QueryError),
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Fewer than two versions, or a pick that names none.
    #[error("{0}")]
    NoVersion(String),
}

/// One version as compared: its loads (series with one tag) and what they did in the stretch
/// compared.
#[derive(Debug, Clone, PartialEq)]
pub struct Version {
    pub tag: String,
    /// Its loads, oldest first.
    pub series: Vec<i64>,
    pub first_seen: Option<SystemTime>,
    pub last_seen: Option<SystemTime>,
    /// The time its samples cover, ns.
    pub observed_ns: u64,
    pub runs: u64,
    pub run_time_ns: u64,
    /// Steps in which it ran: the samples of the comparison.
    pub steps: u32,
    /// Median of the per-step averages; `None` with no step.
    pub median_ns_per_run: Option<f64>,
    pub runs_per_sec: f64,
    /// Of one core.
    pub cpu_pct: f64,
    /// Held by its newest load (now, or when it was unloaded).
    pub map_memory_bytes: u64,
    pub verified_insns: u32,
    pub jited_size: u32,
}

/// Two versions of a program compared.
#[derive(Debug, Clone, PartialEq)]
pub struct Comparison {
    pub full_name: String,
    pub prog_type: String,
    pub before: Version,
    pub after: Version,
    /// The step of the per-step averages, ns.
    pub step_ns: u64,
    /// The change in cost per run, when both ran enough to judge.
    pub shift: Option<stats::Shift>,
    /// In words: the change, or what is missing to judge it.
    pub verdict: String,
}

/// What a version needs to be judged: the daemon's `compare_min_runs` and
/// `compare_min_time`, which its own comparisons (the events) use and `Compare` does too
/// unless its caller asks otherwise ([`NeedsAsked`]). Besides, each side needs
/// [`stats::MIN_STEPS`] steps with runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Needs {
    pub min_runs: u64,
    pub min_observed: Duration,
}

/// What a caller of `Compare` asked a version to need; what it left out is the daemon's.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NeedsAsked {
    pub min_runs: Option<u64>,
    pub min_observed: Option<Duration>,
}

impl Needs {
    /// These needs, with what `asked` sets in their place.
    #[must_use]
    pub fn with(self, asked: NeedsAsked) -> Self {
        Self {
            min_runs: asked.min_runs.unwrap_or(self.min_runs),
            min_observed: asked.min_observed.unwrap_or(self.min_observed),
        }
    }
}

/// A version as a caller names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pick {
    /// The newest but `n` (0: the newest).
    Newest(usize),
    /// A tag, or a unique start of one.
    Tag(String),
    /// One load: `series:<id>`.
    Series(i64),
}

impl Pick {
    /// `""` (then `default`), `series:<id>`, or a tag in hex.
    pub fn parse(s: &str, default: Self) -> Result<Self, String> {
        if s.is_empty() {
            return Ok(default);
        }
        if let Some(id) = s.strip_prefix("series:") {
            return id
                .parse()
                .map(Self::Series)
                .map_err(|_| format!("{s:?}: series:<id> needs a number"));
        }
        if s.len() <= 16 && s.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Ok(Self::Tag(s.to_ascii_lowercase()));
        }
        Err(format!(
            "{s:?}: a version is a tag (hex, or a unique start of one) or series:<id>"
        ))
    }
}

/// The loads `pick` names among `versions` (oldest first).
fn choose(versions: &[Vec<SeriesRow>], pick: &Pick) -> Result<Vec<SeriesRow>, String> {
    let tags = || {
        versions
            .iter()
            .map(|v| v[0].tag.clone())
            .collect::<Vec<_>>()
            .join(", ")
    };
    match pick {
        Pick::Newest(n) => versions
            .iter()
            .rev()
            .nth(*n)
            .cloned()
            .ok_or_else(|| format!("only {} version(s) stored ({})", versions.len(), tags())),
        Pick::Tag(t) => {
            let found: Vec<&Vec<SeriesRow>> = versions
                .iter()
                .filter(|v| v[0].tag.starts_with(t.as_str()))
                .collect();
            match found.as_slice() {
                [one] => Ok((*one).clone()),
                [] => Err(format!("no version with tag {t} (stored: {})", tags())),
                _ => Err(format!(
                    "tag {t} starts several versions' tags ({})",
                    tags()
                )),
            }
        }
        Pick::Series(id) => versions
            .iter()
            .flatten()
            .find(|s| s.series_id == *id)
            .map(|s| vec![s.clone()])
            .ok_or_else(|| format!("series {id} is not a load of this program")),
    }
}

/// Where a version's loads start (its newest load's first sample) and end (its last sample).
fn life(loads: &[SeriesRow]) -> Option<(SystemTime, SystemTime)> {
    let newest = loads.iter().max_by_key(|s| (s.first_seen, s.series_id))?;
    let start = newest.first_seen?;
    let end = loads.iter().filter_map(|s| s.last_seen).max()?;
    Some((start, end.max(start)))
}

/// A stretch of time compared.
type Window = (SystemTime, SystemTime);

/// The windows compared: the last stretch of the version before and the first stretch of the
/// one after (its newest load), of one length (the shorter life), so both are read at one
/// step and their per-step averages are alike; and whether the one after is the younger (its
/// life set the length). `None` when either has no sample yet.
fn windows(before: &[SeriesRow], after: &[SeriesRow]) -> Option<(Window, Window, bool)> {
    let (b_start, b_end) = life(before)?;
    let (a_start, a_end) = life(after)?;
    let before_first = before.iter().filter_map(|s| s.first_seen).min()?;
    let b_len = b_end.duration_since(before_first).unwrap_or_default();
    let a_len = a_end.duration_since(a_start).unwrap_or_default();
    let len = b_len.min(a_len).max(Duration::from_millis(1));
    let from = b_end.checked_sub(len).unwrap_or(b_start).max(before_first);
    Some((
        (from, b_end + NS),
        (a_start, a_start + len + NS),
        a_len <= b_len,
    ))
}

const NS: Duration = Duration::from_nanos(1);

/// The stored steps of `loads` over `(from, to)` at `step`.
fn steps_of(
    store: &Store,
    loads: &[SeriesRow],
    (from, to): (SystemTime, SystemTime),
    step: Duration,
) -> Result<History, QueryError> {
    let target = match loads {
        [one] => ProgramRef::Series(one.series_id),
        _ => ProgramRef::Identity {
            name: loads[0].full_name.clone(),
            prog_type: loads[0].prog_type.clone(),
            tag: loads[0].tag.clone(),
        },
    };
    store.history(&target, from, to, step, None)
}

/// A version's facts and its per-step averages (the comparison's samples).
fn version(loads: &[SeriesRow], h: &History) -> (Version, Vec<f64>) {
    let averages: Vec<f64> = h
        .points
        .iter()
        .filter(|p| p.run_cnt > 0)
        .filter_map(|p| p.avg_ns_per_run)
        .collect();
    let runs: u64 = h.points.iter().map(|p| p.run_cnt).sum();
    let run_time_ns: u64 = h.points.iter().map(|p| p.run_time_ns).sum();
    // The time the samples cover, at most the wall time from the first step with samples to
    // the last: loads running side by side each add their spans to a step. (Capping each step
    // at its length instead would drop the stalls a late pass covers.)
    let sampled: Vec<&ebpfstat_store::HistoryPoint> =
        h.points.iter().filter(|p| p.samples > 0).collect();
    let covered_ns = match (sampled.first(), sampled.last()) {
        (Some(first), Some(last)) => last.end.duration_since(first.start).map_or(0, duration_ns),
        _ => 0,
    };
    let observed_ns = sampled
        .iter()
        .map(|p| p.span_ns)
        .sum::<u64>()
        .min(covered_ns);
    let mut sorted = averages.clone();
    ebpfstat_numbers::order::sort_by_key(&mut sorted, |x| {
        (ebpfstat_numbers::order::float_key(*x), 0)
    });
    let median = match sorted.len() {
        0 => None,
        n if n % 2 == 1 => Some(sorted[n / 2]),
        n => Some((sorted[n / 2 - 1] + sorted[n / 2]) / 2.0),
    };
    let newest = loads
        .iter()
        .max_by_key(|s| s.series_id)
        .unwrap_or(&loads[0]);
    let observed = observed_ns.max(1) as f64;
    let info = Version {
        tag: loads[0].tag.clone(),
        series: loads.iter().map(|s| s.series_id).collect(),
        first_seen: loads.iter().filter_map(|s| s.first_seen).min(),
        last_seen: loads.iter().filter_map(|s| s.last_seen).max(),
        observed_ns,
        runs,
        run_time_ns,
        steps: u32::try_from(averages.len()).unwrap_or(u32::MAX),
        median_ns_per_run: median,
        runs_per_sec: per_sec(runs as f64, observed),
        cpu_pct: cpu_pct(run_time_ns as f64, observed),
        map_memory_bytes: newest.map_memory.total,
        verified_insns: newest.verified_insns,
        jited_size: newest.jited_size,
    };
    (info, averages)
}

/// Which side of a comparison a version is, in words.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    Before,
    After,
}

/// Why a version cannot be judged yet, if it cannot.
fn short_of(v: &Version, side: Side, needs: &Needs) -> Option<String> {
    let observed = Duration::from_nanos(v.observed_ns);
    let enough = v.runs >= needs.min_runs
        && observed >= needs.min_observed
        && v.steps as usize >= stats::MIN_STEPS;
    (!enough).then(|| {
        format!(
            "{} {} ran {} times in {} over {} steps with runs (needs {} runs over {}, in {} \
             steps with runs)",
            match side {
                Side::Before => "the old version",
                Side::After => "the new version",
            },
            short_tag(&v.tag),
            v.runs,
            humantime::format_duration(Duration::from_secs(observed.as_secs())),
            v.steps,
            needs.min_runs,
            humantime::format_duration(needs.min_observed),
            stats::MIN_STEPS
        )
    })
}

/// Why two versions cannot be judged yet, naming the one short of what it needs; when both
/// are (each is read over the stretch of the younger's length), the younger.
fn short_of_both(b: &Version, a: &Version, after_younger: bool, needs: &Needs) -> Option<String> {
    match (
        short_of(b, Side::Before, needs),
        short_of(a, Side::After, needs),
    ) {
        (Some(b_why), Some(a_why)) => Some(if after_younger { a_why } else { b_why }),
        (b_why, a_why) => a_why.or(b_why),
    }
}

fn short_tag(tag: &str) -> &str {
    tag.get(..8).unwrap_or(tag)
}

/// The verdict in words; `effect` is the smallest change that counts (relative).
pub fn verdict(name: &str, after_tag: &str, s: &stats::Shift, effect: f64) -> String {
    let pct = change_pct;
    let tag = short_tag(after_tag);
    if !s.significant {
        return format!(
            "{name}: new version (tag {tag}…) no significant change per run ({:+.0} %, 95 % CI \
             {:+.0} to {:+.0} %; changes within ±{:.0} % are not called)",
            pct(s.ratio),
            pct(s.low),
            pct(s.high),
            Share(effect).percent()
        );
    }
    if s.ratio >= 1.0 {
        format!(
            "{name}: new version (tag {tag}…) {:.0} % slower per run (95 % CI {:.0}–{:.0} %)",
            pct(s.ratio),
            pct(s.low),
            pct(s.high)
        )
    } else {
        let less = |r: f64| -change_pct(r);
        format!(
            "{name}: new version (tag {tag}…) {:.0} % faster per run (95 % CI {:.0}–{:.0} %)",
            less(s.ratio),
            less(s.high),
            less(s.low)
        )
    }
}

/// Most comparisons concluded in one round (after one flush): a fleet reloaded at once is
/// worked through over several flushes, and signalled at a pace connections keep up with.
pub const MAX_PER_ROUND: usize = 64;

/// What one round concluded, and what failed (one line per program; the rest go on).
#[derive(Debug, Default)]
pub struct Round {
    pub concluded: Vec<Comparison>,
    pub failed: Vec<String>,
}

/// What to do with one version in a round.
enum Outcome {
    Conclude(Box<Comparison>),
    /// Nothing to conclude, ever: concluded already, alone, or older code.
    Settle,
    /// Not enough yet.
    Wait,
}

/// Whether the loads of a version have run enough, by their counters alone (cheap: no
/// history read). Runs before the daemon first saw a load count too, so this may say yes a
/// little early; the comparison itself then decides.
fn ran_enough(loads: &[&SeriesRow], needs: &Needs) -> bool {
    let runs: u64 = loads.iter().map(|s| s.total.run_cnt).sum();
    let seen = loads
        .iter()
        .filter_map(|s| s.last_seen?.duration_since(s.first_seen?).ok())
        .max()
        .unwrap_or_default();
    runs >= needs.min_runs && seen >= needs.min_observed
}

/// The comparisons to conclude now: each program loaded now whose newest version (the one with
/// the newest load) has not been concluded on (`store.is_concluded`) and has run enough,
/// against the version before it. When only the version before ran too little, that is the
/// conclusion (not judged). `settled` caches what needs no more look (concluded, or a
/// program's only version) for the programs loaded now; a version concluded is recorded by
/// the caller.
pub fn due(
    store: &Store,
    needs: &Needs,
    interval: Duration,
    settled: &mut HashSet<(String, String, String)>,
) -> Result<Round, CompareError> {
    let mut round = Round::default();
    let all = store.all_series()?;
    let alive: Vec<&SeriesRow> = all.iter().filter(|s| s.alive).collect();
    let keys: HashSet<(String, String, String)> = alive
        .iter()
        .map(|s| (s.full_name.clone(), s.prog_type.clone(), s.tag.clone()))
        .collect();
    // Only what is loaded now is worth remembering.
    settled.retain(|k| keys.contains(k));
    for key in keys {
        if round.concluded.len() >= MAX_PER_ROUND {
            break;
        }
        if settled.contains(&key) {
            continue;
        }
        let (name, prog_type, tag) = (&key.0, &key.1, &key.2);
        let loads: Vec<&SeriesRow> = alive
            .iter()
            .copied()
            .filter(|s| s.full_name == *name && s.prog_type == *prog_type && s.tag == *tag)
            .collect();
        if !ran_enough(&loads, needs) {
            continue;
        }
        let result = (|| -> Result<Outcome, CompareError> {
            if store.is_concluded(name, prog_type, tag)? {
                return Ok(Outcome::Settle);
            }
            let versions = store.versions(name, prog_type)?;
            if versions.len() < 2 || versions.last().map(|v| v[0].tag.as_str()) != Some(tag) {
                // Alone, or older code loaded beside newer: nothing to conclude.
                return Ok(Outcome::Settle);
            }
            let picks = (&Pick::Newest(1), &Pick::Newest(0));
            let c = compare(store, name, prog_type, picks, needs, interval)?;
            Ok(
                if c.shift.is_some() || short_of(&c.after, Side::After, needs).is_none() {
                    Outcome::Conclude(Box::new(c))
                } else {
                    Outcome::Wait
                },
            )
        })();
        match result {
            Ok(Outcome::Conclude(c)) => {
                settled.insert(key);
                round.concluded.push(*c);
            }
            Ok(Outcome::Settle) => {
                settled.insert(key);
            }
            Ok(Outcome::Wait) => {}
            Err(e) => {
                // Settled for this daemon's life: a program that cannot be compared is not
                // tried again every flush.
                round
                    .failed
                    .push(format!("{name} ({prog_type}, tag {tag}): {e}"));
                settled.insert(key);
            }
        }
    }
    Ok(round)
}

/// The event a comparison is kept as.
pub fn event_of(c: &Comparison, time: SystemTime) -> Event {
    let s = c.shift.unwrap_or_default();
    Event {
        time,
        kind: KIND_VERSION.into(),
        program: c.full_name.clone(),
        prog_type: c.prog_type.clone(),
        tag: c.after.tag.clone(),
        before_tag: c.before.tag.clone(),
        judged: c.shift.is_some(),
        significant: s.significant,
        ratio: s.ratio,
        ratio_low: s.low,
        ratio_high: s.high,
        text: c.verdict.clone(),
    }
}

/// `before` and `after` of the program `full_name` of type `prog_type`, compared.
pub fn compare(
    store: &Store,
    full_name: &str,
    prog_type: &str,
    (before, after): (&Pick, &Pick),
    needs: &Needs,
    interval: Duration,
) -> Result<Comparison, CompareError> {
    let versions = store.versions(full_name, prog_type)?;
    if versions.len() < 2 && matches!((before, after), (Pick::Newest(_), Pick::Newest(_))) {
        return Err(CompareError::NoVersion(format!(
            "{full_name} ({prog_type}) has {} version(s) stored{}: nothing to compare",
            versions.len(),
            versions
                .first()
                .map(|v| format!(" (tag {})", v[0].tag))
                .unwrap_or_default()
        )));
    }
    let a_loads = choose(&versions, after).map_err(CompareError::NoVersion)?;
    // By default, the version just before `after`.
    let before = match (before, after) {
        (Pick::Newest(1), after) if *after != Pick::Newest(0) => {
            let at = versions.iter().position(|v| v[0].tag == a_loads[0].tag);
            match at {
                Some(i) if i > 0 => Pick::Tag(versions[i - 1][0].tag.clone()),
                _ => {
                    return Err(CompareError::NoVersion(format!(
                        "no version before {} to compare it with",
                        a_loads[0].tag
                    )));
                }
            }
        }
        (b, _) => b.clone(),
    };
    let b_loads = choose(&versions, &before).map_err(CompareError::NoVersion)?;
    if let Some(shared) = b_loads
        .iter()
        .find(|b| a_loads.iter().any(|a| a.series_id == b.series_id))
    {
        return Err(CompareError::NoVersion(format!(
            "before and after both hold load series:{} (tag {}): a load is not a new version \
             of itself; pick two versions (tags), or two loads (series:<id>)",
            shared.series_id, shared.tag
        )));
    }
    let empty = || History {
        series: Vec::new(),
        tier: ebpfstat_store::Tier::Raw,
        step_ns: 0,
        points: Vec::new(),
    };
    let (b_history, a_history, after_younger) = match windows(&b_loads, &a_loads) {
        Some((b_window, a_window, after_younger)) => {
            let len = a_window.1.duration_since(a_window.0).unwrap_or_default();
            let steps = u32::try_from(stats::MAX_STEPS).unwrap_or(u32::MAX);
            let step = (len / steps).max(interval).max(Duration::from_millis(1));
            let b_history = steps_of(store, &b_loads, b_window, step)?;
            // One step for both: the before side's tier may have raised it.
            let step = step.max(Duration::from_nanos(b_history.step_ns));
            let a_history = steps_of(store, &a_loads, a_window, step)?;
            (b_history, a_history, after_younger)
        }
        None => (empty(), empty(), true),
    };
    let (b, b_avgs) = version(&b_loads, &b_history);
    let (a, a_avgs) = version(&a_loads, &a_history);
    let short = short_of_both(&b, &a, after_younger, needs);
    let effect = stats::min_effect(b.median_ns_per_run.unwrap_or(-1.0));
    let shift = short
        .is_none()
        .then(|| stats::shift(&b_avgs, &a_avgs, effect))
        .flatten();
    let verdict_text = match (&short, &shift) {
        (_, Some(s)) => verdict(full_name, &a.tag, s, effect),
        (Some(why), None) => format!("{full_name}: not enough to judge yet: {why}"),
        (None, None) => format!("{full_name}: too few steps with runs to judge"),
    };
    Ok(Comparison {
        full_name: full_name.to_owned(),
        prog_type: prog_type.to_owned(),
        before: b,
        after: a,
        step_ns: a_history.step_ns,
        shift,
        verdict: verdict_text,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The kind the store keeps a comparison as is the word clients read it by.
    #[test]
    fn a_version_event_is_one_word_in_the_store_and_on_the_wire() {
        assert_eq!(KIND_VERSION, ebpfstat_dbus::json::VERSION_EVENT);
    }

    #[test]
    fn picks_parse_and_say_what_is_wrong() {
        assert_eq!(Pick::parse("", Pick::Newest(1)), Ok(Pick::Newest(1)));
        assert_eq!(
            Pick::parse("series:12", Pick::Newest(0)),
            Ok(Pick::Series(12))
        );
        assert_eq!(
            Pick::parse("1A2b", Pick::Newest(0)),
            Ok(Pick::Tag("1a2b".into()))
        );
        assert!(Pick::parse("series:x", Pick::Newest(0)).is_err());
        assert!(Pick::parse("not-a-tag", Pick::Newest(0)).is_err());
    }

    #[test]
    fn verdicts_read_as_a_person_says_them() {
        let s = |ratio, low, high, significant| stats::Shift {
            ratio,
            low,
            high,
            significant,
        };
        assert_eq!(
            verdict("f", "1a2b3c4d5e6f7a8b", &s(1.35, 1.30, 1.40, true), 0.05),
            "f: new version (tag 1a2b3c4d…) 35 % slower per run (95 % CI 30–40 %)"
        );
        assert_eq!(
            verdict("f", "00", &s(0.8, 0.75, 0.85, true), 0.05),
            "f: new version (tag 00…) 20 % faster per run (95 % CI 15–25 %)"
        );
        assert_eq!(
            verdict("f", "00", &s(1.15, 1.10, 1.20, false), 0.25),
            "f: new version (tag 00…) no significant change per run (+15 %, 95 % CI +10 to +20 %; \
             changes within ±25 % are not called)"
        );
    }
}
