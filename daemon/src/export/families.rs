//! The metric families the daemon exports, and the live exposition of the newest pass (the
//! textfile and scrapes). Names follow Prometheus' conventions: the `ebpfstat_` prefix, base
//! units, `_total` on counters, `_info` for metadata. The README documents each family.

use ebpfstat_numbers::time::secs_of_ns;
use ebpfstat_store::StatsCode;

use super::text::{Encoder, Family, Format, Sink, Value};
use crate::observer;
use crate::sampler::entries::Entries;
use crate::sampler::maps::MapSample;
use crate::sampler::{Pass, ProgramSample};

pub const PROGRAM_INFO: Family = Family::info(
    "ebpfstat_program",
    "A loaded eBPF program: its tag and the first process holding it (owner, systemd unit, \
     container).",
);
pub const RUNS: Family = Family::counter(
    "ebpfstat_program_runs",
    "Runs since the program was loaded, counted while run-time stats are on.",
);
pub const RUN_TIME: Family = Family::counter(
    "ebpfstat_program_run_time_seconds",
    "Time spent running since the program was loaded, counted while run-time stats are on.",
)
.in_unit("seconds");
pub const RECURSION_MISSES: Family = Family::counter(
    "ebpfstat_program_recursion_misses",
    "Runs the kernel skipped because the program was already running on that CPU.",
);
pub const PROBE_MISSES: Family = Family::counter(
    "ebpfstat_program_probe_misses",
    "Hits its kprobes missed (another kprobe was running on that CPU, or a kretprobe had no free \
     instance), as its kprobe links report them (Linux 6.7); programs without such links are \
     left out.",
);
pub const MAP_MEMORY: Family = Family::gauge(
    "ebpfstat_program_map_memory_bytes",
    "Memory of the maps the program uses (a map shared by several programs counts in each).",
)
.in_unit("bytes");
pub const MAP_ENTRIES: Family = Family::gauge(
    "ebpfstat_map_entries",
    "Entries the map holds, as last counted (maps whose entries cannot be counted are left out; \
     an array counts its max entries).",
);
pub const MAP_MAX_ENTRIES: Family = Family::gauge(
    "ebpfstat_map_max_entries",
    "The most entries the map can hold.",
);
pub const EACH_MAP_MEMORY: Family = Family::gauge(
    "ebpfstat_map_memory_bytes",
    "Memory of the map (the kernel's memlock figure; a ring buffer at its size before Linux 6.4).",
)
.in_unit("bytes");
pub const MAP_PERF_BUFFERS: Family = Family::gauge(
    "ebpfstat_map_perf_buffer_bytes",
    "For a perf_event_array: the perf ring buffers its holders have mapped, each process's once \
     (on the lowest-id such map it holds).",
)
.in_unit("bytes");
pub const STATS_COVERAGE: Family = Family::gauge(
    "ebpfstat_stats_coverage_ratio",
    "Share of the last interval during which run-time stats were on (below 1: duty-cycled).",
)
.in_unit("ratio");
pub const STATS_OVERHEAD: Family = Family::gauge(
    "ebpfstat_stats_overhead_ratio",
    "Share of one core that run-time stats cost the host over the last interval.",
)
.in_unit("ratio");
pub const STATS_COST: Family = Family::gauge(
    "ebpfstat_stats_cost_seconds",
    "What run-time stats add to each program run, as calibrated.",
)
.in_unit("seconds");
pub const STATS_STATE: Family = Family::gauge(
    "ebpfstat_stats_state",
    "1 for the state run-time stats are in (enabled, duty_cycled, enabled_by_sysctl, \
     enabled_by_other, unavailable).",
);
pub const DAEMON_CPU: Family = Family::counter(
    "ebpfstat_daemon_cpu_seconds",
    "CPU time (user and system) the daemon has used.",
)
.in_unit("seconds");
pub const DAEMON_RSS: Family = Family::gauge(
    "ebpfstat_daemon_resident_bytes",
    "The daemon's resident memory.",
)
.in_unit("bytes");
pub const DATABASE: Family = Family::gauge(
    "ebpfstat_database_bytes",
    "Size of the history database file after the last flush.",
)
.in_unit("bytes");
pub const DATABASE_CAP: Family = Family::gauge(
    "ebpfstat_database_cap_bytes",
    "The hard cap on the history database's size.",
)
.in_unit("bytes");
pub const PASSES: Family = Family::counter("ebpfstat_passes", "Sampling passes taken.");
pub const PASSES_LATE: Family = Family::counter(
    "ebpfstat_passes_late",
    "Passes that started more than half an interval after their slot.",
);
pub const PASSES_DROPPED: Family = Family::counter(
    "ebpfstat_passes_dropped",
    "Passes the history store could not take (its queue was full).",
);
pub const PASSES_FAILED: Family = Family::counter(
    "ebpfstat_passes_failed",
    "Passes that could not read the programs: not stored.",
);

pub const PUSHED_UNTIL: Family = Family::gauge(
    "ebpfstat_remote_write_acknowledged_until_seconds",
    "Time up to which the remote-write receiver has acknowledged every stored sample.",
)
.in_unit("seconds");
pub const PUSH_BACKLOG: Family = Family::gauge(
    "ebpfstat_remote_write_backlog_seconds",
    "Stored history the remote-write receiver has not acknowledged yet.",
)
.in_unit("seconds");
pub const PUSH_BYTES: Family = Family::counter(
    "ebpfstat_remote_write_sent_bytes",
    "Compressed request bytes the remote-write receiver acknowledged.",
)
.in_unit("bytes");
pub const PUSH_SAMPLES: Family = Family::counter(
    "ebpfstat_remote_write_sent_samples",
    "Samples the remote-write receiver acknowledged.",
);
pub const PUSH_RETRIES: Family = Family::counter(
    "ebpfstat_remote_write_retries",
    "Requests that failed (network, HTTP 5xx or 429) and were sent again.",
);
pub const PUSH_DROPPED: Family = Family::counter(
    "ebpfstat_remote_write_dropped_batches",
    "Batches the remote-write receiver refused (HTTP 4xx other than 429): not sent again.",
);

/// The daemon's own figures, as `Status()` reports them (CPU and memory: `None` when they
/// could not be read, and then left out rather than exported as 0).
#[derive(Debug, Clone, Default)]
pub struct DaemonFigures {
    pub cpu_ns: Option<u64>,
    pub rss_bytes: Option<u64>,
    pub database_bytes: u64,
    pub cap_bytes: u64,
    pub passes: u64,
    pub late: u64,
    pub dropped: u64,
    pub failed: u64,
    /// Each remote-write target's progress.
    pub pushes: Vec<ebpfstat_dbus::RemoteWrite>,
}

/// The stable word for a stats state, as a label value.
pub fn state_code(code: StatsCode) -> &'static str {
    match code {
        StatsCode::Enabled => "enabled",
        StatsCode::EnabledBySysctl => "enabled_by_sysctl",
        StatsCode::Unavailable => "unavailable",
        StatsCode::DutyCycled => "duty_cycled",
        StatsCode::EnabledByOther => "enabled_by_other",
    }
}

/// The labels every per-program series carries: the kernel id (a reload is a new series, as
/// its counters restart), the full name and the type.
pub fn program_labels<'a>(
    id: &'a str,
    name: &'a str,
    prog_type: &'a str,
) -> [(&'a str, &'a str); 3] {
    [("id", id), ("name", name), ("type", prog_type)]
}

/// The newest pass and the daemon's figures, without time stamps (the engine stamps a scrape;
/// node_exporter rejects stamped samples).
pub fn live(out: &mut String, format: Format, pass: Option<&Pass>, daemon: &DaemonFigures) {
    let mut e = Encoder::new(out, format);
    live_to(&mut e, pass, daemon);
    e.finish();
}

/// The newest pass and the daemon's figures, into any sink (samples without time stamps).
pub fn live_to(e: &mut dyn Sink, pass: Option<&Pass>, daemon: &DaemonFigures) {
    if let Some(pass) = pass {
        program_families(e, pass);
        map_families(e, pass);
        stats_families(e, pass);
    }
    daemon_families(e, daemon);
}

/// Each program: what it is, and its counters and map memory.
fn program_families(e: &mut dyn Sink, pass: &Pass) {
    let programs: Vec<&ProgramSample> = observer::shown(&pass.programs).collect();
    let ids: Vec<String> = programs.iter().map(|p| p.meta.id.to_string()).collect();
    // A program without a value (`None`) is left out of the family.
    let per_program =
        |e: &mut dyn Sink, f: &Family, value: &dyn Fn(&ProgramSample) -> Option<Value>| {
            e.family(f);
            for (p, id) in programs.iter().zip(&ids) {
                if let Some(v) = value(p) {
                    let labels = program_labels(id, &p.meta.full_name, p.meta.prog_type);
                    e.sample(f, &labels, v, None);
                }
            }
        };
    e.family(&PROGRAM_INFO);
    for (p, id) in programs.iter().zip(&ids) {
        let owner = p.context.owners.first();
        let comm = owner.map_or("", |o| o.comm.as_str());
        let unit = owner.and_then(|o| o.unit.as_deref()).unwrap_or("");
        let container = owner
            .and_then(|o| o.container.as_deref())
            .and_then(ebpfstat_dbus::Container::label)
            .unwrap_or_default();
        let [id, name, prog_type] = program_labels(id, &p.meta.full_name, p.meta.prog_type);
        let labels = [
            id,
            name,
            prog_type,
            ("tag", &p.meta.tag),
            ("owner", comm),
            ("unit", unit),
            ("container", &container),
        ];
        e.sample(&PROGRAM_INFO, &labels, Value::Int(1), None);
    }
    per_program(e, &RUNS, &|p| Some(Value::Int(p.counters.run_cnt)));
    per_program(e, &RUN_TIME, &|p| {
        Some(Value::Float(secs_of_ns(p.counters.run_time_ns as f64)))
    });
    per_program(e, &RECURSION_MISSES, &|p| {
        Some(Value::Int(p.recursion_misses))
    });
    per_program(e, &PROBE_MISSES, &|p| p.probe_misses.map(Value::Int));
    per_program(e, &MAP_MEMORY, &|p| {
        Some(Value::Int(p.context.map_memory.total))
    });
}

/// The labels of a map's series: its kernel id, name and type.
fn map_labels<'a>(m: &'a MapSample, id: &'a str) -> [(&'a str, &'a str); 3] {
    [("id", id), ("name", m.name.as_str()), ("type", m.map_type)]
}

/// Each map: its entries, max entries, memory and perf buffers, labelled by id, name and type.
fn map_families(e: &mut dyn Sink, pass: &Pass) {
    let ids: Vec<String> = pass.maps.iter().map(|m| m.id.to_string()).collect();
    e.family(&MAP_ENTRIES);
    for (m, id) in pass.maps.iter().zip(&ids) {
        if let Entries::Counted { n, .. } = m.entries {
            e.sample(&MAP_ENTRIES, &map_labels(m, id), Value::Int(n), None);
        }
    }
    e.family(&MAP_MAX_ENTRIES);
    for (m, id) in pass.maps.iter().zip(&ids) {
        let max = Value::Int(u64::from(m.max_entries));
        e.sample(&MAP_MAX_ENTRIES, &map_labels(m, id), max, None);
    }
    e.family(&EACH_MAP_MEMORY);
    for (m, id) in pass.maps.iter().zip(&ids) {
        if let Some(bytes) = m.memlock_bytes {
            e.sample(
                &EACH_MAP_MEMORY,
                &map_labels(m, id),
                Value::Int(bytes),
                None,
            );
        }
    }
    e.family(&MAP_PERF_BUFFERS);
    for (m, id) in pass.maps.iter().zip(&ids) {
        if let Some(bytes) = m.perf_buffer_bytes {
            e.sample(
                &MAP_PERF_BUFFERS,
                &map_labels(m, id),
                Value::Int(bytes),
                None,
            );
        }
    }
}

/// What run-time stats cover, cost, and their state.
fn stats_families(e: &mut dyn Sink, pass: &Pass) {
    e.family(&STATS_COVERAGE);
    e.sample(&STATS_COVERAGE, &[], Value::Float(pass.coverage), None);
    if let Some(share) = pass.stats_overhead {
        e.family(&STATS_OVERHEAD);
        e.sample(&STATS_OVERHEAD, &[], Value::Float(share.0), None);
    }
    e.family(&STATS_COST);
    let cost = secs_of_ns(pass.stats_cost.ns_per_run);
    e.sample(&STATS_COST, &[], Value::Float(cost), None);
    e.family(&STATS_STATE);
    let state = state_code(StatsCode::from(&pass.stats_state));
    e.sample(&STATS_STATE, &[("state", state)], Value::Int(1), None);
}

/// The daemon's own figures: CPU, memory, the database, its passes.
fn daemon_families(e: &mut dyn Sink, daemon: &DaemonFigures) {
    let figures = [
        daemon
            .cpu_ns
            .map(|ns| (&DAEMON_CPU, Value::Float(secs_of_ns(ns as f64)))),
        daemon.rss_bytes.map(|b| (&DAEMON_RSS, Value::Int(b))),
    ];
    for (f, v) in figures.into_iter().flatten() {
        e.family(f);
        e.sample(f, &[], v, None);
    }
    let figures = [
        (&DATABASE, Value::Int(daemon.database_bytes)),
        (&DATABASE_CAP, Value::Int(daemon.cap_bytes)),
        (&PASSES, Value::Int(daemon.passes)),
        (&PASSES_LATE, Value::Int(daemon.late)),
        (&PASSES_DROPPED, Value::Int(daemon.dropped)),
        (&PASSES_FAILED, Value::Int(daemon.failed)),
    ];
    for (f, v) in figures {
        e.family(f);
        e.sample(f, &[], v, None);
    }
    push_families(e, &daemon.pushes);
}

/// Each remote-write target's progress, labelled by its url.
fn push_families(e: &mut dyn Sink, pushes: &[ebpfstat_dbus::RemoteWrite]) {
    type Of = fn(&ebpfstat_dbus::RemoteWrite) -> Value;
    let families: [(&Family, Of); 6] = [
        (&PUSHED_UNTIL, |r| {
            Value::Float(secs_of_ns(r.position_ns as f64))
        }),
        (&PUSH_BACKLOG, |r| {
            Value::Float(secs_of_ns(r.backlog_ns as f64))
        }),
        (&PUSH_BYTES, |r| Value::Int(r.bytes_sent)),
        (&PUSH_SAMPLES, |r| Value::Int(r.samples_sent)),
        (&PUSH_RETRIES, |r| Value::Int(r.retries)),
        (&PUSH_DROPPED, |r| Value::Int(r.dropped)),
    ];
    if pushes.is_empty() {
        return;
    }
    for (f, value) in families {
        e.family(f);
        for r in pushes {
            e.sample(f, &[("url", &r.url)], value(r), None);
        }
    }
}
