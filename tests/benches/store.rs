//! `store` benchmark: compactness, flash writes and query latency of the history store, next to
//! the same workload stored naively (one `WITHOUT ROWID` row per sample) in the same run.
//!
//! Workload: 500 programs, 20 % busy with varying rates, 80 % idle, sampled every second for 7
//! simulated days (the store's own clock is simulated; SQLite files are real).
//!
//! Run: `cargo bench -p ebpfstat-tests --bench store` (add `-- --quick` for 1 day, `-- --maps`
//! for the map history alone).

use std::fs::File;
use std::time::{Duration, Instant};

use ebpfstat_store::{ProgramRef, SortKey, Store, Tier};
use ebpfstat_tests::store_config;
use ebpfstat_tests::synthetic::Workload;

const SEC: Duration = Duration::from_secs(1);
const HOUR: Duration = Duration::from_secs(3600);
const DAY: Duration = Duration::from_secs(86_400);

fn write_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/io")
        .ok()
        .and_then(|io| {
            io.lines()
                .find_map(|l| l.strip_prefix("write_bytes: "))
                .and_then(|v| v.trim().parse().ok())
        })
        .unwrap_or(0)
}

/// Models the kernel writing dirty pages back between flushes (flushes are ≥ 30 s apart on a
/// device): each flush then dirties pages afresh, and `write_bytes` counts them.
fn writeback(path: &std::path::Path) {
    for suffix in ["", "-wal"] {
        let mut p = path.as_os_str().to_owned();
        p.push(suffix);
        if let Ok(f) = File::open(&p) {
            let _ = f.sync_all();
        }
    }
}

struct Run {
    store: Store,
    work: Workload,
    path: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

fn run(
    boot: &str,
    programs: usize,
    busy_share: f64,
    span: Duration,
    writeback_each_flush: bool,
) -> Run {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("history.db");
    let mut store = Store::open(store_config(&path)).expect("open");
    let mut work = Workload::new(boot, programs, busy_share);
    store.ingest(work.host.tick()).expect("baseline");
    advance(&mut store, &mut work, span, &path, writeback_each_flush);
    Run {
        store,
        work,
        path,
        _dir: dir,
    }
}

fn advance(
    store: &mut Store,
    work: &mut Workload,
    span: Duration,
    path: &std::path::Path,
    wb: bool,
) {
    work.fill(store, span.as_secs(), || {
        if wb {
            writeback(path);
        }
    });
}

/// Raw-tier bytes per program-tick: its pages over the program-ticks it holds.
fn raw_bytes_per_program_tick(r: &Run, programs: usize) -> f64 {
    let status = r.store.status().expect("status");
    let raw = &status.tiers[0];
    let (Some(oldest), Some(newest)) = (raw.oldest, raw.newest) else {
        return 0.0;
    };
    let ticks = newest.duration_since(oldest).unwrap_or_default().as_secs() + 1;
    raw.bytes as f64 / (ticks as f64 * programs as f64)
}

fn median_ms(mut f: impl FnMut(), runs: usize) -> f64 {
    let mut v: Vec<f64> = (0..runs)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed().as_secs_f64() * 1000.0
        })
        .collect();
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// The naive layout: one row per program per tick.
fn naive_bytes_per_program_tick(programs: usize, span: Duration) -> f64 {
    let dir = tempfile::tempdir().expect("tempdir");
    let conn = rusqlite::Connection::open(dir.path().join("naive.db")).expect("open");
    conn.execute_batch(
        "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL;
         CREATE TABLE samples (series_id INTEGER, tick INTEGER, run_cnt INTEGER,
             run_time_ns INTEGER, PRIMARY KEY (series_id, tick)) WITHOUT ROWID;",
    )
    .expect("schema");
    let mut work = Workload::new("naive", programs, 0.2);
    let mut conn = conn;
    for _ in 0..span.as_secs() / 60 {
        let tx = conn.transaction().expect("tx");
        {
            let mut stmt = tx
                .prepare_cached("INSERT INTO samples VALUES (?1, ?2, ?3, ?4)")
                .expect("stmt");
            for _ in 0..60 {
                work.step();
                let tick = work.host.tick();
                for (i, p) in tick.programs.iter().enumerate() {
                    let int = |v: u64| i64::try_from(v).expect("fits a column");
                    stmt.execute((
                        i64::try_from(i).expect("index"),
                        int(work.t),
                        int(p.counters.run_cnt),
                        int(p.counters.run_time_ns),
                    ))
                    .expect("insert");
                }
            }
        }
        tx.commit().expect("commit");
    }
    let bytes: i64 = conn
        .query_row(
            "SELECT sum(pgsize) FROM dbstat WHERE name = 'samples'",
            [],
            |r| r.get(0),
        )
        .expect("dbstat");
    bytes as f64 / (span.as_secs() as f64 * programs as f64)
}

#[expect(
    clippy::too_many_lines,
    reason = "one benchmark's setup, runs and table, read in the order they happen"
)]
fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    if std::env::args().any(|a| a == "--maps") {
        let (kept, written) = map_history_bytes(100, DAY);
        println!("\nstore: map history of 100 maps, each changing at every 30 s rescan, for a day");
        println!("bytes kept per map-day: {kept:.0}; bytes written per map-day: {written:.0}");
        return;
    }
    let quick = std::env::args().any(|a| a == "--quick");
    let days = if quick { 1 } else { 7 };
    let started = Instant::now();

    // 1. The main workload: 500 programs for `days` days.
    let main = run("main", 500, 0.2, DAY * days, false);
    let avg = raw_bytes_per_program_tick(&main, 500);
    let status = main.store.status().expect("status");
    let sim_secs = started.elapsed().as_secs_f64();

    // Queries on the full store.
    let now = main.work.host.wall() + SEC;
    let top = median_ms(
        || {
            let rows = main
                .store
                .top(now - DAY, now, SortKey::RunTime, 10)
                .expect("top");
            assert_eq!(rows.len(), 10);
        },
        21,
    );
    let target = ProgramRef::Series(1);
    let hist = median_ms(
        || {
            let h = main
                .store
                .history(
                    &target,
                    now - days * DAY,
                    now,
                    Duration::from_secs(60),
                    None,
                )
                .expect("history");
            assert_eq!(h.tier, Tier::Min1);
            assert_eq!(h.points.len(), 1440 * days as usize);
        },
        21,
    );

    // 2. Per class, over 6 hours of raw data.
    let busy = run("busy", 100, 1.0, 6 * HOUR, false);
    let busy_b = raw_bytes_per_program_tick(&busy, 100);
    let idle = run("idle", 400, 0.0, 6 * HOUR, false);
    let idle_b = raw_bytes_per_program_tick(&idle, 400);

    // 3. Flash: 100 programs at 1 s; bytes written during the third hour against growth.
    let mut flash = run("flash", 100, 0.2, 2 * HOUR, true);
    let used_before = flash.store.status().expect("status").used_bytes;
    let file_before = std::fs::metadata(&flash.path).map(|m| m.len()).unwrap_or(0);
    let w0 = write_bytes();
    let path = flash.path.clone();
    advance(&mut flash.store, &mut flash.work, HOUR, &path, true);
    let written = write_bytes() - w0;
    let after = flash.store.status().expect("status");
    let growth = after.used_bytes.saturating_sub(used_before);
    let file_growth = std::fs::metadata(&flash.path).map(|m| m.len()).unwrap_or(0) - file_before;
    let wa = written as f64 / growth.max(1) as f64;

    // 4. The WAL beside the file at scale: 5000 programs, 20 % busy, flushed every minute for
    // an hour; its largest size after a flush (what a device must leave room for).
    let wal_peak = {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("history.db");
        let mut store = Store::open(store_config(&path)).expect("open");
        let mut work = Workload::new("wal", 5000, 0.2);
        store.ingest(work.host.tick()).expect("baseline");
        let mut wal = path.as_os_str().to_owned();
        wal.push("-wal");
        let mut peak = 0;
        work.fill(&mut store, HOUR.as_secs(), || {
            peak = peak.max(std::fs::metadata(&wal).map_or(0, |m| m.len()));
        });
        peak
    };

    // 5. The naive layout, 1 hour of the same workload.
    let naive = naive_bytes_per_program_tick(500, HOUR);

    // 6. Map history: 100 maps whose entries change at every rescan (30 s) for a day.
    let (map_bytes, map_written) = map_history_bytes(100, DAY);

    println!(
        "\nstore: {days} simulated days of 500 programs (100 busy, 400 idle) at 1 s, in {sim_secs:.0} s"
    );
    println!("{:<44} {:>14}", "measure", "value");
    let row = |k: &str, v: String| println!("{k:<44} {v:>14}");
    row("raw bytes/program-tick, average (500)", format!("{avg:.3}"));
    row("raw bytes/program-tick, busy (100)", format!("{busy_b:.3}"));
    row("raw bytes/program-tick, idle (400)", format!("{idle_b:.4}"));
    row(
        "naive WITHOUT ROWID bytes/program-tick",
        format!("{naive:.2}"),
    );
    row("naive / ebpfstat", format!("{:.0}x", naive / avg.max(1e-9)));
    row(
        "map history bytes/map-day (a change a rescan)",
        format!("{map_bytes:.0}"),
    );
    row(
        "map history written bytes/map-day",
        format!("{map_written:.0}"),
    );
    for t in &status.tiers {
        row(
            &format!("tier {} rows / bytes", t.tier.as_str()),
            format!("{} / {}", t.rows, t.bytes),
        );
    }
    row(
        "database file bytes (cap 64 MiB)",
        status.file_bytes.to_string(),
    );
    row(
        "written/hour, 100 programs (write_bytes)",
        written.to_string(),
    );
    row("stored growth that hour (used bytes)", growth.to_string());
    row("file growth that hour", file_growth.to_string());
    row("write amplification (written / growth)", format!("{wa:.2}"));
    row(
        "WAL peak, 5000 programs, 1-min flushes",
        wal_peak.to_string(),
    );
    row("top-10 over 24 h, median ms", format!("{top:.2}"));
    row(
        &format!("{days}-day history at 1 min, median ms"),
        format!("{hist:.2}"),
    );
    println!(
        "store: bytes_per_program_tick={avg:.3} write_amplification={wa:.2} top24h_ms={top:.2} history7d_ms={hist:.2}"
    );
}

/// Map history at its worst: `maps` maps whose entries change at every rescan (30 s), flushed
/// every minute, for `span`: bytes kept and bytes written per map and day.
fn map_history_bytes(maps: u32, span: Duration) -> (f64, f64) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("history.db");
    let mut store = Store::open(store_config(&path)).expect("open");
    let mut host =
        ebpfstat_tests::synthetic::SimHost::new("maps", ebpfstat_tests::synthetic::start(), HOUR);
    store.ingest(host.tick()).expect("baseline");
    store.flush(host.wall()).expect("flush");
    let used_before = store.status().expect("status").used_bytes;
    let w0 = write_bytes();
    let rescans = span.as_secs() / 30;
    for r in 0..rescans {
        host.advance(Duration::from_secs(30));
        store.ingest(host.tick()).expect("tick");
        let readings: Vec<ebpfstat_store::MapReading> = (0..maps)
            .map(|id| ebpfstat_store::MapReading {
                id: id + 1,
                name: format!("map{id}"),
                map_type: "hash",
                max_entries: 10_000,
                memory: Some(1 << 20),
                entries: Some((r * 7 + u64::from(id)) % 10_000),
            })
            .collect();
        store
            .ingest_maps("maps", host.wall(), &readings)
            .expect("maps");
        if r % 2 == 1 {
            store.flush(host.wall()).expect("flush");
            writeback(&path);
        }
    }
    let used = store
        .status()
        .expect("status")
        .used_bytes
        .saturating_sub(used_before);
    let written = write_bytes() - w0;
    let map_days = f64::from(maps) * span.as_secs_f64() / DAY.as_secs_f64();
    (used as f64 / map_days, written as f64 / map_days)
}
