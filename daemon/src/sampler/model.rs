//! The plain values one pass produces. Storage, the API and presentation consume these; the
//! sampler keeps no other shared state.

use std::sync::Arc;
use std::time::SystemTime;

use serde::{Serialize, Serializer};

use super::host::KernelInfo;
use super::links::AttachPoint;
use super::maps::{MapMemory, MapSample};
use super::metrics::{Counters, Interval, SinceLoad};
use super::owners::Owner;
use super::stats::StatsState;

/// Metadata fixed for the life of a loaded program, read once when it is first seen.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProgramMeta {
    pub id: u32,
    /// The kernel's name (at most 15 bytes).
    pub name: String,
    /// The main function's name from BTF when the kernel's name is cut short, else `name`.
    pub full_name: String,
    #[serde(rename = "type")]
    pub prog_type: &'static str,
    /// Hex SHA of the instructions, as bpftool prints it.
    pub tag: String,
    /// `CLOCK_BOOTTIME` nanoseconds at load: with the boot id and the id, the series key.
    pub load_boottime_ns: u64,
    #[serde(serialize_with = "rfc3339")]
    pub load_time: SystemTime,
    pub created_by_uid: u32,
    pub verified_insns: u32,
    pub jited_size: u32,
    pub xlated_size: u32,
    pub btf_id: Option<u32>,
    /// The program's own `memlock` (instructions, JIT image), apart from its maps.
    pub prog_memlock_bytes: Option<u64>,
}

impl ProgramMeta {
    /// The name to show.
    pub fn display_name(&self) -> &str {
        &self.full_name
    }
}

pub fn rfc3339<S: Serializer>(t: &SystemTime, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(&humantime::format_rfc3339_nanos(*t))
}

/// A remark a reader needs to interpret a program's or map's numbers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Note {
    /// Stable code for machines and for footnotes (`shared_maps`, `perf_event_array`, ...).
    pub code: &'static str,
    pub text: String,
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
    #[serde(flatten)]
    pub context: Arc<ProgramContext>,
    #[serde(flatten)]
    pub since_load: SinceLoad,
    /// Absent on the pass a program is first seen: that pass is its baseline.
    #[serde(flatten)]
    pub interval: Option<Interval>,
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
    pub stats_cost: Arc<crate::observer::StatsCost>,
    /// Share of one core that stats cost the host over the interval (runs × cost / time).
    pub stats_overhead: Option<f64>,
    /// Program runs over the interval, all programs together: what `stats_overhead` counts,
    /// kept for the duty cycle so it is summed once.
    #[serde(skip)]
    pub runs: u64,
    /// Whether another process was last seen holding stats on too (None: not checked yet).
    pub stats_other_holder: Option<bool>,
    pub kernel: Arc<KernelInfo>,
    pub online_cpus: u32,
    pub programs: Vec<ProgramSample>,
    pub maps: Arc<[Arc<MapSample>]>,
    pub owners: Arc<[OwnerSummary]>,
    /// Failures that did not stop the pass (a program we could not read, a scan that failed).
    pub errors: Vec<String>,
}
