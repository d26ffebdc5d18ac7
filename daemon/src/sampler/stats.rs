//! The run-time statistics switch.
//!
//! The kernel counts `run_time_ns`/`run_cnt` only while someone holds a `BPF_ENABLE_STATS` fd or
//! the sysctl `kernel.bpf_stats_enabled` is 1. We hold an fd for our whole life and never write
//! the sysctl: a crashed daemon's fd closes by itself, a sysctl left at 1 would not.

use std::fmt;
use std::os::fd::OwnedFd;
use std::path::PathBuf;

use ebpfstat_dbus::StatsState as Word;
use ebpfstat_numbers::Share;
use ebpfstat_store::StatsCode;
use serde::{Serialize, Serializer};

#[derive(Debug, Clone, PartialEq)]
pub enum StatsState {
    /// Our own `BPF_ENABLE_STATS` fd keeps counters running.
    Enabled,
    /// We could not enable stats, but the sysctl is 1: counters run while it stays so.
    EnabledBySysctl,
    /// We hold stats on for this share of each interval, to bound what they cost.
    DutyCycled { duty: f64 },
    /// We let go for part of the interval, but counters kept running: another process holds
    /// stats on (or the sysctl is 1), so the interval is fully covered and fully paid for.
    EnabledByOther,
    /// Counters may be frozen: equal values do not mean an idle program.
    Unavailable(String),
}

impl fmt::Display for StatsState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Enabled => write!(f, "{}", Word::Enabled),
            Self::EnabledBySysctl => write!(f, "{}", Word::EnabledBySysctl),
            Self::DutyCycled { duty } => write!(
                f,
                "{}: on {:.0}% of each interval",
                Word::DutyCycled,
                Share(*duty).percent()
            ),
            Self::EnabledByOther => write!(f, "{}", Word::EnabledByOther),
            Self::Unavailable(why) => write!(f, "{}: {why}", Word::Unavailable),
        }
    }
}

impl Serialize for StatsState {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// The state as the store keeps it.
impl From<&StatsState> for StatsCode {
    fn from(s: &StatsState) -> Self {
        match s {
            StatsState::Enabled => Self::Enabled,
            StatsState::EnabledBySysctl => Self::EnabledBySysctl,
            StatsState::Unavailable(_) => Self::Unavailable,
            StatsState::DutyCycled { .. } => Self::DutyCycled,
            StatsState::EnabledByOther => Self::EnabledByOther,
        }
    }
}

/// Used when the cost of stats cannot be measured: the difference measured on this machine
/// kind (about 32 ns per run with stats off, 112 ns with stats on).
pub const DEFAULT_COST_NS: f64 = 80.0;

/// What holding stats on costs each program run, as calibrated (see `observer`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StatsCost {
    /// Extra nanoseconds each program run pays while stats are on.
    pub ns_per_run: f64,
    /// Spread (max − min) of the rounds, ns.
    pub spread_ns: f64,
    pub rounds: u32,
    /// `measured`, or why the default is used.
    pub source: String,
}

impl StatsCost {
    pub fn default_because(why: impl Into<String>) -> Self {
        Self {
            ns_per_run: DEFAULT_COST_NS,
            spread_ns: 0.0,
            rounds: 0,
            source: format!("default ({})", why.into()),
        }
    }

    pub fn measured(&self) -> bool {
        self.source == "measured"
    }
}

#[derive(Debug)]
pub struct StatsSwitch {
    fd: Option<OwnedFd>,
    /// Boot time (ns) since which our fd has held stats on without a break: a program loaded
    /// later has had every run counted.
    since_ns: Option<u64>,
    failure: Option<String>,
    sysctl: PathBuf,
}

impl StatsSwitch {
    /// Whether our own fd holds stats on now.
    pub fn held(&self) -> bool {
        self.fd.is_some()
    }

    /// Boot time (ns) since which our own fd has held stats on without a break; `None` while
    /// we do not hold them.
    pub fn held_since_ns(&self) -> Option<u64> {
        self.fd.as_ref().and(self.since_ns)
    }

    /// Lets go of our hold (counters freeze unless someone else holds stats on).
    pub fn release(&mut self) {
        self.fd = None;
        self.since_ns = None;
    }

    /// Takes the hold again after [`StatsSwitch::release`]; false when that fails.
    pub fn reacquire(&mut self) -> bool {
        if self.fd.is_none() {
            match aya::sys::enable_stats(aya::sys::Stats::RunTime) {
                Ok(fd) => {
                    self.fd = Some(fd);
                    // Read after the call: a program loaded before this moment may have run
                    // uncounted.
                    self.since_ns = Some(super::host::boottime_ns());
                    self.failure = None;
                }
                Err(e) => self.failure = Some(enable_failure(&e.io_error)),
            }
        }
        self.fd.is_some()
    }

    /// Whether the sysctl keeps stats on regardless of fds.
    pub fn sysctl_on(&self) -> bool {
        std::fs::read_to_string(&self.sysctl).is_ok_and(|s| s.trim() == "1")
    }

    /// Enables run-time stats for as long as the switch lives.
    pub fn acquire(proc_root: &std::path::Path) -> Self {
        let mut switch = Self {
            fd: None,
            since_ns: None,
            failure: None,
            sysctl: proc_root.join("sys/kernel/bpf_stats_enabled"),
        };
        switch.reacquire();
        switch
    }

    /// The state now; without our fd the sysctl is re-read, since an administrator may flip it.
    pub fn state(&self) -> StatsState {
        if self.fd.is_some() {
            return StatsState::Enabled;
        }
        if self.sysctl_on() {
            return StatsState::EnabledBySysctl;
        }
        let why = self.failure.as_deref().unwrap_or("stats were released");
        StatsState::Unavailable(format!(
            "{why}; kernel.bpf_stats_enabled is 0, so counters advance only while another \
             process holds stats on"
        ))
    }
}

fn enable_failure(err: &std::io::Error) -> String {
    match err.raw_os_error() {
        Some(libc::EPERM | libc::EACCES) => {
            format!("BPF_ENABLE_STATS failed ({err}): it needs CAP_SYS_ADMIN")
        }
        Some(libc::EINVAL) => {
            format!("BPF_ENABLE_STATS failed ({err}): the kernel is older than 5.8")
        }
        _ => format!("BPF_ENABLE_STATS failed: {err}"),
    }
}
