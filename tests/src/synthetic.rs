//! A simulated host for store tests and benchmarks: programs with chosen activity, a boot
//! clock and a wall clock that the test moves (so a day takes seconds).

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use ebpfstatd::sampler::ProgramMeta;
use ebpfstatd::sampler::maps::MapMemory;
use ebpfstatd::sampler::metrics::Counters;
use ebpfstatd::store::{ProgramTick, StatsCode, Tick};

pub fn meta(id: u32, name: &str, load_boottime_ns: u64) -> Arc<ProgramMeta> {
    Arc::new(ProgramMeta {
        id,
        name: name.chars().take(15).collect(),
        full_name: name.to_owned(),
        prog_type: "socket_filter".into(),
        tag: format!("{:016x}", u64::from(id) * 0x9e37_79b9),
        load_boottime_ns,
        load_time: SystemTime::UNIX_EPOCH,
        created_by_uid: 0,
        verified_insns: 2,
        jited_size: 64,
        xlated_size: 16,
        btf_id: None,
        prog_memlock_bytes: Some(4096),
    })
}

#[derive(Debug)]
pub struct SimHost {
    pub boot_id: Arc<str>,
    pub boottime_ns: u64,
    pub wall: SystemTime,
    pub stats: StatsCode,
    pub tick: Tick,
}

impl SimHost {
    pub fn new(boot_id: &str, wall: SystemTime, boottime: Duration) -> Self {
        let boot_id: Arc<str> = boot_id.into();
        Self {
            tick: Tick {
                boot_id: Arc::clone(&boot_id),
                boottime_ns: boottime.as_nanos() as u64,
                wall,
                stats: StatsCode::Enabled,
                complete: true,
                programs: Vec::new(),
            },
            boot_id,
            boottime_ns: boottime.as_nanos() as u64,
            wall,
            stats: StatsCode::Enabled,
        }
    }

    /// Loads a program now; returns its index.
    pub fn load(&mut self, id: u32, name: &str) -> usize {
        self.tick.programs.push(ProgramTick {
            meta: meta(id, name, self.boottime_ns),
            counters: Counters::default(),
            map_memory: MapMemory {
                total: 4096,
                own: 4096,
                shared: 0,
            },
        });
        self.tick.programs.len() - 1
    }

    pub fn unload(&mut self, index: usize) {
        self.tick.programs.remove(index);
    }

    /// Program `index` runs `cnt` times for `rt` ns in total.
    pub fn run(&mut self, index: usize, cnt: u64, rt: u64) {
        let c = &mut self.tick.programs[index].counters;
        c.run_cnt += cnt;
        c.run_time_ns += rt;
    }

    /// Moves both clocks.
    pub fn advance(&mut self, d: Duration) {
        self.boottime_ns += d.as_nanos() as u64;
        self.wall += d;
    }

    /// Steps the wall clock only (NTP fixing a clock that booted at 1970, an admin, ...).
    pub fn step_wall(&mut self, to: SystemTime) {
        self.wall = to;
    }

    /// A reboot: new boot id, boot clock restarts, no programs.
    pub fn reboot(&mut self, boot_id: &str, boottime: Duration) {
        self.boot_id = boot_id.into();
        self.boottime_ns = boottime.as_nanos() as u64;
        self.tick.programs.clear();
    }

    /// The pass as the store sees it, at the current clocks.
    pub fn tick(&mut self) -> &Tick {
        self.tick.boot_id = Arc::clone(&self.boot_id);
        self.tick.boottime_ns = self.boottime_ns;
        self.tick.wall = self.wall;
        self.tick.stats = self.stats;
        &self.tick
    }
}
