//! From the sampler's and the store's values to the wire types of the D-Bus API.

use ebpfstat_dbus as wire;
use ebpfstat_numbers::{Overall, WallNs, rates};
use ebpfstat_store::{self as store, AlertRecord, History, SeriesRow, TopRow};

use crate::compare;
use crate::sampler::entries::Entries;
use crate::sampler::maps::{self, MapSample};
use crate::sampler::owners::Owner;
use crate::sampler::{Pass, ProgramSample};

/// A store's tier as the API names it.
pub fn tier(t: store::Tier) -> wire::Tier {
    match t {
        store::Tier::Raw => wire::Tier::Raw,
        store::Tier::Min1 => wire::Tier::Min1,
        store::Tier::Hour1 => wire::Tier::Hour1,
    }
}

/// The store's tier the API names.
pub fn store_tier(t: wire::Tier) -> store::Tier {
    match t {
        wire::Tier::Raw => store::Tier::Raw,
        wire::Tier::Min1 => store::Tier::Min1,
        wire::Tier::Hour1 => store::Tier::Hour1,
    }
}

pub fn program_row(p: &ProgramSample, series_id: i64) -> wire::ProgramRow {
    let (interval_ns, dcnt, drt, rps, cpu, avg) =
        p.interval.map_or((0, 0, 0, 0.0, 0.0, -1.0), |i| {
            (
                i.elapsed_ns,
                i.delta_run_cnt,
                i.delta_run_time_ns,
                i.runs_per_sec,
                i.cpu_pct,
                i.avg_ns_per_run.unwrap_or(-1.0),
            )
        });
    let ctx = &p.context;
    wire::ProgramRow {
        series_id,
        id: p.meta.id,
        name: p.meta.name.clone(),
        full_name: p.meta.full_name.clone(),
        prog_type: p.meta.prog_type.to_string(),
        tag: p.meta.tag.clone(),
        load_time_ns: WallNs::of(p.meta.load_time).ns(),
        run_cnt: p.counters.run_cnt,
        run_time_ns: p.counters.run_time_ns,
        interval_ns,
        delta_run_cnt: dcnt,
        delta_run_time_ns: drt,
        runs_per_sec: rps,
        cpu_pct: cpu,
        avg_ns_per_run: avg,
        map_memory_bytes: ctx.map_memory.total,
        map_memory_own_bytes: ctx.map_memory.own,
        map_memory_shared_bytes: ctx.map_memory.shared,
        owners: ctx.owners.iter().map(|o| owner(o)).collect(),
        notes: ctx
            .notes
            .iter()
            .map(|n| n.code.as_str().to_owned())
            .collect(),
        stats_overhead_ns: p.interval.map_or(0.0, |i| i.stats_overhead_ns),
        avg_ns_per_run_since_load: p.since_load.avg_ns_per_run.unwrap_or(-1.0),
        runs_per_sec_since_load: p.since_load.runs_per_sec.unwrap_or(0.0),
        cpu_pct_since_load: p.since_load.cpu_pct_since_load.unwrap_or(0.0),
    }
}

/// What a ranking adds up to, on the wire.
pub fn top_info(o: &Overall) -> wire::TopInfo {
    wire::TopInfo {
        programs: o.programs,
        observed_ns: o.observed_ns,
        stats_overhead_ns: o.stats_overhead_ns,
        stats_overhead_pct: o.stats_overhead_pct,
    }
}

pub fn rates(r: &store::Rates) -> wire::Rates {
    wire::Rates::from(*r)
}

/// The pass with the programs `shown` (pass indexes) and their series (0 on the wire: none);
/// `stats_state` is the state as every view shows it.
pub fn snapshot(
    pass: &Pass,
    shown: &[(usize, Option<i64>)],
    stats_state: String,
) -> wire::Snapshot {
    wire::Snapshot {
        time_ns: WallNs::of(pass.time).ns(),
        stats_state,
        memlock_meaning: pass.kernel.memlock.as_str().to_owned(),
        online_cpus: pass.online_cpus,
        coverage: pass.coverage,
        stats_cost_ns: pass.stats_cost.ns_per_run,
        stats_overhead_pct: pass.stats_overhead.unwrap_or_default().percent(),
        programs: shown
            .iter()
            .filter_map(|&(i, id)| Some(program_row(pass.programs.get(i)?, id.unwrap_or(0))))
            .collect(),
    }
}

fn owner(o: &Owner) -> wire::Owner {
    wire::Owner {
        pid: o.pid,
        comm: o.comm.clone(),
        unit: o.unit.clone().unwrap_or_default(),
        container: o.container.as_deref().cloned().unwrap_or_default(),
    }
}

pub fn map_row(m: &MapSample) -> wire::MapRow {
    wire::MapRow {
        id: m.id,
        name: m.name.clone(),
        map_type: m.map_type.to_string(),
        key_size: m.key_size,
        value_size: m.value_size,
        max_entries: m.max_entries,
        flags: m.flags,
        memlock_bytes: m.memlock_bytes.unwrap_or(0),
        used_by_programs: m.used_by_programs,
        owners: m.owners.iter().map(|o| owner(o)).collect(),
        notes: maps::notes_of(m.map_type)
            .iter()
            .map(|c| c.as_str().to_owned())
            .collect(),
    }
}

pub fn map_usage(m: &MapSample) -> wire::MapUsage {
    let (entries, counted_by, why, at) = match m.entries {
        Entries::Counted { n, by, at } => (n, by.as_str(), "", at),
        Entries::NotCounted(why) => (0, "", why, WallNs::EPOCH),
    };
    wire::MapUsage {
        id: m.id,
        entries,
        max_entries: m.max_entries,
        fill_pct: if counted_by.is_empty() {
            0.0
        } else {
            rates::fill_pct(entries, m.max_entries)
        },
        counted_by: counted_by.to_owned(),
        why: why.to_owned(),
        counted_ns: at.ns(),
        perf_buffer_bytes: m.perf_buffer_bytes.unwrap_or(0),
    }
}

pub fn detail(pass: &Pass, p: &ProgramSample, series_id: i64) -> wire::ProgramDetail {
    let ctx = &p.context;
    wire::ProgramDetail {
        program: program_row(p, series_id),
        created_by_uid: p.meta.created_by_uid,
        verified_insns: p.meta.verified_insns,
        jited_size: p.meta.jited_size,
        xlated_size: p.meta.xlated_size,
        btf_id: p.meta.btf_id.unwrap_or(0),
        prog_memlock_bytes: p.meta.prog_memlock_bytes.unwrap_or(0),
        maps: ctx
            .map_ids
            .iter()
            .filter_map(|id| pass.maps.iter().find(|m| m.id == *id))
            .map(|m| map_row(m))
            .collect(),
        pins: ctx.pins.clone(),
        attach: ctx
            .attach
            .iter()
            .map(|a| wire::AttachPoint {
                link_id: a.link_id,
                link_type: a.link_type.to_string(),
                attach_type: a.attach_type.unwrap_or_default().to_string(),
                target: a.target.clone(),
                missed: a
                    .missed
                    .map_or(-1, |m| i64::try_from(m).unwrap_or(i64::MAX)),
            })
            .collect(),
        notes: ctx
            .notes
            .iter()
            .map(|n| wire::Note {
                code: n.code.as_str().to_owned(),
                text: n.text(&ctx.pins),
            })
            .collect(),
    }
}

pub fn series(s: SeriesRow) -> wire::SeriesInfo {
    wire::SeriesInfo {
        series_id: s.series_id,
        boot_seq: s.boot_seq,
        id: s.prog_id,
        name: s.name,
        full_name: s.full_name,
        prog_type: s.prog_type,
        tag: s.tag,
        alive: s.alive,
        first_seen_ns: WallNs::of_known(s.first_seen).ns(),
        last_seen_ns: WallNs::of_known(s.last_seen).ns(),
        runs_before_first_pass: s.base.run_cnt,
    }
}

pub fn top_row(r: TopRow) -> wire::TopRow {
    let s = r.series;
    wire::TopRow {
        series_id: s.series_id,
        id: s.prog_id,
        name: s.name,
        full_name: s.full_name,
        prog_type: s.prog_type,
        tag: s.tag,
        alive: s.alive,
        span_ns: r.span_ns,
        samples: r.samples,
        run_cnt: r.run_cnt,
        run_time_ns: r.run_time_ns,
        avg_ns_per_run: r.avg_ns_per_run.unwrap_or(-1.0),
        rates: rates(&r.rates),
        peak_runs_per_sec: r.peak_runs_per_sec,
        peak_cpu_pct: r.peak_cpu_pct,
        map_memory_bytes: s.map_memory.total,
        map_memory_own_bytes: s.map_memory.own,
        map_memory_shared_bytes: s.map_memory.shared,
        tier: tier(r.tier).as_str().to_owned(),
    }
}

/// The wire form of a history; `next_from_ns` is where a cut answer goes on (0: complete).
pub fn history(h: History, next_from_ns: i64) -> (wire::HistoryInfo, Vec<wire::HistoryPoint>) {
    let points = h
        .points
        .iter()
        .map(|p| wire::HistoryPoint {
            start_ns: WallNs::of(p.start).ns(),
            end_ns: WallNs::of(p.end).ns(),
            span_ns: p.span_ns,
            samples: p.samples,
            frozen: p.frozen,
            run_cnt: p.run_cnt,
            run_time_ns: p.run_time_ns,
            cum_run_cnt: p.cum_run_cnt,
            cum_run_time_ns: p.cum_run_time_ns,
            avg_ns_per_run: p.avg_ns_per_run.unwrap_or(-1.0),
            rates: rates(&p.rates),
            peak_runs_per_sec: p.peak_runs_per_sec,
            peak_cpu_pct: p.peak_cpu_pct,
        })
        .collect();
    let info = wire::HistoryInfo {
        series: h.series.into_iter().map(series).collect(),
        tier: tier(h.tier).as_str().to_owned(),
        step_ns: h.step_ns,
        next_from_ns,
    };
    (info, points)
}

/// A kept event on the wire.
pub fn event(e: store::Event) -> wire::Event {
    wire::Event {
        time_ns: WallNs::of(e.time).ns(),
        kind: e.kind,
        program: e.program,
        prog_type: e.prog_type,
        tag: e.tag,
        before_tag: e.before_tag,
        judged: e.judged,
        significant: e.significant,
        ratio: e.ratio,
        ratio_low: e.ratio_low,
        ratio_high: e.ratio_high,
        text: e.text,
    }
}

fn version(v: &compare::Version) -> wire::VersionInfo {
    wire::VersionInfo {
        tag: v.tag.clone(),
        series: v.series.clone(),
        first_seen_ns: WallNs::of_known(v.first_seen).ns(),
        last_seen_ns: WallNs::of_known(v.last_seen).ns(),
        observed_ns: v.observed_ns,
        runs: v.runs,
        run_time_ns: v.run_time_ns,
        steps: v.steps,
        median_ns_per_run: v.median_ns_per_run.unwrap_or(-1.0),
        runs_per_sec: v.runs_per_sec,
        cpu_pct: v.cpu_pct,
        map_memory_bytes: v.map_memory_bytes,
        verified_insns: v.verified_insns,
        jited_size: v.jited_size,
    }
}

/// Two versions compared, on the wire (ratios 0 when not judged).
pub fn comparison(c: &compare::Comparison) -> wire::Comparison {
    let s = c.shift.unwrap_or_default();
    wire::Comparison {
        full_name: c.full_name.clone(),
        prog_type: c.prog_type.clone(),
        before: version(&c.before),
        after: version(&c.after),
        step_ns: c.step_ns,
        judged: c.shift.is_some(),
        ratio: s.ratio,
        ratio_low: s.low,
        ratio_high: s.high,
        significant: s.significant,
        verdict: c.verdict.clone(),
    }
}

/// An alert raised or cleared (or raised now), on the wire.
pub fn alert(r: AlertRecord) -> wire::Alert {
    wire::Alert {
        rule: r.rule,
        metric: r.metric,
        state: r.state,
        program_id: r.prog_id,
        program: r.program,
        prog_type: r.prog_type,
        value: r.value,
        threshold: r.threshold,
        clear: r.clear,
        since_ns: WallNs::of(r.since).ns(),
        time_ns: WallNs::of(r.time).ns(),
        text: r.text,
    }
}

/// A `MapHistory` answer from the store's.
pub fn map_history(h: &store::MapHistory) -> (wire::MapHistoryInfo, Vec<wire::MapHistoryPoint>) {
    let ns = |t| WallNs::of(t).ns();
    let known = |v: Option<u64>| v.map_or(-1, |v| i64::try_from(v).unwrap_or(i64::MAX));
    let info = wire::MapHistoryInfo {
        series: h
            .series
            .iter()
            .map(|s| wire::MapSeriesInfo {
                id: s.map_id,
                name: s.name.clone(),
                map_type: s.map_type.clone(),
                max_entries: s.max_entries,
                first_seen_ns: ns(s.first_seen),
                gone_ns: s.gone.map_or(0, ns),
            })
            .collect(),
        tier: h.tier.as_str().to_owned(),
        next_from_ns: h.next_from.map_or(0, ns),
    };
    let points = h
        .points
        .iter()
        .map(|p| wire::MapHistoryPoint {
            time_ns: ns(p.time),
            series: u32::try_from(p.series).unwrap_or(u32::MAX),
            memory_bytes: known(p.memory),
            entries: known(p.entries),
            peak_entries: known(p.peak_entries),
        })
        .collect();
    (info, points)
}
