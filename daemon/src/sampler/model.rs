//! The plain values one pass produces. Storage, the API and presentation consume these; the
//! sampler keeps no other shared state.

use std::sync::Arc;
use std::time::SystemTime;

use ebpfstat_store::model::{Counters, MapMemory, ProgramMeta, rfc3339};
use serde::{Serialize, Serializer};

use super::host::KernelInfo;
use super::links::AttachPoint;
use super::maps::MapSample;
use super::owners::Owner;
use super::stats::{StatsCost, StatsState};
use ebpfstat_dbus::NoteCode;
use ebpfstat_numbers::rank::Ranked;
use ebpfstat_numbers::{Interval, Share, SinceLoad};

/// A remark a reader needs to interpret a program's or map's numbers. Kept as its code and the
/// maps it is about, and worded when asked: thousands of programs hold no copies of sentences.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Note {
    /// Stable code for machines and for footnotes (`shared_maps`, `perf_event_array`, ...).
    pub code: NoteCode,
    /// The maps the note is about (none for notes about holders).
    pub maps: Box<[u32]>,
}

impl Note {
    /// The note in words; `pins` are the program's (named by `pinned_only`).
    pub fn text(&self, pins: &[String]) -> String {
        self.code.detail(&self.maps, pins)
    }
}

/// What changes only when programs, maps or holders change: rebuilt after a rescan or when a
/// program's maps change, shared by every pass until then.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ProgramContext {
    pub map_ids: Vec<u32>,
    #[serde(flatten)]
    pub map_memory: MapMemory,
    /// Processes holding the program (program fd or link fd).
    pub owners: Vec<Arc<Owner>>,
    /// bpffs paths pinning the program or a link to it.
    pub pins: Vec<String>,
    pub attach: Vec<AttachPoint>,
    pub notes: Vec<Note>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ProgramSample {
    #[serde(flatten)]
    pub meta: Arc<ProgramMeta>,
    #[serde(flatten)]
    pub counters: Counters,
    pub recursion_misses: u64,
    /// Its kprobe links' missed hits, read this pass (`None`: no link of it reports any).
    pub probe_misses: Option<u64>,
    /// Runs missed per second over the last interval: recursion and kprobe misses.
    #[serde(skip)]
    pub missed_per_sec: Option<f64>,
    #[serde(flatten)]
    pub context: Arc<ProgramContext>,
    #[serde(flatten)]
    pub since_load: SinceLoad,
    /// Absent on the pass a program is first seen: that pass is its baseline.
    #[serde(flatten)]
    pub interval: Option<Interval>,
}

impl ProgramSample {
    /// What the program is ranked on since it was loaded: its counters, average and share of
    /// one core since load, and the map memory it holds.
    pub fn ranked_since_load(&self) -> Ranked {
        Ranked {
            run_time_ns: self.counters.run_time_ns as f64,
            runs: self.counters.run_cnt as f64,
            observed_runs: self.counters.run_cnt,
            avg_ns_per_run: self.since_load.avg_ns_per_run,
            cpu_pct: self.since_load.cpu_pct_since_load.unwrap_or(0.0),
            map_memory: Some(self.context.map_memory.total),
        }
    }
}

/// Map memory of one process, each map counted once however many of its programs use it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OwnerSummary {
    #[serde(flatten)]
    pub owner: Arc<Owner>,
    pub program_ids: Vec<u32>,
    pub map_ids: Vec<u32>,
    pub map_memory_bytes: u64,
}

/// One sampling pass over the host.
#[derive(Debug, Clone, Serialize)]
pub struct Pass {
    pub seq: u64,
    pub boot_id: Arc<str>,
    #[serde(serialize_with = "rfc3339")]
    pub time: SystemTime,
    pub monotonic_ns: u64,
    pub boottime_ns: u64,
    /// Measured time since the previous pass; absent on the first.
    pub elapsed_ns: Option<u64>,
    pub stats_state: StatsState,
    /// Share of the interval before this pass during which stats were on (1 unless duty-cycled).
    pub coverage: f64,
    /// What stats cost each program run, as calibrated.
    pub stats_cost: Arc<StatsCost>,
    /// Share of one core that stats cost the host over the interval (runs × cost / time).
    #[serde(rename = "stats_overhead_pct", serialize_with = "percent")]
    pub stats_overhead: Option<Share>,
    /// Program runs over the interval, all programs together: what `stats_overhead` counts,
    /// kept for the duty cycle so it is summed once.
    #[serde(skip)]
    pub runs: u64,
    /// Whether another process was last seen holding stats on too (None: not checked yet).
    pub stats_other_holder: Option<bool>,
    pub kernel: Arc<KernelInfo>,
    pub online_cpus: u32,
    /// Written as the client's rows (`api::sample`).
    #[serde(skip)]
    pub programs: Vec<ProgramSample>,
    pub maps: Arc<[Arc<MapSample>]>,
    pub owners: Arc<[OwnerSummary]>,
    /// Failures met during the pass (a program we could not read, a scan that failed).
    pub errors: Vec<String>,
    /// Programs that exist but could not be read.
    pub unread: u32,
    /// Their ids, ascending: programs missing from `programs` but not here were unloaded.
    #[serde(skip)]
    pub unread_ids: Box<[u32]>,
    /// Set when the pass cannot be trusted (the walk over programs stopped, or the process ran
    /// out of descriptors or memory): it is counted as failed and not stored, so the next pass
    /// that reads every program closes the whole time as one interval.
    pub failure: Option<String>,
}

impl Pass {
    /// Whether every program that exists was read: programs missing from it were unloaded.
    pub fn read_all(&self) -> bool {
        self.unread == 0 && self.failure.is_none()
    }
}

/// A share of one core as `list` writes it, in percent (the key says `_pct`).
fn percent<S: Serializer>(share: &Option<Share>, s: S) -> Result<S::Ok, S::Error> {
    share.map(Share::percent).serialize(s)
}
