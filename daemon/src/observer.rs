//! The observer effect: what turning run-time statistics on costs every program run on the
//! host, measured here; and the duty cycle that keeps that cost within a budget.
//!
//! With stats on, the kernel reads the clock around every run of every program. We measure the
//! price on this machine with `BPF_PROG_TEST_RUN` of a trivial program, stats off then on, and
//! estimate the overhead of an interval as its runs times that price.

use std::os::fd::{AsFd, OwnedFd};

use crate::bpf::sys::{self, ProgSpec, SysError};
use crate::sampler::ProgramSample;
use crate::sampler::stats::{StatsCost, StatsSwitch};
use ebpfstat_numbers::rates::overhead_share;

/// Least share of each interval with stats on, so rates stay measurable under any budget.
pub const MIN_DUTY: f64 = 0.05;

/// A packet big enough for a socket filter's test run (an Ethernet header and then some).
const PACKET: [u8; 64] = [0; 64];

/// The kernel name of the daemon's calibration probe.
pub const PROBE_NAME: &str = "ebpfstat_probe";

/// Whether a program is the daemon's own probe: by its name and type, so probes loaded by
/// earlier runs of the daemon are recognised in history too.
pub fn is_own(name: &str, prog_type: &str) -> bool {
    use crate::profile::{CAL_NAME, ENTRY_NAME, EXIT_NAME};
    match prog_type {
        "socket_filter" => name == PROBE_NAME || name == CAL_NAME,
        "tracing" => [crate::sampler::map_iter::ITER_NAME, ENTRY_NAME, EXIT_NAME].contains(&name),
        _ => false,
    }
}

/// The programs of a pass a person is shown (status counts them, `/metrics` and the textfile
/// export them): ebpfstatd's probes are left out, as `list` and `top` leave them out without
/// `--all`. This daemon's own probe is never in a pass; another instance's (a second daemon on
/// another database) is, and is machinery too.
pub fn shown(programs: &[ProgramSample]) -> impl Iterator<Item = &ProgramSample> {
    programs
        .iter()
        .filter(|p| !is_own(&p.meta.name, p.meta.prog_type))
}

/// A trivial socket filter (`r0 = 0; exit`) used to time runs and to see whether counters move.
#[derive(Debug)]
pub struct Probe {
    prog: OwnedFd,
}

impl Probe {
    pub fn load() -> Result<Self, SysError> {
        // r0 = 0; exit
        const INSNS: [u64; 2] = [0xb7, 0x95];
        let prog = sys::prog_load(&ProgSpec {
            prog_type: 1, // socket filter
            insns: &INSNS,
            name: PROBE_NAME,
            btf: None,
            attach: None,
            attach_prog: None,
        })?;
        Ok(Self { prog })
    }

    /// The probe's kernel id, so the sampler can leave it out of passes.
    pub fn id(&self) -> Option<u32> {
        sys::prog_info(self.prog.as_fd(), &mut Vec::new())
            .ok()
            .map(|i| i.id)
    }

    /// The probe's run count, as the kernel reports it.
    pub fn runs(&self) -> Option<u64> {
        sys::prog_info(self.prog.as_fd(), &mut Vec::new())
            .ok()
            .map(|i| i.run_cnt)
    }

    /// Mean ns per run over `repeat` runs.
    pub fn time(&self, repeat: u32) -> Result<u32, SysError> {
        sys::prog_test_run(self.prog.as_fd(), &PACKET, repeat).map(|r| r.duration_ns)
    }

    /// Whether run counters advance right now: true while anyone holds stats on.
    pub fn counters_advance(&self) -> bool {
        let before = self.runs();
        let _ = self.time(1);
        let after = self.runs();
        matches!((before, after), (Some(b), Some(a)) if a > b)
    }
}

/// Measures the cost per run: `rounds` pairs of test runs, stats off then on; the median of the
/// differences. Our hold is given back at the end. Falls back to the default, saying why.
pub fn calibrate(switch: &mut StatsSwitch, probe: &Probe, rounds: u32, repeat: u32) -> StatsCost {
    let mut diffs = Vec::with_capacity(rounds as usize);
    let mut why = None;
    for _ in 0..rounds {
        switch.release();
        if switch.sysctl_on() {
            why = Some("kernel.bpf_stats_enabled is 1: stats cannot be turned off to compare");
            break;
        }
        if probe.counters_advance() {
            why = Some("another process holds stats on: they cannot be turned off to compare");
            break;
        }
        let off = probe.time(repeat);
        if !switch.reacquire() {
            why = Some("stats cannot be enabled (no CAP_SYS_ADMIN, or Linux < 5.8)");
            break;
        }
        let on = probe.time(repeat);
        match (off, on) {
            (Ok(off), Ok(on)) => diffs.push(f64::from(on) - f64::from(off)),
            _ => {
                why = Some("BPF_PROG_TEST_RUN failed");
                break;
            }
        }
    }
    switch.reacquire();
    if let Some(why) = why {
        return StatsCost::default_because(why);
    }
    ebpfstat_numbers::order::sort_by_key(&mut diffs, |x| {
        (ebpfstat_numbers::order::float_key(*x), 0)
    });
    let Some(&median) = diffs.get(diffs.len() / 2) else {
        return StatsCost::default_because("no rounds");
    };
    StatsCost {
        ns_per_run: median.max(0.0),
        spread_ns: diffs.last().copied().unwrap_or(0.0) - diffs.first().copied().unwrap_or(0.0),
        rounds,
        source: "measured".into(),
    }
}

/// How stats are held.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Mode {
    /// Always on (the cost is reported, not bounded).
    Always,
    /// On as much of each interval as keeps the estimated cost within this share of one core.
    Budget(f64),
    /// On this fixed share of each interval.
    Fixed(f64),
}

/// The share of each interval to hold stats on next, from the last interval: `runs` observed
/// with stats on for `coverage` of `elapsed_ns`.
pub fn next_duty(
    mode: Mode,
    runs: u64,
    coverage: f64,
    elapsed_ns: u64,
    cost_ns: f64,
    current: f64,
) -> f64 {
    match mode {
        Mode::Always => 1.0,
        Mode::Fixed(d) => d,
        Mode::Budget(budget) => {
            if coverage < 0.01 || elapsed_ns == 0 {
                return current;
            }
            // What stats would cost if they were on all the time at this rate.
            let full = overhead_share(runs, cost_ns, elapsed_ns).0 / coverage;
            if full <= budget {
                1.0
            } else {
                (budget / full).clamp(MIN_DUTY, 1.0)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duty_follows_the_budget_and_comes_back() {
        let sec = 1_000_000_000;
        // 8 % at full coverage against a 1 % budget: on 1/8 of the time.
        let d = next_duty(Mode::Budget(0.01), 1_000_000, 1.0, sec, 80.0, 1.0);
        assert!((d - 0.125).abs() < 1e-9);
        // Observed at 1/8 coverage, the same rate means the same duty.
        let d2 = next_duty(Mode::Budget(0.01), 125_000, 0.125, sec, 80.0, d);
        assert!((d2 - 0.125).abs() < 1e-9);
        // The load stops: back to always on.
        assert_eq!(next_duty(Mode::Budget(0.01), 10, 0.125, sec, 80.0, d2), 1.0);
        // Never below the floor.
        assert_eq!(
            next_duty(Mode::Budget(0.0001), 10_000_000, 1.0, sec, 80.0, 1.0),
            MIN_DUTY
        );
        assert_eq!(
            next_duty(Mode::Always, 10_000_000, 1.0, sec, 80.0, 1.0),
            1.0
        );
        assert_eq!(next_duty(Mode::Fixed(0.3), 0, 1.0, sec, 80.0, 1.0), 0.3);
    }
}
