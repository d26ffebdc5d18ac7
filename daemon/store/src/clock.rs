//! Time: series live on each boot's `CLOCK_BOOTTIME`; each boot keeps one wall-clock anchor
//! (wall = boottime + offset), moved when the wall clock steps, so series stay ordered however
//! the wall clock moves.

use std::time::SystemTime;

use ebpfstat_numbers::WallNs;
pub(crate) use ebpfstat_numbers::time::signed;
use ebpfstat_numbers::time::{ns_of_us, us_of_ns};

/// Wall-clock anchor of one boot (the latest anchor wins).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Boot {
    pub seq: i64,
    pub boot_id: String,
    pub wall_offset_ns: i64,
    pub clock_steps: i64,
    /// Latest calibrated cost of stats per program run, in picoseconds.
    pub stats_cost_ps: i64,
}

/// A wall clock that moves by more than this against `CLOCK_BOOTTIME` has stepped.
const CLOCK_STEP_NS: i64 = 2_000_000_000;

/// Nanoseconds since the epoch (negative before it) of a wall-clock time, saturating: the
/// store's own arithmetic on wall times (anchors, cutoffs).
pub(crate) fn wall_ns(t: SystemTime) -> i64 {
    WallNs::of(t).ns()
}

/// The boots known, and which one is being sampled.
#[derive(Debug, Default)]
pub(crate) struct Boots {
    all: Vec<Boot>,
    /// Index into `all` of the boot being sampled, once the first tick arrived.
    current: Option<usize>,
}

/// What entering a tick's boot found.
#[derive(Debug)]
pub(crate) struct Entered {
    pub seq: i64,
    /// A different boot was being sampled before this tick: it ended.
    pub rebooted: bool,
    /// The boot's row changed (new, re-anchored, new stats cost): it must be written.
    pub changed: Option<Boot>,
}

impl Boots {
    pub fn new(all: Vec<Boot>) -> Self {
        Self { all, current: None }
    }

    pub fn get(&self, seq: i64) -> Option<&Boot> {
        self.all.iter().find(|b| b.seq == seq)
    }

    pub fn iter(&self) -> impl Iterator<Item = &Boot> {
        self.all.iter()
    }

    /// The boot being sampled.
    pub fn current_seq(&self) -> Option<i64> {
        self.current.map(|i| self.all[i].seq)
    }

    /// The sequence number of a boot id, if it is known.
    pub fn seq_of(&self, boot_id: &str) -> Option<i64> {
        self.all
            .iter()
            .find(|b| b.boot_id == boot_id)
            .map(|b| b.seq)
    }

    /// Wall offset of boot `seq` (0 for an unknown boot).
    pub fn offset_ns(&self, seq: i64) -> i64 {
        self.get(seq).map_or(0, |b| b.wall_offset_ns)
    }

    /// Wall-clock time of a boottime instant in boot `seq` (`None` for an unknown boot, or
    /// beyond the ±292 years a wall time holds).
    pub fn wall_of(&self, seq: i64, bt_ns: i64) -> Option<SystemTime> {
        let boot = self.get(seq)?;
        let wall_ns = bt_ns.checked_add(boot.wall_offset_ns)?;
        Some(WallNs::from_ns(wall_ns).time())
    }

    /// Wall-clock time of a stored boottime instant (µs) in boot `seq`.
    pub fn wall_of_us(&self, seq: i64, bt_us: u64) -> Option<SystemTime> {
        self.wall_of(seq, signed(ns_of_us(bt_us)))
    }

    /// Boot time (µs) of a wall-clock time in boot `seq`, clamped at the boot's start.
    pub fn boottime_us(&self, seq: i64, t: SystemTime) -> u64 {
        let bt_ns = wall_ns(t).saturating_sub(self.offset_ns(seq)).max(0);
        us_of_ns(bt_ns.unsigned_abs())
    }

    /// What stats cost each run in boot `seq`, ns (its latest calibration).
    pub fn stats_cost_ns(&self, seq: i64) -> f64 {
        self.get(seq)
            .map_or(0.0, |b| b.stats_cost_ps as f64 / 1000.0)
    }

    pub fn clock_steps(&self) -> i64 {
        self.all.iter().map(|b| b.clock_steps).sum()
    }

    /// Per-boot boot-time ranges `(boot, lo µs, hi µs)` of a wall-clock range `[from, to)`.
    pub fn ranges(&self, from: SystemTime, to: SystemTime) -> Vec<(i64, u64, u64)> {
        let (f, t) = (wall_ns(from), wall_ns(to));
        self.all
            .iter()
            .filter_map(|b| {
                // Ranges are half-open: a tick exactly at `to` belongs to the next range.
                let hi = t.saturating_sub(b.wall_offset_ns).saturating_sub(1);
                if hi < 0 {
                    return None;
                }
                let lo = f.saturating_sub(b.wall_offset_ns).max(0);
                Some((
                    b.seq,
                    us_of_ns(lo.unsigned_abs()),
                    us_of_ns(hi.unsigned_abs()),
                ))
            })
            .collect()
    }

    /// Finds or creates the boot of a tick taken at `boottime_ns`/`wall`, and re-anchors its
    /// wall clock when it stepped. `stats_cost_ns` is the tick's calibrated cost per run.
    pub fn enter(
        &mut self,
        boot_id: &str,
        boottime_ns: u64,
        wall: SystemTime,
        stats_cost_ns: f64,
    ) -> Entered {
        let offset = wall_ns(wall).saturating_sub(signed(boottime_ns));
        let mut changed = false;
        let mut rebooted = false;
        let idx = match self.current {
            Some(i) if self.all[i].boot_id == boot_id => i,
            current => {
                // A reboot seen while running: ids restart, nothing continues.
                rebooted = current.is_some();
                let i = match self.all.iter().position(|b| b.boot_id == boot_id) {
                    Some(i) => i,
                    None => {
                        let seq = self.all.iter().map(|b| b.seq).max().unwrap_or(0) + 1;
                        self.all.push(Boot {
                            seq,
                            boot_id: boot_id.to_owned(),
                            wall_offset_ns: offset,
                            clock_steps: 0,
                            stats_cost_ps: 0,
                        });
                        changed = true;
                        self.all.len() - 1
                    }
                };
                self.current = Some(i);
                i
            }
        };
        let boot = &mut self.all[idx];
        let cost_ps = picoseconds(stats_cost_ns);
        if cost_ps != boot.stats_cost_ps {
            boot.stats_cost_ps = cost_ps;
            changed = true;
        }
        let drift = offset.saturating_sub(boot.wall_offset_ns);
        if drift.abs() > CLOCK_STEP_NS {
            tracing::warn!(
                "wall clock stepped by {:.3} s; re-anchoring boot {} (series stay ordered by \
                 boot time)",
                drift as f64 / 1e9,
                boot.boot_id
            );
            boot.wall_offset_ns = offset;
            boot.clock_steps += 1;
            changed = true;
        }
        Entered {
            seq: boot.seq,
            rebooted,
            changed: changed.then(|| boot.clone()),
        }
    }
}

/// A calibrated cost in ns as whole picoseconds (what the boots table keeps).
#[expect(
    clippy::cast_possible_truncation,
    reason = "a float to integer `as` saturates; costs are far inside i64"
)]
fn picoseconds(ns: f64) -> i64 {
    (ns * 1000.0).round() as i64
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn at(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(secs)
    }

    #[test]
    fn boots_anchor_and_re_anchor_when_the_wall_clock_steps() {
        let mut boots = Boots::default();
        let e = boots.enter("a", 10_000_000_000, at(1_000), 80.0);
        assert_eq!((e.seq, e.rebooted), (1, false));
        assert!(e.changed.is_some(), "a new boot is written");
        // One second later on both clocks: nothing to write.
        let e = boots.enter("a", 11_000_000_000, at(1_001), 80.0);
        assert!(e.changed.is_none());
        assert_eq!(boots.wall_of(1, 10_000_000_000), Some(at(1_000)));
        // The wall clock jumps an hour ahead: re-anchored, counted.
        let e = boots.enter("a", 12_000_000_000, at(4_602), 80.0);
        assert!(e.changed.is_some());
        assert_eq!(boots.clock_steps(), 1);
        assert_eq!(boots.wall_of(1, 12_000_000_000), Some(at(4_602)));
        // Another boot: the first one ended.
        let e = boots.enter("b", 1_000_000_000, at(5_000), 80.0);
        assert_eq!((e.seq, e.rebooted), (2, true));
        assert_eq!(boots.current_seq(), Some(2));
    }

    #[test]
    fn wall_ranges_map_to_each_boots_time_line() {
        let mut boots = Boots::default();
        boots.enter("a", 100_000_000_000, at(1_100), 0.0);
        // Boot "a" started at wall 1000 s: [1050 s, 1060 s) is its [50 s, 60 s).
        let r = boots.ranges(at(1_050), at(1_060));
        assert_eq!(r, vec![(1, 50_000_000, 59_999_999)]);
        // Before the boot began: nothing of it.
        assert!(boots.ranges(at(10), at(20)).is_empty());
        assert_eq!(boots.boottime_us(1, at(900)), 0);
    }
}
