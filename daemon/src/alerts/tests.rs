//! The evaluator on made-up passes: holding, hysteresis, flapping, unloads, selectors,
//! host-wide rules, restarts and reloads.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use super::eval::{Change, Evaluator, Judged, Moment, Rates, State, Subject, Why};
use super::maps::MapSubject;
use super::rules::{Metric, Rule};
use crate::sampler::model::ProgramContext;
use crate::sampler::owners::Owner;
use ebpfstat_store::AlertRecord;

const T0: u64 = 1_800_000_000;

fn judge(ev: &mut Evaluator, s: &[Subject<'_>], overhead: Option<f64>, at: &Moment) -> Vec<Change> {
    ev.evaluate(s, &[], overhead, at).changes
}

fn rule(name: &str, metric: Metric, threshold: f64, clear: f64, hold_s: u64) -> Rule {
    Rule {
        name: name.into(),
        metric,
        threshold,
        hold: Duration::from_secs(hold_s),
        clear,
        program: None,
        prog_type: None,
        unit: None,
        container: None,
        map: None,
    }
}

fn at(s: u64) -> Moment {
    Moment {
        mono: Duration::from_secs(s),
        wall: SystemTime::UNIX_EPOCH + Duration::from_secs(T0 + s),
        elapsed: Duration::from_secs(1),
    }
}

struct Prog {
    id: u32,
    name: &'static str,
    prog_type: &'static str,
    context: Arc<ProgramContext>,
}

fn prog(id: u32, name: &'static str) -> Prog {
    Prog {
        id,
        name,
        prog_type: "tracepoint",
        context: Arc::new(ProgramContext::default()),
    }
}

fn subject(p: &Prog, cpu_pct: f64) -> Subject<'_> {
    Subject {
        id: p.id,
        name: p.name,
        full_name: p.name,
        prog_type: p.prog_type,
        load_time: SystemTime::UNIX_EPOCH + Duration::from_secs(T0 - 100),
        context: &p.context,
        interval: Some(Rates {
            cpu_pct,
            avg_ns: Some(100.0),
            runs_per_sec: 10.0,
            missed_per_sec: None,
        }),
    }
}

/// `p` over an interval in which it ran `runs` times at `avg_ns` each (its cost per run: none
/// without runs), or did not run.
fn ran(p: &Prog, runs: f64, avg_ns: f64) -> Subject<'_> {
    let mut s = subject(p, 0.0);
    s.interval = Some(Rates {
        cpu_pct: runs * avg_ns / 1e7,
        avg_ns: (runs > 0.0).then_some(avg_ns),
        runs_per_sec: runs,
        missed_per_sec: None,
    });
    s
}

#[test]
fn raises_once_after_holding_and_clears_below_the_clear_level() {
    let p = prog(7, "hot");
    let mut ev = Evaluator::new(
        vec![rule("cpu", Metric::CpuPct, 5.0, 4.0, 3)],
        vec![],
        usize::MAX,
    );
    let mut raised = Vec::new();
    for s in 1..=10 {
        for c in judge(&mut ev, &[subject(&p, 6.0)], None, &at(s)) {
            raised.push((s, c));
        }
    }
    // Above since second 0 (the first value covers the second before it): raised at 3 s.
    assert_eq!(raised.len(), 1, "{raised:?}");
    let (s, c) = &raised[0];
    assert_eq!(
        (*s, c.state, c.prog_id, c.value),
        (3, State::Raised, 7, 6.0)
    );
    assert_eq!(ev.active(SystemTime::now(), 1000).0.len(), 1);
    // Between the clear level and the threshold: still raised.
    assert!(judge(&mut ev, &[subject(&p, 4.5)], None, &at(11)).is_empty());
    let cleared = judge(&mut ev, &[subject(&p, 3.9)], None, &at(12));
    assert_eq!(cleared.len(), 1);
    assert_eq!(
        (cleared[0].state, cleared[0].why),
        (State::Cleared, Why::Crossed)
    );
    assert_eq!(cleared[0].since, at(3).wall);
    assert!(ev.active(SystemTime::now(), 1000).0.is_empty());
}

#[test]
fn an_interval_without_runs_neither_raises_nor_clears_a_cost_per_run() {
    // Runs about once a second, passes every second: some intervals have no run. They say
    // nothing about the cost of a run, which was 5 µs each time it ran.
    let p = prog(1, "once_a_second");
    let mut ev = Evaluator::new(
        vec![rule("slow", Metric::AvgNs, 2000.0, 2000.0, 3)],
        vec![],
        usize::MAX,
    );
    let runs = [
        1.0, 0.0, 1.0, 1.0, 0.0, 0.0, 1.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0,
    ];
    let changes: Vec<(u64, State)> = (1..)
        .zip(runs)
        .flat_map(|(s, n)| {
            judge(&mut ev, &[ran(&p, n, 5000.0)], None, &at(s))
                .into_iter()
                .map(move |c| (s, c.state))
        })
        .collect();
    // Above from second 0: raised once it held 3 s (a pass without runs did not reset the
    // wait), then never cleared by an interval without runs.
    assert_eq!(changes, [(3, State::Raised)]);
    let active = ev.active(SystemTime::now(), 1000).0;
    assert_eq!((active.len(), active[0].value), (1, 5000.0));
    // A run that costs less clears it; passes without runs do not raise it again.
    let cleared = judge(&mut ev, &[ran(&p, 1.0, 900.0)], None, &at(14));
    assert_eq!(cleared.len(), 1);
    assert_eq!(
        (cleared[0].state, cleared[0].value),
        (State::Cleared, 900.0)
    );
    assert!((15..20).all(|s| judge(&mut ev, &[ran(&p, 0.0, 0.0)], None, &at(s)).is_empty()));
    // CPU % and runs/s of an interval without runs are measured zeros: they do clear.
    let mut ev = Evaluator::new(
        vec![
            rule("cpu", Metric::CpuPct, 0.01, 0.01, 0),
            rule("rate", Metric::RunsPerSec, 0.5, 0.5, 0),
        ],
        vec![],
        usize::MAX,
    );
    assert_eq!(judge(&mut ev, &[ran(&p, 1.0, 5e5)], None, &at(1)).len(), 2);
    let c = judge(&mut ev, &[ran(&p, 0.0, 0.0)], None, &at(2));
    assert!(
        c.len() == 2 && c.iter().all(|c| c.state == State::Cleared),
        "{c:?}"
    );
}

#[test]
fn a_dip_before_the_hold_starts_it_again() {
    let p = prog(1, "p");
    let mut ev = Evaluator::new(
        vec![rule("cpu", Metric::CpuPct, 5.0, 5.0, 3)],
        vec![],
        usize::MAX,
    );
    let values = [6.0, 6.0, 1.0, 6.0, 6.0, 1.0, 6.0, 6.0, 6.0];
    let changes: Vec<u64> = (1..)
        .zip(values)
        .filter(|&(s, v)| !judge(&mut ev, &[subject(&p, v)], None, &at(s)).is_empty())
        .map(|(s, _)| s)
        .collect();
    assert_eq!(changes, vec![9]);
}

#[test]
fn flapping_is_bounded() {
    // Above for 4 s, below for 2 s, for an hour: without backoff, 600 raises and 600 clears.
    let p = prog(1, "flappy");
    let mut ev = Evaluator::new(
        vec![rule("cpu", Metric::CpuPct, 5.0, 5.0, 3)],
        vec![],
        usize::MAX,
    );
    let mut raises = 0;
    let mut clears = 0;
    let mut in_30s = 0;
    for s in 1..=3600 {
        let v = if s % 6 < 4 { 9.0 } else { 1.0 };
        for c in judge(&mut ev, &[subject(&p, v)], None, &at(s)) {
            match c.state {
                State::Raised => raises += 1,
                State::Cleared => clears += 1,
            }
            if s <= 30 {
                in_30s += 1;
            }
        }
    }
    // Each raise must hold twice as long as the one before; 4 s above never holds 6 s.
    assert_eq!((raises, clears), (1, 1));
    assert_eq!(in_30s, 2);
    // Slower flapping (60 s above, 60 s below) is cut down too: holds of 3, 6, 12, 24, 48 s
    // fit in 60 s; then 96 s does not.
    let mut ev = Evaluator::new(
        vec![rule("cpu", Metric::CpuPct, 5.0, 5.0, 3)],
        vec![],
        usize::MAX,
    );
    let mut raises = 0;
    for s in 1..=3000 {
        let v = if (s / 60) % 2 == 0 { 9.0 } else { 1.0 };
        raises += ev
            .evaluate(&[subject(&p, v)], &[], None, &at(s))
            .changes
            .iter()
            .filter(|c| c.state == State::Raised)
            .count();
    }
    assert_eq!(raises, 5);
}

#[test]
fn an_unloaded_program_clears_its_alerts() {
    let (a, b) = (prog(1, "a"), prog(2, "b"));
    let mut ev = Evaluator::new(
        vec![rule("cpu", Metric::CpuPct, 1.0, 1.0, 0)],
        vec![],
        usize::MAX,
    );
    let raised = judge(&mut ev, &[subject(&a, 2.0), subject(&b, 2.0)], None, &at(1));
    assert_eq!(raised.len(), 2);
    // A program the pass could not read is not unloaded.
    let partial = ev.evaluate(&[subject(&a, 2.0)], &[2], None, &at(2));
    assert!(partial.changes.is_empty());
    let gone = judge(&mut ev, &[subject(&a, 2.0)], None, &at(3));
    assert_eq!(gone.len(), 1);
    assert_eq!((gone[0].prog_id, gone[0].why), (2, Why::Unloaded));
}

#[test]
fn selectors_pick_programs_and_skip_the_probe() {
    let mut falco = prog(1, "sys_enter_open");
    falco.context = Arc::new(ProgramContext {
        owners: vec![Arc::new(Owner {
            pid: 10,
            comm: "falco".into(),
            unit: Some("falco.service".into()),
            cgroup: None,
            container: None,
        })],
        ..ProgramContext::default()
    });
    let other = prog(2, "sys_enter_read");
    let mut filter = prog(3, "sys_enter_x");
    filter.prog_type = "socket_filter";
    let probe = Prog {
        prog_type: "socket_filter",
        ..prog(4, crate::observer::PROBE_NAME)
    };
    let mut by_unit = rule("unit", Metric::CpuPct, 1.0, 1.0, 0);
    by_unit.unit = Some("falco*".into());
    let mut by_name = rule("name", Metric::CpuPct, 1.0, 1.0, 0);
    by_name.program = Some("sys_enter_*".into());
    by_name.prog_type = Some("tracepoint".into());
    let all = rule("all", Metric::CpuPct, 1.0, 1.0, 0);
    let mut ev = Evaluator::new(vec![by_unit, by_name, all], vec![], usize::MAX);
    let subjects = [
        subject(&falco, 2.0),
        subject(&other, 2.0),
        subject(&filter, 2.0),
        subject(&probe, 2.0),
    ];
    let mut got: Vec<(String, u32)> = ev
        .evaluate(&subjects, &[], None, &at(1))
        .changes
        .into_iter()
        .map(|c| (c.rule, c.prog_id))
        .collect();
    got.sort();
    let want = [
        ("all", 1),
        ("all", 2),
        ("all", 3),
        ("name", 1),
        ("name", 2),
        ("unit", 1),
    ];
    assert_eq!(got, want.map(|(r, i)| (r.to_owned(), i)));
}

#[test]
fn host_wide_rules_take_one_value() {
    let (a, b) = (prog(1, "a"), prog(2, "b"));
    let mut ev = Evaluator::new(
        vec![
            rule("total", Metric::TotalCpuPct, 5.0, 5.0, 0),
            rule("stats", Metric::StatsOverheadPct, 1.0, 0.5, 0),
        ],
        vec![],
        usize::MAX,
    );
    let c = judge(
        &mut ev,
        &[subject(&a, 3.0), subject(&b, 3.0)],
        Some(0.2),
        &at(1),
    );
    assert_eq!(c.len(), 1);
    assert_eq!(
        (c[0].rule.as_str(), c[0].prog_id, c[0].value),
        ("total", 0, 6.0)
    );
    let c = judge(&mut ev, &[subject(&a, 3.0)], Some(2.0), &at(2));
    let got: Vec<(&str, State)> = c.iter().map(|c| (c.rule.as_str(), c.state)).collect();
    assert_eq!(got, [("total", State::Cleared), ("stats", State::Raised)]);
}

#[test]
fn alerts_raised_before_a_restart_carry_on_or_clear() {
    let (a, b, c) = (prog(1, "a"), prog(2, "b"), prog(3, "c"));
    let since = SystemTime::UNIX_EPOCH + Duration::from_secs(T0 - 10);
    let restored = |id, program: &str, rule: &str| AlertRecord {
        time: since,
        rule: rule.into(),
        metric: "cpu_pct".into(),
        state: "raised".into(),
        prog_id: id,
        program: program.into(),
        prog_type: "tracepoint".into(),
        value: 9.0,
        threshold: 5.0,
        clear: 4.0,
        since,
        text: String::new(),
    };
    let mut ev = Evaluator::new(
        vec![rule("cpu", Metric::CpuPct, 5.0, 4.0, 3)],
        vec![
            restored(1, "a", "cpu"),
            restored(2, "b", "cpu"),
            restored(9, "gone", "cpu"),
            restored(1, "a", "removed"),
            // Raised under another threshold: not the same rule.
            AlertRecord {
                threshold: 6.0,
                ..restored(3, "c", "cpu")
            },
        ],
        usize::MAX,
    );
    // The first pass has no values yet: nothing is judged.
    let mut first = at(0);
    first.elapsed = Duration::ZERO;
    let pass = [subject(&a, 9.0), subject(&b, 1.0), subject(&c, 9.0)];
    assert!(judge(&mut ev, &pass, None, &first).is_empty());
    let c = judge(&mut ev, &pass, None, &at(1));
    let mut got: Vec<(u32, &str, Why)> = c
        .iter()
        .map(|c| (c.prog_id, c.rule.as_str(), c.why))
        .collect();
    got.sort_by_key(|g| (g.0, g.1.to_owned()));
    assert_eq!(
        got,
        [
            (1, "removed", Why::GoneAfterRestart),
            (2, "cpu", Why::Crossed),
            (3, "cpu", Why::GoneAfterRestart),
            (9, "cpu", Why::GoneAfterRestart),
        ]
    );
    assert!(c.iter().all(|c| c.state == State::Cleared));
    // `a` is still above: raised as before, since the time it was first raised, no new signal.
    let active = ev.active(SystemTime::now(), 1000).0;
    assert_eq!(active.len(), 1);
    assert_eq!((active[0].prog_id, active[0].since), (1, since));
}

#[test]
fn a_reload_keeps_unchanged_rules_and_clears_the_others() {
    let p = prog(1, "p");
    let keep = rule("keep", Metric::CpuPct, 1.0, 1.0, 0);
    let change = rule("change", Metric::CpuPct, 1.0, 1.0, 0);
    let mut ev = Evaluator::new(vec![change.clone(), keep.clone()], vec![], usize::MAX);
    assert_eq!(judge(&mut ev, &[subject(&p, 2.0)], None, &at(1)).len(), 2);
    let changed = Rule {
        threshold: 3.0,
        clear: 3.0,
        ..change
    };
    let c = ev.set_rules(vec![keep, changed], &at(2)).changes;
    assert_eq!(c.len(), 1);
    assert_eq!((c[0].rule.as_str(), c[0].why), ("change", Why::RuleChanged));
    // The kept rule stays raised without a new signal; the changed one judges afresh.
    assert!(judge(&mut ev, &[subject(&p, 2.0)], None, &at(3)).is_empty());
    assert_eq!(ev.active(SystemTime::now(), 1000).0.len(), 1);
}

#[test]
fn changes_past_the_limit_are_counted_not_built() {
    let progs: Vec<Prog> = (1..=250).map(|i| prog(i, "many")).collect();
    let subjects: Vec<Subject<'_>> = progs.iter().map(|p| subject(p, 2.0)).collect();
    let mut ev = Evaluator::new(vec![rule("cpu", Metric::CpuPct, 1.0, 1.0, 0)], vec![], 100);
    let j = ev.evaluate(&subjects, &[], None, &at(1));
    assert_eq!((j.changes.len(), j.more), (100, 150));
    let (listed, total) = ev.active(SystemTime::now(), 10);
    assert_eq!((listed.len(), total, ev.raised()), (10, 250, 250));
    // Listed by rule, then program.
    assert_eq!(
        listed.iter().map(|c| c.prog_id).collect::<Vec<_>>(),
        (1..=10).collect::<Vec<_>>()
    );
}

#[test]
fn a_program_whose_holders_change_out_of_a_unit_rule_is_cleared() {
    let holder = |unit: &str| {
        Arc::new(ProgramContext {
            owners: vec![Arc::new(Owner {
                pid: 10,
                comm: "agent".into(),
                unit: Some(unit.into()),
                cgroup: None,
                container: None,
            })],
            ..ProgramContext::default()
        })
    };
    let mut p = prog(1, "p");
    p.context = holder("falco.service");
    let mut by_unit = rule("falco", Metric::CpuPct, 1.0, 1.0, 0);
    by_unit.unit = Some("falco*".into());
    let mut ev = Evaluator::new(vec![by_unit], vec![], usize::MAX);
    assert_eq!(judge(&mut ev, &[subject(&p, 2.0)], None, &at(1)).len(), 1);
    p.context = holder("cilium.service");
    let c = judge(&mut ev, &[subject(&p, 2.0)], None, &at(2));
    assert_eq!(c.len(), 1);
    assert_eq!((c[0].state, c[0].why), (State::Cleared, Why::Unmatched));
}

fn map(
    id: u32,
    name: &'static str,
    fill_pct: Option<f64>,
    programs: Vec<&'static str>,
) -> MapSubject<'static> {
    MapSubject {
        id,
        name,
        map_type: "hash",
        fill_pct,
        owners: &[],
        programs,
    }
}

fn judge_maps(ev: &mut Evaluator, maps: &[MapSubject<'_>], now: &Moment) -> Vec<Change> {
    let mut out = ev.evaluate(&[], &[], None, now);
    ev.evaluate_maps(maps, now, &mut out);
    out.changes
}

fn said(changes: &[Change]) -> Vec<(u32, State, Why)> {
    changes
        .iter()
        .map(|c| (c.prog_id, c.state, c.why))
        .collect()
}

/// One alert per map its globs choose (by map name, or by the programs using it); a map not
/// counted keeps its state; a map gone clears; a restart carries a raised one on.
#[test]
fn map_fill_alerts_follow_each_map() {
    use crate::glob::Glob;
    let by_name = Rule {
        map: Some(Glob::new("conn*")),
        ..rule("full", Metric::MapFillPct, 90.0, 50.0, 0)
    };
    let by_program = Rule {
        program: Some(Glob::new("falco_*")),
        ..rule("falco_full", Metric::MapFillPct, 90.0, 50.0, 0)
    };
    let mut ev = Evaluator::new(vec![by_name, by_program], Vec::new(), usize::MAX);
    let pass = |conn: Option<f64>| {
        vec![
            map(7, "conntrack", conn, vec!["xdp_lb"]),
            map(8, "events", Some(95.0), vec!["falco_exec"]),
            map(9, "other", Some(99.0), vec!["cilium"]),
        ]
    };
    let c = judge_maps(&mut ev, &pass(Some(95.0)), &at(1));
    assert_eq!(
        said(&c),
        [
            (7, State::Raised, Why::Crossed),
            (8, State::Raised, Why::Crossed)
        ]
    );
    assert_eq!(
        (c[0].program.as_str(), c[0].prog_type.as_str()),
        ("conntrack", "hash")
    );
    assert_eq!(
        super::text(&c[0]),
        "alert full raised: map conntrack (id 7): map_fill_pct 95% above 90%"
    );
    // Not counted this time: no evidence, nothing changes.
    assert!(judge_maps(&mut ev, &pass(None), &at(2)).is_empty());
    let c = judge_maps(&mut ev, &pass(Some(50.0)), &at(3));
    assert_eq!(said(&c), [(7, State::Cleared, Why::Crossed)]);
    // Map 8 is freed while raised.
    let c = judge_maps(&mut ev, &[map(7, "conntrack", Some(10.0), vec![])], &at(4));
    assert_eq!(said(&c), [(8, State::Cleared, Why::Unloaded)]);
    assert_eq!(ev.raised(), 0);

    // Raised before a restart: the same map (id and name) carries it on, from then.
    let since = SystemTime::UNIX_EPOCH + Duration::from_secs(T0 - 10);
    let record = |id: u32, name: &str| AlertRecord {
        time: since,
        rule: "full".into(),
        metric: "map_fill_pct".into(),
        state: "raised".into(),
        prog_id: id,
        program: name.into(),
        prog_type: "hash".into(),
        value: 95.0,
        threshold: 90.0,
        clear: 50.0,
        since,
        text: String::new(),
    };
    let rules = ev.rules().to_vec();
    let mut ev = Evaluator::new(
        rules,
        vec![record(7, "conntrack"), record(70, "conn_gone")],
        usize::MAX,
    );
    let mut first = at(0);
    first.elapsed = Duration::ZERO;
    let mut out = Judged::default();
    ev.evaluate_maps(&pass(Some(96.0)), &first, &mut out);
    let c = judge_maps(&mut ev, &pass(Some(96.0)), &at(1));
    assert_eq!(
        said(&c),
        [(70, State::Cleared, Why::GoneAfterRestart)],
        "{c:?}"
    );
    let active = ev.active(SystemTime::now(), 10).0;
    let raised: Vec<(u32, SystemTime)> = active.iter().map(|a| (a.prog_id, a.since)).collect();
    assert!(raised.contains(&(7, since)), "{active:?}");
}

#[test]
fn missed_runs_raise_and_clear_and_a_first_reading_holds_the_state() {
    let p = prog(3, "probe");
    let mut ev = Evaluator::new(
        vec![rule("missing", Metric::MissedPerSec, 0.0, 0.0, 0)],
        vec![],
        usize::MAX,
    );
    let missing = |per_sec: Option<f64>| {
        let mut s = subject(&p, 0.0);
        if let Some(r) = &mut s.interval {
            r.missed_per_sec = per_sec;
        }
        s
    };
    // No reading before (the program's first interval): nothing to judge.
    assert!(judge(&mut ev, &[missing(None)], None, &at(1)).is_empty());
    let raised = judge(&mut ev, &[missing(Some(12.5))], None, &at(2));
    assert_eq!(
        raised
            .iter()
            .map(|c| (c.state, c.value))
            .collect::<Vec<_>>(),
        [(State::Raised, 12.5)]
    );
    let cleared = judge(&mut ev, &[missing(Some(0.0))], None, &at(3));
    assert_eq!(cleared.len(), 1);
    assert_eq!(cleared[0].state, State::Cleared);
}
