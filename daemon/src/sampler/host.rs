//! Facts about the host a pass is taken on: boot id, kernel release, clocks, CPUs.

use std::time::{Duration, SystemTime};

use serde::Serialize;

/// What the `memlock` figure of a map means on this kernel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum MemlockMeaning {
    /// Linux ≥ 6.4 (`map_mem_usage`): an estimate of memory actually used.
    Estimate,
    /// Linux < 6.4: the maximum the map may use, from its declared size.
    MaxSize,
}

impl MemlockMeaning {
    /// The name on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Estimate => "estimate",
            Self::MaxSize => "max-size",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KernelInfo {
    pub release: String,
    pub memlock: MemlockMeaning,
}

impl KernelInfo {
    pub fn from_release(release: &str) -> Self {
        let memlock = match parse_major_minor(release) {
            Some(v) if v >= (6, 4) => MemlockMeaning::Estimate,
            _ => MemlockMeaning::MaxSize,
        };
        Self {
            release: release.to_owned(),
            memlock,
        }
    }

    pub fn current() -> Self {
        let release = std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .map(|s| s.trim().to_owned())
            .unwrap_or_else(|_| "unknown".to_owned());
        Self::from_release(&release)
    }
}

/// `"6.18.44-fc"` → `(6, 18)`.
pub fn parse_major_minor(release: &str) -> Option<(u32, u32)> {
    let mut parts = release.split(|c: char| !c.is_ascii_digit());
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next()?.parse().ok()?;
    Some((major, minor))
}

pub fn boot_id() -> String {
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .map(|s| s.trim().to_owned())
        .unwrap_or_default()
}

/// CPUs online now (hotplug can change it on small devices).
pub fn online_cpus() -> u32 {
    // SAFETY: sysconf has no memory-safety preconditions.
    let n = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) };
    u32::try_from(n).ok().filter(|&n| n > 0).unwrap_or(1)
}

fn clock_ns(clock: libc::clockid_t) -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec for the call.
    let rc = unsafe { libc::clock_gettime(clock, &mut ts) };
    if rc != 0 {
        return 0;
    }
    // Neither field of a clock reading is negative; `c_long` is 32 bits on 32-bit targets.
    u64::try_from(ts.tv_sec)
        .unwrap_or(0)
        .saturating_mul(1_000_000_000)
        .saturating_add(u64::try_from(ts.tv_nsec).unwrap_or(0))
}

/// Nanoseconds on `CLOCK_BOOTTIME`, the clock of a program's `load_time`.
pub fn boottime_ns() -> u64 {
    clock_ns(libc::CLOCK_BOOTTIME)
}

/// CPU time of the calling thread (user and system), ns: what its work cost, however long it
/// waited for a core.
pub fn thread_cpu_ns() -> u64 {
    clock_ns(libc::CLOCK_THREAD_CPUTIME_ID)
}

/// Nanoseconds on `CLOCK_MONOTONIC`, which never steps.
pub fn monotonic_ns() -> u64 {
    clock_ns(libc::CLOCK_MONOTONIC)
}

/// Wall-clock time of a `CLOCK_BOOTTIME` instant, given the two clocks read together.
pub fn wall_of_boottime(at_boot_ns: u64, now_boot_ns: u64, now_wall: SystemTime) -> SystemTime {
    let ago = Duration::from_nanos(now_boot_ns.saturating_sub(at_boot_ns));
    now_wall.checked_sub(ago).unwrap_or(SystemTime::UNIX_EPOCH)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memlock_meaning_follows_6_4() {
        assert_eq!(
            KernelInfo::from_release("6.18.44-fc-v669").memlock,
            MemlockMeaning::Estimate
        );
        assert_eq!(
            KernelInfo::from_release("6.4.0").memlock,
            MemlockMeaning::Estimate
        );
        assert_eq!(
            KernelInfo::from_release("6.1.0-26-amd64").memlock,
            MemlockMeaning::MaxSize
        );
        assert_eq!(
            KernelInfo::from_release("5.15.0").memlock,
            MemlockMeaning::MaxSize
        );
        assert_eq!(
            KernelInfo::from_release("garbage").memlock,
            MemlockMeaning::MaxSize
        );
    }

    #[test]
    fn wall_time_of_boot_instant() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1000);
        assert_eq!(
            wall_of_boottime(4_000_000_000, 10_000_000_000, now),
            SystemTime::UNIX_EPOCH + Duration::from_secs(994)
        );
    }
}
