//! The history store under real faults: a damaged file, an unusable directory, a full disk,
//! a corrupted page behind a lookup. Every fault is reported by name; sampled ticks are kept.

use std::ops::RangeInclusive;
use std::time::Duration;

use ebpfstat_store::{ProgramRef, SortKey, Store, Tier};
use ebpfstat_tests::synthetic::{SimHost, start as t0};
use ebpfstat_tests::{store_config, stored_series};

const MIN: Duration = Duration::from_secs(60);
const HOUR: Duration = Duration::from_secs(3600);

#[test]
fn corrupt_file_is_moved_aside() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("history.db");
    std::fs::write(&path, vec![0x5a; 8192]).expect("write garbage");
    let store = Store::open(store_config(&path)).expect("open replaces the file");
    assert_eq!(store.integrity_check().expect("check"), "ok");
    let aside: Vec<_> = std::fs::read_dir(dir.path())
        .expect("list")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("history.db.corrupt-"))
        .collect();
    assert_eq!(aside.len(), 1, "{aside:?}");
    let kept = std::fs::read(dir.path().join(&aside[0])).expect("read aside");
    assert_eq!(kept, vec![0x5a; 8192], "the damaged file is kept as it was");
}

#[test]
fn unwritable_directory_is_named() {
    ebpfstat_tests::require_root!();
    let ro = ebpfstat_tests::Tmpfs::mount("ro").expect("read-only tmpfs");
    let path = ro.path().join("sub/history.db");
    let err = Store::open(store_config(&path)).expect_err("must fail");
    let msg = err.to_string();
    assert!(
        msg.contains(&ro.path().join("sub").display().to_string()),
        "{msg}"
    );
    assert!(msg.contains("Read-only file system"), "{msg}");

    let path = ro.path().join("history.db");
    let msg = Store::open(store_config(&path))
        .expect_err("must fail")
        .to_string();
    assert_eq!(
        msg,
        format!(
            "cannot use database directory {}: Read-only file system (os error 30)",
            ro.path().display()
        )
    );
}

#[test]
fn disk_full_keeps_samples_and_writes_them_when_space_returns() {
    ebpfstat_tests::require_root!();
    let fs = ebpfstat_tests::Tmpfs::mount("size=192k").expect("small tmpfs");
    let mut cfg = store_config(fs.path().join("history.db"));
    cfg.max_buffered_ticks = 100_000;
    let mut store = Store::open(cfg).expect("open");
    let mut host = SimHost::new("boot-f", t0(), HOUR);
    for id in 0..100 {
        host.load(id, &format!("full{id}"));
    }
    store.ingest(host.tick()).expect("baseline");
    let mut fed = 0u64;
    let mut failed_at = None;
    for i in 0..20_000u64 {
        host.advance(Duration::from_secs(1));
        for p in 0..100 {
            let cnt = 1 + (i * 7 + p as u64 * 13) % 997;
            host.run(p, cnt, cnt * 300 + i % 31);
            if p == 0 {
                fed += cnt;
            }
        }
        store.ingest(host.tick()).expect("ingest keeps working");
        if i % 60 == 59 {
            match store.flush(host.wall()) {
                Ok(()) => {}
                Err(e) => {
                    assert!(e.to_string().contains("disk"), "{e}");
                    failed_at.get_or_insert(i);
                    if i > failed_at.unwrap_or(i) + 600 {
                        break;
                    }
                }
            }
        }
    }
    let failed_at = failed_at.expect("the small filesystem filled up");
    let status = store.status().expect("status");
    assert!(status.ticks_buffered >= 600, "{status:?}");
    assert!(
        status
            .last_error
            .as_deref()
            .is_some_and(|e| e.contains("full")),
        "{status:?}"
    );
    assert_eq!(status.ticks_dropped, 0);
    eprintln!(
        "disk filled after {failed_at} ticks; {} buffered",
        status.ticks_buffered
    );

    fs.resize("64m").expect("grow tmpfs");
    store.flush(host.wall()).expect("writes resume");
    assert_eq!(store.status().expect("status").ticks_buffered, 0);
    let h = store
        .history(
            &ProgramRef::Series(stored_series(&store, "full0").series_id),
            t0(),
            host.wall() + MIN,
            HOUR,
            Some(Tier::Raw),
        )
        .expect("history");
    assert_eq!(h.points.iter().map(|p| p.run_cnt).sum::<u64>(), fed);
    assert_eq!(store.integrity_check().expect("check"), "ok");
}

/// A SQLite varint at `pos`: its value and where the next field starts.
fn varint(b: &[u8], mut pos: usize) -> (u64, usize) {
    let mut v = 0u64;
    for i in 0..9 {
        let x = b[pos];
        pos += 1;
        if i == 8 {
            return ((v << 8) | u64::from(x), pos);
        }
        v = (v << 7) | u64::from(x & 0x7f);
        if x < 0x80 {
            break;
        }
    }
    (v, pos)
}

/// Breaks the record of every cell on `index`'s leaf pages whose second column (for the
/// rollup tables' key index: `chunk`) lies in `chunks`: its header then claims more bytes than
/// the record holds, so reading that entry fails with SQLITE_CORRUPT. The b-tree stays
/// well-formed, which is all `PRAGMA quick_check` verifies of an index. Returns how many.
fn corrupt_index_cells(db: &std::path::Path, index: &str, chunks: RangeInclusive<i64>) -> usize {
    let conn = rusqlite::Connection::open(db).expect("open");
    conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
        .expect("checkpoint");
    let page_size: usize = conn
        .query_row("PRAGMA page_size", [], |r| r.get(0))
        .expect("page size");
    let pages: Vec<usize> = conn
        .prepare("SELECT pageno FROM dbstat WHERE name = ?1 AND pagetype = 'leaf'")
        .expect("dbstat")
        .query_map([index], |r| r.get(0))
        .expect("pages")
        .collect::<Result<_, _>>()
        .expect("pages");
    drop(conn);
    let mut bytes = std::fs::read(db).expect("read db");
    let mut broken = 0;
    for pg in pages {
        let off = (pg - 1) * page_size;
        let hdr = off + if pg == 1 { 100 } else { 0 };
        assert_eq!(bytes[hdr], 0x0a, "page {pg} is an index leaf");
        let cells = usize::from(u16::from_be_bytes([bytes[hdr + 3], bytes[hdr + 4]]));
        for i in 0..cells {
            let at = hdr + 8 + 2 * i;
            let ptr = usize::from(u16::from_be_bytes([bytes[at], bytes[at + 1]]));
            let (_payload, rec) = varint(&bytes, off + ptr);
            let (header, mut p) = varint(&bytes, rec);
            let end = rec + usize::try_from(header).expect("header size");
            let mut types = Vec::new();
            while p < end {
                let (t, q) = varint(&bytes, p);
                types.push(t);
                p = q;
            }
            // The first two values, big-endian two's complement (types 8 and 9: 0 and 1).
            let mut values = Vec::new();
            for t in types.iter().take(2) {
                let n = match t {
                    0 | 8 | 9 => 0,
                    1..=4 => usize::try_from(*t).expect("size"),
                    5 => 6,
                    6 => 8,
                    other => panic!("serial type {other} in an integer index"),
                };
                let mut x: i64 = if n > 0 && bytes[p] & 0x80 != 0 { -1 } else { 0 };
                for k in 0..n {
                    x = (x << 8) | i64::from(bytes[p + k]);
                }
                if *t == 9 {
                    x = 1;
                }
                p += n;
                values.push(x);
            }
            if chunks.contains(&values[1]) {
                assert!(header < 0x7f, "a one-byte header size");
                bytes[rec] = 0x7f;
                broken += 1;
            }
        }
    }
    std::fs::write(db, bytes).expect("write db");
    broken
}

#[test]
fn a_failed_lookup_is_reported_not_read_as_nothing_to_do() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("history.db");
    let mut store = Store::open(store_config(&path)).expect("open");
    // Boot time starts on a day: day 4 holds hours 96 to 119, day 5 hours 120 to 143.
    let mut host = SimHost::new("boot-k", t0(), 96 * HOUR);
    let programs = 20;
    for id in 0..programs {
        host.load(id + 1, &format!("kept{id}"));
    }
    store.ingest(host.tick()).expect("baseline");
    let pass = |host: &mut SimHost, store: &mut Store| {
        host.advance(MIN);
        for p in 0..usize::try_from(programs).expect("count") {
            host.run(p, 10, 1000);
        }
        store.ingest(host.tick()).expect("ingest");
    };
    // 40 hours at a pass a minute: day 4 is rolled into 1-hour chunks (day 5 has begun), and
    // day 5's complete hours into 1-minute chunks.
    for i in 0..40 * 60 {
        pass(&mut host, &mut store);
        if i % 10 == 9 {
            store.flush(host.wall()).expect("flush");
        }
    }
    store.flush(host.wall()).expect("flush");
    let status = store.status().expect("status");
    assert_eq!(status.last_error, None);
    assert!(
        status
            .tiers
            .iter()
            .any(|t| t.tier.as_str() == "1h" && t.rows > 0)
    );
    drop(store);

    // Where the next day's roll-up starts is looked up in the 1-minute tier's key index, at
    // day 5's first hour: break the index entries of its first four hours.
    let broken = corrupt_index_cells(&path, "sqlite_autoindex_min1_1", 120..=123);
    assert_eq!(broken, 4 * 20);

    // `quick_check` does not read index entries: the file opens as sound, nothing moved aside.
    let mut store = Store::open(store_config(&path)).expect("reopen");
    let aside = std::fs::read_dir(dir.path())
        .expect("list")
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().contains("corrupt"))
        .count();
    assert_eq!(aside, 0);
    // Ten more passes, inside the hour still open: each is written, and the roll-up lookup
    // after the flush fails on the broken page, by name.
    for _ in 0..10 {
        pass(&mut host, &mut store);
    }
    store.flush(host.wall()).expect("the passes are written");
    let status = store.status().expect("status");
    let error = status
        .last_error
        .expect("the failed lookup is reported, not taken for nothing to roll up");
    assert!(error.contains("malformed"), "{error}");
    assert_eq!(status.ticks_buffered, 0);
    // What was sampled after the fault is stored and answers: 10 passes of 10 runs each.
    let rows = store
        .top(
            host.wall() - 10 * MIN + Duration::from_secs(1),
            host.wall() + Duration::from_secs(1),
            SortKey::Runs,
            100,
        )
        .expect("top of the last ten minutes");
    assert_eq!(rows.len(), 20);
    assert!(rows.iter().all(|r| r.run_cnt == 100), "{rows:?}");

    // A program loaded now, idle: it has no raw segment and no rollup yet, so after a restart
    // finding its last counters scans the 1-minute tier back to the broken entries.
    host.load(99, "late_idle");
    pass(&mut host, &mut store);
    store.flush(host.wall()).expect("flush");
    drop(store);
    let mut store = Store::open(store_config(&path)).expect("reopen again");
    // That recovery fails; sampling and storing go on (the series left open stay open, and a
    // program still loaded starts a new series, its first pass a baseline).
    for _ in 0..10 {
        pass(&mut host, &mut store);
    }
    store.flush(host.wall()).expect("the passes are written");
    let rows = store
        .top(
            host.wall() - 10 * MIN + Duration::from_secs(1),
            host.wall() + Duration::from_secs(1),
            SortKey::Runs,
            100,
        )
        .expect("top of the last ten minutes");
    let running: Vec<u64> = rows.iter().map(|r| r.run_cnt).filter(|&n| n > 0).collect();
    assert_eq!(running, vec![90; 20], "{rows:?}");
}
