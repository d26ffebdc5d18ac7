//! The sampling thread: a pass per slot, the watchdog ping, calibration of what stats cost, and
//! the duty cycle that keeps that cost within budget.

use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::sync::mpsc as std_mpsc;
use std::time::{Duration, Instant};

use ebpfstat_numbers::time::duration_ns;
use ebpfstat_store::{MapReading, ProgramMeta, ProgramTick, StatsCode, Tick};
use tokio::sync::mpsc;

use super::TestingAids;
use super::alerting::Alerting;
use super::notify;
use super::pace::{Change, Pace, PassTime};
use super::schedule::Slots;
use crate::config::span_text;
use crate::observer::{self, Probe};
use crate::quiet::Quiet;
use crate::sampler::entry_kinds::Entries;
use crate::sampler::host::thread_cpu_ns;
use crate::sampler::maps::MapSample;
use crate::sampler::stats::{StatsCost, StatsState};
use crate::sampler::{Pass, Sampler, SamplerConfig};
use crate::shared::{MapsSeen, SamplerCmd, SamplerSettings, SamplerStats, Shared, StoreMsg, lock};
use ebpfstat_numbers::Share;

/// Rounds and runs per round of a calibration: ~0.2 s with stats off part of the time.
const CALIBRATION_ROUNDS: u32 = 7;
const CALIBRATION_REPEAT: u32 = 200_000;
/// Passes between checks for another holder of stats while we hold them all the time.
const HOLDER_CHECK_EVERY: u64 = 30;

struct Loop<'a> {
    sampler: Sampler,
    alerting: Alerting,
    /// Where alert changes are recorded.
    tx: &'a mpsc::Sender<StoreMsg>,
    shared: &'a Shared,
    probe: Option<Probe>,
    cmds: &'a std_mpsc::Receiver<SamplerCmd>,
    settings: SamplerSettings,
    /// The interval changed (a reload): the schedule starts again from now.
    rescheduled: bool,
    pace: Pace,
    /// Half the systemd watchdog period, when there is a watchdog.
    watchdog: Option<Duration>,
    pinged: Option<Instant>,
}

enum Woken {
    Time,
    Stop,
}

impl Loop<'_> {
    fn calibrate(&mut self) -> StatsCost {
        let cost = match &self.probe {
            Some(probe) => observer::calibrate(
                self.sampler.stats_switch(),
                probe,
                CALIBRATION_ROUNDS,
                CALIBRATION_REPEAT,
            ),
            None => StatsCost::default_because("the probe program cannot be loaded"),
        };
        tracing::info!(
            "run-time stats cost {:.1} ns per program run (spread {:.1} ns; {})",
            cost.ns_per_run,
            cost.spread_ns,
            cost.source
        );
        self.sampler.set_cost(cost.clone());
        cost
    }

    /// The interval passes keep: the configured one, stretched while passes are too slow.
    fn paced_interval(&self) -> Duration {
        self.settings.interval.saturating_mul(self.pace.factor())
    }

    /// Takes what a pass took into the pace; says whether the interval changed.
    fn pace_after(&mut self, took: PassTime, stats: &SamplerStats) -> bool {
        let (interval, budget) = (self.settings.interval, self.settings.sampler_budget);
        let change = self.pace.after_pass(took, interval, budget);
        let mean = self.pace.mean_pass();
        stats
            .pass_ns
            .store(duration_ns(mean.wall), Ordering::Relaxed);
        stats
            .pass_cpu_ns
            .store(duration_ns(mean.cpu), Ordering::Relaxed);
        let Some(Change {
            from,
            to,
            mean_pass,
        }) = change
        else {
            return false;
        };
        let paced = self.paced_interval();
        stats
            .pace_interval_ns
            .store(duration_ns(paced), Ordering::Relaxed);
        let mean = format!(
            "{} of CPU ({} wall)",
            pass_text(mean_pass.cpu),
            pass_text(mean_pass.wall)
        );
        let every = humantime::format_duration(paced).to_string();
        let share = format!("{}% of one core", Share(budget).percent());
        if to > from {
            tracing::warn!(
                "passes take {mean} on average, more than the sampler budget ({share}) allows \
                 at {}: sampling every {every} until they are quicker",
                span_text(interval)
            );
        } else if to == 1 {
            tracing::info!("passes take {mean} on average again: back to sampling every {every}");
        } else {
            tracing::info!("passes take {mean} on average: sampling every {every} now");
        }
        true
    }

    /// Pings the watchdog when half its period has passed since the last ping.
    fn feed_watchdog(&mut self) {
        let now = Instant::now();
        if let Some(period) = self.watchdog
            && self
                .pinged
                .is_none_or(|p| now.saturating_duration_since(p) >= period)
        {
            notify(&[sd_notify::NotifyState::Watchdog]);
            self.pinged = Some(now);
        }
    }

    /// Waits until `until`, answering requests meanwhile; feeds the watchdog while it waits,
    /// so an interval longer than the watchdog's period is no stall.
    fn wait(&mut self, until: Instant) -> Woken {
        self.wait_feeding(until, true)
    }

    fn wait_feeding(&mut self, until: Instant, feed: bool) -> Woken {
        loop {
            if self.rescheduled {
                return Woken::Time;
            }
            if feed {
                self.feed_watchdog();
            }
            let mut left = until.saturating_duration_since(Instant::now());
            if let Some(period) = self.watchdog.filter(|_| feed) {
                left = left.min(period);
            }
            match self.cmds.recv_timeout(left) {
                Err(std_mpsc::RecvTimeoutError::Timeout) => {
                    if Instant::now() >= until {
                        return Woken::Time;
                    }
                }
                Ok(SamplerCmd::Calibrate(reply)) => {
                    let cost = self.calibrate();
                    let _ = reply.send(cost);
                }
                Ok(SamplerCmd::Configure(new)) => {
                    self.sampler.set_rescan_every(new.rescan_every);
                    if new.interval != self.settings.interval
                        || new.sampler_budget != self.settings.sampler_budget
                    {
                        // A new pace is judged afresh.
                        self.pace.reset();
                        self.rescheduled = true;
                    }
                    self.settings = new;
                }
                Ok(SamplerCmd::Alerts(rules)) => {
                    self.alerting.set_rules(rules, self.shared, self.tx);
                }
                Ok(SamplerCmd::Stop) | Err(std_mpsc::RecvTimeoutError::Disconnected) => {
                    return Woken::Stop;
                }
            }
        }
    }

    /// Answers requests, and takes no more passes, until told to stop. The watchdog is not
    /// fed: a sampler that takes no passes has stalled.
    fn idle_until_stopped(&mut self) {
        while !matches!(
            self.wait_feeding(Instant::now() + Duration::from_secs(3600), false),
            Woken::Stop
        ) {}
    }

    /// Lets go of stats and says whether counters keep running anyway (another holder, or the
    /// sysctl).
    fn release_and_check(&mut self) -> bool {
        let switch = self.sampler.stats_switch();
        switch.release();
        switch.sysctl_on() || self.probe.as_ref().is_some_and(Probe::counters_advance)
    }
}

/// Where the fixed-rate schedule stands: slot `slot` is due `slot × interval` after `start`.
struct Schedule {
    slots: Slots,
    start: Instant,
    slot: u64,
}

/// How stats were held over the interval the next pass closes: since when, for how long (when
/// they were let go early), and whether someone else kept them on meanwhile; the duty of the
/// next interval.
struct Holding {
    duty: f64,
    since: Instant,
    held_for: Option<Duration>,
    other_holder: bool,
}

/// What the loop keeps from pass to pass besides [`Loop`].
struct Cycle {
    schedule: Schedule,
    holding: Holding,
    troubles: Troubles,
    states: StateWindow,
    state_text: String,
    /// The metadata handed to the store with the last tick (shared while unchanged).
    metas: Arc<Vec<Arc<ProgramMeta>>>,
    /// The maps last handed to the store: a pass that did not read them again shares them.
    maps: Arc<[Arc<MapSample>]>,
}

/// Takes a pass at every slot of a fixed-rate schedule; slots missed by a slow pass are skipped.
/// It pings the systemd watchdog itself, at half its period: a stalled sampler stops the pings.
/// Between passes it holds run-time stats on for the share of the interval the mode allows.
pub fn sample_loop(
    settings: SamplerSettings,
    aids: TestingAids,
    alerting: Alerting,
    (tx, shared): (&mpsc::Sender<StoreMsg>, &Shared),
    cmds: &std_mpsc::Receiver<SamplerCmd>,
) {
    let mut lp = Loop::start(settings, alerting, (tx, shared), cmds);
    let now = Instant::now();
    let mut c = Cycle {
        schedule: Schedule {
            slots: Slots::new(settings.interval),
            start: now,
            slot: 0,
        },
        holding: Holding {
            duty: 1.0,
            since: now,
            held_for: None,
            other_holder: false,
        },
        troubles: Troubles::default(),
        states: StateWindow::default(),
        state_text: String::new(),
        metas: Arc::default(),
        maps: Arc::from([]),
    };
    loop {
        let began = (Instant::now(), thread_cpu_ns());
        let pass = lp.take_pass(&mut c);
        lp.hand_over(&pass, &mut c);
        lp.paced(began, &mut c);
        let passes = shared.sampler.passes.load(Ordering::Relaxed);
        assert!(
            aids.panic_after != Some(passes),
            "testing aid: the sampler panics after {passes} passes"
        );
        if aids.stall_after == Some(passes) {
            tracing::warn!("testing aid: the sampler stalls now");
            lp.idle_until_stopped();
            return;
        }
        if let Woken::Stop = lp.hold_until_next(&pass, passes, &mut c) {
            return;
        }
    }
}

impl<'a> Loop<'a> {
    /// The sampler with the daemon's probe loaded (and left out of passes), stats calibrated.
    fn start(
        settings: SamplerSettings,
        alerting: Alerting,
        (tx, shared): (&'a mpsc::Sender<StoreMsg>, &'a Shared),
        cmds: &'a std_mpsc::Receiver<SamplerCmd>,
    ) -> Self {
        shared
            .sampler
            .pace_interval_ns
            .store(duration_ns(settings.interval), Ordering::Relaxed);
        let probe = Probe::load()
            .inspect_err(|e| tracing::warn!("cannot load the calibration probe: {e}"))
            .ok();
        let own: Vec<u32> = probe.as_ref().and_then(Probe::id).into_iter().collect();
        let mut lp = Self {
            sampler: Sampler::new(SamplerConfig {
                rescan_every: settings.rescan_every,
            }),
            alerting,
            tx,
            shared,
            probe,
            cmds,
            settings,
            rescheduled: false,
            pace: Pace::default(),
            watchdog: sd_notify::watchdog_enabled().map(|d| d / 2),
            pinged: None,
        };
        lp.sampler.set_own(own);
        lp.calibrate();
        lp
    }

    /// The pass of this slot: late or not, over an interval held as [`Holding`] says; its
    /// duration paces the interval.
    fn take_pass(&mut self, c: &mut Cycle) -> Arc<Pass> {
        let stats = &self.shared.sampler;
        let sch = &mut c.schedule;
        if std::mem::take(&mut self.rescheduled) {
            sch.slots = Slots::new(self.paced_interval());
            stats
                .pace_interval_ns
                .store(duration_ns(self.paced_interval()), Ordering::Relaxed);
            sch.start = Instant::now();
            sch.slot = 0;
        }
        let now = Instant::now();
        if sch
            .slots
            .is_late(sch.slot, now.saturating_duration_since(sch.start))
        {
            stats.late.fetch_add(1, Ordering::Relaxed);
        }
        let h = &mut c.holding;
        if let Some(on) = h.held_for.take() {
            let span = now
                .saturating_duration_since(h.since)
                .max(Duration::from_nanos(1));
            let (coverage, state) = if h.other_holder {
                (1.0, StatsState::EnabledByOther)
            } else {
                let c = (on.as_secs_f64() / span.as_secs_f64()).min(1.0);
                (c, StatsState::DutyCycled { duty: c })
            };
            self.sampler.set_interval_state(coverage, state);
        }
        let pass = Arc::new(self.sampler.pass());
        stats.passes.fetch_add(1, Ordering::Relaxed);
        pass
    }

    /// Paces by the whole pass, from `began` (before the programs were read: the time and the
    /// thread's CPU time then) to now (its alerts judged).
    fn paced(&mut self, (began, cpu_began): (Instant, u64), c: &mut Cycle) {
        let took = PassTime {
            cpu: Duration::from_nanos(thread_cpu_ns().saturating_sub(cpu_began)),
            wall: began.elapsed(),
        };
        if self.pace_after(took, &self.shared.sampler) {
            // The next pass is one new interval after this one began: slot 0 of a new
            // schedule.
            let sch = &mut c.schedule;
            sch.slots = Slots::new(self.paced_interval());
            sch.start = began;
            sch.slot = 0;
        }
    }

    /// Publishes the pass (for the API), hands it to the store, judges alerts, feeds the
    /// watchdog.
    fn hand_over(&mut self, pass: &Arc<Pass>, c: &mut Cycle) {
        let shared = self.shared;
        c.troubles.note(pass, &shared.sampler);
        // A failed pass is not stored: the next pass that reads the programs closes the whole
        // time as one interval, instead of history showing zeros for time nobody saw.
        let tick = pass
            .failure
            .is_none()
            .then(|| Box::new(tick_of(pass, &mut c.metas)));
        // The pass first, then the signal: a client that reacts to it reads this pass.
        *lock(&shared.latest) = Some(Arc::clone(pass));
        if pass.failure.is_none() {
            *lock(&shared.exported) = Some(Arc::clone(pass));
        }
        c.states
            .describe(&pass.stats_state, pass.coverage, &mut c.state_text);
        publish_state(shared, &c.state_text);
        if let Some(tick) = tick
            && self.tx.try_send(StoreMsg::Tick(tick)).is_err()
        {
            shared.sampler.dropped.fetch_add(1, Ordering::Relaxed);
        }
        if pass.failure.is_none() && !Arc::ptr_eq(&c.maps, &pass.maps) {
            c.maps = Arc::clone(&pass.maps);
            // A rescan's maps lost to a full queue come again with the next rescan.
            let _ = self.tx.try_send(StoreMsg::Maps(Box::new(maps_of(pass))));
        }
        self.alerting.after_pass(pass, shared, self.tx);
        self.feed_watchdog();
    }

    /// Holds stats on for as much of the next interval as the mode allows, then waits for the
    /// next slot.
    fn hold_until_next(&mut self, pass: &Pass, passes: u64, c: &mut Cycle) -> Woken {
        let (runs, coverage, elapsed) = (pass.runs, pass.coverage, pass.elapsed_ns.unwrap_or(0));
        let cost = self.sampler.cost().ns_per_run;
        let h = &mut c.holding;
        h.duty = observer::next_duty(self.settings.mode, runs, coverage, elapsed, cost, h.duty);
        let switch = self.sampler.stats_switch();
        let holding = switch.held() || switch.reacquire();
        h.since = Instant::now();
        let sch = &mut c.schedule;
        let next = sch.slots.next_after(sch.start.elapsed());
        // Every slot between this pass's and the next one had no pass.
        let missed = next.saturating_sub(sch.slot).saturating_sub(1);
        self.shared
            .sampler
            .missed
            .fetch_add(missed, Ordering::Relaxed);
        sch.slot = next;
        let Some(next) = sch.slots.due(sch.start, sch.slot) else {
            tracing::warn!("the next pass is due later than this clock can tell: no more passes");
            self.idle_until_stopped();
            return Woken::Stop;
        };
        if holding && h.duty < 0.999 {
            let off_at = h.since + next.saturating_duration_since(h.since).mul_f64(h.duty);
            if let Woken::Stop = self.wait(off_at) {
                return Woken::Stop;
            }
            h.held_for = Some(Instant::now().saturating_duration_since(h.since));
            h.other_holder = self.release_and_check();
            if h.other_holder {
                // Counters run anyway: holding costs nothing more, and keeps counting ours.
                self.sampler.stats_switch().reacquire();
            }
        } else if holding && passes.is_multiple_of(HOLDER_CHECK_EVERY) {
            // Held all along: look, for a moment, whether anyone else holds stats too.
            let other = self.release_and_check();
            self.sampler.stats_switch().reacquire();
            self.sampler.set_other_holder(other);
        }
        self.wait(next)
    }
}

/// What went wrong in passes, said in the log at most once a minute per kind, and counted.
#[derive(Default)]
struct Troubles {
    failed: Quiet,
    incomplete: Quiet,
    /// Failed passes in a row, and when the first of them was taken.
    run: Option<(u64, Instant)>,
}

impl Troubles {
    fn note(&mut self, pass: &Pass, stats: &SamplerStats) {
        let now = Instant::now();
        if let Some(why) = &pass.failure {
            stats.failed.fetch_add(1, Ordering::Relaxed);
            stats.failing.store(true, Ordering::Relaxed);
            *lock(&stats.last_failure) = Some((pass.time, why.clone()));
            let run = self.run.get_or_insert((0, now));
            run.0 += 1;
            if let Some(n) = self.failed.note(now) {
                tracing::warn!(
                    "pass {} failed and is not stored ({n} failed since the last report): {why}",
                    pass.seq
                );
            }
            return;
        }
        stats.failing.store(false, Ordering::Relaxed);
        if let Some((n, since)) = self.run.take() {
            self.failed.reset();
            tracing::info!(
                "pass {} read every program again after {n} failed passes over {}: it stores \
                 that time as one interval",
                pass.seq,
                humantime::format_duration(Duration::from_millis(
                    u64::try_from(now.saturating_duration_since(since).as_millis())
                        .unwrap_or(u64::MAX)
                ))
            );
        }
        if !pass.errors.is_empty()
            && let Some(n) = self.incomplete.note(now)
        {
            tracing::warn!(
                "pass {} met errors ({n} passes with errors since the last report): {}",
                pass.seq,
                pass.errors.join("; ")
            );
        }
    }
}

/// What the store keeps of a pass. `metas` is the last tick's metadata list, reused while the
/// pass read the same programs.
fn tick_of(pass: &Pass, metas: &mut Arc<Vec<Arc<ProgramMeta>>>) -> Tick {
    let same = metas.len() == pass.programs.len()
        && metas
            .iter()
            .zip(&pass.programs)
            .all(|(m, p)| Arc::ptr_eq(m, &p.meta));
    if !same {
        *metas = Arc::new(pass.programs.iter().map(|p| Arc::clone(&p.meta)).collect());
    }
    Tick {
        boot_id: Arc::clone(&pass.boot_id),
        boottime_ns: pass.boottime_ns,
        wall: pass.time,
        stats: StatsCode::from(&pass.stats_state),
        complete: pass.read_all(),
        coverage: pass.coverage,
        stats_cost_ns: pass.stats_cost.ns_per_run,
        programs: pass
            .programs
            .iter()
            .map(|p| ProgramTick {
                id: p.meta.id,
                load_boottime_ns: p.meta.load_boottime_ns,
                counters: p.counters,
                map_memory: p.context.map_memory,
            })
            .collect(),
        metas: Arc::clone(metas),
    }
}

/// What the store keeps of a pass's maps.
fn maps_of(pass: &Pass) -> MapsSeen {
    let maps = pass
        .maps
        .iter()
        .map(|m| MapReading {
            id: m.id,
            name: m.name.clone(),
            map_type: m.map_type,
            max_entries: m.max_entries,
            memory: m.memlock_bytes,
            entries: match m.entries {
                Entries::Counted { n, .. } => Some(n),
                Entries::NotCounted(_) => None,
            },
        })
        .collect();
    MapsSeen {
        boot_id: Arc::clone(&pass.boot_id),
        wall: pass.time,
        maps,
    }
}

/// The time the published stats state speaks of: a budget that duty-cycles some intervals and
/// not others must not make the state flip from pass to pass.
const STATE_WINDOW: Duration = Duration::from_secs(10);

/// The stats state as every view shows it (`status`, `Snapshot`, the `StatsState` property).
/// Another holder, the sysctl or stats being unavailable are said at once; between our own
/// states it says `duty-cycled` while any pass of the last [`STATE_WINDOW`] was, with the share
/// of that time stats were on.
#[derive(Default)]
struct StateWindow {
    /// When each recent pass was taken, and the share of its interval stats were on.
    recent: std::collections::VecDeque<(Instant, f64)>,
}

impl StateWindow {
    fn describe(&mut self, state: &StatsState, coverage: f64, text: &mut String) {
        let now = Instant::now();
        text.clear();
        let ours = match state {
            StatsState::DutyCycled { .. } => Some(coverage),
            StatsState::Enabled => Some(1.0),
            _ => None,
        };
        let Some(on) = ours else {
            self.recent.clear();
            // Formatting into a String cannot fail.
            let _ = write!(text, "{state}");
            return;
        };
        while self
            .recent
            .front()
            .is_some_and(|&(at, _)| now.saturating_duration_since(at) > STATE_WINDOW)
        {
            self.recent.pop_front();
        }
        self.recent.push_back((now, on));
        let mean = self.recent.iter().map(|&(_, c)| c).sum::<f64>() / self.recent.len() as f64;
        let _ = if mean < 0.999 {
            write!(
                text,
                "{}: on {:.0}% of the time over the last {}",
                ebpfstat_dbus::StatsState::DutyCycled,
                Share(mean).percent(),
                humantime::format_duration(STATE_WINDOW)
            )
        } else {
            write!(text, "{state}")
        };
    }
}

/// Publishes the stats state for the `StatsState` property and its `PropertiesChanged`;
/// `text` is reused, so a state that did not change costs no allocation.
fn publish_state(shared: &Shared, text: &str) {
    shared.published.send_if_modified(|p| {
        if p.stats_state.as_deref() == Some(text) {
            return false;
        }
        p.stats_state = Some(text.to_owned());
        true
    });
}

/// A pass time at a glance: `214µs`, `6.4ms`, `1.25s`.
fn pass_text(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s < 1e-3 {
        format!("{:.0}µs", s * 1e6)
    } else if s < 1.0 {
        format!("{:.1}ms", s * 1e3)
    } else {
        format!("{s:.2}s")
    }
}
