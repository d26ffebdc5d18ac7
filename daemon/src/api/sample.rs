//! `ebpfstatd sample --json`: a pass with its programs as the client's rows (the same keys as
//! `ebpfstatctl --json list`, docs/json.md), and beside them what only the sampler knows.

use ebpfstat_dbus::json::{CodeJson, ProgramJson};
use ebpfstat_numbers::WallNs;
use serde::Serialize;

use super::convert;
use crate::sampler::links::AttachPoint;
use crate::sampler::{Note, Pass, ProgramSample};

/// One pass: the sampler's fields, the names `list` gives the same values, and the programs.
#[derive(Debug, Serialize)]
pub struct PassJson<'a> {
    #[serde(flatten)]
    pub pass: &'a Pass,
    pub time_ns: i64,
    pub memlock_meaning: &'static str,
    pub stats_cost_ns: f64,
    pub programs: Vec<SampledJson<'a>>,
}

/// A program: the client's row over the last interval (no series: nothing is stored), and
/// what the sampler read of it.
#[derive(Debug, Serialize)]
pub struct SampledJson<'a> {
    #[serde(flatten)]
    pub row: ProgramJson,
    pub load_boottime_ns: u64,
    #[serde(flatten)]
    pub code: CodeJson,
    pub recursion_misses: u64,
    /// Its kprobe links' missed hits; `null` when none of its links reports any.
    pub probe_misses: Option<u64>,
    /// Of every online core, percent; `null` on a program's first pass.
    pub cpu_pct_all_cores: Option<f64>,
    pub map_ids: &'a [u32],
    pub pins: &'a [String],
    pub attach: &'a [AttachPoint],
    /// The notes with the maps each is about.
    pub note_maps: &'a [Note],
}

impl<'a> PassJson<'a> {
    pub fn of(pass: &'a Pass) -> Self {
        Self {
            pass,
            time_ns: WallNs::of(pass.time).ns(),
            memlock_meaning: pass.kernel.memlock.as_str(),
            stats_cost_ns: pass.stats_cost.ns_per_run,
            programs: pass
                .programs
                .iter()
                .map(|p| sampled(p, pass.coverage))
                .collect(),
        }
    }
}

fn sampled(p: &ProgramSample, coverage: f64) -> SampledJson<'_> {
    let (meta, ctx) = (&p.meta, &p.context);
    SampledJson {
        row: ProgramJson::interval(&convert::program_row(p, 0), coverage),
        load_boottime_ns: meta.load_boottime_ns,
        code: CodeJson {
            created_by_uid: meta.created_by_uid,
            verified_insns: meta.verified_insns,
            jited_size: meta.jited_size,
            xlated_size: meta.xlated_size,
            btf_id: meta.btf_id,
            prog_memlock_bytes: meta.prog_memlock_bytes,
        },
        recursion_misses: p.recursion_misses,
        probe_misses: p.probe_misses,
        cpu_pct_all_cores: p.interval.map(|i| i.cpu_pct_all_cores),
        map_ids: &ctx.map_ids,
        pins: &ctx.pins,
        attach: &ctx.attach,
        note_maps: &ctx.notes,
    }
}
