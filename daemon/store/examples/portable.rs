//! The store's on-disk format across architectures, with no `bpf()` needed:
//!
//! - `portable make DB`: writes two simulated hours of 24 programs (busy, idle, one reloaded,
//!   one unloaded) into a new database at `DB`, as the daemon would;
//! - `portable ask DB`: opens it and prints every stored series, the top programs of three
//!   windows and the history of four programs at three steps (every tier), exactly.
//!
//! `tests/arm` makes the database on amd64 and compares the answers of the amd64, arm64 and
//! armhf builds (the last two under qemu) byte for byte.

use std::io::Write as _;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use ebpfstat_store::{
    Counters, MapMemory, ProgramMeta, ProgramRef, Retention, SortKey, StatsCode, Store,
    StoreConfig, Tick,
};

/// 2026-01-01T00:00:00Z.
const START: u64 = 1_767_225_600;
const PROGRAMS: u32 = 24;
const SECONDS: u64 = 2 * 3600;
const DAY: u64 = 86_400;

fn config(db: &Path) -> StoreConfig {
    StoreConfig::new(
        db,
        Retention {
            raw: Duration::from_secs(DAY),
            min1: Duration::from_secs(7 * DAY),
            hour1: Duration::from_secs(90 * DAY),
        },
        64 << 20,
    )
}

fn at(s: u64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(START + s)
}

fn meta(id: u32, load_boottime_ns: u64, tag: u64) -> Arc<ProgramMeta> {
    let name = format!("portable_prog_{id}");
    Arc::new(ProgramMeta {
        id,
        name: name.chars().take(15).collect(),
        full_name: name,
        prog_type: if id.is_multiple_of(3) {
            "tracepoint"
        } else {
            "socket_filter"
        },
        tag: format!("{tag:016x}"),
        load_boottime_ns,
        load_time: at(0),
        created_by_uid: 0,
        verified_insns: 2 + id,
        jited_size: 64,
        xlated_size: 16,
        btf_id: None,
        prog_memlock_bytes: Some(4096),
        counted_from_load: false,
    })
}

/// Runs of program `i` in second `s`: a deterministic mix of steady, bursty and idle.
fn runs(i: u32, s: u64) -> (u64, u64) {
    let i = u64::from(i);
    match i % 4 {
        0 => (0, 0),
        1 => (100 + i, (100 + i) * (40 + i)),
        2 if s % 60 < 10 => (5000, 5000 * 120),
        2 => (3, 3 * 120),
        _ => ((s * 7 + i) % 50, ((s * 7 + i) % 50) * 900),
    }
}

fn make(db: &Path) -> Result<(), String> {
    let mut store = Store::open(config(db)).map_err(|e| e.to_string())?;
    let mut tick = Tick {
        boot_id: "portable-boot".into(),
        boottime_ns: 1_000_000_000_000,
        wall: at(0),
        stats: StatsCode::Enabled,
        complete: true,
        coverage: 1.0,
        stats_cost_ns: 25.0,
        programs: Vec::new(),
        metas: Arc::default(),
    };
    for id in 1..=PROGRAMS {
        let memory = MapMemory {
            total: 4096 * u64::from(id),
            own: 4096,
            shared: 4096 * u64::from(id - 1),
        };
        tick.push_program(
            meta(id, tick.boottime_ns, u64::from(id)),
            Counters::default(),
            memory,
        );
    }
    for s in 1..=SECONDS {
        tick.wall = at(s);
        tick.boottime_ns += 1_000_000_000;
        for (i, p) in tick.programs.iter_mut().enumerate() {
            let (cnt, rt) = runs(u32::try_from(i).map_err(|e| e.to_string())?, s);
            p.counters.run_cnt += cnt;
            p.counters.run_time_ns += rt;
        }
        // Halfway: the last program is reloaded (a new id, a new tag); one is unloaded.
        if s == SECONDS / 2 {
            tick.remove_program(tick.programs.len() - 1);
            tick.remove_program(0);
            tick.push_program(
                meta(PROGRAMS + 1, tick.boottime_ns, 0xabc),
                Counters::default(),
                MapMemory::default(),
            );
        }
        store.ingest(&tick).map_err(|e| e.to_string())?;
        if s.is_multiple_of(60) {
            store.flush(tick.wall).map_err(|e| e.to_string())?;
        }
    }
    store.flush(at(SECONDS + 1)).map_err(|e| e.to_string())
}

fn ask(db: &Path) -> Result<(), String> {
    let store = Store::open(config(db)).map_err(|e| e.to_string())?;
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let mut say = |line: String| writeln!(out, "{line}").map_err(|e| format!("stdout: {e}"));
    let all = store.all_series().map_err(|e| e.to_string())?;
    say(format!("{} series", all.len()))?;
    for s in &all {
        say(format!("{s:?}"))?;
    }
    for (from, to) in [(0, SECONDS), (SECONDS - 600, SECONDS), (600, 660)] {
        for key in [SortKey::RunTime, SortKey::Avg, SortKey::MapMem] {
            let top = store
                .top(at(from), at(to), key, 10)
                .map_err(|e| e.to_string())?;
            say(format!("top {from}..{to} by {key:?}: {top:?}"))?;
        }
    }
    for id in [2, 3, PROGRAMS, PROGRAMS + 1] {
        let Some(series) = all.iter().find(|s| s.prog_id == id) else {
            return Err(format!("program {id} is not stored"));
        };
        let target = ProgramRef::Series(series.series_id);
        for step in [1, 60, 3600] {
            let h = store
                .history(
                    &target,
                    at(0),
                    at(SECONDS + 60),
                    Duration::from_secs(step),
                    None,
                )
                .map_err(|e| e.to_string())?;
            say(format!("history of {id} at {step}s: {h:?}"))?;
        }
    }
    out.flush().map_err(|e| format!("stdout: {e}"))
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let result = match (args.get(1).map(String::as_str), args.get(2)) {
        (Some("make"), Some(db)) => make(Path::new(db)),
        (Some("ask"), Some(db)) => ask(Path::new(db)),
        _ => Err("usage: portable make DB | portable ask DB".to_owned()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("portable: {e}");
            ExitCode::FAILURE
        }
    }
}
