//! The sampler: one pass over every eBPF program on the host, producing plain values.
//!
//! Per pass and program the cost is the syscall floor: `GET_NEXT_ID`, `GET_FD_BY_ID`, one
//! `GET_INFO_BY_FD` (counters and map ids together), `close`. Everything that changes rarely
//! (metadata, map memory, owners, pins, links) is read when a program first appears and on an
//! amortised rescan, never on every tick.

pub mod containers;
pub mod entries;
pub mod entry_kinds;
pub mod host;
pub mod links;
pub mod map_iter;
pub mod maps;
pub mod misses;
pub mod model;
pub mod owners;
pub mod pins;
pub mod procfs;
pub mod stats;

mod context;
mod errors;

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;
use std::sync::Arc;
use std::time::SystemTime;

use aya_obj::generated::bpf_prog_info;

use ebpfstat_numbers::rates;
use ebpfstat_store::idmap::{self, IdMap};
use ebpfstat_store::model::{Counters, ProgramMeta};

use crate::bpf::sys::{self, ObjKind, SysError};
use crate::bpf::{btf, names};
use context::Holders;
use errors::ErrorLog;
use host::KernelInfo;
use maps::{MapEntry, MapSample};
use misses::Misses;
pub use model::{Note, OwnerSummary, Pass, ProgramContext, ProgramSample};
use stats::{StatsCost, StatsSwitch};

#[derive(Debug, Clone)]
pub struct SamplerConfig {
    /// Rescan owners, pins, links and map memory at least every this many passes (and right
    /// after new programs appear).
    pub rescan_every: u64,
}

#[derive(Debug)]
struct Tracked {
    meta: Arc<ProgramMeta>,
    /// The meta's load time, kept here: a pass compares it for every program, and a look
    /// through `meta` was a cache miss each.
    load_boottime_ns: u64,
    counters: Counters,
    map_ids: Vec<u32>,
    context: Arc<ProgramContext>,
    seen: u64,
    /// Monotonic time of the pass that last read its counters: the next interval runs from
    /// there, however many passes could not read it meanwhile.
    read_ns: u64,
    /// Its full name could not be read from BTF yet: asked again, so a passing failure (out
    /// of descriptors) never leaves the kernel's 15 bytes as its name.
    name_pending: Option<NameRetry>,
    /// Its misses at the last read.
    missed: Option<Misses>,
}

impl Tracked {
    /// Its misses read this pass, and per second since the last read over `elapsed_ns`.
    fn missed_now(
        &mut self,
        (recursion, probes, links): (u64, Option<u64>, u64),
        elapsed_ns: Option<u64>,
    ) -> (Misses, Option<f64>) {
        let misses = Misses {
            recursion,
            probes,
            links,
        };
        let last = self.missed.replace(misses);
        (misses, misses::per_sec(last, misses, elapsed_ns))
    }
}

/// When to ask BTF for a full name again: the next pass first, then twice as far each time up
/// to [`NameRetry::MAX_GAP`] passes, so a failure that lasts costs little.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct NameRetry {
    /// The pass to ask at.
    at: u64,
    gap: u64,
}

impl NameRetry {
    const MAX_GAP: u64 = 64;

    fn first(seq: u64) -> Self {
        Self {
            at: seq + 1,
            gap: 1,
        }
    }

    #[must_use]
    fn later(self, seq: u64) -> Self {
        let gap = (self.gap * 2).min(Self::MAX_GAP);
        Self { at: seq + gap, gap }
    }
}

/// The clocks a pass is taken at.
#[derive(Debug, Clone, Copy)]
struct Clocks {
    monotonic_ns: u64,
    boottime_ns: u64,
    wall: SystemTime,
}

impl Clocks {
    fn now() -> Self {
        Self {
            monotonic_ns: host::monotonic_ns(),
            boottime_ns: host::boottime_ns(),
            wall: SystemTime::now(),
        }
    }
}

/// What one pass's walk over the programs gathers.
struct Walk {
    now: Clocks,
    errors: ErrorLog,
    programs: Vec<ProgramSample>,
    /// New programs were seen: their holders and maps are read at once.
    appeared: bool,
    /// Some program's maps changed: contexts are rebuilt.
    maps_moved: bool,
    /// Programs loaded from one object share its BTF: each is fetched once per pass.
    btf_blobs: HashMap<u32, Vec<u8>>,
    /// Ids enumerated but not read (in increasing order): not unloaded, so kept.
    unread: Vec<u32>,
    /// The pass before this one (monotonic and boot time, ns), if this run took one.
    prev: Option<(u64, u64)>,
    /// Boot time (ns) since which our fd has held stats on without a break.
    held_since_ns: Option<u64>,
}

impl Walk {
    fn new(now: Clocks, programs: usize) -> Self {
        Self {
            prev: None,
            held_since_ns: None,
            now,
            errors: ErrorLog::default(),
            programs: Vec::with_capacity(programs),
            appeared: false,
            maps_moved: false,
            btf_blobs: HashMap::new(),
            unread: Vec::new(),
        }
    }
}

#[derive(Debug)]
pub struct Sampler {
    cfg: SamplerConfig,
    stats: StatsSwitch,
    kernel: Arc<KernelInfo>,
    boot_id: Arc<str>,
    online_cpus: u32,
    progs: IdMap<u32, Tracked>,
    maps: IdMap<u32, MapEntry>,
    holders: Holders,
    maps_snapshot: Arc<[Arc<MapSample>]>,
    owners_snapshot: Arc<[OwnerSummary]>,
    seq: u64,
    last_monotonic_ns: Option<u64>,
    /// Boot time (ns) of the last pass.
    last_boottime_ns: Option<u64>,
    last_rescan: Option<u64>,
    /// The pass of the last scan of every process's fds.
    last_owners_scan: Option<u64>,
    /// The scan of every process's fds under way: a bounded piece of it each pass.
    owners_scan: Option<owners::Scanner>,
    /// Holders' containers by cgroup, across scans.
    containers: containers::Cache,
    rescan_next_pass: bool,
    map_ids_buf: Vec<u32>,
    /// Room for the names the kernel writes when kprobe links are read again each pass.
    name_buf: Vec<u8>,
    /// The last map whose entries were counted: the next rescan goes on after it.
    count_cursor: u32,
    possible_cpus: Option<u32>,
    cost: Arc<StatsCost>,
    /// Coverage and state of the interval the next pass closes, when the caller duty-cycles.
    interval_state: Option<(f64, stats::StatsState)>,
    /// Whether another process was last seen holding stats on (None: not checked).
    other_holder: Option<bool>,
    /// The daemon's own programs (its calibration probe): not a workload, never sampled.
    own: Vec<u32>,
    /// The kernel's element counters through the daemon's map iterator, where it has them.
    map_counter: Option<map_iter::MapCounter>,
}

/// The map iterator, or (said once, at start) why hash maps are counted by batch reads.
fn load_map_counter() -> Option<map_iter::MapCounter> {
    match map_iter::MapCounter::load() {
        Ok(c) => {
            tracing::info!("hash maps' entries: the kernel's element counters, by a map iterator");
            Some(c)
        }
        Err(e) => {
            tracing::info!("hash maps' entries: counted by batch reads ({e})");
            None
        }
    }
}

/// A periodic rescan reads every process's fds at least every this many periods, even when no
/// process came or went.
const OWNERS_EVERY: u64 = 10;

/// Map ids read in the same call as the counters; programs with more cost one extra call.
const MAP_IDS_INLINE: usize = 64;

impl Sampler {
    /// Takes the stats switch for the sampler's whole life (released on drop).
    pub fn new(cfg: SamplerConfig) -> Self {
        Self {
            stats: StatsSwitch::acquire(Path::new("/proc")),
            kernel: Arc::new(KernelInfo::current()),
            boot_id: host::boot_id().into(),
            online_cpus: host::online_cpus(),
            cfg,
            progs: IdMap::default(),
            maps: IdMap::default(),
            holders: Holders::default(),
            maps_snapshot: Arc::new([]),
            owners_snapshot: Arc::new([]),
            seq: 0,
            last_monotonic_ns: None,
            last_boottime_ns: None,
            last_rescan: None,
            last_owners_scan: None,
            owners_scan: None,
            containers: containers::Cache::default(),
            rescan_next_pass: false,
            map_ids_buf: vec![0; MAP_IDS_INLINE],
            name_buf: vec![0; 4096],
            count_cursor: 0,
            possible_cpus: host::possible_cpus(),
            cost: Arc::new(StatsCost::default_because("not calibrated")),
            interval_state: None,
            other_holder: None,
            own: Vec::new(),
            map_counter: load_map_counter(),
        }
        .with_own(Vec::new())
    }

    /// The stats switch, for calibration and duty-cycling.
    pub fn stats_switch(&mut self) -> &mut StatsSwitch {
        &mut self.stats
    }

    pub fn set_cost(&mut self, cost: StatsCost) {
        self.cost = Arc::new(cost);
    }

    pub fn cost(&self) -> &StatsCost {
        &self.cost
    }

    /// Rescan at least every `passes` passes from now on.
    pub fn set_rescan_every(&mut self, passes: u64) {
        self.cfg.rescan_every = passes;
    }

    /// Programs of the daemon's own, left out of every pass: `ids`, and the map iterator.
    pub fn set_own(&mut self, ids: Vec<u32>) {
        self.own = ids;
        if let Some(c) = &self.map_counter {
            match c.prog_id() {
                Ok(id) => self.own.push(id),
                Err(e) => tracing::warn!("the map iterator's id: {e}; passes may show it"),
            }
        }
    }

    fn with_own(mut self, ids: Vec<u32>) -> Self {
        self.set_own(ids);
        self
    }

    pub fn set_other_holder(&mut self, other: bool) {
        self.other_holder = Some(other);
    }

    /// Says how much of the interval the next pass closes had stats on, and in what state
    /// (the caller holds and lets go of stats when it duty-cycles).
    pub fn set_interval_state(&mut self, coverage: f64, state: stats::StatsState) {
        self.interval_state = Some((coverage, state));
    }

    /// One pass over every program on the host.
    pub fn pass(&mut self) -> Pass {
        self.seq += 1;
        let now = Clocks::now();
        let elapsed_ns = self
            .last_monotonic_ns
            .map(|prev| now.monotonic_ns.saturating_sub(prev));
        let mut w = Walk::new(now, self.progs.len());
        w.prev = self.last_monotonic_ns.zip(self.last_boottime_ns);
        w.held_since_ns = self.stats.held_since_ns();
        self.last_monotonic_ns = Some(now.monotonic_ns);
        self.last_boottime_ns = Some(now.boottime_ns);
        self.walk(&mut w);
        self.settle(&mut w);
        self.finish(w, elapsed_ns)
    }

    /// Reads every program the kernel lists, in id order.
    fn walk(&mut self, w: &mut Walk) {
        let mut id = 0;
        loop {
            match sys::next_id(ObjKind::Prog, id) {
                Ok(Some(next)) => id = next,
                Ok(None) => break,
                Err(e) => {
                    w.errors.walk_failed(&e);
                    break;
                }
            }
            if !self.own.contains(&id) {
                self.read_program(id, w);
            }
        }
    }

    /// Reads program `id`: its counters always, its metadata the first time it is seen. A
    /// program freed meanwhile is skipped; one that cannot be read is kept, as unread.
    fn read_program(&mut self, id: u32, w: &mut Walk) {
        let Some((fd, info, n_maps)) = self.read_info(id, w) else {
            return;
        };
        let counters = Counters {
            run_time_ns: info.run_time_ns,
            run_cnt: info.run_cnt,
        };
        let (seq, now) = (self.seq, w.now);
        let (t, interval) = match self.progs.entry(id) {
            Entry::Occupied(o) if o.get().load_boottime_ns == info.load_time => {
                let t = o.into_mut();
                if t.name_pending.is_some_and(|r| seq >= r.at) {
                    t.retry_name(fd.as_fd(), &info, (seq, &mut w.btf_blobs), &mut w.errors);
                }
                let prev = std::mem::replace(&mut t.counters, counters);
                let map_ids = &self.map_ids_buf[..n_maps];
                if t.map_ids != map_ids {
                    t.map_ids = map_ids.to_vec();
                    w.maps_moved = true;
                }
                let since_read = now.monotonic_ns.saturating_sub(t.read_ns);
                let (cpus, cost) = (self.online_cpus, self.cost.ns_per_run);
                let interval = rates::interval(prev, counters, since_read, cpus, cost);
                (t, interval)
            }
            // First sight (or an id reused after the program it named was freed): a baseline,
            // or the first interval when every run since its load was counted.
            entry => {
                let (mut meta, name) = read_meta(fd.as_fd(), &info, now, &mut w.btf_blobs);
                if let Err(e) = &name {
                    w.errors.per_name(id, e);
                }
                w.appeared = true;
                let from_load = counted_from_load(info.load_time, w);
                meta.counted_from_load = from_load.is_some();
                let interval = from_load.and_then(|since_prev| {
                    let (cpus, cost) = (self.online_cpus, self.cost.ns_per_run);
                    rates::interval(Counters::default(), counters, since_prev, cpus, cost)
                });
                let tracked = Tracked {
                    load_boottime_ns: meta.load_boottime_ns,
                    meta: Arc::new(meta),
                    counters,
                    map_ids: self.map_ids_buf[..n_maps].to_vec(),
                    context: Arc::default(),
                    seen: seq,
                    read_ns: now.monotonic_ns,
                    name_pending: name.is_err().then(|| NameRetry::first(seq)),
                    missed: None,
                };
                (entry.insert_entry(tracked).into_mut(), interval)
            }
        };
        t.seen = seq;
        t.read_ns = now.monotonic_ns;
        let scanned = self.holders.links.get_mut(&id);
        let (probes, links) = misses::refresh(&mut t.context, scanned, &mut self.name_buf);
        let read = (info.recursion_misses, probes, links);
        let (misses, missed_per_sec) = t.missed_now(read, interval.map(|i| i.elapsed_ns));
        w.programs.push(ProgramSample {
            since_load: rates::since_load(
                counters,
                i128::from(t.load_boottime_ns),
                i128::from(now.boottime_ns),
            ),
            meta: Arc::clone(&t.meta),
            counters,
            recursion_misses: info.recursion_misses,
            probe_misses: misses.probes,
            missed_per_sec,
            context: Arc::clone(&t.context),
            interval,
        });
    }

    /// Program `id`'s descriptor, info and how many map ids it has (in `map_ids_buf`); `None`
    /// when it was freed meanwhile, or could not be read (kept then, as unread).
    fn read_info(&mut self, id: u32, w: &mut Walk) -> Option<(OwnedFd, bpf_prog_info, usize)> {
        let read = sys::fd_by_id(ObjKind::Prog, id).and_then(|fd| {
            let (info, n_maps) = sys::prog_info_reusing(fd.as_fd(), &mut self.map_ids_buf)?;
            Ok((fd, info, n_maps))
        });
        match read {
            Ok(found) => Some(found),
            Err(e) if e.is_gone() => None,
            Err(e) => {
                w.errors.per_program(id, &e);
                w.unread.push(id);
                None
            }
        }
    }

    /// After the walk: programs no longer there are forgotten, what changes rarely is read
    /// again when due, and the programs' contexts follow what moved.
    fn settle(&mut self, w: &mut Walk) {
        let seq = self.seq;
        let before = self.progs.len();
        // A pass that failed says nothing of what it did not see: nothing is forgotten.
        if w.errors.failure.is_none() {
            let unread = &w.unread;
            self.progs
                .retain(|id, t| t.seen == seq || unread.binary_search(id).is_ok());
            idmap::shrink_after_removals(&mut self.progs);
        }
        let vanished = self.progs.len() != before;
        let periodic = self
            .last_rescan
            .is_none_or(|at| seq - at >= self.cfg.rescan_every.max(1));
        if w.errors.exhausted {
            // Out of descriptors, a rescan would replace what is known with failures: look
            // again once passes read the programs.
            self.rescan_next_pass = true;
        } else if w.appeared || self.rescan_next_pass || periodic {
            let owners = w.appeared || self.rescan_next_pass || self.owners_stale(seq);
            // Loaders attach a moment after loading: look again on the next pass too.
            self.rescan_next_pass = w.appeared;
            self.last_rescan = Some(seq);
            self.rescan(&mut w.errors, owners);
            w.maps_moved = true;
        }
        if self.scan_owners(&mut w.errors) {
            w.maps_moved = true;
        }
        if w.maps_moved || vanished {
            self.rebuild_contexts(&mut w.errors);
            for sample in &mut w.programs {
                if let Some(t) = self.progs.get(&sample.meta.id) {
                    sample.context = Arc::clone(&t.context);
                }
            }
        }
    }

    /// The pass, from what the walk read.
    fn finish(&mut self, mut w: Walk, elapsed_ns: Option<u64>) -> Pass {
        let cost = self.cost.ns_per_run;
        let runs = w
            .programs
            .iter()
            .filter_map(|p| p.interval.map(|i| i.delta_run_cnt))
            .sum();
        let failure = w.errors.failure.take();
        let (coverage, stats_state) = self
            .interval_state
            .take()
            .unwrap_or_else(|| (1.0, self.stats.state()));
        if stats_state == stats::StatsState::EnabledByOther {
            self.other_holder = Some(true);
        }
        Pass {
            seq: self.seq,
            boot_id: Arc::clone(&self.boot_id),
            time: w.now.wall,
            monotonic_ns: w.now.monotonic_ns,
            boottime_ns: w.now.boottime_ns,
            elapsed_ns,
            stats_state,
            coverage,
            stats_cost: Arc::clone(&self.cost),
            stats_other_holder: self.other_holder,
            stats_overhead: elapsed_ns.map(|e| rates::overhead_share(runs, cost, e)),
            runs,
            kernel: Arc::clone(&self.kernel),
            online_cpus: self.online_cpus,
            programs: w.programs,
            maps: Arc::clone(&self.maps_snapshot),
            owners: Arc::clone(&self.owners_snapshot),
            unread: w.errors.unread,
            errors: w.errors.into_messages(),
            unread_ids: w.unread.into(),
            failure,
        }
    }

    /// Whether a periodic rescan must read every process's fds again: processes (not kernel
    /// threads) came or went since the last time, or it cannot tell, or the last scan was
    /// incomplete, or that was [`OWNERS_EVERY`] periods ago. An existing process that takes or
    /// closes a program fd without any process starting or ending is seen at the latest then.
    fn owners_stale(&self, seq: u64) -> bool {
        let forced = self.cfg.rescan_every.max(1).saturating_mul(OWNERS_EVERY);
        self.last_owners_scan.is_none_or(|at| seq - at >= forced)
            || !self.holders.fds.complete
            || owners::Processes::now(Path::new("/proc")) != Some(self.holders.fds.seen)
    }

    /// Reads the next piece of the scan of every process's fds, if one is under way; whether
    /// it ended (the holders known changed).
    fn scan_owners(&mut self, errors: &mut ErrorLog) -> bool {
        let Some(scanner) = &mut self.owners_scan else {
            return false;
        };
        if !scanner.step(owners::FDS_PER_PASS, &mut self.containers) {
            return false;
        }
        let Some(scanner) = self.owners_scan.take() else {
            return false;
        };
        self.holders.fds = scanner.finish();
        self.last_owners_scan = Some(self.seq);
        if let Some(why) = &self.holders.fds.why {
            errors.incomplete("holders", why);
        }
        true
    }

    /// Re-reads what changes rarely: pins, links, the map list and the memory of maps whose
    /// usage can move, and with `owners` every process's fds.
    fn rescan(&mut self, errors: &mut ErrorLog, owners: bool) {
        let seq = self.seq;
        self.online_cpus = host::online_cpus();
        let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_else(|e| {
            errors.incomplete("pins", &format!("cannot read /proc/self/mountinfo: {e}"));
            String::new()
        });
        let mounts = pins::mounts(&mountinfo);
        if owners && self.owners_scan.is_none() {
            self.owners_scan = Some(owners::Scanner::start(Path::new("/proc")));
        }
        let pinned = pins::scan(&mounts.bpffs);
        if let Some(why) = &pinned.why {
            errors.incomplete(
                "pins",
                &format!("{} entries unreadable (first {why})", pinned.unread),
            );
        }
        self.holders.pins = pinned.pins;
        self.holders.links = links::scan(mounts.cgroup2.as_deref()).unwrap_or_else(|e| {
            errors.fatal("cannot enumerate links", &e);
            HashMap::new()
        });

        let mut id = 0;
        loop {
            match sys::next_id(ObjKind::Map, id) {
                Ok(Some(next)) => id = next,
                Ok(None) => break,
                Err(e) => {
                    errors.fatal("cannot enumerate maps", &e);
                    break;
                }
            }
            match self.maps.get_mut(&id) {
                Some(m) if !maps::memlock_can_change(m.sample.type_id, m.sample.flags) => {
                    m.seen_pass = seq;
                }
                _ => self.read_map(id, errors),
            }
        }
        self.maps.retain(|_, m| m.seen_pass == seq);
        idmap::shrink_after_removals(&mut self.maps);
        entries::count_some(
            &mut self.maps,
            (&mut self.count_cursor, self.map_counter.as_ref()),
            self.possible_cpus,
            errors,
        );
    }

    /// (Re)reads map `id` into the cache as seen this pass; a map freed meanwhile is skipped.
    fn read_map(&mut self, id: u32, errors: &mut ErrorLog) {
        match maps::read_map(id) {
            Ok(mut sample) => {
                // Its memory is read again; its entries stay as last counted.
                if let Some(old) = self.maps.get(&id)
                    && matches!(old.sample.entries, entries::Entries::Counted { .. })
                {
                    sample.entries = old.sample.entries;
                }
                let entry = MapEntry {
                    sample: Arc::new(sample),
                    seen_pass: self.seq,
                };
                self.maps.insert(id, entry);
            }
            Err(e) if e.is_gone() => {}
            Err(e) => errors.per_map(id, &e),
        }
    }

    /// Recomputes map sharing, per-program contexts and per-owner totals.
    fn rebuild_contexts(&mut self, errors: &mut ErrorLog) {
        // A program may name a map the last rescan did not see (bound since): read it now.
        let missing: Vec<u32> = self
            .progs
            .values()
            .flat_map(|t| t.map_ids.iter().copied())
            .filter(|id| !self.maps.contains_key(id))
            .collect();
        for id in missing {
            self.read_map(id, errors);
        }
        let programs: Vec<(u32, &[u32], &Arc<ProgramContext>)> = self
            .progs
            .iter()
            .map(|(&id, t)| (id, t.map_ids.as_slice(), &t.context))
            .collect();
        let built = context::build(&programs, &mut self.maps, &self.holders);
        for (id, ctx) in built.contexts {
            if let Some(t) = self.progs.get_mut(&id) {
                t.context = ctx;
            }
        }
        self.maps_snapshot = built.maps;
        self.owners_snapshot = built.owners;
    }
}

/// For a program first seen by this pass: whether every run since its load was counted (stats
/// held on by us since before its load, and loaded after the pass before: its runs all fall
/// in the interval this pass closes), and then that interval's length (ns).
fn counted_from_load(load_boottime_ns: u64, w: &Walk) -> Option<u64> {
    let (prev_mono, prev_boot) = w.prev?;
    let held = w
        .held_since_ns
        .is_some_and(|since| since <= load_boottime_ns);
    (held && prev_boot < load_boottime_ns).then(|| w.now.monotonic_ns.saturating_sub(prev_mono))
}

/// The program's metadata; its full name is its kernel name until BTF is read, and the
/// result says whether it was (an error: ask again next pass).
fn read_meta(
    fd: BorrowedFd<'_>,
    info: &bpf_prog_info,
    now: Clocks,
    btf_blobs: &mut HashMap<u32, Vec<u8>>,
) -> (ProgramMeta, Result<(), SysError>) {
    let name = maps::c_name(&info.name);
    let (full_name, read) = match full_name_of(fd, info, btf_blobs) {
        Ok(full) => (full.unwrap_or_else(|| name.clone()), Ok(())),
        Err(e) => (name.clone(), Err(e)),
    };
    let meta = ProgramMeta {
        id: info.id,
        full_name,
        name,
        prog_type: names::prog_type(info.type_),
        tag: info.tag.iter().map(|b| format!("{b:02x}")).collect(),
        load_boottime_ns: info.load_time,
        load_time: host::wall_of_boottime(info.load_time, now.boottime_ns, now.wall),
        created_by_uid: info.created_by_uid,
        verified_insns: info.verified_insns,
        jited_size: info.jited_prog_len,
        xlated_size: info.xlated_prog_len,
        btf_id: (info.btf_id != 0).then_some(info.btf_id),
        prog_memlock_bytes: maps::memlock_of(fd),
        counted_from_load: false,
    };
    (meta, read)
}

/// The full name when the kernel's may be cut short (15 bytes is the most it keeps) and BTF
/// has it whole; `None` when the kernel's name is the whole name.
fn full_name_of(
    fd: BorrowedFd<'_>,
    info: &bpf_prog_info,
    btf_blobs: &mut HashMap<u32, Vec<u8>>,
) -> Result<Option<String>, SysError> {
    if maps::c_name(&info.name).len() < names::KERNEL_NAME_MAX || info.btf_id == 0 {
        return Ok(None);
    }
    btf_func_name(fd, info.btf_id, btf_blobs)
}

impl Tracked {
    /// Asks BTF for the full name again; once read, the program's metadata carries it (a new
    /// metadata, so the store learns the name too).
    fn retry_name(
        &mut self,
        fd: BorrowedFd<'_>,
        info: &bpf_prog_info,
        (seq, btf_blobs): (u64, &mut HashMap<u32, Vec<u8>>),
        errors: &mut ErrorLog,
    ) {
        match full_name_of(fd, info, btf_blobs) {
            Ok(full) => {
                self.name_pending = None;
                if let Some(full) = full.filter(|f| *f != self.meta.full_name) {
                    let mut meta = (*self.meta).clone();
                    meta.full_name = full;
                    self.meta = Arc::new(meta);
                }
            }
            Err(e) => {
                errors.per_name(info.id, &e);
                self.name_pending = self.name_pending.map(|r| r.later(seq));
            }
        }
    }
}

/// The name of the program's main function in its BTF, as bpftool resolves it. `btf_blobs`
/// keeps the BTF objects already fetched (a failed fetch is not kept: the next program tries
/// again).
fn btf_func_name(
    fd: BorrowedFd<'_>,
    btf_id: u32,
    btf_blobs: &mut HashMap<u32, Vec<u8>>,
) -> Result<Option<String>, SysError> {
    let Some(type_id) = sys::prog_main_func_type_id(fd)? else {
        return Ok(None);
    };
    let data = match btf_blobs.entry(btf_id) {
        Entry::Occupied(o) => o.into_mut(),
        Entry::Vacant(v) => {
            let btf_fd = sys::fd_by_id(ObjKind::Btf, btf_id)?;
            v.insert(sys::btf_data(btf_fd.as_fd())?)
        }
    };
    Ok(btf::type_name(data, type_id).ok().filter(|n| !n.is_empty()))
}

#[cfg(test)]
mod tests {
    use super::NameRetry;

    #[test]
    fn a_name_is_asked_again_ever_less_often_up_to_a_bound() {
        let mut r = NameRetry::first(10);
        let mut asked = vec![r.at];
        for _ in 0..9 {
            r = r.later(r.at);
            asked.push(r.at);
        }
        assert_eq!(asked, [11, 13, 17, 25, 41, 73, 137, 201, 265, 329]);
    }
}
