//! The JSON view of the wire types: what `ebpfstatctl --json` and `ebpfstatd sample --json`
//! print (docs/json.md). D-Bus has no null, so the wire says "no value" with a sentinel (a
//! negative average, a zero id or time, an empty unit); JSON says it with `null`, read here
//! once per sentinel (`avg`, `known`, `text`). A program is one row shape in every view
//! ([`ProgramJson`]): over a window (`top`), over the last interval (`list`, `show`,
//! `ebpfstatd sample`) or since load (`top --cumulative`), `over` saying which.

use std::time::Duration;

use ebpfstat_numbers::rates::{Rates as Computed, Totals};
use serde::Serialize;

use crate::{
    Alert, AttachPoint, Comparison, Event, HistoryInfo, HistoryPoint, MapRow, MapUsage, Owner,
    ProgramDetail, ProgramRow, Rates, SeriesInfo, Snapshot, TopRow, VersionInfo,
};

/// An average per run as the wire carries it: negative when there were no runs.
pub fn avg(ns: f64) -> Option<f64> {
    (ns >= 0.0).then_some(ns)
}

/// A count, id or time the wire sends as 0 when there is none (`btf_id`, `interval_ns`,
/// `next_from_ns`, `series_id`, `first_seen_ns`, ...).
pub fn known<T: Default + PartialEq>(v: T) -> Option<T> {
    (v != T::default()).then_some(v)
}

/// Text the wire sends empty when there is none (an owner's `unit`).
pub fn text(s: &str) -> Option<String> {
    (!s.is_empty()).then(|| s.to_owned())
}

/// What a row's counters and rates are over.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Over {
    /// The window asked for (`top`): the time the program was observed in it.
    Window,
    /// The last sampling interval (`list`, `show`, `ebpfstatd sample`).
    Interval,
    /// Since the program was loaded (`top --cumulative`).
    SinceLoad,
}

/// A process holding a program or map.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OwnerJson {
    pub pid: u32,
    pub comm: String,
    /// Its systemd unit; `null` outside one.
    pub unit: Option<String>,
    /// Its container; `null` outside one.
    pub container: Option<ContainerJson>,
}

/// A holder's container: `label` (`runtime:name`, or the short id when no name is known) as
/// shown and filtered; `name` and `pod_uid` `null` when not known.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ContainerJson {
    pub label: String,
    pub runtime: String,
    pub id: String,
    pub name: Option<String>,
    pub pod_uid: Option<String>,
}

impl From<&Owner> for OwnerJson {
    fn from(o: &Owner) -> Self {
        let c = &o.container;
        Self {
            pid: o.pid,
            comm: o.comm.clone(),
            unit: text(&o.unit),
            container: c.label().map(|label| ContainerJson {
                label,
                runtime: c.runtime.clone(),
                id: c.id.clone(),
                name: text(&c.name),
                pod_uid: text(&c.pod_uid),
            }),
        }
    }
}

/// A group of `top --by`: `key` `null` for the programs in none (`kind` `none`) or no longer
/// loaded (`kind` `unloaded`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GroupJson {
    pub group_by: String,
    pub key: Option<String>,
    pub kind: String,
    pub programs: u32,
    pub program_ids: Vec<u32>,
    pub run_cnt: u64,
    pub run_time_ns: u64,
    pub avg_ns_per_run: Option<f64>,
    pub runs_per_sec: f64,
    pub cpu_pct: f64,
    pub estimated: bool,
    pub map_memory_bytes: u64,
    pub over: Over,
}

impl GroupJson {
    pub fn of(g: &crate::Group, group_by: &str, over: Over) -> Self {
        Self {
            group_by: group_by.to_owned(),
            key: text(&g.key),
            kind: g.kind.clone(),
            programs: g.programs,
            program_ids: g.program_ids.clone(),
            run_cnt: g.run_cnt,
            run_time_ns: g.run_time_ns,
            avg_ns_per_run: avg(g.avg_ns_per_run),
            runs_per_sec: g.runs_per_sec,
            cpu_pct: g.cpu_pct,
            estimated: g.estimated,
            map_memory_bytes: g.map_memory_bytes,
            over,
        }
    }
}

fn owners(o: &[Owner]) -> Vec<OwnerJson> {
    o.iter().map(OwnerJson::from).collect()
}

/// Rates over a row's span (or a history step); every value `null` when there is none.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct RatesJson {
    pub runs_per_sec: Option<f64>,
    /// Of one core (100 = one core busy).
    pub cpu_pct: Option<f64>,
    /// Share of the span stats were on; `null` when not known (since load).
    pub coverage: Option<f64>,
    /// The `est_*` values are extrapolated from partial coverage.
    pub estimated: Option<bool>,
    pub est_run_cnt: Option<u64>,
    pub est_run_time_ns: Option<u64>,
    pub est_runs_per_sec: Option<f64>,
    pub est_cpu_pct: Option<f64>,
    pub stats_overhead_ns: Option<f64>,
    pub stats_overhead_pct: Option<f64>,
}

impl RatesJson {
    /// The wire's rates, when there was something to rate (else every value `null`).
    fn of(r: &Rates, some: bool) -> Self {
        if !some {
            return Self::default();
        }
        Self {
            runs_per_sec: Some(r.runs_per_sec),
            cpu_pct: Some(r.cpu_pct),
            coverage: Some(r.coverage),
            estimated: Some(r.estimated),
            est_run_cnt: Some(r.est_run_cnt),
            est_run_time_ns: Some(r.est_run_time_ns),
            est_runs_per_sec: Some(r.est_runs_per_sec),
            est_cpu_pct: Some(r.est_cpu_pct),
            stats_overhead_ns: Some(r.stats_overhead_ns),
            stats_overhead_pct: Some(r.stats_overhead_pct),
        }
    }
}

/// A live program's values since it was loaded, as the daemon computed them.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct SinceLoadJson {
    pub run_cnt: u64,
    pub run_time_ns: u64,
    /// `null` when it never ran.
    pub avg_ns_per_run: Option<f64>,
    pub runs_per_sec: f64,
    /// Of one core; a lower bound when stats were not on all along.
    pub cpu_pct: f64,
}

impl From<&ProgramRow> for SinceLoadJson {
    fn from(p: &ProgramRow) -> Self {
        Self {
            run_cnt: p.run_cnt,
            run_time_ns: p.run_time_ns,
            avg_ns_per_run: avg(p.avg_ns_per_run_since_load),
            runs_per_sec: p.runs_per_sec_since_load,
            cpu_pct: p.cpu_pct_since_load,
        }
    }
}

/// A program, the same keys in every view; `null` is "no value".
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ProgramJson {
    /// Its stored series; `null` when not stored (`ebpfstatd sample`).
    pub series_id: Option<i64>,
    pub id: u32,
    /// The kernel's name (at most 15 bytes), and the name from BTF when that is cut short.
    pub name: String,
    pub full_name: String,
    pub prog_type: String,
    pub tag: String,
    /// ns since the epoch; `null` for an unloaded program in `top`.
    pub load_time_ns: Option<i64>,
    /// Still loaded.
    pub alive: bool,
    /// What `span_ns`, the counters and the rates are over.
    pub over: Over,
    /// The time the values are over; `null` when there is none (a program's first pass).
    pub span_ns: Option<u64>,
    /// Passes whose counts are in the span; `null` since load (the kernel's counters).
    pub samples: Option<u32>,
    pub run_cnt: Option<u64>,
    pub run_time_ns: Option<u64>,
    /// `null` when it did not run.
    pub avg_ns_per_run: Option<f64>,
    pub rates: RatesJson,
    /// The highest one pass saw, over a window only.
    pub peak_runs_per_sec: Option<u64>,
    pub peak_cpu_pct: Option<f64>,
    /// `null` for an unloaded program.
    pub since_load: Option<SinceLoadJson>,
    /// Held now; `null` for an unloaded program.
    pub map_memory_bytes: Option<u64>,
    pub map_memory_own_bytes: Option<u64>,
    pub map_memory_shared_bytes: Option<u64>,
    pub owners: Vec<OwnerJson>,
    /// Note codes (`shared_maps`, ...).
    pub notes: Vec<String>,
    /// The stored tier a window came from; `null` for the live views.
    pub tier: Option<String>,
}

impl ProgramJson {
    /// A program with its identity only (`names`: name, full name, type, tag), every value
    /// `null`.
    fn bare(series_id: i64, id: u32, names: [&str; 4], alive: bool, over: Over) -> Self {
        let [name, full_name, prog_type, tag] = names.map(str::to_owned);
        Self {
            series_id: known(series_id),
            id,
            name,
            full_name,
            prog_type,
            tag,
            load_time_ns: None,
            alive,
            over,
            span_ns: None,
            samples: None,
            run_cnt: None,
            run_time_ns: None,
            avg_ns_per_run: None,
            rates: RatesJson::default(),
            peak_runs_per_sec: None,
            peak_cpu_pct: None,
            since_load: None,
            map_memory_bytes: None,
            map_memory_own_bytes: None,
            map_memory_shared_bytes: None,
            owners: Vec::new(),
            notes: Vec::new(),
            tier: None,
        }
    }

    /// A live program: its identity, memory, holders and notes, and its values since load;
    /// the span and the values over it are the caller's.
    fn live(p: &ProgramRow, over: Over) -> Self {
        Self {
            load_time_ns: known(p.load_time_ns),
            since_load: Some(SinceLoadJson::from(p)),
            map_memory_bytes: Some(p.map_memory_bytes),
            map_memory_own_bytes: Some(p.map_memory_own_bytes),
            map_memory_shared_bytes: Some(p.map_memory_shared_bytes),
            owners: owners(&p.owners),
            notes: p.notes.clone(),
            ..Self::bare(
                p.series_id,
                p.id,
                [&p.name, &p.full_name, &p.prog_type, &p.tag],
                true,
                over,
            )
        }
    }

    /// Over the last interval of a pass whose stats were on for `coverage` of it.
    pub fn interval(p: &ProgramRow, coverage: f64) -> Self {
        let span = known(p.interval_ns);
        let rates = span.map(|ns| {
            Computed::over(&Totals {
                run_cnt: p.delta_run_cnt,
                run_time_ns: p.delta_run_time_ns,
                coverage,
                observed: Duration::from_nanos(ns),
                stats_overhead_ns: p.stats_overhead_ns,
            })
        });
        Self {
            span_ns: span,
            samples: Some(u32::from(span.is_some())),
            run_cnt: span.map(|_| p.delta_run_cnt),
            run_time_ns: span.map(|_| p.delta_run_time_ns),
            avg_ns_per_run: span.and_then(|_| avg(p.avg_ns_per_run)),
            rates: rates.map_or_else(RatesJson::default, |r| RatesJson::of(&Rates::from(r), true)),
            ..Self::live(p, Over::Interval)
        }
    }

    /// Since load, at the pass taken at `time_ns`: the daemon's values (on the boot clock).
    pub fn since_load(p: &ProgramRow, time_ns: i64) -> Self {
        let s = SinceLoadJson::from(p);
        Self {
            span_ns: u64::try_from(time_ns.saturating_sub(p.load_time_ns)).ok(),
            run_cnt: Some(s.run_cnt),
            run_time_ns: Some(s.run_time_ns),
            avg_ns_per_run: s.avg_ns_per_run,
            rates: RatesJson {
                runs_per_sec: Some(s.runs_per_sec),
                cpu_pct: Some(s.cpu_pct),
                estimated: Some(false),
                ..RatesJson::default()
            },
            ..Self::live(p, Over::SinceLoad)
        }
    }

    /// Over a window, with what the snapshot says of it now when it is still loaded (`live`).
    pub fn window(r: &TopRow, live: Option<&ProgramRow>) -> Self {
        // Seen over some time: a program seen by one pass only has no interval yet.
        let seen = r.samples > 0 && r.span_ns > 0;
        let seen_then = |v| seen.then_some(v);
        let base = match live.filter(|_| r.alive) {
            Some(l) => Self::live(l, Over::Window),
            None => Self::bare(
                r.series_id,
                r.id,
                [&r.name, &r.full_name, &r.prog_type, &r.tag],
                r.alive,
                Over::Window,
            ),
        };
        let memory = |v| r.alive.then_some(v);
        Self {
            span_ns: seen.then_some(r.span_ns),
            samples: Some(r.samples),
            run_cnt: seen_then(r.run_cnt),
            run_time_ns: seen_then(r.run_time_ns),
            avg_ns_per_run: avg(r.avg_ns_per_run).filter(|_| seen),
            rates: RatesJson::of(&r.rates, seen),
            peak_runs_per_sec: seen.then_some(r.peak_runs_per_sec),
            peak_cpu_pct: seen.then_some(r.peak_cpu_pct),
            map_memory_bytes: memory(r.map_memory_bytes),
            map_memory_own_bytes: memory(r.map_memory_own_bytes),
            map_memory_shared_bytes: memory(r.map_memory_shared_bytes),
            tier: Some(r.tier.clone()),
            ..base
        }
    }
}

/// `list`: the pass, and its programs over its last interval.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SnapshotJson {
    pub time_ns: i64,
    pub stats_state: String,
    pub memlock_meaning: String,
    pub online_cpus: u32,
    pub coverage: f64,
    pub stats_cost_ns: f64,
    pub stats_overhead_pct: f64,
    pub programs: Vec<ProgramJson>,
}

impl From<&Snapshot> for SnapshotJson {
    fn from(s: &Snapshot) -> Self {
        Self {
            time_ns: s.time_ns,
            stats_state: s.stats_state.clone(),
            memlock_meaning: s.memlock_meaning.clone(),
            online_cpus: s.online_cpus,
            coverage: s.coverage,
            stats_cost_ns: s.stats_cost_ns,
            stats_overhead_pct: s.stats_overhead_pct,
            programs: s
                .programs
                .iter()
                .map(|p| ProgramJson::interval(p, s.coverage))
                .collect(),
        }
    }
}

/// `top`: the rows over the window, with what the snapshot says of the live ones.
pub fn window_rows(rows: &[TopRow], snap: &Snapshot) -> Vec<ProgramJson> {
    rows.iter()
        .map(|r| {
            let live = snap.programs.iter().find(|p| p.series_id == r.series_id);
            ProgramJson::window(r, live)
        })
        .collect()
}

/// `top --cumulative`: the snapshot's programs (ranked by the daemon) since load.
pub fn since_load_rows(snap: &Snapshot) -> Vec<ProgramJson> {
    snap.programs
        .iter()
        .map(|p| ProgramJson::since_load(p, snap.time_ns))
        .collect()
}

/// A stored series (one load).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SeriesJson {
    pub series_id: i64,
    pub boot_seq: i64,
    pub id: u32,
    pub name: String,
    pub full_name: String,
    pub prog_type: String,
    pub tag: String,
    pub alive: bool,
    /// ns since the epoch; `null` when unknown.
    pub first_seen_ns: Option<i64>,
    pub last_seen_ns: Option<i64>,
    /// Runs made before the first pass saw it, in no step (0: every run is in a step).
    pub runs_before_first_pass: u64,
}

impl From<&SeriesInfo> for SeriesJson {
    fn from(s: &SeriesInfo) -> Self {
        Self {
            series_id: s.series_id,
            boot_seq: s.boot_seq,
            id: s.id,
            name: s.name.clone(),
            full_name: s.full_name.clone(),
            prog_type: s.prog_type.clone(),
            tag: s.tag.clone(),
            alive: s.alive,
            first_seen_ns: known(s.first_seen_ns),
            last_seen_ns: known(s.last_seen_ns),
            runs_before_first_pass: s.runs_before_first_pass,
        }
    }
}

/// What a history covers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HistoryInfoJson {
    pub series: Vec<SeriesJson>,
    pub tier: String,
    pub step_ns: u64,
    /// Where a cut answer goes on (`--since`); `null` when complete.
    pub next_from_ns: Option<i64>,
}

/// One step; a step without samples has `null` for every value measured in it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PointJson {
    pub start_ns: i64,
    pub end_ns: i64,
    pub span_ns: Option<u64>,
    pub samples: u32,
    pub frozen: u32,
    pub run_cnt: Option<u64>,
    pub run_time_ns: Option<u64>,
    /// Since load at the end of the step (for a name: over all its loads).
    pub cum_run_cnt: u64,
    pub cum_run_time_ns: u64,
    pub avg_ns_per_run: Option<f64>,
    pub rates: RatesJson,
    pub peak_runs_per_sec: Option<u64>,
    pub peak_cpu_pct: Option<f64>,
}

impl From<&HistoryPoint> for PointJson {
    fn from(p: &HistoryPoint) -> Self {
        let seen = p.samples > 0 && p.span_ns > 0;
        Self {
            start_ns: p.start_ns,
            end_ns: p.end_ns,
            span_ns: seen.then_some(p.span_ns),
            samples: p.samples,
            frozen: p.frozen,
            run_cnt: seen.then_some(p.run_cnt),
            run_time_ns: seen.then_some(p.run_time_ns),
            cum_run_cnt: p.cum_run_cnt,
            cum_run_time_ns: p.cum_run_time_ns,
            avg_ns_per_run: avg(p.avg_ns_per_run).filter(|_| seen),
            rates: RatesJson::of(&p.rates, seen),
            peak_runs_per_sec: seen.then_some(p.peak_runs_per_sec),
            peak_cpu_pct: seen.then_some(p.peak_cpu_pct),
        }
    }
}

/// `history`: what it covers, and its steps.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HistoryJson {
    pub info: HistoryInfoJson,
    pub points: Vec<PointJson>,
}

impl HistoryJson {
    pub fn of(info: &HistoryInfo, points: &[HistoryPoint]) -> Self {
        Self {
            info: HistoryInfoJson {
                series: info.series.iter().map(SeriesJson::from).collect(),
                tier: info.tier.clone(),
                step_ns: info.step_ns,
                next_from_ns: known(info.next_from_ns),
            },
            points: points.iter().map(PointJson::from).collect(),
        }
    }
}

/// `history --map`: which maps, at what tier, and their points.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MapHistoryJson {
    pub maps: Vec<MapSeriesJson>,
    pub tier: String,
    pub next_from_ns: Option<i64>,
    pub points: Vec<MapPointJson>,
}

/// A map's life.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MapSeriesJson {
    pub id: u32,
    pub name: String,
    pub map_type: String,
    pub max_entries: u32,
    pub first_seen_ns: i64,
    /// `null` while it is loaded.
    pub gone_ns: Option<i64>,
}

/// A map's values from `time_ns` on; `null` where not known.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MapPointJson {
    pub time_ns: i64,
    /// The map's id.
    pub id: u32,
    pub memory_bytes: Option<u64>,
    pub entries: Option<u64>,
    /// The most entries seen in the tier's bucket.
    pub peak_entries: Option<u64>,
}

impl MapHistoryJson {
    pub fn of(info: &crate::MapHistoryInfo, points: &[crate::MapHistoryPoint]) -> Self {
        let counted = |v: i64| u64::try_from(v).ok();
        Self {
            maps: info
                .series
                .iter()
                .map(|s| MapSeriesJson {
                    id: s.id,
                    name: s.name.clone(),
                    map_type: s.map_type.clone(),
                    max_entries: s.max_entries,
                    first_seen_ns: s.first_seen_ns,
                    gone_ns: known(s.gone_ns),
                })
                .collect(),
            tier: info.tier.clone(),
            next_from_ns: known(info.next_from_ns),
            points: points
                .iter()
                .map(|p| MapPointJson {
                    time_ns: p.time_ns,
                    id: usize::try_from(p.series)
                        .ok()
                        .and_then(|i| info.series.get(i))
                        .map_or(0, |s| s.id),
                    memory_bytes: counted(p.memory_bytes),
                    entries: counted(p.entries),
                    peak_entries: counted(p.peak_entries),
                })
                .collect(),
        }
    }
}

/// A map.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MapJson {
    pub id: u32,
    pub name: String,
    pub map_type: String,
    pub key_size: u32,
    pub value_size: u32,
    pub max_entries: u32,
    /// Entries it holds, as last counted; `null` when not counted (`entries_note` says why).
    pub entries: Option<u64>,
    /// `entries` as a percentage of `max_entries`; `null` when not counted.
    pub fill_pct: Option<f64>,
    /// How `entries` was counted: `batch`, `keys`, or `array` (max entries by definition).
    pub entries_counted_by: Option<String>,
    /// When `entries` was counted, ns since the epoch.
    pub entries_counted_ns: Option<i64>,
    pub entries_note: Option<String>,
    /// For a `perf_event_array`: the perf ring buffers its holders have mapped (each process's
    /// once); `null` for other maps.
    pub perf_buffer_bytes: Option<u64>,
    pub flags: u32,
    /// `null` when the kernel did not say.
    pub memlock_bytes: Option<u64>,
    pub used_by_programs: u32,
    pub owners: Vec<OwnerJson>,
    pub notes: Vec<String>,
}

impl MapJson {
    /// A map with its usage (`MapUsage`'s row of the same id, if the daemon sent one).
    pub fn of(m: &MapRow, usage: &[MapUsage]) -> Self {
        let u = MapUsage::of(usage, m.id);
        let counted = u.and_then(MapUsage::counted);
        Self {
            id: m.id,
            name: m.name.clone(),
            map_type: m.map_type.clone(),
            key_size: m.key_size,
            value_size: m.value_size,
            max_entries: m.max_entries,
            entries: counted.map(|(n, _)| n),
            fill_pct: counted.map(|(_, pct)| pct),
            entries_counted_by: u.and_then(|u| text(&u.counted_by)),
            entries_counted_ns: u.and_then(|u| known(u.counted_ns)),
            entries_note: u.map_or_else(|| Some("not counted".to_owned()), |u| text(&u.why)),
            perf_buffer_bytes: u.and_then(|u| known(u.perf_buffer_bytes)),
            flags: m.flags,
            memlock_bytes: known(m.memlock_bytes),
            used_by_programs: m.used_by_programs,
            owners: owners(&m.owners),
            notes: m.notes.clone(),
        }
    }
}

/// Where a program is attached.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AttachJson {
    /// 0 for an attachment that is not a link (a perf event's).
    pub link_id: u32,
    pub link_type: String,
    /// `null` when the kernel does not say.
    pub attach_type: Option<String>,
    pub target: String,
    /// A kprobe link's missed hits; `null` where the kernel reports none.
    pub missed: Option<u64>,
}

impl From<&AttachPoint> for AttachJson {
    fn from(a: &AttachPoint) -> Self {
        Self {
            link_id: a.link_id,
            link_type: a.link_type.clone(),
            attach_type: text(&a.attach_type),
            target: a.target.clone(),
            missed: u64::try_from(a.missed).ok(),
        }
    }
}

/// What the kernel says of a program's code, in `show` and `ebpfstatd sample`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct CodeJson {
    pub created_by_uid: u32,
    pub verified_insns: u32,
    pub jited_size: u32,
    pub xlated_size: u32,
    /// `null` when the program has no BTF.
    pub btf_id: Option<u32>,
    /// `null` when the kernel did not say.
    pub prog_memlock_bytes: Option<u64>,
}

/// `show`: the program over the last interval, and everything else known of it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DetailJson {
    pub program: ProgramJson,
    #[serde(flatten)]
    pub code: CodeJson,
    pub maps: Vec<MapJson>,
    pub pins: Vec<String>,
    pub attach: Vec<AttachJson>,
    pub notes: Vec<crate::Note>,
}

impl DetailJson {
    /// `coverage`: of the pass the detail is from; `usage`: of its maps.
    pub fn of(d: &ProgramDetail, coverage: f64, usage: &[MapUsage]) -> Self {
        Self {
            program: ProgramJson::interval(&d.program, coverage),
            code: CodeJson {
                created_by_uid: d.created_by_uid,
                verified_insns: d.verified_insns,
                jited_size: d.jited_size,
                xlated_size: d.xlated_size,
                btf_id: known(d.btf_id),
                prog_memlock_bytes: known(d.prog_memlock_bytes),
            },
            maps: d.maps.iter().map(|m| MapJson::of(m, usage)).collect(),
            pins: d.pins.clone(),
            attach: d.attach.iter().map(AttachJson::from).collect(),
            notes: d.notes.clone(),
        }
    }
}

/// One version in `compare`: the wire's keys, `null` where it has none.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VersionJson {
    pub tag: String,
    pub series: Vec<i64>,
    /// ns since the epoch; `null` when unknown.
    pub first_seen_ns: Option<i64>,
    pub last_seen_ns: Option<i64>,
    pub observed_ns: u64,
    pub runs: u64,
    pub run_time_ns: u64,
    pub steps: u32,
    /// `null` with no step.
    pub median_ns_per_run: Option<f64>,
    pub runs_per_sec: f64,
    pub cpu_pct: f64,
    pub map_memory_bytes: u64,
    pub verified_insns: u32,
    pub jited_size: u32,
}

impl From<&VersionInfo> for VersionJson {
    fn from(v: &VersionInfo) -> Self {
        Self {
            tag: v.tag.clone(),
            series: v.series.clone(),
            first_seen_ns: known(v.first_seen_ns),
            last_seen_ns: known(v.last_seen_ns),
            observed_ns: v.observed_ns,
            runs: v.runs,
            run_time_ns: v.run_time_ns,
            steps: v.steps,
            median_ns_per_run: avg(v.median_ns_per_run),
            runs_per_sec: v.runs_per_sec,
            cpu_pct: v.cpu_pct,
            map_memory_bytes: v.map_memory_bytes,
            verified_insns: v.verified_insns,
            jited_size: v.jited_size,
        }
    }
}

/// A judged change's `ratio`, `ratio_low` and `ratio_high` (the wire sends 0 when not judged):
/// `null` when not judged.
fn judged_ratios(judged: bool, ratios: [f64; 3]) -> [Option<f64>; 3] {
    ratios.map(|r| judged.then_some(r))
}

/// `compare`: two versions and the judgement; `ratio*` and `significant` `null` when not
/// judged.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ComparisonJson {
    pub full_name: String,
    pub prog_type: String,
    pub before: VersionJson,
    pub after: VersionJson,
    pub step_ns: u64,
    pub judged: bool,
    pub ratio: Option<f64>,
    pub ratio_low: Option<f64>,
    pub ratio_high: Option<f64>,
    pub significant: Option<bool>,
    pub verdict: String,
    /// Only with `--fail-above`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gate: Option<GateJson>,
}

/// `compare --fail-above PCT`: the limit and whether the newer version is beyond it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct GateJson {
    pub fail_above_pct: f64,
    pub failed: bool,
}

impl From<&Comparison> for ComparisonJson {
    fn from(c: &Comparison) -> Self {
        let [ratio, ratio_low, ratio_high] =
            judged_ratios(c.judged, [c.ratio, c.ratio_low, c.ratio_high]);
        Self {
            full_name: c.full_name.clone(),
            prog_type: c.prog_type.clone(),
            before: VersionJson::from(&c.before),
            after: VersionJson::from(&c.after),
            step_ns: c.step_ns,
            judged: c.judged,
            ratio,
            ratio_low,
            ratio_high,
            significant: c.judged.then_some(c.significant),
            verdict: c.verdict.clone(),
            gate: None,
        }
    }
}

/// The one kind of event that is a comparison of versions; the others (`unclean_stop`) have
/// no program, tags or judgement. The wire's word for the kind the store keeps as
/// `ebpfstat_store::KIND_VERSION` (the daemon checks that they agree).
pub const VERSION_EVENT: &str = "version";

/// `events`: the wire's keys, `null` where an event has no value or the key does not apply to
/// its kind.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EventJson {
    pub time_ns: i64,
    pub kind: String,
    pub program: Option<String>,
    pub prog_type: Option<String>,
    pub tag: Option<String>,
    pub before_tag: Option<String>,
    /// `null` for an event that is not a comparison.
    pub judged: Option<bool>,
    /// `null` when not judged.
    pub significant: Option<bool>,
    pub ratio: Option<f64>,
    pub ratio_low: Option<f64>,
    pub ratio_high: Option<f64>,
    pub text: String,
}

impl From<&Event> for EventJson {
    fn from(e: &Event) -> Self {
        let version = e.kind == VERSION_EVENT;
        let judged = version && e.judged;
        let [ratio, ratio_low, ratio_high] =
            judged_ratios(judged, [e.ratio, e.ratio_low, e.ratio_high]);
        Self {
            time_ns: e.time_ns,
            kind: e.kind.clone(),
            program: text(&e.program),
            prog_type: text(&e.prog_type),
            tag: text(&e.tag),
            before_tag: text(&e.before_tag),
            judged: version.then_some(e.judged),
            significant: judged.then_some(e.significant),
            ratio,
            ratio_low,
            ratio_high,
            text: e.text.clone(),
        }
    }
}

/// An alert: the wire's keys, the program `null` for a host-wide rule.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AlertJson {
    pub rule: String,
    pub metric: String,
    pub state: String,
    pub program_id: Option<u32>,
    pub program: Option<String>,
    pub prog_type: Option<String>,
    pub value: f64,
    pub threshold: f64,
    pub clear: f64,
    pub since_ns: i64,
    pub time_ns: i64,
    pub text: String,
}

impl From<&Alert> for AlertJson {
    fn from(a: &Alert) -> Self {
        Self {
            rule: a.rule.clone(),
            metric: a.metric.clone(),
            state: a.state.clone(),
            program_id: known(a.program_id),
            program: text(&a.program),
            prog_type: text(&a.prog_type),
            value: a.value,
            threshold: a.threshold,
            clear: a.clear,
            since_ns: a.since_ns,
            time_ns: a.time_ns,
            text: a.text.clone(),
        }
    }
}

/// `alerts`: those raised now, and the changes since `--since`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AlertsJson {
    pub active: Vec<AlertJson>,
    pub changes: Vec<AlertJson>,
}

impl AlertsJson {
    pub fn of(active: &[Alert], changes: &[Alert]) -> Self {
        let all = |a: &[Alert]| a.iter().map(AlertJson::from).collect();
        Self {
            active: all(active),
            changes: all(changes),
        }
    }
}

/// Status keys (`status.rs`) whose 0 means none: a time that has not happened, an empty tier.
const STATUS_NONE_AT_ZERO: [&str; 10] = [
    "last_failed_pass_ns",
    "last_flush_ns",
    "tier_raw_oldest_ns",
    "tier_raw_newest_ns",
    "tier_1m_oldest_ns",
    "tier_1m_newest_ns",
    "tier_1h_oldest_ns",
    "tier_1h_newest_ns",
    "previous_run_last_written_ns",
    "textfile_written_ns",
];

/// Status keys whose empty text means none: no failure, no error, served nowhere.
const STATUS_NONE_WHEN_EMPTY: [&str; 5] = [
    "last_failure",
    "last_error",
    "textfile_error",
    "metrics_error",
    "metrics_listen",
];

/// A value of the status dictionary (basic types only), `None` for "no value".
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum StatusValue {
    Text(Option<String>),
    Unsigned(Option<u64>),
    Signed(Option<i64>),
    Float(f64),
    Bool(bool),
    RemoteWrite(Vec<crate::RemoteWrite>),
}

impl StatusValue {
    /// The value of `key`, read with its sentinel when it has one; `None` for a type the
    /// status map does not hold.
    fn of(key: &str, v: &zbus::OwnedVariant) -> Option<Self> {
        if let Some(list) = crate::RemoteWrite::list_of(v) {
            return Some(Self::RemoteWrite(list));
        }
        let none_at_zero = STATUS_NONE_AT_ZERO.contains(&key);
        let none_when_empty = STATUS_NONE_WHEN_EMPTY.contains(&key);
        if let Ok(s) = <&str>::try_from(v) {
            return Some(Self::Text(if none_when_empty {
                text(s)
            } else {
                Some(s.to_owned())
            }));
        }
        if let Ok(n) = u64::try_from(v) {
            return Some(Self::Unsigned(if none_at_zero {
                known(n)
            } else {
                Some(n)
            }));
        }
        if let Ok(n) = i64::try_from(v) {
            return Some(Self::Signed(if none_at_zero { known(n) } else { Some(n) }));
        }
        if let Ok(n) = u32::try_from(v) {
            return Some(Self::Unsigned(Some(u64::from(n))));
        }
        if let Ok(n) = f64::try_from(v) {
            return Some(Self::Float(n));
        }
        match bool::try_from(v) {
            Ok(b) => Some(Self::Bool(b)),
            Err(_) => None,
        }
    }
}

/// `status`: the dictionary as the daemon sent it (a newer daemon's keys included), sorted by
/// key, with `null` where a key's value says none (docs/dbus.md).
pub fn status(m: &crate::Options) -> std::collections::BTreeMap<String, Option<StatusValue>> {
    m.iter()
        .map(|(k, v)| (k.clone(), StatusValue::of(k, v)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Status;

    #[test]
    fn a_status_key_that_says_none_is_null_and_a_counted_zero_stays() {
        // Fields that are not optional are always sent: a fresh daemon's none and zeros.
        let json = status(&Status::default().to_map());
        for key in STATUS_NONE_AT_ZERO.iter().chain(&STATUS_NONE_WHEN_EMPTY) {
            let v = json.get(*key).and_then(Option::as_ref);
            assert!(
                matches!(
                    v,
                    Some(
                        StatusValue::Text(None)
                            | StatusValue::Unsigned(None)
                            | StatusValue::Signed(None)
                    )
                ),
                "{key}: {v:?}"
            );
        }
        let passes = json.get("passes").and_then(Option::as_ref);
        assert_eq!(passes, Some(&StatusValue::Unsigned(Some(0))));
    }
}
