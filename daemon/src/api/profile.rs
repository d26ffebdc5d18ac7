//! `Profile()`: each run of a program timed for a while (see [`crate::profile`]).
//!
//! The call waits as long as the profile lasts; the tracing is detached when the time is up,
//! when the caller goes away (its bus name lost, or its private connection ended), when its
//! cost reaches the stats budget, or when the daemon stops (the call's future, dropped with
//! the runtime, raises the profile thread's flag; a killed daemon's links close with its
//! descriptors).

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ebpfstat_dbus::{self as wire, Error, Options, ProfileEnd};
use zbus::message::Header;

use super::Stats1;
use super::args::{check_options, parse_spec};
use crate::profile::{self, Outcome, Overhead, ProfileError, Session};
use crate::shared::lock;

/// How often a profile looks at its caller and its cost.
const TICK: Duration = Duration::from_millis(100);

/// How long a measured [`Overhead`] is used again: a caller looping short profiles does not
/// make the daemon load and test-run its calibration programs each time.
const OVERHEAD_KEPT: Duration = Duration::from_secs(600);

/// The programs being profiled now, and the tracing's cost as last measured.
#[derive(Debug, Default)]
pub struct Profiling {
    targets: Mutex<HashSet<u32>>,
    overhead: Mutex<Option<(Instant, Overhead)>>,
}

impl Profiling {
    /// The tracing's cost: measured within [`OVERHEAD_KEPT`], or now.
    fn overhead(&self) -> Result<Overhead, ProfileError> {
        let mut kept = lock(&self.overhead);
        if let Some((at, o)) = *kept
            && at.elapsed() < OVERHEAD_KEPT
        {
            return Ok(o);
        }
        let o = profile::measure_overhead()?;
        *kept = Some((Instant::now(), o));
        Ok(o)
    }
}

/// A program's turn to be profiled, given back when dropped.
#[derive(Debug)]
struct Claim {
    all: Arc<Profiling>,
    id: u32,
}

/// Raises its flag when dropped: the call's future dropped with the daemon stopping stops the
/// profile's thread.
struct Raise(Arc<AtomicBool>);

impl Drop for Raise {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        lock(&self.all.targets).remove(&self.id);
    }
}

fn claim(all: &Arc<Profiling>, id: u32, name: &str) -> Result<Claim, Error> {
    let mut targets = lock(&all.targets);
    if targets.contains(&id) {
        return Err(Error::Busy(format!(
            "{name} (id {id}) is being profiled already; one profile a program at a time"
        )));
    }
    if targets.len() >= wire::MAX_PROFILES {
        return Err(Error::Busy(format!(
            "{} programs are being profiled; at most {} at a time",
            targets.len(),
            wire::MAX_PROFILES
        )));
    }
    targets.insert(id);
    Ok(Claim {
        all: Arc::clone(all),
        id,
    })
}

impl From<ProfileError> for Error {
    fn from(e: ProfileError) -> Self {
        match e {
            ProfileError::NoBtf(_) | ProfileError::NoContext(_) | ProfileError::Refused { .. } => {
                Self::NotSupported(e.to_string())
            }
            ProfileError::Gone(_) => Self::NoSuchProgram(e.to_string()),
            _ => Self::Unavailable(format!("profile: {e}")),
        }
    }
}

/// The duration asked for, checked.
fn duration(duration_ns: u64) -> Result<Duration, Error> {
    if !(wire::MIN_PROFILE_NS..=wire::MAX_PROFILE_NS).contains(&duration_ns) {
        return Err(Error::InvalidArgument(format!(
            "a profile lasts from {} to {} (asked: {})",
            humantime::format_duration(Duration::from_nanos(wire::MIN_PROFILE_NS)),
            humantime::format_duration(Duration::from_nanos(wire::MAX_PROFILE_NS)),
            humantime::format_duration(Duration::from_nanos(duration_ns))
        )));
    }
    Ok(Duration::from_nanos(duration_ns))
}

/// Whether tracing that has cost `runs` × `added_ns` over `elapsed` is past `budget` (a
/// share of one core), allowing the first second's share from the start.
fn over_budget(runs: u64, added_ns: f64, elapsed: Duration, budget: f64) -> bool {
    #[expect(clippy::cast_precision_loss, reason = "a cost estimate")]
    let cost_ns = runs as f64 * added_ns;
    cost_ns > budget * elapsed.max(Duration::from_secs(1)).as_nanos() as f64
}

/// The wire's answer: what was traced, its quantiles and buckets, what tracing cost.
fn answer(
    (id, full_name, prog_type): (u32, String, String),
    outcome: &Outcome,
    overhead: Overhead,
    (seconds, ended): (f64, ProfileEnd),
) -> wire::Profile {
    let h = &outcome.histogram;
    #[expect(clippy::cast_precision_loss, reason = "a mean")]
    let mean_ns = if h.runs == 0 {
        0.0
    } else {
        h.sum_ns as f64 / h.runs as f64
    };
    wire::Profile {
        id,
        full_name,
        prog_type,
        seconds,
        runs: h.runs,
        mean_ns,
        p50_ns: h.quantile(0.5),
        p90_ns: h.quantile(0.9),
        p99_ns: h.quantile(0.99),
        p999_ns: h.quantile(0.999),
        max_ns: h.max_ns,
        buckets: h
            .buckets()
            .into_iter()
            .map(|(le_ns, count)| wire::ProfileBucket { le_ns, count })
            .collect(),
        added_ns_per_run: overhead.added_ns_per_run,
        floor_ns: overhead.floor_ns,
        kernel_runs: outcome.kernel_runs,
        ended: ended.as_str().to_owned(),
    }
}

/// What a profile's thread is given: the program, how long, the budget to watch, and the flag
/// the caller's watcher raises when it goes.
struct Job {
    target: (u32, u64, String, String),
    profiling: Arc<Profiling>,
    length: Duration,
    budget: tokio::sync::watch::Receiver<crate::shared::Published>,
    gone: Arc<AtomicBool>,
}

/// The profile, on a thread of its own (program loads, test runs and a loop of short sleeps:
/// plain code, which costs the binary far less than the same as futures).
fn run(job: Job) -> Result<wire::Profile, ProfileError> {
    let (id, load, name, prog_type) = job.target;
    let mut session = Session::start(id, load, &name)?;
    let overhead = job.profiling.overhead()?;
    session.attach()?;
    let started = Instant::now();
    let ended = loop {
        std::thread::sleep(TICK.min(job.length.saturating_sub(started.elapsed())));
        let elapsed = started.elapsed();
        if elapsed >= job.length {
            break ProfileEnd::Time;
        }
        if job.gone.load(Ordering::Relaxed) {
            break ProfileEnd::Client;
        }
        let budget = job.budget.borrow().stats_budget;
        if over_budget(
            session.runs()?,
            overhead.budgeted_ns_per_run(),
            elapsed,
            budget,
        ) {
            break ProfileEnd::Budget;
        }
    };
    let seconds = started.elapsed().as_secs_f64();
    let outcome = session.finish()?;
    let h = &outcome.histogram;
    tracing::info!(
        "profile of {name} (id {id}): {} runs in {seconds:.1}s, p50 {} ns, p99 {} ns, max {} \
         ns; ended: {}",
        h.runs,
        h.quantile(0.5),
        h.quantile(0.99),
        h.max_ns,
        ended.as_str()
    );
    Ok(answer(
        (id, name, prog_type),
        &outcome,
        overhead,
        (seconds, ended),
    ))
}

impl Stats1 {
    pub(super) async fn run_profile(
        &self,
        conn: &zbus::Connection,
        hdr: &Header<'_>,
        program: &str,
        duration_ns: u64,
        options: &Options,
    ) -> Result<wire::Profile, Error> {
        check_options(options, &[])?;
        let length = duration(duration_ns)?;
        let spec = parse_spec(program)?;
        let pass = self.latest()?;
        let p = self.one_loaded(&pass, &spec, program).await?;
        let target = (
            p.meta.id,
            p.meta.load_boottime_ns,
            p.meta.full_name.clone(),
            p.meta.prog_type.to_owned(),
        );
        drop(pass);
        let claim = claim(&self.profiling, target.0, &target.2)?;
        let gone = Arc::new(AtomicBool::new(false));
        let job = Job {
            target,
            profiling: Arc::clone(&self.profiling),
            length,
            budget: self.shared.published.subscribe(),
            gone: Arc::clone(&gone),
        };
        let (tx, mut rx) = tokio::sync::oneshot::channel();
        std::thread::Builder::new()
            .name(format!("profile-{}", claim.id))
            .spawn(move || {
                // The claim is given back when the tracing is detached, not before.
                let _claim = claim;
                // The caller may be gone: its answer then goes nowhere, said in the log.
                if let Err(Err(e)) = tx.send(run(job)) {
                    tracing::info!("profile for a caller gone: {e}");
                }
            })
            .map_err(|e| Error::Unavailable(format!("profile: cannot start a thread: {e}")))?;
        // Dropped (the daemon stopping), the watcher raises the flag too.
        let _raise = Raise(Arc::clone(&gone));
        loop {
            tokio::select! {
                r = &mut rx => {
                    let r = r.map_err(|_| Error::Unavailable("profile: its thread ended".into()))?;
                    return r.map_err(Error::from);
                }
                () = tokio::time::sleep(Duration::from_secs(1)) => {
                    if self.caller_gone(conn, hdr).await {
                        gone.store(true, Ordering::Relaxed);
                    }
                }
            }
        }
    }

    /// Whether the caller of `hdr` is gone: its private connection ended, or its bus name lost.
    async fn caller_gone(&self, conn: &zbus::Connection, hdr: &Header<'_>) -> bool {
        if let Some(p) = &self.peer {
            return p.flow.is_ended();
        }
        let Some(sender) = hdr.sender() else {
            return false;
        };
        // One call by hand: zbus's generated proxy of the bus's whole interface costs ~100 KB
        // of the binary.
        let reply = conn
            .call_method(
                Some("org.freedesktop.DBus"),
                "/org/freedesktop/DBus",
                Some("org.freedesktop.DBus"),
                "NameHasOwner",
                &(sender.as_str(),),
            )
            .await;
        match reply.and_then(|m| m.body().deserialize::<bool>()) {
            Ok(has_owner) => !has_owner,
            Err(e) => {
                tracing::debug!(
                    "profile: NameHasOwner({sender}): {e}; the caller is taken as here"
                );
                false
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_million_runs_a_second_is_stopped_within_a_second_at_one_percent() {
        // 60 ns added to each run: 6 % of a core at a million runs a second.
        let at = |ms: u64| Duration::from_millis(ms);
        assert!(
            !over_budget(100_000, 60.0, at(100), 0.01),
            "6 ms of the first 10"
        );
        assert!(over_budget(200_000, 60.0, at(200), 0.01), "12 ms");
        // A thousand runs a second runs out the 10 minutes.
        assert!(!over_budget(600_000, 60.0, at(600_000), 0.01));
    }

    #[test]
    fn durations_out_of_range_are_refused() {
        assert!(duration(wire::DEFAULT_PROFILE_NS).is_ok());
        assert!(duration(wire::MIN_PROFILE_NS - 1).is_err());
        assert!(duration(wire::MAX_PROFILE_NS + 1).is_err());
    }
}
