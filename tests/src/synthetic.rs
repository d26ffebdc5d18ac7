//! A simulated host for store tests and benchmarks: programs with chosen activity, a boot
//! clock and a wall clock that the test moves (so a day takes seconds).

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use ebpfstat_store::{Counters, MapMemory, ProgramMeta, StatsCode, Store, Tick};

/// 2026-01-01T00:00:00Z, where the simulated wall clocks start by default: hour-aligned, like
/// the simulated boot clock, so the wall grid of a query lines up with the rollup buckets.
pub const START_UNIX_SECS: u64 = 1_767_225_600;

/// [`START_UNIX_SECS`] as a time.
pub fn start() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(START_UNIX_SECS)
}

/// A simulated duration in ns.
fn ns(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).expect("a simulated clock within 584 years")
}

/// A simulated count or time, rounded (negative is 0).
#[expect(
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss,
    reason = "float to integer `as` saturates at 0 and u64::MAX, as a count should"
)]
fn round(v: f64) -> u64 {
    v.round() as u64
}

pub fn meta(id: u32, name: &str, load_boottime_ns: u64) -> Arc<ProgramMeta> {
    Arc::new(ProgramMeta {
        id,
        name: name.chars().take(15).collect(),
        full_name: name.to_owned(),
        prog_type: "socket_filter",
        tag: format!("{:016x}", u64::from(id) * 0x9e37_79b9),
        load_boottime_ns,
        load_time: SystemTime::UNIX_EPOCH,
        created_by_uid: 0,
        verified_insns: 2,
        jited_size: 64,
        xlated_size: 16,
        btf_id: None,
        prog_memlock_bytes: Some(4096),
        counted_from_load: false,
    })
}

/// The clocks and programs live in the tick the store is fed.
#[derive(Debug)]
pub struct SimHost {
    tick: Tick,
}

impl SimHost {
    pub fn new(boot_id: &str, wall: SystemTime, boottime: Duration) -> Self {
        Self {
            tick: Tick {
                boot_id: boot_id.into(),
                boottime_ns: ns(boottime),
                wall,
                stats: StatsCode::Enabled,
                complete: true,
                coverage: 1.0,
                stats_cost_ns: 80.0,
                programs: Vec::new(),
                metas: Arc::default(),
            },
        }
    }

    /// The simulated wall clock.
    pub fn wall(&self) -> SystemTime {
        self.tick.wall
    }

    /// Loads a program now; returns its index.
    pub fn load(&mut self, id: u32, name: &str) -> usize {
        self.tick.push_program(
            meta(id, name, self.tick.boottime_ns),
            Counters::default(),
            MapMemory {
                total: 4096,
                own: 4096,
                shared: 0,
            },
        );
        self.tick.programs.len() - 1
    }

    pub fn unload(&mut self, index: usize) {
        self.tick.remove_program(index);
    }

    /// Program `index` runs `cnt` times for `rt` ns in total.
    pub fn run(&mut self, index: usize, cnt: u64, rt: u64) {
        let c = &mut self.tick.programs[index].counters;
        c.run_cnt += cnt;
        c.run_time_ns += rt;
    }

    /// Program `index`'s full name learnt late (the daemon read its BTF only now): its
    /// metadata is handed over again with the name.
    pub fn rename(&mut self, index: usize, full_name: &str) {
        let metas = Arc::make_mut(&mut self.tick.metas);
        let mut meta = (*metas[index]).clone();
        meta.full_name = full_name.to_owned();
        metas[index] = Arc::new(meta);
    }

    /// The share of the next intervals with stats on (duty-cycling), 0..=1.
    pub fn set_coverage(&mut self, coverage: f64) {
        self.tick.coverage = coverage;
    }

    /// Moves both clocks.
    pub fn advance(&mut self, d: Duration) {
        self.tick.boottime_ns += ns(d);
        self.tick.wall += d;
    }

    /// Steps the wall clock only (NTP fixing a clock that booted at 1970, an admin, ...).
    pub fn step_wall(&mut self, to: SystemTime) {
        self.tick.wall = to;
    }

    /// A reboot: new boot id, boot clock restarts, no programs.
    pub fn reboot(&mut self, boot_id: &str, boottime: Duration) {
        self.tick.boot_id = boot_id.into();
        self.tick.boottime_ns = ns(boottime);
        self.tick.clear_programs();
    }

    /// The pass as the store sees it, at the current clocks.
    pub fn tick(&self) -> &Tick {
        &self.tick
    }
}

/// xorshift64*: deterministic noise without a dependency.
#[derive(Debug)]
pub struct Rng(u64);

impl Rng {
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Uniform in [-1, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 52) as f64 - 1.0
    }
}

/// A busy program: a rate that drifts over hours, Poisson-like noise, a mean run time with
/// jitter.
#[derive(Debug)]
struct Busy {
    base_rate: f64,
    period_s: f64,
    mean_ns: f64,
}

#[derive(Debug)]
pub struct Workload {
    pub host: SimHost,
    busy: Vec<(usize, Busy)>,
    rng: Rng,
    pub t: u64,
}

impl Workload {
    /// `programs` programs named `prog<i>`, the first `busy_share` of them busy, from
    /// [`start`].
    pub fn new(boot: &str, programs: usize, busy_share: f64) -> Self {
        Self::starting(boot, programs, busy_share, start())
    }

    /// The same, with the simulated clocks starting at `start`.
    pub fn starting(boot: &str, programs: usize, busy_share: f64, start: SystemTime) -> Self {
        let mut host = SimHost::new(boot, start, Duration::from_secs(36_000));
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        let n_busy = usize::try_from(round(programs as f64 * busy_share)).expect("count");
        let mut busy = Vec::new();
        for i in 0..programs {
            let idx = host.load(u32::try_from(i + 1).expect("id"), &format!("prog{i}"));
            if i < n_busy {
                busy.push((
                    idx,
                    Busy {
                        base_rate: 50.0 + (rng.next_u64() % 5000) as f64,
                        period_s: 600.0 + (rng.next_u64() % 20_000) as f64,
                        mean_ns: 200.0 + (rng.next_u64() % 3000) as f64,
                    },
                ));
            }
        }
        Self {
            host,
            busy,
            rng,
            t: 0,
        }
    }

    /// Advances one second and runs the busy programs.
    pub fn step(&mut self) {
        self.t += 1;
        self.host.advance(Duration::from_secs(1));
        let t = self.t as f64;
        for (idx, b) in &self.busy {
            let rate = b.base_rate * (1.0 + 0.5 * (t * std::f64::consts::TAU / b.period_s).sin());
            let cnt = round(rate + rate.sqrt() * self.rng.unit());
            let rt = round(cnt as f64 * b.mean_ns * (1.0 + 0.05 * self.rng.unit()));
            self.host.run(*idx, cnt, rt);
        }
    }

    /// Steps `secs` seconds, feeding `store` every tick and flushing it every 60 (calling
    /// `after_flush` after each of those), then flushes what is left.
    pub fn fill(&mut self, store: &mut Store, secs: u64, mut after_flush: impl FnMut()) {
        for _ in 0..secs {
            self.step();
            store.ingest(self.host.tick()).expect("ingest");
            if self.t.is_multiple_of(60) {
                store.flush(self.host.wall()).expect("flush");
                after_flush();
            }
        }
        store.flush(self.host.wall()).expect("flush");
    }
}
