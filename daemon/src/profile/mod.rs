//! Per-run cost on demand: fentry and fexit programs (BPF trampolines) on a program's main
//! function time each of its runs into a per-CPU histogram for a while, then detach.
//!
//! What the tracing adds to each run is measured, not assumed: the same two programs on the
//! daemon's own empty socket filter, timed by `BPF_PROG_TEST_RUN` without and with them. The
//! durations recorded include part of that tracing (the clock is read inside fentry and
//! fexit): the same programs' durations of the empty filter are said as the floor.
//!
//! fentry on a program needs the target's BTF (its first `func_info` names the function
//! attached to), Linux 5.5 and an architecture with BPF trampolines (x86_64; arm64 from 6.0;
//! not 32-bit ARM).

pub mod histogram;
pub mod programs;

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};

use crate::bpf::btf;
use crate::bpf::insn::AsmError;
use crate::bpf::sys::{self, ObjKind, ProgSpec, SysError};
use histogram::{Histogram, LayoutError, VALUE_BYTES};

/// Kernel names of the profile's programs: left out of passes and views as the daemon's own.
pub const ENTRY_NAME: &str = "ebpfstat_entry";
pub const EXIT_NAME: &str = "ebpfstat_exit";
/// The empty socket filter the tracing's cost is measured on.
pub const CAL_NAME: &str = "ebpfstat_cal";

const BPF_PROG_TYPE_SOCKET_FILTER: u32 = 1;
const BPF_PROG_TYPE_TRACING: u32 = 26;
const BPF_TRACE_FENTRY: u32 = 24;
const BPF_TRACE_FEXIT: u32 = 25;
const BPF_MAP_TYPE_PERCPU_ARRAY: u32 = 6;

/// Test runs of the empty filter per measurement, and measurements each way.
const CAL_REPEAT: u32 = 20_000;
const CAL_ROUNDS: usize = 5;

#[derive(Debug, thiserror::Error)]
pub enum ProfileError {
    #[error(
        "{0} was loaded without BTF (its loader gave the kernel no function info, as bpftrace \
         before 0.18 does): fentry needs the function's BTF to attach. Programs loaded with BTF \
         can be profiled: those `ebpfstatctl show` gives a BTF id"
    )]
    NoBtf(String),
    #[error(
        "the kernel refused to trace {what} ({source}): profiling needs fentry/fexit on BPF \
         programs (Linux 5.5 with BTF and BPF trampolines: x86_64, arm64 from 6.0; 32-bit ARM has \
         none), and a JIT-compiled target that is not itself a tracing program"
    )]
    Refused {
        what: String,
        #[source]
        source: SysError,
    },
    #[error(
        "{0}'s BTF declares its function without parameters, though a program takes its \
         context as the first: traced, it would be given a wrong one"
    )]
    NoContext(String),
    #[error(transparent)]
    Btf(#[from] btf::BtfError),
    #[error("the program is gone: {0}")]
    Gone(SysError),
    #[error(transparent)]
    Sys(#[from] SysError),
    #[error(transparent)]
    Layout(#[from] LayoutError),
    #[error(transparent)]
    Asm(#[from] AsmError),
    #[error("cannot read /sys/devices/system/cpu/possible")]
    Cpus,
}

/// The two tracing programs on one target, and their map.
#[derive(Debug)]
struct Tracer {
    map: OwnedFd,
    entry: OwnedFd,
    exit: OwnedFd,
    cpus: usize,
}

/// The links of an attached tracer: closing them detaches it.
#[derive(Debug)]
struct Attached {
    _links: [OwnedFd; 2],
}

impl Tracer {
    /// Loads fentry and fexit for `func_id` of `target` (`what` names it in errors).
    fn load(target: BorrowedFd<'_>, func_id: u32, what: &str) -> Result<Self, ProfileError> {
        let cpus = crate::sampler::host::possible_cpus()
            .and_then(|n| usize::try_from(n).ok())
            .ok_or(ProfileError::Cpus)?;
        let value = u32::try_from(VALUE_BYTES).unwrap_or(u32::MAX);
        let map = sys::map_create(
            BPF_MAP_TYPE_PERCPU_ARRAY,
            (4, value, 1),
            0,
            None,
            "ebpfstat_prof",
        )?;
        let refused = |source| ProfileError::Refused {
            what: what.to_owned(),
            source,
        };
        let load = |insns: &[u64], name: &str, attach_type: u32| {
            sys::prog_load(&ProgSpec {
                prog_type: BPF_PROG_TYPE_TRACING,
                insns,
                name,
                btf: None,
                attach: Some((attach_type, func_id)),
                attach_prog: Some(target),
            })
            .map_err(refused)
        };
        let fd = map.as_raw_fd();
        let entry = load(&programs::entry(fd)?, ENTRY_NAME, BPF_TRACE_FENTRY)?;
        let exit = load(&programs::exit(fd)?, EXIT_NAME, BPF_TRACE_FEXIT)?;
        Ok(Self {
            map,
            entry,
            exit,
            cpus,
        })
    }

    fn attach(&self, what: &str) -> Result<Attached, ProfileError> {
        let attach = |prog: &OwnedFd| {
            sys::tracing_attach(prog.as_fd()).map_err(|source| ProfileError::Refused {
                what: what.to_owned(),
                source,
            })
        };
        // fexit first: an fentry without its fexit would leave starts no one files.
        let exit = attach(&self.exit)?;
        let entry = attach(&self.entry)?;
        Ok(Attached {
            _links: [entry, exit],
        })
    }

    fn read(&self) -> Result<Histogram, ProfileError> {
        let mut bytes = vec![0u8; VALUE_BYTES * self.cpus];
        sys::map_lookup_per_cpu(self.map.as_fd(), &0u32.to_ne_bytes(), &mut bytes, self.cpus)?;
        Ok(Histogram::from_per_cpu(&bytes, self.cpus)?)
    }
}

/// What tracing costs on this machine now.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Overhead {
    /// Added to each run by the trampoline and the two programs (test runs of an empty filter
    /// with them attached, less without).
    pub added_ns_per_run: f64,
    /// The median duration the programs record of an empty filter's runs: their own part in
    /// every duration.
    pub floor_ns: u64,
}

impl Overhead {
    /// What each run is counted against the budget: what tracing added, and never less than
    /// its own part of a duration (a noisy measurement of the difference may give 0).
    pub fn budgeted_ns_per_run(&self) -> f64 {
        #[expect(clippy::cast_precision_loss, reason = "a cost estimate")]
        self.added_ns_per_run.max(self.floor_ns as f64)
    }
}

/// Median ns per run of `prog` over [`CAL_ROUNDS`] test runs of [`CAL_REPEAT`].
fn test_run_ns(prog: BorrowedFd<'_>) -> Result<f64, SysError> {
    const PACKET: [u8; 64] = [0; 64];
    let mut v = (0..CAL_ROUNDS)
        .map(|_| sys::prog_test_run(prog, &PACKET, CAL_REPEAT).map(|r| f64::from(r.duration_ns)))
        .collect::<Result<Vec<_>, _>>()?;
    ebpfstat_numbers::order::sort_by_key(&mut v, |x| (ebpfstat_numbers::order::float_key(*x), 0));
    Ok(v[v.len() / 2])
}

/// Measures [`Overhead`] on the daemon's empty socket filter (loaded with BTF for the
/// occasion, and unloaded after).
pub fn measure_overhead() -> Result<Overhead, ProfileError> {
    let btf = sys::btf_load(&btf::func_btf(CAL_NAME))?;
    let cal = sys::prog_load(&ProgSpec {
        prog_type: BPF_PROG_TYPE_SOCKET_FILTER,
        insns: &[0xb7, 0x95], // r0 = 0; exit
        name: CAL_NAME,
        btf: Some((btf.as_fd(), btf::FUNC_BTF_FUNC_ID)),
        attach: None,
        attach_prog: None,
    })?;
    let what = "the daemon's empty filter";
    let tracer = Tracer::load(cal.as_fd(), btf::FUNC_BTF_FUNC_ID, what)?;
    let bare = test_run_ns(cal.as_fd())?;
    let traced = {
        let _on = tracer.attach(what)?;
        test_run_ns(cal.as_fd())?
    };
    Ok(Overhead {
        added_ns_per_run: (traced - bare).max(0.0),
        floor_ns: tracer.read()?.quantile(0.5),
    })
}

/// A program being profiled: its tracer attached, and where its counters started.
#[derive(Debug)]
pub struct Session {
    /// Held so the id keeps naming this program while it is traced.
    target: OwnedFd,
    tracer: Tracer,
    attached: Option<Attached>,
    runs_at_start: u64,
    /// The target in errors.
    what: String,
}

/// A finished profile.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    pub histogram: Histogram,
    /// The kernel's `run_cnt` over the same time (it counts only while run-time stats are on).
    pub kernel_runs: u64,
}

impl Session {
    /// Loads the tracing for program `id`, if it still is the one loaded at
    /// `load_boottime_ns`; [`Session::attach`] starts it.
    pub fn start(id: u32, load_boottime_ns: u64, name: &str) -> Result<Self, ProfileError> {
        let target = sys::fd_by_id(ObjKind::Prog, id).map_err(ProfileError::Gone)?;
        let info = sys::prog_info(target.as_fd(), &mut Vec::new()).map_err(ProfileError::Gone)?;
        if info.load_time != load_boottime_ns {
            return Err(ProfileError::Gone(SysError {
                call: "BPF_PROG_GET_FD_BY_ID",
                source: std::io::Error::other(format!("id {id} now names another program")),
            }));
        }
        let what = format!("{name} (id {id})");
        let func_id = sys::prog_main_func_type_id(target.as_fd())?
            .ok_or_else(|| ProfileError::NoBtf(what.clone()))?;
        // A trampoline keeps the arguments the prototype declares: one that declares none
        // would hand the program a stale register for its context.
        let btf = sys::btf_data(sys::fd_by_id(ObjKind::Btf, info.btf_id)?.as_fd())?;
        if btf::func_params(&btf, func_id)? == 0 {
            return Err(ProfileError::NoContext(what));
        }
        let tracer = Tracer::load(target.as_fd(), func_id, &what)?;
        Ok(Self {
            target,
            tracer,
            attached: None,
            runs_at_start: 0,
            what,
        })
    }

    /// Starts tracing.
    pub fn attach(&mut self) -> Result<(), ProfileError> {
        self.attached = Some(self.tracer.attach(&self.what)?);
        self.runs_at_start = sys::prog_info(self.target.as_fd(), &mut Vec::new())?.run_cnt;
        Ok(())
    }

    /// Runs so far: those traced, or the kernel's count when it saw more (a run the tracing
    /// entered without filing it paid for it too).
    pub fn runs(&self) -> Result<u64, ProfileError> {
        let traced = self.tracer.read()?.runs;
        let counted = sys::prog_info(self.target.as_fd(), &mut Vec::new())?.run_cnt;
        Ok(traced.max(counted.saturating_sub(self.runs_at_start)))
    }

    /// Detaches and reads what was recorded.
    pub fn finish(mut self) -> Result<Outcome, ProfileError> {
        let runs_at_end = sys::prog_info(self.target.as_fd(), &mut Vec::new())?.run_cnt;
        self.attached = None;
        Ok(Outcome {
            histogram: self.tracer.read()?,
            kernel_runs: runs_at_end.saturating_sub(self.runs_at_start),
        })
    }
}
