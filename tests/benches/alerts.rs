//! `alerts` benchmark: what judging alert rules after each pass costs, 1000 programs and 50
//! rules.
//!
//! 1. In process: one `Evaluator::evaluate` over the 1000 programs of a real pass, against
//!    that pass itself (`Sampler::pass`, the floor a device pays anyway), same run.
//! 2. The whole daemon from outside (CPU from /proc, peak RSS) at 1 s passes with 1000 real
//!    socket filters (a fifth run every 0.5 s): no rule (the floor), 50 rules none of which
//!    raises, and 50 rules that all raise on every program (50,000 alerts raised at once).
//!
//! Run as root: `cargo build --release --workspace && cargo bench -p ebpfstat-tests --bench
//! alerts` (`-- --seconds S` per daemon row, default 30).

use std::time::{Duration, Instant, SystemTime};

use ebpfstat_tests::bus::{ApiDaemon, open_tempdir};
use ebpfstat_tests::{Fleet, cpu_ns, is_root, status_kb};
use ebpfstatd::alerts::{Evaluator, Moment, Rates, Rule, Subject};
use ebpfstatd::sampler::{Sampler, SamplerConfig};

const PROGRAMS: usize = 1000;
const RULES: usize = 50;
const PREFIX: &str = "ba_";

fn arg(name: &str, default: u64) -> u64 {
    std::env::args()
        .skip_while(|a| a != name)
        .nth(1)
        .map_or(default, |v| v.parse().expect("a number"))
}

const METRICS: [(&str, &str); 4] = [
    ("cpu_pct", "50"),
    ("avg_ns", "1000000"),
    ("runs_per_sec", "1000000"),
    ("map_memory", "\"1GiB\""),
];
const PROGRAM_GLOBS: [Option<&str>; 5] = [None, Some("ba_*"), Some("*1?"), Some("ba_?0*"), None];

/// 50 rules over every metric and selector; `raise_all`: thresholds every program is above
/// (map memory above 0 bytes).
fn rules_toml(raise_all: bool) -> String {
    let mut text = String::new();
    for i in 0..RULES {
        let (metric, threshold) = if raise_all {
            ("map_memory", "0")
        } else {
            METRICS[i % METRICS.len()]
        };
        text.push_str(&format!(
            "[[alert]]\nname = \"r{i}\"\nmetric = \"{metric}\"\nthreshold = {threshold}\n\
             for = \"{}s\"\n",
            i % 3
        ));
        if let Some(g) = PROGRAM_GLOBS[i % PROGRAM_GLOBS.len()].filter(|_| !raise_all) {
            text.push_str(&format!("program = \"{g}\"\n"));
        }
        if i % 7 == 3 {
            text.push_str("type = \"socket_filter\"\n");
        }
        text.push('\n');
    }
    text
}

fn rules(raise_all: bool) -> Vec<Rule> {
    let text = rules_toml(raise_all);
    ebpfstatd::config::Settings::parse(&text, std::path::Path::new("bench.toml"))
        .expect("valid rules")
        .alert
        .expect("rules")
}

/// ns per `evaluate` over `passes` passes, and the changes of the first.
fn time_evaluate(
    rules: Vec<Rule>,
    pass: &ebpfstatd::sampler::Pass,
    passes: u32,
) -> (f64, usize, f64) {
    let mut ev = Evaluator::new(rules, Vec::new(), ebpfstatd::alerts::MAX_SAID_PER_PASS);
    let subjects: Vec<Subject<'_>> = pass
        .programs
        .iter()
        .map(|p| Subject {
            id: p.meta.id,
            name: &p.meta.name,
            full_name: &p.meta.full_name,
            prog_type: p.meta.prog_type,
            load_time: p.meta.load_time,
            context: &p.context,
            interval: Some(Rates {
                cpu_pct: 0.01,
                avg_ns: Some(40.0),
                runs_per_sec: 2.0,
                missed_per_sec: Some(0.0),
            }),
        })
        .collect();
    let at = |s: u32| Moment {
        mono: Duration::from_secs(u64::from(s) + 10),
        wall: SystemTime::now(),
        elapsed: Duration::from_secs(1),
    };
    let judged = ev.evaluate(&subjects, &[], Some(0.01), &at(0));
    let first = judged.changes.len() + judged.more;
    let start = Instant::now();
    for s in 1..=passes {
        std::hint::black_box(ev.evaluate(&subjects, &[], Some(0.01), &at(s)));
    }
    let per_pass = start.elapsed().as_nanos() as f64 / f64::from(passes);
    // What one `Alerts()` call holds the evaluator's lock for: the list of what is raised.
    let start = Instant::now();
    let reps = 20u32;
    for _ in 0..reps {
        std::hint::black_box(ev.active(SystemTime::now(), ebpfstatd::alerts::MAX_LISTED));
    }
    let listing = start.elapsed().as_nanos() as f64 / f64::from(reps);
    (per_pass, first, listing)
}

/// The daemon's CPU % of one core over `secs`, while a fifth of the fleet runs every 0.5 s.
fn daemon_cpu(fleet: &Fleet, pid: i32, secs: u64) -> f64 {
    let start = (Instant::now(), cpu_ns(pid));
    while start.0.elapsed() < Duration::from_secs(secs) {
        for i in 0..PROGRAMS / 5 {
            fleet.drive(i, 1);
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    (cpu_ns(pid) - start.1) as f64 / start.0.elapsed().as_nanos() as f64 * 100.0
}

#[expect(
    clippy::too_many_lines,
    reason = "one benchmark's setup, runs and table, read in the order they happen"
)]
fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    if !is_root() {
        eprintln!("alerts benchmark: needs root (the daemon samples real programs); skipped");
        return;
    }
    let secs = arg("--seconds", 30);
    let fleet = Fleet::load(PREFIX, PROGRAMS);

    // 1. In process.
    let mut sampler = Sampler::new(SamplerConfig { rescan_every: 30 });
    sampler.pass();
    let reps = 50u32;
    let start = Instant::now();
    let mut pass = sampler.pass();
    for _ in 1..reps {
        pass = sampler.pass();
    }
    let pass_ns = start.elapsed().as_nanos() as f64 / f64::from(reps);
    let ours = pass
        .programs
        .iter()
        .filter(|p| p.meta.name.starts_with(PREFIX))
        .count();
    println!(
        "alerts, in process: one evaluation of {RULES} rules over a real pass of {} programs \
         ({ours} of them this benchmark's), mean of 200 passes",
        pass.programs.len()
    );
    println!(
        "{:<34} {:>12} {:>16} {:>10} {:>16}",
        "", "µs per pass", "first pass says", "ratio", "µs per Alerts()"
    );
    println!(
        "{:<34} {:>12.1} {:>16} {:>10.2}",
        "sampler pass (the floor)",
        pass_ns / 1e3,
        "-",
        1.0
    );
    for (label, raise_all) in [
        ("50 rules, none raised", false),
        ("50 rules, all raised", true),
    ] {
        let (ns, first, listing) = time_evaluate(rules(raise_all), &pass, 200);
        println!(
            "{:<34} {:>12.1} {:>16} {:>10.3} {:>16.1}",
            label,
            ns / 1e3,
            format!("{first} changes"),
            ns / pass_ns,
            listing / 1e3
        );
    }

    // 2. The whole daemon.
    let dir = open_tempdir();
    let mut rows = Vec::new();
    for (label, text) in [
        ("no rule (the floor)", String::new()),
        ("50 rules, none raised", rules_toml(false)),
        ("50 rules, all raised", rules_toml(true)),
    ] {
        let cfg = dir.path().join(format!("r{}.toml", rows.len()));
        std::fs::write(&cfg, text).expect("config");
        let cfg = cfg.display().to_string();
        let d = ApiDaemon::start_with(None, "1s", &["--config", &cfg, "--flush-interval", "1m"]);
        let pid = d.pid();
        std::thread::sleep(Duration::from_secs(5));
        let pct = daemon_cpu(&fleet, pid, secs);
        let st = d.ctl_json(&["status"]);
        let hwm = status_kb(pid, "VmHWM:");
        rows.push((label, pct, hwm, st["alerts_active"].as_u64().unwrap_or(0)));
        assert!(d.stop());
    }
    println!(
        "\nalerts, whole daemon: release ebpfstatd at 1 s, {PROGRAMS} socket filters of this \
         benchmark loaded (a fifth run every 0.5 s), {secs} s per row, CPU from /proc"
    );
    println!(
        "{:<24} {:>13} {:>12} {:>8} {:>9} {:>15}",
        "rules", "daemon CPU %", "extra (pts)", "ratio", "HWM MiB", "alerts raised"
    );
    let floor = rows[0].1;
    for (label, pct, hwm, active) in &rows {
        println!(
            "{:<24} {:>13.3} {:>12.3} {:>8.2} {:>9.1} {:>15}",
            label,
            pct,
            pct - floor,
            pct / floor,
            *hwm as f64 / 1024.0,
            active
        );
    }
}
