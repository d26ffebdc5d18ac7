//! The ebpfstat D-Bus API, version 1: names, wire types, errors and the client proxy.
//!
//! Shared by the daemon (which serves it) and `ebpfstatctl` (which calls it); nothing else of
//! the daemon is visible here. The interface is versioned in its name: an incompatible change
//! becomes `org.ebpfstat.Stats2`; compatible additions are new methods or new keys in the `a{sv}`
//! options and status maps. The introspection XML (`org.ebpfstat.Stats1.xml`) and the system-bus
//! policy (`org.ebpfstat.Stats1.conf`) ship beside this file.

pub mod json;
mod status;
mod words;

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use zbus::{OwnedVariant, Type};

/// Well-known bus name.
pub const BUS_NAME: &str = "org.ebpfstat.Stats1";
/// Object path of the one object.
pub const OBJECT_PATH: &str = "/org/ebpfstat/Stats1";
/// Interface name.
pub const INTERFACE: &str = "org.ebpfstat.Stats1";
/// The daemon's private peer-to-peer socket, where it serves the API when no bus is reachable
/// (unless its configuration moves or disables it).
pub const SOCKET: &str = "/run/ebpfstat/private";
/// Group whose members may call the API.
pub const GROUP: &str = "ebpfstat";
/// Introspection data of the interface, as served.
pub const INTROSPECTION_XML: &str = include_str!("../org.ebpfstat.Stats1.xml");
/// System-bus policy.
pub const POLICY_CONF: &str = include_str!("../org.ebpfstat.Stats1.conf");

/// Limits a caller can rely on.
pub const MAX_TOP_N: u32 = 10_000;
pub const MAX_HISTORY_POINTS: u32 = 20_000;
pub const DEFAULT_HISTORY_POINTS: u32 = 2_000;
/// Points in an `Export()` page unless `max_points` says otherwise: ~200 KB of text.
pub const DEFAULT_EXPORT_POINTS: u32 = 2_000;
pub const MAX_PROGRAM_SPEC: usize = 512;
/// `Compare` calls a change in cost per run significant only when its whole 95 % interval lies
/// beyond this share (5 %) and this many ns per run.
pub const COMPARE_MIN_EFFECT: f64 = 0.05;
pub const COMPARE_MIN_EFFECT_NS: f64 = 15.0;
/// What a version needs to be judged unless the daemon's configuration (`compare_min_runs`,
/// `compare_min_time`) says otherwise: its own comparisons and `Compare` without options alike.
pub const DEFAULT_COMPARE_MIN_RUNS: u32 = 1000;
pub const DEFAULT_COMPARE_MIN_SECONDS: u32 = 60;
/// The longest and shortest profile, and the one `ebpfstatctl profile` asks for by default.
pub const MAX_PROFILE_NS: u64 = 600_000_000_000;
pub const MIN_PROFILE_NS: u64 = 100_000_000;
pub const DEFAULT_PROFILE_NS: u64 = 10_000_000_000;
/// Programs profiled at once, across callers.
pub const MAX_PROFILES: usize = 4;
pub use status::{RemoteWrite, Status, StatusError};
pub use words::{
    AlertMetric, AlertState, CountedBy, GroupBy, MemlockMeaning, NoteCode, ProfileEnd, StatsState,
    Tier, UnknownWord,
};

/// What `Top` ranks by (its `sort_by`), and the bar of runs below which `avg` ranks last.
pub use ebpfstat_numbers::rank::{MIN_RUNS_FOR_AVG, SortKey, UnknownSortKey};

/// Named errors: `org.ebpfstat.Stats1.Error.<Variant>`, each with a message a person can act on.
#[derive(Debug, Clone, PartialEq, zbus::DBusError)]
#[zbus(prefix = "org.ebpfstat.Stats1.Error")]
pub enum Error {
    #[zbus(error)]
    ZBus(zbus::Error),
    /// No program matches the given id, series or name.
    NoSuchProgram(String),
    /// No map in the history matches the given id or name.
    NoSuchMap(String),
    /// An argument or option is out of range, of the wrong type or unknown.
    InvalidArgument(String),
    /// The data is not available (no pass yet, the store failed, ...).
    Unavailable(String),
    /// The caller has as many calls in flight as one caller may: wait for an answer, then
    /// call again.
    Busy(String),
    /// The kernel or the program does not allow it (a profile of a program without BTF, or
    /// on a kernel without BPF trampolines); the message says why.
    NotSupported(String),
}

/// A process holding a program.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Type)]
pub struct Owner {
    pub pid: u32,
    pub comm: String,
    /// systemd unit, or empty.
    pub unit: String,
    /// The container the process runs in, by its cgroup; `runtime` empty when none.
    pub container: Container,
}

impl Owner {
    /// As a person reads it: `comm[pid]`, then the container, or else the unit.
    pub fn text(&self) -> String {
        let place = match self.container.label() {
            Some(c) => c,
            None => self.unit.clone(),
        };
        if place.is_empty() {
            format!("{}[{}]", self.comm, self.pid)
        } else {
            format!("{}[{}] {place}", self.comm, self.pid)
        }
    }
}

/// A container, as its cgroup path names it: the runtime (`docker`, `podman`, `containerd`,
/// `cri-o`, `nspawn`, `lxc`; empty: not in a container), its full id (a machine's or LXC
/// container's name), its name where the runtime keeps it readable on the host (for a
/// Kubernetes container `namespace/pod/container`), and a Kubernetes pod's UID.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize, Type)]
pub struct Container {
    pub runtime: String,
    pub id: String,
    pub name: String,
    pub pod_uid: String,
}

impl Container {
    /// Characters of an id shown where no name is known (as `docker ps` shows them).
    pub const SHORT_ID: usize = 12;

    /// `runtime:name`, or `runtime:` and the id's first 12 characters when no name is known;
    /// `None` outside containers. The one text of a container: shown, filtered, grouped and
    /// exported as this.
    pub fn label(&self) -> Option<String> {
        if self.runtime.is_empty() {
            return None;
        }
        let name = if self.name.is_empty() {
            self.id.get(..Self::SHORT_ID).unwrap_or(&self.id)
        } else {
            &self.name
        };
        Some(format!("{}:{name}", self.runtime))
    }
}

/// A program in the current snapshot.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Type)]
pub struct ProgramRow {
    pub series_id: i64,
    pub id: u32,
    pub name: String,
    pub full_name: String,
    pub prog_type: String,
    pub tag: String,
    /// Wall-clock load time, ns since the epoch.
    pub load_time_ns: i64,
    pub run_cnt: u64,
    pub run_time_ns: u64,
    /// Length of the last interval; 0 on the pass a program is first seen (no interval yet).
    pub interval_ns: u64,
    pub delta_run_cnt: u64,
    pub delta_run_time_ns: u64,
    pub runs_per_sec: f64,
    /// Of one core over the last interval (100 = one core busy).
    pub cpu_pct: f64,
    /// Over the last interval; negative when the program did not run.
    pub avg_ns_per_run: f64,
    pub map_memory_bytes: u64,
    pub map_memory_own_bytes: u64,
    pub map_memory_shared_bytes: u64,
    pub owners: Vec<Owner>,
    /// Codes of the notes that apply (see `Note`).
    pub notes: Vec<String>,
    /// What stats cost this program's runs in the last interval, ns.
    pub stats_overhead_ns: f64,
    /// Since the program was loaded (on the boot clock, which no wall-clock step moves): its
    /// average cost per run (negative when it never ran), runs per second and share of one
    /// core (100 = one core busy); lower bounds when stats were not on all along.
    pub avg_ns_per_run_since_load: f64,
    pub runs_per_sec_since_load: f64,
    pub cpu_pct_since_load: f64,
}

/// The latest sampling pass.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Type)]
pub struct Snapshot {
    pub time_ns: i64,
    pub stats_state: String,
    /// `estimate` (Linux ≥ 6.4) or `max-size`: what map memory means on this kernel.
    pub memlock_meaning: String,
    pub online_cpus: u32,
    /// Share of the last interval with stats on (below 1 while duty-cycling).
    pub coverage: f64,
    /// What stats cost each program run on this machine, ns (calibrated).
    pub stats_cost_ns: f64,
    /// What stats cost the host over the last interval, percent of one core.
    pub stats_overhead_pct: f64,
    pub programs: Vec<ProgramRow>,
}

/// Rates over a time, observed and extrapolated to all of it when run-time stats were on for
/// only part of it (duty-cycling to bound their cost); and what stats cost while on.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, Type)]
pub struct Rates {
    pub runs_per_sec: f64,
    /// Of one core (100 = one core busy).
    pub cpu_pct: f64,
    /// Share of the time stats were on; 1 when everything was observed.
    pub coverage: f64,
    /// True when the `est_*` values are extrapolated from partial coverage.
    pub estimated: bool,
    pub est_run_cnt: u64,
    pub est_run_time_ns: u64,
    pub est_runs_per_sec: f64,
    pub est_cpu_pct: f64,
    /// What stats cost the observed runs (runs × calibrated cost per run), ns.
    pub stats_overhead_ns: f64,
    /// The same as a share of one core, percent.
    pub stats_overhead_pct: f64,
}

/// A program ranked over a window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Type)]
pub struct TopRow {
    pub series_id: i64,
    pub id: u32,
    pub name: String,
    pub full_name: String,
    pub prog_type: String,
    pub tag: String,
    /// Still loaded.
    pub alive: bool,
    /// The time the program was observed in the window (ns): rates are over it.
    pub span_ns: u64,
    /// Passes in the window; 0 means no data.
    pub samples: u32,
    pub run_cnt: u64,
    pub run_time_ns: u64,
    /// Negative when the program did not run.
    pub avg_ns_per_run: f64,
    pub rates: Rates,
    pub peak_runs_per_sec: u64,
    pub peak_cpu_pct: f64,
    pub map_memory_bytes: u64,
    pub map_memory_own_bytes: u64,
    pub map_memory_shared_bytes: u64,
    /// Resolution the answer came from: `raw`, `1m` or `1h`.
    pub tier: String,
}

/// What a `Top` answer adds up to, over every program that matched its filters (not only the
/// `n` returned).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Type)]
pub struct TopInfo {
    /// Programs that matched.
    pub programs: u64,
    /// The time the daemon observed in the window: the longest any of them was seen (ns).
    pub observed_ns: u64,
    /// What stats cost all of them over that time: ns, and percent of one core.
    pub stats_overhead_ns: f64,
    pub stats_overhead_pct: f64,
}

/// Programs summed by a group they are in (`Groups`): a program held by processes of two
/// groups counts in each, each map once per group.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Type)]
pub struct Group {
    /// The container label, unit or command; empty unless `kind` is `named`.
    pub key: String,
    /// `named`; `none`: loaded programs none of whose holders has one (the host's, or held by
    /// no process); `unloaded`: programs no longer loaded (who held them is not known).
    pub kind: String,
    pub programs: u32,
    pub program_ids: Vec<u32>,
    /// Over the window (extrapolated as `TopRow`'s `est_*` when `estimated`), or since load.
    pub run_cnt: u64,
    pub run_time_ns: u64,
    /// Run time over runs; negative when none ran.
    pub avg_ns_per_run: f64,
    pub runs_per_sec: f64,
    /// Of one core (100 = one core busy).
    pub cpu_pct: f64,
    pub estimated: bool,
    /// Memory of the maps the group's loaded programs use now, each map once.
    pub map_memory_bytes: u64,
}

/// A stored series (one load of one program).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Type)]
pub struct SeriesInfo {
    pub series_id: i64,
    pub boot_seq: i64,
    pub id: u32,
    pub name: String,
    pub full_name: String,
    pub prog_type: String,
    pub tag: String,
    pub alive: bool,
    /// ns since the epoch; 0 when unknown. Its load time when counted from its load on.
    pub first_seen_ns: i64,
    pub last_seen_ns: i64,
    /// Runs it had made when the first pass saw it, which no step of its history holds (it was
    /// loaded before stats were held on, or before the daemon ran); 0 when every run since its
    /// load is in its steps.
    pub runs_before_first_pass: u64,
}

/// One step of a history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Type)]
pub struct HistoryPoint {
    pub start_ns: i64,
    pub end_ns: i64,
    /// The time the step's samples cover (each counts since the pass before it): the step
    /// normally, the whole stall after a late or failed pass; rates are over it. 0: no data.
    pub span_ns: u64,
    /// Passes in the step; 0 means no data, not zero activity.
    pub samples: u32,
    /// Passes taken while stats were unavailable (their zeros may be frozen counters).
    pub frozen: u32,
    pub run_cnt: u64,
    pub run_time_ns: u64,
    /// Cumulative since load at the end of the step (for a name: over all its loads).
    pub cum_run_cnt: u64,
    pub cum_run_time_ns: u64,
    pub avg_ns_per_run: f64,
    pub rates: Rates,
    pub peak_runs_per_sec: u64,
    pub peak_cpu_pct: f64,
}

/// What a history answer covers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Type)]
pub struct HistoryInfo {
    pub series: Vec<SeriesInfo>,
    pub tier: String,
    pub step_ns: u64,
    /// Where to continue (pass as `from_ns`) when the answer was cut at `max_points`; 0 if
    /// complete.
    pub next_from_ns: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Type)]
pub struct MapRow {
    pub id: u32,
    pub name: String,
    pub map_type: String,
    pub key_size: u32,
    pub value_size: u32,
    pub max_entries: u32,
    pub flags: u32,
    pub memlock_bytes: u64,
    /// Live programs using the map.
    pub used_by_programs: u32,
    /// Processes holding it: a map fd, or a program using it.
    pub owners: Vec<Owner>,
    /// Codes of what its memory does not count (`perf_event_array`, `map_of_maps`).
    pub notes: Vec<String>,
}

/// How full one map is, as last counted (`MapUsage`). The daemon counts entries every rescan
/// within a CPU budget, so on a host with many large maps a count can be a few rescans old:
/// `counted_ns` says when it was made.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Type)]
pub struct MapUsage {
    pub id: u32,
    /// Entries it held at `counted_ns`; meaningful when `counted_by` is not empty.
    pub entries: u64,
    pub max_entries: u32,
    /// `entries` as a percentage of `max_entries` (0 when not counted).
    pub fill_pct: f64,
    /// A [`CountedBy`] word, or empty: not counted, and `why` says why.
    pub counted_by: String,
    pub why: String,
    /// Wall time of the count, ns since the epoch; 0 when not counted.
    pub counted_ns: i64,
    /// For a `perf_event_array`: the perf ring buffers its holders have mapped, each process's
    /// once (on the lowest-id such map it holds); 0 for other maps or when not known.
    pub perf_buffer_bytes: u64,
}

impl MapUsage {
    /// The row of map `id` in a `MapUsage` answer.
    pub fn of(usage: &[Self], id: u32) -> Option<&Self> {
        usage.iter().find(|u| u.id == id)
    }

    /// Entries and fill, when counted.
    pub fn counted(&self) -> Option<(u64, f64)> {
        (!self.counted_by.is_empty()).then_some((self.entries, self.fill_pct))
    }
}

/// One map's life in a `MapHistory` answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Type)]
pub struct MapSeriesInfo {
    pub id: u32,
    pub name: String,
    pub map_type: String,
    pub max_entries: u32,
    pub first_seen_ns: i64,
    /// When it was last seen; 0 while it is loaded.
    pub gone_ns: i64,
}

/// What a `MapHistory` answer covers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Type)]
pub struct MapHistoryInfo {
    pub series: Vec<MapSeriesInfo>,
    /// The tier the points come from: `raw` (each rescan), `1m` or `1h`.
    pub tier: String,
    /// Where to continue (pass as `from_ns`) when the answer was cut at `max_points`; 0 if
    /// complete.
    pub next_from_ns: i64,
}

/// A map's values from `time_ns` until its next point: the last of the tier's bucket, and the
/// most entries seen in it. -1: not known (memory the kernel did not report, entries not
/// counted).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Type)]
pub struct MapHistoryPoint {
    pub time_ns: i64,
    /// Index into the info's `series`.
    pub series: u32,
    pub memory_bytes: i64,
    pub entries: i64,
    pub peak_entries: i64,
}

/// Points asked of `MapHistory` when the caller does not say.
pub const DEFAULT_MAP_HISTORY_POINTS: u32 = 5000;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Type)]
pub struct AttachPoint {
    pub link_id: u32,
    pub link_type: String,
    pub attach_type: String,
    pub target: String,
    /// A kprobe link's missed hits as the daemon last read its links; -1 where the kernel
    /// reports none (other links; kernels before 6.7).
    pub missed: i64,
}

/// A remark needed to read a program's numbers: `shared_maps`, `perf_event_array`,
/// `map_of_maps`, `tail_calls`, `pinned_only`, `no_holder`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Type)]
pub struct Note {
    pub code: String,
    pub text: String,
}

/// Everything known of one program.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Type)]
pub struct ProgramDetail {
    pub program: ProgramRow,
    pub created_by_uid: u32,
    pub verified_insns: u32,
    pub jited_size: u32,
    pub xlated_size: u32,
    /// 0 when the program has no BTF.
    pub btf_id: u32,
    pub prog_memlock_bytes: u64,
    pub maps: Vec<MapRow>,
    pub pins: Vec<String>,
    pub attach: Vec<AttachPoint>,
    pub notes: Vec<Note>,
}

/// One version of a program: its loads (series) with one tag, as a comparison sees it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Type)]
pub struct VersionInfo {
    pub tag: String,
    /// Its loads, oldest first.
    pub series: Vec<i64>,
    /// ns since the epoch.
    pub first_seen_ns: i64,
    pub last_seen_ns: i64,
    /// The time its samples cover, ns.
    pub observed_ns: u64,
    pub runs: u64,
    pub run_time_ns: u64,
    /// Steps in which it ran: the samples of the comparison.
    pub steps: u32,
    /// Median of the per-step averages, ns; −1 with no step.
    pub median_ns_per_run: f64,
    pub runs_per_sec: f64,
    /// Of one core.
    pub cpu_pct: f64,
    /// Held by its newest load (now, or when it was unloaded).
    pub map_memory_bytes: u64,
    pub verified_insns: u32,
    pub jited_size: u32,
}

/// Two versions of a program compared.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Type)]
pub struct Comparison {
    pub full_name: String,
    pub prog_type: String,
    pub before: VersionInfo,
    pub after: VersionInfo,
    /// The step of the per-step averages, ns.
    pub step_ns: u64,
    /// Both ran enough to judge; if not, `verdict` says what is missing.
    pub judged: bool,
    /// `after / before` of cost per run (Hodges–Lehmann) and its 95 % interval; 0 if not judged.
    pub ratio: f64,
    pub ratio_low: f64,
    pub ratio_high: f64,
    /// The interval lies beyond ±5 % and 15 ns per run.
    pub significant: bool,
    /// In words, e.g. "sys_enter: new version (tag 1a2b…) 35 % slower per run (95 % CI 30–40 %)".
    pub verdict: String,
}

/// A bucket of a profile's histogram: `count` runs took at most `le_ns` (and more than the
/// bucket before's `le_ns`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Type)]
pub struct ProfileBucket {
    pub le_ns: u64,
    pub count: u64,
}

/// `Profile`: each run of a program timed while it was traced. Quantiles are the upper end of
/// the bucket holding them (buckets are at most 1/16 of their value wide), never past `max_ns`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Type)]
pub struct Profile {
    pub id: u32,
    pub full_name: String,
    pub prog_type: String,
    /// How long it was traced.
    pub seconds: f64,
    pub runs: u64,
    pub mean_ns: f64,
    pub p50_ns: u64,
    pub p90_ns: u64,
    pub p99_ns: u64,
    pub p999_ns: u64,
    pub max_ns: u64,
    /// The buckets that hold runs, shortest first.
    pub buckets: Vec<ProfileBucket>,
    /// What the tracing added to each run, measured on this machine as the profile began.
    pub added_ns_per_run: f64,
    /// What the tracing records of an empty program's runs: its own part in each duration.
    pub floor_ns: u64,
    /// The kernel's `run_cnt` over the same time (it counts only while run-time stats are on).
    pub kernel_runs: u64,
    /// Why it ended: a [`ProfileEnd`].
    pub ended: String,
}

impl Profile {
    pub fn ended(&self) -> Option<ProfileEnd> {
        self.ended.parse().ok()
    }
}

/// Something the daemon concluded, kept (a bounded ring) so a client that was away can catch
/// up: `kind` `version` is a new version compared with the one before (`tag` after
/// `before_tag`; the rest as in [`Comparison`], `text` its verdict).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Type)]
pub struct Event {
    pub time_ns: i64,
    pub kind: String,
    pub program: String,
    pub prog_type: String,
    pub tag: String,
    pub before_tag: String,
    pub judged: bool,
    pub significant: bool,
    pub ratio: f64,
    pub ratio_low: f64,
    pub ratio_high: f64,
    pub text: String,
}

/// An alert of a rule in the configuration (`[[alert]]`): raised when a value stayed above
/// the rule's threshold for its `for`, cleared when it came back to its clear level (or the
/// program was unloaded, or a reload changed the rule).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Type)]
pub struct Alert {
    pub rule: String,
    /// `cpu_pct`, `avg_ns`, `runs_per_sec`, `map_memory`, `total_cpu_pct`, `stats_overhead_pct`,
    /// `map_fill_pct`.
    pub metric: String,
    /// `raised` or `cleared`.
    pub state: String,
    /// 0 for a host-wide rule; for `map_fill_pct`, the map's id.
    pub program_id: u32,
    /// Full name; empty for a host-wide rule; for `map_fill_pct`, the map's name.
    pub program: String,
    /// For `map_fill_pct`, the map's type.
    pub prog_type: String,
    /// The newest value (for a change: the value that made it).
    pub value: f64,
    pub threshold: f64,
    pub clear: f64,
    /// When it was raised, and when this was said; ns since the epoch.
    pub since_ns: i64,
    pub time_ns: i64,
    pub text: String,
}

/// Options and status maps.
pub type Options = HashMap<String, OwnedVariant>;

// The words in the wire types, typed: `None` is a word this client does not know.

impl ProgramRow {
    pub fn note_codes(&self) -> impl Iterator<Item = NoteCode> + '_ {
        self.notes.iter().filter_map(|n| n.parse().ok())
    }
}

impl MapRow {
    pub fn note_codes(&self) -> impl Iterator<Item = NoteCode> + '_ {
        self.notes.iter().filter_map(|n| n.parse().ok())
    }
}

impl Snapshot {
    pub fn memlock(&self) -> Option<MemlockMeaning> {
        self.memlock_meaning.parse().ok()
    }

    pub fn stats(&self) -> Option<StatsState> {
        StatsState::of(&self.stats_state)
    }
}

impl TopRow {
    pub fn tier(&self) -> Option<Tier> {
        self.tier.parse().ok()
    }
}

/// Rates as the numbers crate computes them, on the wire.
impl From<ebpfstat_numbers::Rates> for Rates {
    fn from(r: ebpfstat_numbers::Rates) -> Self {
        Self {
            runs_per_sec: r.runs_per_sec,
            cpu_pct: r.cpu_pct,
            coverage: r.coverage,
            estimated: r.estimated,
            est_run_cnt: r.est_run_cnt,
            est_run_time_ns: r.est_run_time_ns,
            est_runs_per_sec: r.est_runs_per_sec,
            est_cpu_pct: r.est_cpu_pct,
            stats_overhead_ns: r.stats_overhead_ns,
            stats_overhead_pct: r.stats_overhead_pct,
        }
    }
}

impl HistoryInfo {
    pub fn tier(&self) -> Option<Tier> {
        self.tier.parse().ok()
    }
}

impl Alert {
    pub fn metric(&self) -> Option<AlertMetric> {
        self.metric.parse().ok()
    }

    pub fn state(&self) -> Option<AlertState> {
        self.state.parse().ok()
    }
}

/// Client side of `org.ebpfstat.Stats1`.
#[zbus::proxy(
    interface = "org.ebpfstat.Stats1",
    default_service = "org.ebpfstat.Stats1",
    default_path = "/org/ebpfstat/Stats1"
)]
pub trait Stats1 {
    /// The latest sampling pass. Options filter the programs: `name` (a glob), `type`,
    /// `owner` (a pid or a command), `unit`, and `all` (the daemon's own probe too); with
    /// `sort_by` (s: a [`SortKey`]) the programs come ranked by their values since load, and
    /// `n` (u, at most [`MAX_TOP_N`]) keeps the first `n`.
    fn snapshot(&self, options: Options) -> zbus::Result<Snapshot>;

    /// The top `n` programs over `[from_ns, to_ns)` sorted by `sort_by` (`runtime`, `runs`,
    /// `avg`, `cpu`, `mapmem`), and what every program that matched adds up to. Options filter
    /// as `snapshot`'s do.
    fn top(
        &self,
        from_ns: i64,
        to_ns: i64,
        sort_by: &str,
        n: u32,
        options: Options,
    ) -> zbus::Result<(TopInfo, Vec<TopRow>)>;

    /// Programs summed by `group_by` (`container`, `unit` or `owner`, the holding command)
    /// over `[from_ns, to_ns)`, or since load with option `since_load` (b); the first `n`
    /// groups by `sort_by`. Options filter as `top`'s.
    fn groups(
        &self,
        group_by: &str,
        from_ns: i64,
        to_ns: i64,
        sort_by: &str,
        n: u32,
        options: Options,
    ) -> zbus::Result<(TopInfo, Vec<Group>)>;

    /// History of `program` (a kernel id in this boot, `series:<id>`, or a name: every load of
    /// it) over `[from_ns, to_ns)` at `step_ns`. Options: `tier` (s: `raw`, `1m`, `1h`),
    /// `max_points` (u, default 2000, at most 20000; `next_from_ns` continues a cut answer).
    fn history(
        &self,
        program: &str,
        from_ns: i64,
        to_ns: i64,
        step_ns: u64,
        options: Options,
    ) -> zbus::Result<(HistoryInfo, Vec<HistoryPoint>)>;

    /// Stored history as OpenMetrics text with time stamps, for backfill into Prometheus
    /// (`promtool tsdb create-blocks-from openmetrics`) or VictoriaMetrics: the runs and run
    /// time counters (cumulative since load) of every stored program over `[from_ns, to_ns)`
    /// at `step_ns`, a page per call. Options filter as `snapshot`'s do; `max_points` (u,
    /// default 2000, at most 20000) bounds a page; `cursor` (s) continues from the `next` a
    /// page returned. An empty `next`: the export is complete (its text ends with `# EOF`).
    fn export(
        &self,
        from_ns: i64,
        to_ns: i64,
        step_ns: u64,
        options: Options,
    ) -> zbus::Result<(String, String)>;

    /// Two versions of `program` (a name; its loads with one tag are a version) compared: cost
    /// per run with a 95 % interval, runs/s, CPU %, map memory, code size. `before` and `after`
    /// are tags (a unique start of one), `series:<id>`, or empty: the two newest versions.
    /// Options: `min_runs` (u) and `min_seconds` (u) each version needs to be judged; each
    /// left out is the daemon's `compare_min_runs` or `compare_min_time`, which its own
    /// comparisons (`Events`, `VersionCompared`) use. `before` and `after` holding the same
    /// load is `InvalidArgument`.
    fn compare(
        &self,
        program: &str,
        before: &str,
        after: &str,
        options: Options,
    ) -> zbus::Result<Comparison>;

    /// Times each run of a loaded program (`program` as `Program` takes it) for `duration_ns`
    /// ([`MIN_PROFILE_NS`] to [`MAX_PROFILE_NS`]) with fentry/fexit, then detaches: sooner
    /// when the caller goes away or the tracing has cost the stats budget. One profile per
    /// program at a time, [`MAX_PROFILES`] in all (`Busy`). `NotSupported` when the program has
    /// no BTF or the kernel cannot trace programs. No options yet.
    fn profile(&self, program: &str, duration_ns: u64, options: Options) -> zbus::Result<Profile>;

    /// Events kept since `since_ns` (ns since the epoch), oldest first: at most the newest
    /// 1000 the daemon keeps. No options yet.
    fn events(&self, since_ns: i64, options: Options) -> zbus::Result<Vec<Event>>;

    /// A new version of a program was compared with the one before, once it had run enough
    /// (`compare_min_runs` over `compare_min_time`): kept as an event too.
    #[zbus(signal)]
    fn version_compared(&self, comparison: Comparison) -> zbus::Result<()>;

    /// The alerts raised now, with their newest values, and the changes (raised, cleared) kept
    /// since `since_ns` (ns since the epoch; at most the newest 1000 the daemon keeps), oldest
    /// first. No options yet.
    fn alerts(&self, since_ns: i64, options: Options) -> zbus::Result<(Vec<Alert>, Vec<Alert>)>;

    /// An alert was raised or cleared: at most 100 a pass (the rest are counted in the log and
    /// listed by `Alerts`); a rule raising again soon after clearing waits twice as long each
    /// time.
    #[zbus(signal)]
    fn alert_changed(&self, alert: Alert) -> zbus::Result<()>;

    /// Metadata, maps, owners, pins, attach points and notes of a loaded program.
    fn program(&self, program: &str) -> zbus::Result<ProgramDetail>;

    /// Every map on the host; options filter as `snapshot`'s do (`name` and `type` are the
    /// map's, `owner` and `unit` its holders').
    fn maps(&self, options: Options) -> zbus::Result<Vec<MapRow>>;

    /// How full each map is: entries as last counted, max entries, fill (every map on the host;
    /// options filter as `maps`' do). Added after `Maps`, so `MapRow` stays as it was.
    fn map_usage(&self, options: Options) -> zbus::Result<Vec<MapUsage>>;

    /// Maps over `[from_ns, to_ns]`: `map` is an id (the newest map with it) or a name (each
    /// map of it, the newest 50). Points come from the finest tier that keeps `from_ns`: a point
    /// where a map's memory or entries changed, and its value at `from_ns`. Options:
    /// `max_points` (u, default 5000).
    fn map_history(
        &self,
        map: &str,
        from_ns: i64,
        to_ns: i64,
        options: Options,
    ) -> zbus::Result<(MapHistoryInfo, Vec<MapHistoryPoint>)>;

    /// Daemon and store health: the keys of [`Status`] (docs/dbus.md); read it with
    /// `Status::from_map`.
    fn status(&self) -> zbus::Result<Options>;

    /// Measures again what run-time stats cost per program run; returns (ns per run, spread ns,
    /// source: `measured` or why a default is used).
    fn calibrate(&self) -> zbus::Result<(f64, f64, String)>;

    // Properties: `const` ones never change while the daemon runs; the others but one are
    // signalled with `PropertiesChanged` when they change, so a caching proxy stays current;
    // `StatsOverheadPct` changes every pass and is never signalled (not cached: each read asks
    // the daemon).
    #[zbus(property(emits_changed_signal = "const"))]
    fn version(&self) -> zbus::Result<String>;
    #[zbus(property(emits_changed_signal = "const"))]
    fn kernel(&self) -> zbus::Result<String>;
    /// The stats state of the newest pass (`unknown: no pass yet` before the first).
    #[zbus(property)]
    fn stats_state(&self) -> zbus::Result<String>;
    #[zbus(property(emits_changed_signal = "const"))]
    fn memlock_meaning(&self) -> zbus::Result<String>;
    /// Signalled when a reload (SIGHUP) changes it, as are `RetentionNs` and `CapBytes`.
    #[zbus(property)]
    fn interval_ns(&self) -> zbus::Result<u64>;
    /// Maximum ages of the raw, 1-minute and 1-hour tiers, ns.
    #[zbus(property)]
    fn retention_ns(&self) -> zbus::Result<(u64, u64, u64)>;
    #[zbus(property)]
    fn cap_bytes(&self) -> zbus::Result<u64>;
    /// Size of the database file after the last flush.
    #[zbus(property)]
    fn database_bytes(&self) -> zbus::Result<u64>;
    /// What stats cost the host over the last interval, percent of one core.
    #[zbus(property(emits_changed_signal = "false"))]
    fn stats_overhead_pct(&self) -> zbus::Result<f64>;
}

/// The error name and message of a failed call, when the daemon sent a named error.
pub fn error_name(e: &zbus::Error) -> Option<(&str, &str)> {
    match e {
        zbus::Error::MethodError(name, desc, _) => {
            Some((name.as_str(), desc.as_deref().unwrap_or("")))
        }
        _ => None,
    }
}
