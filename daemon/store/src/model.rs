//! What one sampling pass hands to storage, as plain values defined here once: counters,
//! program metadata, map memory, the stats state and the tick's clocks. The daemon builds them
//! from its sampler's passes; tests and benchmarks build them with a simulated clock.

use std::sync::Arc;
use std::time::SystemTime;

use serde::{Serialize, Serializer};

pub use ebpfstat_numbers::Counters;

/// Program map memory, in Inspektor Gadget's sense (the sum over its maps), split by sharing.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct MapMemory {
    #[serde(rename = "map_memory_bytes")]
    pub total: u64,
    /// Maps used by this program alone.
    #[serde(rename = "map_memory_own_bytes")]
    pub own: u64,
    /// Maps other live programs use too: counted again in each of them.
    #[serde(rename = "map_memory_shared_bytes")]
    pub shared: u64,
}

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
    /// Its counters were counted from its load on while the sampler watched: stats were held
    /// on since before it was loaded, and it was loaded after the pass before the one that
    /// first saw it. Its first reading is then activity in that pass's interval, not a
    /// baseline (runs made before the first pass that saw it are not lost).
    #[serde(skip)]
    pub counted_from_load: bool,
}

impl ProgramMeta {
    /// The name to show.
    pub fn display_name(&self) -> &str {
        &self.full_name
    }
}

/// A time as RFC 3339 with nanoseconds, for serde.
pub fn rfc3339<S: Serializer>(t: &SystemTime, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(&humantime::format_rfc3339_nanos(*t))
}

/// Optional times as RFC 3339 (absent: null).
pub fn opt_rfc3339<S: Serializer>(t: &Option<SystemTime>, s: S) -> Result<S::Ok, S::Error> {
    match t {
        Some(t) => rfc3339(t, s),
        None => s.serialize_none(),
    }
}

/// Stats state of a tick, as stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum StatsCode {
    Enabled = 0,
    EnabledBySysctl = 1,
    Unavailable = 2,
    DutyCycled = 3,
    EnabledByOther = 4,
}

impl StatsCode {
    /// How the service status line names the state.
    pub fn label(self) -> &'static str {
        match self {
            Self::Enabled => "enabled",
            Self::EnabledBySysctl => "enabled by sysctl",
            Self::Unavailable => "UNAVAILABLE",
            Self::DutyCycled => "duty-cycled",
            Self::EnabledByOther => "enabled by another holder",
        }
    }
}

/// What the store needs of one program in one pass. Its metadata is the tick's `metas` entry
/// at the same index.
#[derive(Debug, Clone, Copy)]
pub struct ProgramTick {
    pub id: u32,
    pub load_boottime_ns: u64,
    pub counters: Counters,
    pub map_memory: MapMemory,
}

/// What the store needs of one pass.
#[derive(Debug, Clone)]
pub struct Tick {
    pub boot_id: Arc<str>,
    pub boottime_ns: u64,
    pub wall: SystemTime,
    pub stats: StatsCode,
    /// False when the pass could not read every program: missing programs are then not ended.
    pub complete: bool,
    /// Share of the interval with stats on (duty-cycling), 0..=1.
    pub coverage: f64,
    /// What stats cost each program run, ns (calibrated).
    pub stats_cost_ns: f64,
    /// One reading per program the pass read.
    pub programs: Vec<ProgramTick>,
    /// Their metadata, index for index, shared between ticks while the same programs are read:
    /// a pass of an unchanged host hands over one reference, not one per program (a reference
    /// counted per program per pass on two threads cost a cache miss each).
    pub metas: Arc<Vec<Arc<ProgramMeta>>>,
}

impl Tick {
    /// The metadata of `programs[index]`; `None` if `metas` does not line up with it.
    pub fn meta_of(&self, index: usize) -> Option<&Arc<ProgramMeta>> {
        let p = self.programs.get(index)?;
        self.metas
            .get(index)
            .filter(|m| m.id == p.id && m.load_boottime_ns == p.load_boottime_ns)
    }

    /// Adds a program's reading with its metadata.
    pub fn push_program(
        &mut self,
        meta: Arc<ProgramMeta>,
        counters: Counters,
        map_memory: MapMemory,
    ) {
        self.programs.push(ProgramTick {
            id: meta.id,
            load_boottime_ns: meta.load_boottime_ns,
            counters,
            map_memory,
        });
        Arc::make_mut(&mut self.metas).push(meta);
    }

    /// Removes program `index` and its metadata.
    pub fn remove_program(&mut self, index: usize) {
        if index < self.programs.len() {
            self.programs.remove(index);
        }
        let metas = Arc::make_mut(&mut self.metas);
        if index < metas.len() {
            metas.remove(index);
        }
    }

    /// Removes every program.
    pub fn clear_programs(&mut self) {
        self.programs.clear();
        Arc::make_mut(&mut self.metas).clear();
    }
}
