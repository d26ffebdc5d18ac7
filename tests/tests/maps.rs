//! How full maps are: real maps of every hash kind filled to known counts by the test, their
//! entries as `ebpfstatctl maps` shows them (`--json` and the table) and as `/metrics` exports
//! them; an LRU map that evicted, checked against the kernel's own key walk.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;
use std::time::{Duration, Instant};

use ebpfstat_tests::bus::{ApiDaemon, open_tempdir};
use ebpfstat_tests::engines::{free_port, get};
use ebpfstat_tests::kernel::{map_create_with, map_delete, map_key_count, map_update};
use ebpfstat_tests::terminal::{assert_aligned, on_pty, table_lines, visible};
use ebpfstat_tests::*;
use ebpfstatd::sampler::{host, procfs};
use serde_json::Value;

const HASH: u32 = 1;
const ARRAY: u32 = 2;
const PERCPU_HASH: u32 = 5;
const LRU_HASH: u32 = 9;
const LPM_TRIE: u32 = 11;
const HASH_OF_MAPS: u32 = 13;
const RINGBUF: u32 = 27;
const NO_PREALLOC: u32 = 1;

/// A name of at most 15 bytes, unique to this run: maps of other tests (and runs) stay apart.
fn name(kind: &str) -> String {
    format!("{kind}{}", std::process::id() % 100_000)
}

fn create(
    t: u32,
    sizes: (u32, u32, u32),
    flags: u32,
    inner: Option<BorrowedFd<'_>>,
    n: &str,
) -> OwnedFd {
    map_create_with(t, sizes, flags, inner, n).unwrap_or_else(|e| panic!("creating {n}: {e}"))
}

/// Keys 0..n (u32) each set to `value`.
fn fill(map: BorrowedFd<'_>, n: u32, value: &[u8]) {
    for k in 0..n {
        map_update(map, &k.to_ne_bytes(), value).expect("update");
    }
}

fn config(dir: &Path) -> String {
    let path = dir.join("ebpfstat.toml");
    // Every pass a rescan, so entries are counted at once.
    std::fs::write(&path, "rescan_every = 1\n").expect("write config");
    path.display().to_string()
}

/// The `maps --json` row of `name`, once its entries read `want` (or after 20 s, as it is).
fn row_when(d: &ApiDaemon, name: &str, want: Option<u64>) -> Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let rows = d.ctl_json(&["maps", "--json"]);
        let row = rows
            .as_array()
            .expect("rows")
            .iter()
            .find(|r| r["name"] == name)
            .cloned();
        if let Some(row) = row {
            if row["entries"].as_u64() == want || Instant::now() > deadline {
                return row;
            }
        } else {
            assert!(Instant::now() < deadline, "map {name} never listed");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn entries_of_every_hash_kind_are_counted_exactly() {
    require_bpf!();
    // The daemon's count of them (/sys/devices/system/cpu/possible).
    let cpus = usize::try_from(host::possible_cpus().expect("possible CPUs")).expect("cpus");
    let (h, pc, lru, trie, hom, arr, ring) = (
        name("eh"),
        name("ep"),
        name("el"),
        name("et"),
        name("eo"),
        name("ea"),
        name("er"),
    );
    let hash = create(HASH, (4, 8, 1000), 0, None, &h);
    fill(hash.as_fd(), 137, &[7; 8]);
    let percpu = create(PERCPU_HASH, (4, 8, 500), 0, None, &pc);
    fill(percpu.as_fd(), 42, &vec![1; 8 * cpus]);
    // An LRU map given three times what it holds evicts: the kernel's own walk says how many
    // it kept.
    let lru_map = create(LRU_HASH, (4, 8, 64), 0, None, &lru);
    fill(lru_map.as_fd(), 192, &[2; 8]);
    let lru_kept = map_key_count(lru_map.as_fd(), 4).expect("walk");
    assert!(lru_kept <= 64, "{lru_kept}");
    let trie_map = create(LPM_TRIE, (8, 8, 100), NO_PREALLOC, None, &trie);
    for i in 0u32..9 {
        let mut key = 32u32.to_ne_bytes().to_vec();
        key.extend_from_slice(&[10, 0, 0, u8::try_from(i).expect("small")]);
        map_update(trie_map.as_fd(), &key, &[3; 8]).expect("trie update");
    }
    let inner = create(ARRAY, (4, 8, 1), 0, None, "ebpfstat_inner");
    let outer = create(HASH_OF_MAPS, (4, 4, 16), 0, Some(inner.as_fd()), &hom);
    fill(
        outer.as_fd(),
        5,
        &std::os::fd::AsRawFd::as_raw_fd(&inner).to_ne_bytes(),
    );
    let _array = create(ARRAY, (4, 8, 8), 0, None, &arr);
    let _ring = create(RINGBUF, (0, 0, 4096), 0, None, &ring);

    let dir = open_tempdir();
    let d = ApiDaemon::start_with(None, "200ms", &["--config", &config(dir.path())]);
    // Hash maps: the kernel's own element counters from 6.6 (the daemon's map iterator), batch
    // reads before (the 6.1 guest checks those).
    let release = host::KernelInfo::current().release;
    let hashed = match host::parse_major_minor(&release) {
        Some(v) if v >= (6, 6) => "kernel",
        _ => "batch",
    };
    for (n, want, max, by) in [
        (&h, 137, 1000, hashed),
        (&pc, 42, 500, hashed),
        (&lru, lru_kept, 64, hashed),
        (&trie, 9, 100, "keys"),
        (&hom, 5, 16, hashed),
        (&arr, 8, 8, "array"),
    ] {
        let row = row_when(&d, n, Some(want));
        assert_eq!(row["entries"].as_u64(), Some(want), "{n}: {row}");
        assert_eq!(row["max_entries"].as_u64(), Some(max), "{n}: {row}");
        let pct = row["fill_pct"].as_f64().expect("fill_pct");
        assert!(
            (pct - want as f64 * 100.0 / max as f64).abs() < 1e-9,
            "{n}: {row}"
        );
        assert_eq!(row["entries_counted_by"], by, "{n}: {row}");
        assert!(row["entries_note"].is_null(), "{n}: {row}");
    }
    let r = row_when(&d, &ring, None);
    assert!(r["entries"].is_null() && r["fill_pct"].is_null(), "{r}");
    assert_eq!(
        r["entries_note"], "a ring buffer holds records, not entries",
        "{r}"
    );

    // Deleted entries are seen by the next count.
    for k in 0u32..37 {
        map_delete(hash.as_fd(), &k.to_ne_bytes()).expect("delete");
    }
    let row = row_when(&d, &h, Some(100));
    assert_eq!(row["entries"].as_u64(), Some(100), "{row}");
    assert_eq!(row["fill_pct"].as_f64(), Some(10.0), "{row}");
}

#[test]
fn the_table_and_metrics_show_entries_and_fill() {
    require_bpf!();
    let h = name("ft");
    let hash = create(HASH, (4, 8, 200), 0, None, &h);
    fill(hash.as_fd(), 50, &[1; 8]);
    let dir = open_tempdir();
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let d = ApiDaemon::start_with(
        None,
        "200ms",
        &["--config", &config(dir.path()), "--metrics-listen", &addr],
    );
    row_when(&d, &h, Some(50));
    // As a person sees it, on a terminal wide enough for every column.
    let socket = d.socket.display().to_string();
    let (screen, code) = on_pty(
        &bin("ebpfstatctl"),
        &["--socket", &socket, "maps", "--name", &h],
        160,
    );
    assert_eq!(code, 0, "{screen}");
    let text = visible(&screen);
    assert_aligned(&text, "ID", 160, 1);
    let lines = table_lines(&text, "ID");
    let head: Vec<&str> = lines[0].split_whitespace().collect();
    let row: Vec<&str> = lines[1].split_whitespace().collect();
    let col = |c: &str| {
        let i = head
            .iter()
            .position(|h| *h == c)
            .unwrap_or_else(|| panic!("{c} in {text}"));
        row[i]
    };
    assert_eq!(
        (col("ENTRIES"), col("MAX"), col("FILL")),
        ("50", "200", "25%"),
        "{text}"
    );

    let (status, body) = get(port, "/metrics").expect("scrape");
    assert_eq!(status, 200);
    let body = String::from_utf8_lossy(&body);
    let id = row_when(&d, &h, Some(50))["id"].as_u64().expect("id");
    let labels = format!("{{id=\"{id}\",name=\"{h}\",type=\"hash\"}}");
    for (family, v) in [
        ("ebpfstat_map_entries", "50"),
        ("ebpfstat_map_max_entries", "200"),
    ] {
        let line = format!("{family}{labels} {v}");
        assert!(body.lines().any(|l| l == line), "{line} in\n{body}");
    }
    let memory = format!("ebpfstat_map_memory_bytes{labels} ");
    assert!(
        body.lines().any(|l| l.starts_with(&memory)),
        "{memory} in\n{body}"
    );
}

/// bpftrace's `printf` sends its records through a `perf_event_array` map with a perf ring
/// buffer per CPU mapped into bpftrace: the map shows what bpftrace's own `/proc/PID/maps` says
/// it mapped.
#[test]
fn a_perf_event_arrays_buffers_are_what_its_holder_mapped() {
    require_bpf!();
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let d = ApiDaemon::start_with(
        None,
        "200ms",
        &[
            "--config",
            &config(open_tempdir().path()),
            "--metrics-listen",
            &addr,
        ],
    );
    let bt = bpftrace::Bpftrace::start(
        "tracepoint:syscalls:sys_enter_getsid { printf(\"%d\\n\", pid); }",
        "sys_enter_getsi",
        1,
    );
    let maps = std::fs::read_to_string(format!("/proc/{}/maps", bt.pid())).expect("maps");
    // Summed by the daemon's reader of that text (unit-tested beside it).
    let mapped = procfs::perf_mapped(&maps);
    assert!(mapped > 0, "bpftrace mapped no perf buffer:\n{maps}");
    let deadline = Instant::now() + Duration::from_secs(20);
    let row = loop {
        let rows = d.ctl_json(&["maps", "--json", "--owner", &bt.pid().to_string()]);
        let row = rows
            .as_array()
            .expect("rows")
            .iter()
            .find(|r| r["map_type"] == "perf_event_array")
            .cloned();
        match row {
            Some(r) if r["perf_buffer_bytes"].as_u64() == Some(mapped) => break r,
            r if Instant::now() > deadline => panic!("{mapped} bytes mapped; the map: {r:?}"),
            _ => std::thread::sleep(Duration::from_millis(200)),
        }
    };
    assert!(
        row["notes"]
            .as_array()
            .is_some_and(|n| n.iter().any(|c| c == "perf_event_array")),
        "{row}"
    );
    // Exported as the same figure.
    let (status, body) = get(port, "/metrics").expect("scrape");
    assert_eq!(status, 200);
    let body = String::from_utf8_lossy(&body);
    let sample = format!(
        "ebpfstat_map_perf_buffer_bytes{{id=\"{}\",name=\"{}\",type=\"perf_event_array\"}} {mapped}",
        row["id"],
        row["name"].as_str().expect("name")
    );
    assert!(body.lines().any(|l| l == sample), "{sample} not in\n{body}");
}

/// Entries of `history --map NAME --json`, one per point, in time order.
fn history_entries(d: &ApiDaemon, target: &str) -> (Value, Vec<u64>) {
    let h = d.ctl_json(&["history", "--map", target, "--since", "10m", "--json"]);
    let entries = h["points"]
        .as_array()
        .expect("points")
        .iter()
        .map(|p| p["entries"].as_u64().expect("counted"))
        .collect();
    (h, entries)
}

/// A map filled, grown and emptied while the daemon watches: its history has each count where
/// it changed (and nothing the map never held), before and after the daemon restarts; by id it
/// is the same map; the table reads on a terminal; an unknown map is named.
#[test]
fn map_history_follows_a_map_as_it_fills() {
    require_bpf!();
    let n = name("hi");
    let hash = create(HASH, (4, 8, 400), 0, None, &n);
    fill(hash.as_fd(), 100, &[1; 8]);
    let dir = open_tempdir();
    let cfg = config(dir.path());
    let mut d = ApiDaemon::start_with(None, "200ms", &["--config", &cfg]);
    // Raw points are a second wide: each change a second apart keeps its own.
    let second = || std::thread::sleep(Duration::from_millis(1100));
    row_when(&d, &n, Some(100));
    second();
    fill(hash.as_fd(), 300, &[1; 8]);
    row_when(&d, &n, Some(300));
    second();
    for k in 50u32..300 {
        map_delete(hash.as_fd(), &k.to_ne_bytes()).expect("delete");
    }
    let id = row_when(&d, &n, Some(50))["id"].as_u64().expect("id");
    let (h, entries) = history_entries(&d, &n);
    assert_eq!(h["tier"], "raw", "{h}");
    assert_eq!(h["maps"][0]["max_entries"], 400, "{h}");
    // Counted while being filled, a count between is possible; never one out of range.
    let kept: Vec<u64> = entries
        .iter()
        .copied()
        .filter(|e| [100, 300, 50].contains(e))
        .collect();
    assert_eq!(kept, [100, 300, 50], "{h}");
    assert!(entries.iter().all(|e| (50..=300).contains(e)), "{h}");
    d.stop_in_place();
    d.start_again("200ms", &["--config", &cfg]);
    row_when(&d, &n, Some(50));
    let (after, again) = history_entries(&d, &id.to_string());
    assert_eq!(after["maps"].as_array().map(Vec::len), Some(1), "{after}");
    assert_eq!(after["maps"][0]["name"], n.as_str(), "{after}");
    // The same points, and one more from the restart (its values unknown till then).
    assert_eq!(again[..entries.len()], entries[..], "{after}");
    assert_eq!(again.last(), Some(&50), "{after}");

    let socket = d.socket.display().to_string();
    let (screen, code) = on_pty(
        &bin("ebpfstatctl"),
        &[
            "--socket", &socket, "history", "--map", &n, "--since", "10m",
        ],
        120,
    );
    assert_eq!(code, 0, "{screen}");
    let text = visible(&screen);
    assert!(
        text.starts_with(&format!("map {n} (id {id}, hash, max 400 entries")),
        "{text}"
    );
    assert_aligned(&text, "TIME", 120, 1);
    assert!(text.contains("Entries: "), "{text}");
    let unknown = d.ctl(&["history", "--map", "4294967295"]);
    assert_eq!(
        String::from_utf8_lossy(&unknown.stderr).trim(),
        "ebpfstatctl: no map id 4294967295 in the history"
    );
}

/// The `alerts --json` answer once `done` holds of it (or after 20 s, as it is).
fn alerts_when(d: &ApiDaemon, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let a = d.ctl_json(&["alerts", "--since", "10m", "--json"]);
        if done(&a) || Instant::now() > deadline {
            return a;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// A map filled past a fill rule's threshold raises its alert, naming the map; emptied to
/// its clear level, the alert clears. A map the rule's glob does not name stays quiet.
#[test]
fn a_fill_alert_is_raised_and_cleared() {
    require_bpf!();
    let (watched, other) = (name("fa"), name("fo"));
    let hash = create(HASH, (4, 8, 100), 0, None, &watched);
    let quiet = create(HASH, (4, 8, 100), 0, None, &other);
    fill(quiet.as_fd(), 99, &[1; 8]);
    let dir = open_tempdir();
    let cfg = dir.path().join("ebpfstat.toml");
    std::fs::write(
        &cfg,
        format!(
            "rescan_every = 1\n[[alert]]\nname = \"full\"\nmetric = \"map_fill_pct\"\n\
             threshold = 90\nclear = 50\nmap = \"{watched}\"\n"
        ),
    )
    .expect("config");
    let d = ApiDaemon::start_with(None, "200ms", &["--config", &cfg.display().to_string()]);
    fill(hash.as_fd(), 95, &[1; 8]);
    let id = row_when(&d, &watched, Some(95))["id"].as_u64().expect("id");
    let raised = alerts_when(&d, |a| {
        a["active"].as_array().is_some_and(|v| !v.is_empty())
    });
    let active = raised["active"].as_array().expect("active");
    assert_eq!(active.len(), 1, "only the watched map: {raised}");
    let a = &active[0];
    assert_eq!(
        (
            &a["rule"],
            &a["metric"],
            &a["program_id"],
            &a["program"],
            &a["prog_type"]
        ),
        (
            &Value::from("full"),
            &Value::from("map_fill_pct"),
            &Value::from(id),
            &Value::from(watched.as_str()),
            &Value::from("hash")
        ),
        "{raised}"
    );
    assert_eq!(a["value"].as_f64(), Some(95.0), "{raised}");
    for k in 40u32..95 {
        map_delete(hash.as_fd(), &k.to_ne_bytes()).expect("delete");
    }
    let cleared = alerts_when(&d, |a| a["active"].as_array().is_some_and(Vec::is_empty));
    assert_eq!(cleared["active"], Value::Array(vec![]), "{cleared}");
    let texts: Vec<&str> = cleared["changes"]
        .as_array()
        .expect("changes")
        .iter()
        .filter_map(|c| c["text"].as_str())
        .collect();
    assert_eq!(texts.len(), 2, "{cleared}");
    assert!(
        texts[0].starts_with(&format!(
            "alert full raised: map {watched} (id {id}): map_fill_pct 95"
        )),
        "{texts:?}"
    );
    assert!(
        texts[1].starts_with(&format!(
            "alert full cleared: map {watched} (id {id}): map_fill_pct 40"
        )),
        "{texts:?}"
    );
}
