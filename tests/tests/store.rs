//! The history store on real SQLite files, fed by a simulated host whose clocks the test moves.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use ebpfstat_store::{ProgramRef, Retention, SortKey, Store, StoreConfig, Tier};
use ebpfstat_tests::synthetic::{SimHost, start as t0};
use ebpfstat_tests::{default_retention, store_config, stored_series};

const MIN: Duration = Duration::from_secs(60);
const HOUR: Duration = Duration::from_secs(3600);
const DAY: Duration = Duration::from_secs(86_400);

fn store_at(dir: &tempfile::TempDir, retention: Retention, cap: u64) -> Store {
    Store::open(StoreConfig::new(
        dir.path().join("history.db"),
        retention,
        cap,
    ))
    .expect("open store")
}

/// Expected sums per (program index, bucket start).
type Expected = BTreeMap<(usize, SystemTime), (u64, u64)>;

fn bucket_of(t: SystemTime, width: Duration) -> SystemTime {
    let secs = t
        .duration_since(SystemTime::UNIX_EPOCH)
        .expect("after epoch")
        .as_secs();
    SystemTime::UNIX_EPOCH + Duration::from_secs(secs - secs % width.as_secs())
}

#[test]
#[expect(
    clippy::too_many_lines,
    reason = "one scenario read top to bottom: each step checks what the step before left"
)]
fn rollups_equal_raw_sums_exactly() {
    let dir = tempfile::tempdir().expect("tempdir");
    let retention = Retention {
        raw: 2 * HOUR,
        min1: 7 * DAY,
        hour1: 90 * DAY,
    };
    let mut store = store_at(&dir, retention, 64 << 20);
    let mut host = SimHost::new("boot-a", t0(), 100 * HOUR);
    let names = ["steady", "bursty", "idle", "late"];
    host.load(1, names[0]);
    host.load(2, names[1]);
    host.load(3, names[2]);
    store.ingest(host.tick()).expect("baseline tick");
    let step = Duration::from_secs(10);
    let mut by_min = Expected::new();
    let mut by_hour = Expected::new();
    let mut late_loaded = false;
    let total_ticks = (26 * HOUR).as_secs() / step.as_secs();
    for i in 0..total_ticks {
        host.advance(step);
        if i == 200 {
            host.load(4, names[3]);
            late_loaded = true;
        }
        if i == 5000 && late_loaded {
            host.unload(3);
            late_loaded = false;
        }
        let activity = [
            Some((100 + (i * 7) % 50, 250 * (100 + (i * 7) % 50) + i % 13)),
            (i % 13 == 0).then_some((1000, 900_000)),
            None,
            (late_loaded && i > 200).then_some((3, 3000 + i % 100)),
        ];
        for (p, act) in activity.iter().enumerate() {
            let Some((cnt, rt)) = *act else { continue };
            let index = if p == 3 { 3 } else { p };
            if p == 3 && !late_loaded {
                continue;
            }
            host.run(index, cnt, rt);
            for (map, width) in [(&mut by_min, MIN), (&mut by_hour, HOUR)] {
                let e = map.entry((p, bucket_of(host.wall(), width))).or_default();
                e.0 += cnt;
                e.1 += rt;
            }
        }
        store.ingest(host.tick()).expect("ingest");
        if i % 6 == 5 {
            store.flush(host.wall()).expect("flush");
        }
    }
    store.flush(host.wall()).expect("flush");

    let status = store.status().expect("status");
    let spans: BTreeMap<&str, _> = status.tiers.iter().map(|t| (t.tier.as_str(), t)).collect();
    assert!(spans["1h"].rows > 0, "a full day rolled into 1-hour chunks");
    assert!(spans["1m"].rows > 0);
    let raw_oldest = spans["raw"].oldest.expect("raw data");
    assert!(
        raw_oldest >= host.wall() - retention.raw - HOUR,
        "raw kept too long"
    );

    let end = host.wall() + Duration::from_secs(1);
    for (p, name) in names.iter().enumerate() {
        let target = ProgramRef::Series(stored_series(&store, name).series_id);
        for (tier, width, expected) in [(Tier::Min1, MIN, &by_min), (Tier::Hour1, HOUR, &by_hour)] {
            let h = store
                .history(&target, t0(), end, width, Some(tier))
                .expect("history");
            assert_eq!(h.tier, tier);
            let got: BTreeMap<SystemTime, (u64, u64)> = h
                .points
                .iter()
                .filter(|pt| pt.run_cnt > 0 || pt.run_time_ns > 0)
                .map(|pt| (pt.start, (pt.run_cnt, pt.run_time_ns)))
                .collect();
            let want: BTreeMap<SystemTime, (u64, u64)> = expected
                .iter()
                .filter(|((q, _), _)| *q == p)
                .map(|((_, t), v)| (*t, *v))
                .collect();
            let diff: Vec<_> = want
                .iter()
                .filter(|(t, v)| got.get(t) != Some(v))
                .map(|(t, v)| (*t, *v, got.get(t).copied()))
                .chain(
                    got.iter()
                        .filter(|(t, _)| !want.contains_key(t))
                        .map(|(t, v)| (*t, (0, 0), Some(*v))),
                )
                .take(3)
                .collect();
            assert!(
                diff.is_empty(),
                "{name} at {tier:?}: (bucket, want, got) {diff:?}"
            );
            let last = h.points.last().expect("points");
            let fed: u64 = want.values().map(|v| v.0).sum();
            assert_eq!(last.cum_run_cnt, fed, "{name} cumulative at {tier:?}");
        }
    }
    // The raw tier answers the last hour tick by tick.
    let target = ProgramRef::Series(stored_series(&store, "steady").series_id);
    let from = bucket_of(host.wall() - HOUR, MIN);
    let raw = store
        .history(&target, from, end, step, Some(Tier::Raw))
        .expect("raw history");
    let raw_sum: u64 = raw.points.iter().map(|p| p.run_cnt).sum();
    let want: u64 = by_min
        .iter()
        .filter(|((p, t), _)| *p == 0 && *t >= from)
        .map(|(_, v)| v.0)
        .sum();
    assert_eq!(raw_sum, want);
    assert!(raw.points.iter().all(|p| p.samples == 1));
    assert_eq!(store.integrity_check().expect("check"), "ok");
}

#[test]
fn retention_holds_over_simulated_days() {
    let dir = tempfile::tempdir().expect("tempdir");
    let retention = Retention {
        raw: HOUR,
        min1: 12 * HOUR,
        hour1: 2 * DAY,
    };
    let mut store = store_at(&dir, retention, 64 << 20);
    let mut host = SimHost::new("boot-r", t0(), 10 * HOUR);
    for id in 0..20 {
        host.load(id, &format!("prog{id}"));
    }
    let step = Duration::from_secs(30);
    let per_hour = HOUR.as_secs() / 30;
    for i in 0..(4 * DAY).as_secs() / 30 {
        host.advance(step);
        // Churn: ten programs live from the first hour to the second, then go.
        if i == per_hour {
            for k in 0..10 {
                host.load(100 + k, &format!("churn{k}"));
            }
        }
        if i == 2 * per_hour {
            for _ in 0..10 {
                host.unload(20);
            }
        }
        if i == 24 * per_hour {
            assert_eq!(
                store.status().expect("status").series,
                30,
                "ended, still kept"
            );
        }
        for p in 0..4 {
            host.run(p, 10 + i % 5, 1000 + i % 77);
        }
        store.ingest(host.tick()).expect("ingest");
        if i % 4 == 3 {
            store.flush(host.wall()).expect("flush");
        }
    }
    store.flush(host.wall()).expect("flush");
    let now = host.wall();
    let status = store.status().expect("status");
    // Ended series age out with their data: the churned programs' last hour-rollup left.
    assert_eq!(status.series, 20, "ended series outlived their data");
    for span in &status.tiers {
        let (max_age, slack) = match span.tier.as_str() {
            "raw" => (retention.raw, 2 * MIN),
            "1m" => (retention.min1, HOUR),
            _ => (retention.hour1, DAY),
        };
        let oldest = span.oldest.expect("tier has data");
        let age = now.duration_since(oldest).expect("oldest before now");
        assert!(
            age <= max_age + slack,
            "{}: oldest is {age:?} old",
            span.tier.as_str()
        );
        assert!(
            age + slack >= max_age,
            "{}: only {age:?} kept",
            span.tier.as_str()
        );
    }
    // Four days in, the first day survives only as 1-hour rollups, and the totals are exact.
    let target = ProgramRef::Series(stored_series(&store, "prog0").series_id);
    let h = store
        .history(&target, now - 2 * DAY + HOUR, now, HOUR, None)
        .expect("history");
    assert_eq!(h.tier, Tier::Hour1);
    assert!(
        h.points.iter().all(|p| p.samples == 120),
        "120 passes per hour"
    );
    assert_eq!(store.integrity_check().expect("check"), "ok");
}

#[test]
fn byte_cap_is_a_ring_buffer() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cap = 1 << 20;
    let mut store = store_at(&dir, default_retention(), cap);
    let mut host = SimHost::new("boot-c", t0(), 10 * HOUR);
    for id in 0..50 {
        host.load(id, &format!("busy{id}"));
    }
    let path = dir.path().join("history.db");
    let mut max_file = 0;
    for i in 0..(2 * DAY).as_secs() / 5 {
        host.advance(Duration::from_secs(5));
        for p in 0..50 {
            host.run(
                p,
                1 + (i * 31 + p as u64 * 17) % 1000,
                10_000 + (i * 7919) % 100_000,
            );
        }
        store.ingest(host.tick()).expect("ingest");
        if i % 12 == 11 {
            store.flush(host.wall()).expect("flush under the cap");
            max_file = max_file.max(std::fs::metadata(&path).expect("db").len());
        }
    }
    assert!(max_file <= cap, "file grew to {max_file} bytes, cap {cap}");
    let status = store.status().expect("status");
    assert!(status.used_bytes <= cap);
    // The newest data is all there; the oldest went first.
    let raw = &status.tiers[0];
    assert!(raw.newest.is_some());
    let top = store
        .top(
            host.wall() - 10 * MIN + Duration::from_secs(1),
            host.wall() + Duration::from_secs(1),
            SortKey::Runs,
            5,
        )
        .expect("top");
    assert_eq!(top.len(), 5);
    let samples: Vec<u32> = top.iter().map(|r| r.samples).collect();
    assert_eq!(samples, vec![120; 5], "10 minutes of 5-second passes");
}

#[test]
#[expect(
    clippy::too_many_lines,
    reason = "one scenario read top to bottom: each step checks what the step before left"
)]
fn clock_steps_and_reboots_keep_series_ordered_and_separate() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut store = store_at(&dir, default_retention(), 64 << 20);
    // A device that boots at 1970 until NTP sets the clock.
    let mut host = SimHost::new(
        "boot-1",
        SystemTime::UNIX_EPOCH + Duration::from_secs(600),
        Duration::from_secs(20),
    );
    let p = host.load(7, "clocky");
    store.ingest(host.tick()).expect("baseline");
    let tick = |store: &mut Store, host: &mut SimHost| {
        host.advance(Duration::from_secs(1));
        host.run(p, 10, 1000);
        store.ingest(host.tick()).expect("ingest");
    };
    for _ in 0..600 {
        tick(&mut store, &mut host);
    }
    host.step_wall(t0());
    for _ in 0..600 {
        tick(&mut store, &mut host);
    }
    // And an admin sets it back by an hour.
    host.step_wall(host.wall() - HOUR);
    for _ in 0..600 {
        tick(&mut store, &mut host);
    }
    store.flush(host.wall()).expect("flush");
    assert_eq!(store.status().expect("status").clock_steps, 2);

    // Everything this boot sampled sits on the latest anchor, in order, and adds up.
    let first = ProgramRef::ProgramId(7);
    let h = store
        .history(
            &first,
            host.wall() - 40 * MIN,
            host.wall() + MIN,
            MIN,
            Some(Tier::Raw),
        )
        .expect("history");
    let total: u64 = h.points.iter().map(|p| p.run_cnt).sum();
    assert_eq!(total, 1800 * 10);
    let cums: Vec<u64> = h.points.iter().map(|p| p.cum_run_cnt).collect();
    assert!(
        cums.windows(2).all(|w| w[0] <= w[1]),
        "cumulative never goes back"
    );
    assert_eq!(cums.last().copied(), Some(18_000));

    // A reboot: the same program id is a new series; nothing merges by id.
    host.reboot("boot-2", Duration::from_secs(5));
    let q = host.load(7, "clocky");
    store.ingest(host.tick()).expect("baseline");
    for _ in 0..120 {
        host.advance(Duration::from_secs(1));
        host.run(q, 1, 100);
        store.ingest(host.tick()).expect("ingest");
    }
    store.flush(host.wall()).expect("flush");
    let series: Vec<_> = store
        .all_series()
        .expect("series")
        .into_iter()
        .filter(|s| s.full_name == "clocky")
        .collect();
    assert_eq!(series.len(), 2);
    assert_ne!(series[0].boot_seq, series[1].boot_seq);
    let now = store
        .history(
            &ProgramRef::ProgramId(7),
            host.wall() - 10 * MIN,
            host.wall() + MIN,
            MIN,
            None,
        )
        .expect("history");
    assert_eq!(now.series.len(), 1);
    assert_eq!(now.points.iter().map(|p| p.run_cnt).sum::<u64>(), 120);
    // By identity, both loads, with a cumulative that carries across the reload.
    let s = &series[0];
    let ident = ProgramRef::Identity {
        name: s.full_name.clone(),
        prog_type: s.prog_type.clone(),
        tag: s.tag.clone(),
    };
    let both = store
        .history(&ident, host.wall() - 2 * HOUR, host.wall() + MIN, MIN, None)
        .expect("identity history");
    assert_eq!(both.series.len(), 2);
    assert_eq!(
        both.points.last().map(|p| p.cum_run_cnt),
        Some(18_000 + 120)
    );
}

#[test]
fn queries_reject_bad_input_clearly() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut store = store_at(&dir, default_retention(), 64 << 20);
    let mut host = SimHost::new("boot-q", t0(), HOUR);
    host.load(1, "only");
    store.ingest(host.tick()).expect("ingest");
    let now = host.wall();
    fn err<T>(r: Result<T, ebpfstat_store::QueryError>) -> Option<String> {
        r.err().map(|e| e.to_string())
    }
    let e = err(store.history(&ProgramRef::ProgramId(99), now - HOUR, now, MIN, None));
    assert_eq!(
        e.as_deref(),
        Some("no such program: no program with id 99 in this boot")
    );
    let e = err(store.history(&ProgramRef::ProgramId(1), now, now - HOUR, MIN, None));
    assert!(e.expect("error").contains("ends"));
    let e = err(store.history(
        &ProgramRef::ProgramId(1),
        now - 365 * DAY,
        now,
        Duration::from_secs(1),
        None,
    ));
    assert!(e.expect("error").contains("at most"));
    let e = err(store.top(now - HOUR, now, SortKey::Cpu, 0));
    assert!(e.expect("error").contains("n must be"));
    let e = err(store.top(SystemTime::UNIX_EPOCH, now, SortKey::Cpu, 3));
    assert!(e.expect("error").contains("outside"));
}

/// `seconds` one-second passes in which the host's first program runs twice (100 ns each),
/// flushed every minute and at the end.
fn twice_a_second(host: &mut SimHost, store: &mut Store, seconds: u64) {
    for i in 0..seconds {
        host.advance(Duration::from_secs(1));
        host.run(0, 2, 200);
        store.ingest(host.tick()).expect("ingest");
        if i % 60 == 0 {
            store.flush(host.wall()).expect("flush");
        }
    }
    store.flush(host.wall()).expect("flush");
}

#[test]
fn a_reopened_store_answers_before_its_first_tick() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut host = SimHost::new("boot-o", t0(), HOUR);
    host.load(1, "persisted");
    {
        let mut store = store_at(&dir, default_retention(), 64 << 20);
        store.ingest(host.tick()).expect("baseline");
        twice_a_second(&mut host, &mut store, 3 * 3600);
    }
    let store = store_at(&dir, default_retention(), 64 << 20);
    for window in [10 * MIN, 2 * HOUR, DAY] {
        let top = store
            .top(
                host.wall() - window + Duration::from_secs(1),
                host.wall() + MIN,
                SortKey::Runs,
                5,
            )
            .expect("top");
        assert_eq!(top.len(), 1, "{window:?}");
        assert!(!top[0].series.alive);
        let want = 2 * window.min(3 * HOUR).as_secs();
        assert_eq!(top[0].run_cnt, want, "{window:?} from {:?}", top[0].tier);
    }
}

/// A window longer than raw history is summed from a rollup tier plus, for its newest part not
/// rolled up yet, raw ticks: its rates are over the whole window observed, where the raw part's
/// own intervals (a few seconds) once made 2 runs/s read as hours of runs per second.
#[test]
fn rates_over_a_rollup_and_its_raw_tail_are_over_the_whole_window() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut host = SimHost::new("boot-t", t0(), HOUR);
    host.load(1, "steady");
    let mut store = store_at(&dir, default_retention(), 64 << 20);
    // Raw history begins a second after the hour, where the rollup's first bucket begins.
    host.advance(Duration::from_secs(1));
    store.ingest(host.tick()).expect("baseline");
    twice_a_second(&mut host, &mut store, 3 * 3600 + 30);
    store.maintain(host.wall()).expect("maintain");
    // From the hour's start: the rollup's first bucket, a second before the first raw tick.
    for window in [
        2 * HOUR,
        host.wall().duration_since(t0()).expect("after t0"),
    ] {
        let from = host.wall() - window;
        let top = store.top(from, host.wall(), SortKey::Runs, 5).expect("top");
        assert_eq!(top.len(), 1, "{window:?}");
        let rate = top[0].rates.runs_per_sec;
        assert!(
            (1.99..=2.01).contains(&rate),
            "{window:?} from {:?}: {rate} runs/s over {} ns",
            top[0].tier,
            top[0].span_ns
        );
    }
}

#[test]
fn top_of_a_past_window_leaves_out_programs_born_after_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut store = store_at(&dir, default_retention(), 64 << 20);
    let mut host = SimHost::new("boot-t", t0(), HOUR);
    host.load(1, "before");
    store.ingest(host.tick()).expect("baseline");
    for _ in 0..60 {
        host.advance(Duration::from_secs(10));
        host.run(0, 5, 500);
        store.ingest(host.tick()).expect("ingest");
    }
    store.flush(host.wall()).expect("flush");
    let window_end = host.wall();
    host.advance(MIN);
    host.load(2, "after");
    store.ingest(host.tick()).expect("birth");
    host.advance(Duration::from_secs(10));
    host.run(1, 3, 300);
    store.ingest(host.tick()).expect("ingest");
    let names = |store: &Store, from, to| -> Vec<String> {
        store
            .top(from, to, SortKey::Runs, 10)
            .expect("top")
            .into_iter()
            .map(|r| r.series.full_name)
            .collect()
    };
    // Born after the window: left out while only in memory, and once written.
    assert_eq!(names(&store, t0(), window_end), ["before"]);
    store.flush(host.wall()).expect("flush");
    assert_eq!(names(&store, t0(), window_end), ["before"]);
    // Its own window lists it.
    let mut later = names(&store, window_end, host.wall() + MIN);
    later.sort();
    assert_eq!(later, ["after", "before"]);
}

#[test]
fn events_are_a_bounded_ring_kept_across_a_reopen() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("h.db");
    let event = |i: u64| ebpfstat_store::Event {
        time: SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000 + i),
        kind: "version".into(),
        program: format!("p{i}"),
        prog_type: "kprobe".into(),
        tag: format!("{i:016x}"),
        before_tag: "00".into(),
        judged: true,
        significant: i.is_multiple_of(2),
        ratio: 1.5,
        ratio_low: 1.4,
        ratio_high: 1.6,
        text: format!("p{i}: new version"),
    };
    {
        let mut store = Store::open(store_config(&db)).expect("open");
        let extra = 5;
        for i in 0..u64::try_from(ebpfstat_store::MAX_EVENTS).expect("positive") + extra {
            store.record_event(&event(i)).expect("record");
        }
    }
    let store = Store::open(store_config(&db)).expect("reopen");
    let kept = store.events(SystemTime::UNIX_EPOCH, 5000).expect("events");
    assert_eq!(kept.len(), 1000);
    assert_eq!(kept[0], event(5), "the oldest five are gone");
    assert_eq!(kept[999].program, "p1004");
    // None of these versions has a stored load: none is remembered as concluded.
    assert!(
        !store
            .is_concluded("p1004", "kprobe", &format!("{:016x}", 1004))
            .expect("concluded")
    );
    // Since a time: only what came at or after it.
    let since = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000 + 1000);
    assert_eq!(store.events(since, 5000).expect("events").len(), 5);
}

#[test]
#[expect(
    clippy::too_many_lines,
    reason = "one scenario read top to bottom: each step checks what the step before left"
)]
fn alerts_are_a_ring_of_their_own_and_those_raised_are_kept_apart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("h.db");
    let t = |s: u64| SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000 + s);
    let alert = |i: u64, rule: &str, prog_id: u32, state: &str| ebpfstat_store::AlertRecord {
        time: t(i),
        rule: rule.into(),
        metric: "cpu_pct".into(),
        state: state.into(),
        prog_id,
        program: format!("p{prog_id}"),
        prog_type: "tracepoint".into(),
        value: 7.5,
        threshold: 5.0,
        clear: 4.0,
        since: t(i),
        text: format!("alert {rule} {state}"),
    };
    {
        let mut store = Store::open(store_config(&db)).expect("open");
        store
            .record_event(&ebpfstat_store::Event {
                time: t(0),
                kind: "version".into(),
                program: "v".into(),
                prog_type: "kprobe".into(),
                tag: "aa".into(),
                before_tag: "bb".into(),
                judged: false,
                significant: false,
                ratio: 0.0,
                ratio_low: 0.0,
                ratio_high: 0.0,
                text: "v: not judged".into(),
            })
            .expect("event");
        // 1100 changes of a flapping rule, in passes of 10, then two raised at the stop.
        let flapping: Vec<_> = (0..1100)
            .map(|i| alert(i, "flap", 3, if i % 2 == 0 { "raised" } else { "cleared" }))
            .collect();
        for pass in flapping.chunks(10) {
            store.record_alerts(pass).expect("record");
        }
        store
            .record_alerts(&[
                alert(2000, "hot", 1, "raised"),
                alert(2000, "hot", 2, "raised"),
            ])
            .expect("record");
        store
            .record_alerts(&[alert(2001, "hot", 2, "cleared")])
            .expect("record");
    }
    // An older file (schema 2, no alerts or map tables) is migrated forward.
    let old = dir.path().join("old.db");
    drop(Store::open(store_config(&old)).expect("open"));
    {
        let conn = rusqlite::Connection::open(&old).expect("open");
        conn.execute_batch(
            "DROP TABLE alerts; DROP TABLE open_alerts; DROP TABLE map_points;
             DROP TABLE map_series; PRAGMA user_version = 2;",
        )
        .expect("make it schema 2");
    }
    let mut migrated = Store::open(store_config(&old)).expect("migrates");
    migrated
        .record_alerts(&[alert(1, "hot", 1, "raised")])
        .expect("the new table is there");

    let store = Store::open(store_config(&db)).expect("reopen");
    let kept = store
        .alerts_since(SystemTime::UNIX_EPOCH, 5000)
        .expect("alerts");
    assert_eq!(kept.len(), 1000);
    assert_eq!(kept[999].text, "alert hot cleared");
    assert_eq!(kept[0].time, t(103), "the oldest 103 are gone");
    // The flapping rule did not push the version event out of its own ring.
    assert_eq!(
        store
            .events(SystemTime::UNIX_EPOCH, 10)
            .expect("events")
            .len(),
        1
    );
    assert_eq!(store.alerts_since(t(2000), 10).expect("since").len(), 3);
    // The alerts raised now are a list of their own, replaced whole, kept across a reopen.
    assert!(store.open_alerts().expect("open").is_empty());
    let mut store = store;
    store
        .save_open_alerts(&[
            alert(2000, "hot", 1, "raised"),
            alert(2000, "hot", 2, "raised"),
        ])
        .expect("save");
    store
        .save_open_alerts(&[alert(2000, "hot", 1, "raised")])
        .expect("save");
    drop(store);
    let store = Store::open(store_config(&db)).expect("reopen");
    let open = store.open_alerts().expect("open alerts");
    assert_eq!(open, [alert(2000, "hot", 1, "raised")]);
}

#[test]
fn a_full_name_learnt_late_names_the_whole_series() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut store = store_at(&dir, default_retention(), 64 << 20);
    let mut host = SimHost::new("boot-a", t0(), Duration::from_secs(100));
    // One written before its name is learnt; one renamed before it is first written.
    let early = host.load(1, "cut_to_15_bytes");
    store.ingest(host.tick()).expect("ingest");
    store.flush(host.wall()).expect("flush");
    let late = host.load(2, "cut_too_15_byte");
    for s in 0..5 {
        host.advance(Duration::from_secs(1));
        host.run(early, 10, 1000);
        host.run(late, 10, 1000);
        store.ingest(host.tick()).expect("ingest");
        if s == 1 {
            host.rename(early, "cut_to_15_bytes_and_more");
            host.rename(late, "cut_too_15_bytes_of_it");
        }
    }
    store.flush(host.wall()).expect("flush");
    // The first tick of each is its baseline.
    for (full, want) in [
        ("cut_to_15_bytes_and_more", 50),
        ("cut_too_15_bytes_of_it", 40),
    ] {
        let s = stored_series(&store, full);
        let h = store
            .history(
                &ProgramRef::Series(s.series_id),
                t0(),
                host.wall() + Duration::from_secs(1),
                Duration::from_secs(60),
                None,
            )
            .expect("history");
        let runs: u64 = h.points.iter().map(|p| p.run_cnt).sum();
        assert_eq!(runs, want, "{full}: every run under the full name");
    }
    let names: Vec<String> = store
        .all_series()
        .expect("series")
        .into_iter()
        .map(|s| s.full_name)
        .collect();
    assert_eq!(names.len(), 2, "{names:?}");
}

fn map(id: u32, name: &str, memory: u64, entries: Option<u64>) -> ebpfstat_store::MapReading {
    ebpfstat_store::MapReading {
        id,
        name: name.to_owned(),
        map_type: "hash",
        max_entries: 1024,
        memory: Some(memory),
        entries,
    }
}

/// Rescans every 10 s, from the host's clock on (returned): map 7's entries 0, 5, 5, 9, 3 (peak 9
/// in the first minute), then 3 for long; map 8 for the first six; a flush after the third.
fn feed_maps(store: &mut Store, host: &mut SimHost) -> SystemTime {
    store.ingest(host.tick()).expect("tick");
    let start = host.tick().wall;
    let counts = [0, 5, 5, 9, 3, 3, 3, 3, 3, 3, 3, 3];
    for (i, n) in counts.iter().enumerate() {
        if i > 0 {
            host.advance(Duration::from_secs(10));
            store.ingest(host.tick()).expect("tick");
        }
        let mut maps = vec![map(7, "conntrack", 4096, Some(*n))];
        if i < 6 {
            maps.push(map(8, "short_lived", 512, None));
        }
        store
            .ingest_maps("boot-m", host.tick().wall, &maps)
            .expect("maps");
        if i == 2 {
            store.flush(host.tick().wall).expect("flush");
        }
    }
    start
}

/// A map's history: a point where it changed, its value at a range's start carried in, the
/// most entries of a minute kept, a map gone ended, a restart (same boot) going on with the
/// same series; what is buffered is answered before it is written.
#[test]
fn map_history_keeps_changes_exactly() {
    use ebpfstat_store::{MapTarget, Tier};
    let dir = tempfile::tempdir().expect("tempdir");
    let mut store = store_at(&dir, default_retention(), 64 << 20);
    let mut host = SimHost::new("boot-m", t0(), HOUR);
    let start = feed_maps(&mut store, &mut host);
    let now = host.tick().wall;
    let all = |store: &Store, target: &MapTarget, from: SystemTime| {
        store
            .map_history(target, (from, now), 1000, now)
            .expect("map history")
    };
    let h = all(&store, &MapTarget::Name("conntrack".into()), start);
    assert_eq!(h.tier, Tier::Raw);
    assert_eq!(h.series.len(), 1);
    let entries: Vec<(u64, Option<u64>)> = h
        .points
        .iter()
        .map(|p| {
            (
                p.time.duration_since(start).expect("after").as_secs(),
                p.entries,
            )
        })
        .collect();
    // Changes only: 0 at 0 s, 5 at 10 s, 9 at 30 s, 3 at 40 s.
    assert_eq!(
        entries,
        [(0, Some(0)), (10, Some(5)), (30, Some(9)), (40, Some(3))]
    );
    // Cut at 2 points: the first two, and where to go on (the third's time, 30 s).
    let cut = store
        .map_history(&MapTarget::Id(7), (start, now), 2, now)
        .expect("a page");
    assert_eq!(cut.points, h.points[..2]);
    assert_eq!(cut.next_from, Some(start + Duration::from_secs(30)));
    // From 25 s on: the value then (5) is carried in at the start.
    let later = all(&store, &MapTarget::Id(7), start + Duration::from_secs(25));
    assert_eq!(later.points.first().map(|p| p.entries), Some(Some(5)));
    // The short-lived map ended when a rescan no longer saw it (60 s).
    let gone = all(&store, &MapTarget::Id(8), start);
    assert_eq!(
        gone.series[0]
            .gone
            .map(|g| g.duration_since(start).expect("after").as_secs()),
        Some(60)
    );
    store.flush(now).expect("flush");
    let written = all(&store, &MapTarget::Name("conntrack".into()), start);
    assert_eq!(written.points, h.points, "the same once written");
    // A minute-tier bucket keeps the minute's last value and its peak.
    let minute = store
        .map_history(&MapTarget::Id(7), (start, now), 1000, now + 7 * HOUR)
        .expect("older range");
    assert_eq!(minute.tier, Tier::Min1);
    let first = minute.points.first().expect("a point");
    assert_eq!((first.entries, first.peak_entries), (Some(3), Some(9)));
    // The daemon restarts in the same boot: the live map goes on in its series, one new point.
    drop(store);
    let mut store = store_at(&dir, default_retention(), 64 << 20);
    host.advance(Duration::from_secs(10));
    store.ingest(host.tick()).expect("tick");
    store
        .ingest_maps(
            "boot-m",
            host.tick().wall,
            &[map(7, "conntrack", 4096, Some(3))],
        )
        .expect("maps");
    let again = store
        .map_history(
            &MapTarget::Name("conntrack".into()),
            (start, host.tick().wall),
            1000,
            host.tick().wall,
        )
        .expect("map history");
    assert_eq!(again.series.len(), 1, "{:?}", again.series);
    assert_eq!(again.points.len(), 5);
    let unknown = store
        .map_history(&MapTarget::Id(99), (start, now), 10, now)
        .err();
    assert_eq!(
        unknown.map(|e| e.to_string()).as_deref(),
        Some("no map id 99 in the history")
    );
}

#[test]
fn a_push_position_is_kept_with_the_flush_and_read_back_after_a_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = "http://127.0.0.1:9/api/v1/write";
    {
        let mut store = store_at(&dir, default_retention(), 64 << 20);
        assert_eq!(store.pushed(url).expect("read"), None);
        store.set_pushed(url, 1_000, false).expect("set");
        store.set_pushed(url, 2_000, false).expect("set");
        // Known at once, before it is written.
        assert_eq!(store.pushed(url).expect("read"), Some(2_000));
        store.flush(t0()).expect("flush");
        // One written at once (a target catching up) is kept...
        store.set_pushed("http://third/", 7, true).expect("set");
        // ...one set after, the store dropped without another flush (a crash), is not.
        store.set_pushed("http://other/", -5, false).expect("set");
    }
    // What was flushed or written at once is read back; what was not is forgotten.
    let store = store_at(&dir, default_retention(), 64 << 20);
    assert_eq!(store.pushed(url).expect("read"), Some(2_000));
    assert_eq!(store.pushed("http://other/").expect("read"), None);
    assert_eq!(store.pushed("http://third/").expect("read"), Some(7));
}
