//! Version comparison: a program's identity across reloads is its full name and type; each tag
//! is a version. Two versions are compared from stored history: cost per run by a rank method
//! on per-step averages (`stats`), and runs/s, CPU %, map memory and code size beside it.

pub mod stats;

use std::collections::HashSet;
use std::time::{Duration, SystemTime};

use ebpfstat_dbus::{self as wire, time};
use ebpfstat_store::{Event, History, ProgramRef, QueryError, SeriesRow, Store, StoreError};

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

/// What a version needs to be judged.
#[derive(Debug, Clone, Copy)]
pub struct Needs {
    pub min_runs: u64,
    pub min_observed: Duration,
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

/// One version's stored steps over its whole life, at a step giving at most
/// [`stats::MAX_STEPS`] of them (never finer than `interval`).
fn steps_of(store: &Store, loads: &[SeriesRow], interval: Duration) -> Result<History, QueryError> {
    let first = loads.iter().filter_map(|s| s.first_seen).min();
    let last = loads.iter().filter_map(|s| s.last_seen).max();
    let (Some(from), Some(last)) = (first, last) else {
        return Ok(History {
            series: loads.to_vec(),
            tier: ebpfstat_store::Tier::Raw,
            step_ns: 0,
            points: Vec::new(),
        });
    };
    let to = last + Duration::from_nanos(1);
    let span = to.duration_since(from).unwrap_or_default();
    let steps = u32::try_from(stats::MAX_STEPS).unwrap_or(u32::MAX);
    let step = (span / steps).max(interval).max(Duration::from_millis(1));
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

fn wall_ns(t: Option<SystemTime>) -> i64 {
    t.map_or(0, time::to_ns)
}

/// A version's facts and its per-step averages (the comparison's samples).
fn version(loads: &[SeriesRow], h: &History) -> (wire::VersionInfo, Vec<f64>) {
    let averages: Vec<f64> = h
        .points
        .iter()
        .filter(|p| p.run_cnt > 0)
        .filter_map(|p| p.avg_ns_per_run)
        .collect();
    let runs: u64 = h.points.iter().map(|p| p.run_cnt).sum();
    let run_time_ns: u64 = h.points.iter().map(|p| p.run_time_ns).sum();
    let observed_ns: u64 = h.points.iter().map(|p| p.span_ns).sum();
    let mut sorted = averages.clone();
    sorted.sort_by(f64::total_cmp);
    let median = match sorted.len() {
        0 => -1.0,
        n if n % 2 == 1 => sorted[n / 2],
        n => (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0,
    };
    let newest = loads
        .iter()
        .max_by_key(|s| s.series_id)
        .unwrap_or(&loads[0]);
    let per_s = |v: u64| v as f64 * 1e9 / observed_ns.max(1) as f64;
    let info = wire::VersionInfo {
        tag: loads[0].tag.clone(),
        series: loads.iter().map(|s| s.series_id).collect(),
        first_seen_ns: wall_ns(loads.iter().filter_map(|s| s.first_seen).min()),
        last_seen_ns: wall_ns(loads.iter().filter_map(|s| s.last_seen).max()),
        observed_ns,
        runs,
        run_time_ns,
        steps: u32::try_from(averages.len()).unwrap_or(u32::MAX),
        median_ns_per_run: median,
        runs_per_sec: per_s(runs),
        cpu_pct: per_s(run_time_ns) / 1e9 * 100.0,
        map_memory_bytes: newest.map_memory.total,
        verified_insns: newest.verified_insns,
        jited_size: newest.jited_size,
    };
    (info, averages)
}

/// Why a version cannot be judged yet, if it cannot.
fn short_of(v: &wire::VersionInfo, needs: &Needs) -> Option<String> {
    let observed = Duration::from_nanos(v.observed_ns);
    let enough = v.runs >= needs.min_runs
        && observed >= needs.min_observed
        && v.steps as usize >= stats::MIN_STEPS;
    (!enough).then(|| {
        format!(
            "version {} ran {} times in {} over {} steps (needs {} runs, {} and {} steps)",
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

fn short_tag(tag: &str) -> &str {
    tag.get(..8).unwrap_or(tag)
}

/// The verdict in words.
pub fn verdict(name: &str, after_tag: &str, s: &stats::Shift) -> String {
    let pct = |r: f64| (r - 1.0) * 100.0;
    let tag = short_tag(after_tag);
    if !s.significant {
        return format!(
            "{name}: new version (tag {tag}…) no significant change per run ({:+.0} %, 95 % CI \
             {:+.0} to {:+.0} %)",
            pct(s.ratio),
            pct(s.low),
            pct(s.high)
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
        let less = |r: f64| (1.0 - r) * 100.0;
        format!(
            "{name}: new version (tag {tag}…) {:.0} % faster per run (95 % CI {:.0}–{:.0} %)",
            less(s.ratio),
            less(s.high),
            less(s.low)
        )
    }
}

/// The comparisons to conclude now: each program loaded now whose newest version is not
/// settled (compared already, or the only one) and has run enough, against the version before
/// it. When only the version before ran too little, that is the conclusion (not judged).
/// `settled` gains every (program, type, tag) concluded or alone.
pub fn due(
    store: &Store,
    needs: &Needs,
    interval: Duration,
    settled: &mut HashSet<(String, String, String)>,
) -> Result<Vec<wire::Comparison>, CompareError> {
    let mut out = Vec::new();
    let mut looked = HashSet::new();
    for s in store.all_series()?.into_iter().filter(|s| s.alive) {
        let key = (s.full_name.clone(), s.prog_type.clone(), s.tag.clone());
        if settled.contains(&key) || !looked.insert(key.clone()) {
            continue;
        }
        let versions = store.versions(&s.full_name, &s.prog_type)?;
        let newest = versions.last().map(|v| v[0].tag.as_str());
        if versions.len() < 2 || newest != Some(s.tag.as_str()) {
            // Alone (a new tag later is a new key), or older code loaded beside newer.
            settled.insert(key);
            continue;
        }
        let picks = (&Pick::Newest(1), &Pick::Newest(0));
        let c = compare(store, &s.full_name, &s.prog_type, picks, needs, interval)?;
        if c.judged || short_of(&c.after, needs).is_none() {
            settled.insert(key);
            out.push(c);
        }
    }
    Ok(out)
}

/// The event a comparison is kept as.
pub fn event_of(c: &wire::Comparison, time: SystemTime) -> Event {
    Event {
        time,
        kind: "version".into(),
        program: c.full_name.clone(),
        prog_type: c.prog_type.clone(),
        tag: c.after.tag.clone(),
        before_tag: c.before.tag.clone(),
        judged: c.judged,
        significant: c.significant,
        ratio: c.ratio,
        ratio_low: c.ratio_low,
        ratio_high: c.ratio_high,
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
) -> Result<wire::Comparison, CompareError> {
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
    let b_loads = choose(&versions, before).map_err(CompareError::NoVersion)?;
    let a_loads = choose(&versions, after).map_err(CompareError::NoVersion)?;
    let (b, b_avgs) = version(&b_loads, &steps_of(store, &b_loads, interval)?);
    let a_history = steps_of(store, &a_loads, interval)?;
    let (a, a_avgs) = version(&a_loads, &a_history);
    let short = short_of(&b, needs).or_else(|| short_of(&a, needs));
    let shift = short
        .is_none()
        .then(|| stats::shift(&b_avgs, &a_avgs, stats::min_effect(b.median_ns_per_run)))
        .flatten();
    let (judged, verdict_text) = match (&short, &shift) {
        (_, Some(s)) => (true, verdict(full_name, &a.tag, s)),
        (Some(why), None) => (
            false,
            format!("{full_name}: not enough to judge yet: {why}"),
        ),
        (None, None) => (
            false,
            format!("{full_name}: too few steps with runs to judge"),
        ),
    };
    let s = shift.unwrap_or(stats::Shift {
        ratio: 0.0,
        low: 0.0,
        high: 0.0,
        significant: false,
    });
    Ok(wire::Comparison {
        full_name: full_name.to_owned(),
        prog_type: prog_type.to_owned(),
        before: b,
        after: a,
        step_ns: a_history.step_ns,
        judged,
        ratio: s.ratio,
        ratio_low: s.low,
        ratio_high: s.high,
        significant: s.significant,
        verdict: verdict_text,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

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
            verdict("f", "1a2b3c4d5e6f7a8b", &s(1.35, 1.30, 1.40, true)),
            "f: new version (tag 1a2b3c4d…) 35 % slower per run (95 % CI 30–40 %)"
        );
        assert_eq!(
            verdict("f", "00", &s(0.8, 0.75, 0.85, true)),
            "f: new version (tag 00…) 20 % faster per run (95 % CI 15–25 %)"
        );
        assert_eq!(
            verdict("f", "00", &s(1.01, 0.98, 1.04, false)),
            "f: new version (tag 00…) no significant change per run (+1 %, 95 % CI -2 to +4 %)"
        );
    }
}
