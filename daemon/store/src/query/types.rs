//! What queries answer: series, rates, history points, top rows.

use std::time::SystemTime;

use serde::Serialize;

use crate::codec::Bucket;
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
    /// Every load of a program with this name (full name), type and tag: reloads included.
    Identity {
        name: String,
        prog_type: String,
        tag: String,
    },
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
    #[serde(flatten)]
    pub map_memory: MapMemory,
    #[serde(skip)]
    pub(crate) life: Life,
    #[serde(skip)]
    pub(crate) first_bt_ns: u64,
    #[serde(skip)]
    pub(crate) end_bt_ns: Option<u64>,
}

/// Rates of a bucket over its time: as observed, and extrapolated to the whole time when stats
/// were on for only part of it (duty-cycling); and what stats cost while on.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Rates {
    pub runs_per_sec: f64,
    /// Of one core (100 = one core busy).
    pub cpu_pct: f64,
    /// Share of the time stats were on (1: everything was observed).
    pub coverage: f64,
    /// True when the `est_*` values are extrapolated from partial coverage.
    pub estimated: bool,
    pub est_run_cnt: u64,
    pub est_run_time_ns: u64,
    pub est_runs_per_sec: f64,
    pub est_cpu_pct: f64,
    /// What stats cost the observed runs: runs × calibrated cost per run.
    pub stats_overhead_ns: f64,
    /// The same as a share of one core over the time, percent.
    pub stats_overhead_pct: f64,
}

/// A non-negative float rounded to a count (`as` saturates; NaN is 0).
#[expect(
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss,
    reason = "float to integer `as` saturates, which is what a count wants"
)]
fn round_count(v: f64) -> u64 {
    v.round() as u64
}

impl Rates {
    pub(crate) fn of(b: &Bucket, secs: f64, stats_overhead_ns: f64) -> Self {
        let per_sec = |v: f64| if secs > 0.0 { v / secs } else { 0.0 };
        let coverage = b.coverage();
        let scale = if coverage > 0.0 { 1.0 / coverage } else { 0.0 };
        Self {
            runs_per_sec: per_sec(b.cnt as f64),
            cpu_pct: per_sec(b.rt as f64) / 1e7,
            coverage,
            estimated: coverage < 0.999,
            est_run_cnt: round_count(b.cnt as f64 * scale),
            est_run_time_ns: round_count(b.rt as f64 * scale),
            est_runs_per_sec: per_sec(b.cnt as f64 * scale),
            est_cpu_pct: per_sec(b.rt as f64 * scale) / 1e7,
            stats_overhead_ns,
            stats_overhead_pct: per_sec(stats_overhead_ns) / 1e7,
        }
    }
}

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

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SortKey {
    RunTime,
    Runs,
    /// Average cost per run, among programs with at least `min_runs` runs in the window (a
    /// handful of runs says little); the others rank last.
    Avg {
        min_runs: u64,
    },
    Cpu,
    MapMem,
}

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
