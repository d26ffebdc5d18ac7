//! What queries answer: series, rates, history points, top rows.

use std::time::SystemTime;

use ebpfstat_numbers::rank::Ranked;
use ebpfstat_numbers::{Overall, WallNs};
use serde::Serialize;

use crate::fold::Life;
use crate::model::{Counters, MapMemory, opt_rfc3339, rfc3339};
use crate::tier::Tier;

/// Which program(s) a history is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProgramRef {
    /// One stored series (one load of one program).
    Series(i64),
    /// The program with this kernel id in the current boot (the newest series with it).
    ProgramId(u32),
    /// Every load of one version of a program: this name (full name), type and tag, reloads
    /// of the same code included.
    Identity {
        name: String,
        prog_type: String,
        tag: String,
    },
    /// Every load of a program with this name (full name) and type, whatever its code: each
    /// version, each reload, loads running side by side. What a name means to a person.
    Name { name: String, prog_type: String },
}

/// A stored series and what is known of it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SeriesRow {
    pub series_id: i64,
    pub boot_seq: i64,
    pub prog_id: u32,
    pub name: String,
    pub full_name: String,
    #[serde(rename = "type")]
    pub prog_type: String,
    pub tag: String,
    /// The code's size as the verifier and the JIT saw it (one version's loads share them).
    pub verified_insns: u32,
    pub jited_size: u32,
    pub alive: bool,
    #[serde(serialize_with = "opt_rfc3339")]
    pub first_seen: Option<SystemTime>,
    #[serde(serialize_with = "opt_rfc3339")]
    pub last_seen: Option<SystemTime>,
    /// Cumulative counters at the latest point known (now, or when it was unloaded).
    pub total: Counters,
    /// Cumulative counters when it was first seen: what it ran before the first pass that saw
    /// it, in none of its history's steps (zero when counted from its load on, see
    /// `ProgramMeta::counted_from_load`: those runs are its first interval's).
    #[serde(skip)]
    pub base: Counters,
    #[serde(flatten)]
    pub map_memory: MapMemory,
    #[serde(skip)]
    pub(crate) life: Life,
    #[serde(skip)]
    pub(crate) first_bt_ns: u64,
    #[serde(skip)]
    pub(crate) end_bt_ns: Option<u64>,
}

impl SeriesRow {
    /// When first seen, then its id: a key of `ebpfstat_numbers::order`.
    pub fn first_seen_key(&self) -> ebpfstat_numbers::order::Key {
        let first = self.first_seen.map_or(i64::MIN, |t| WallNs::of(t).ns());
        (first, self.series_id)
    }
}

pub use ebpfstat_numbers::Rates;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HistoryPoint {
    #[serde(serialize_with = "rfc3339")]
    pub start: SystemTime,
    #[serde(serialize_with = "rfc3339")]
    pub end: SystemTime,
    /// The time the step's samples cover: each sample counts what happened since the pass
    /// before it. The step's width normally; the whole stall when a pass came late or passes
    /// failed (rates are over this time); 0 with no samples.
    pub span_ns: u64,
    /// Samples (passes) in the step; 0 means no data, not zero activity.
    pub samples: u32,
    /// Samples taken while stats were unavailable (their zeros may be frozen counters).
    pub frozen: u32,
    pub run_cnt: u64,
    pub run_time_ns: u64,
    /// Cumulative since load at the end of the step (for an identity: over its loads).
    pub cum_run_cnt: u64,
    pub cum_run_time_ns: u64,
    pub avg_ns_per_run: Option<f64>,
    #[serde(flatten)]
    pub rates: Rates,
    pub peak_runs_per_sec: u64,
    pub peak_cpu_pct: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct History {
    pub series: Vec<SeriesRow>,
    pub tier: Tier,
    pub step_ns: u64,
    pub points: Vec<HistoryPoint>,
}

pub use ebpfstat_numbers::SortKey;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TopRow {
    #[serde(flatten)]
    pub series: SeriesRow,
    pub tier: Tier,
    /// The time the program was observed in the window: from its first sample there (or its
    /// load) to its last (or its unload); its rates are over this time, as a history point's.
    pub span_ns: u64,
    pub samples: u32,
    pub run_cnt: u64,
    pub run_time_ns: u64,
    pub avg_ns_per_run: Option<f64>,
    #[serde(flatten)]
    pub rates: Rates,
    pub peak_runs_per_sec: u64,
    pub peak_cpu_pct: f64,
}

/// A window's programs ranked: the first `n` and what all of them add up to.
#[derive(Debug, Clone, PartialEq)]
pub struct Ranking {
    pub overall: Overall,
    pub rows: Vec<TopRow>,
}

impl TopRow {
    /// What the row is ranked on: values extrapolated to the whole window, so programs seen
    /// under different duty cycles compare fairly; map memory held now.
    pub fn ranked(&self) -> Ranked {
        Ranked {
            run_time_ns: self.rates.est_run_time_ns as f64,
            runs: self.rates.est_run_cnt as f64,
            observed_runs: self.run_cnt,
            avg_ns_per_run: self.avg_ns_per_run,
            cpu_pct: self.rates.est_cpu_pct,
            map_memory: self.series.alive.then_some(self.series.map_memory.total),
        }
    }
}
