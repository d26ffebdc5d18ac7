//! Facts about the host a pass is taken on: boot id, kernel release, clocks, CPUs.

use std::time::{Duration, SystemTime};

use serde::Serialize;

/// What the `memlock` figure of a map means on this kernel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum MemlockMeaning {
    /// Linux ≥ 6.4 (`map_mem_usage`): an estimate of memory actually used.
    Estimate,
    /// Linux < 6.4: computed from the map's declared sizes (`max_entries` × key and value,
    /// rounded up to pages), not from what it holds. A ring buffer, which has no keys or
    /// values, reads 0 there: the daemon counts it at its declared size (`maps::read_map`).
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

    /// This kernel, as `uname(2)` gives its release (which honours a personality such as
    /// `setarch --uname-2.6`, unlike `/proc/sys/kernel/osrelease`).
    pub fn current() -> Self {
        Self::from_release(&uname_release().unwrap_or_else(|| "unknown".to_owned()))
    }

    /// Why this kernel is older than the daemon supports, in words; `None` when it is not (or
    /// its release cannot be read: the passes then say what fails).
    pub fn unsupported(&self) -> Option<String> {
        let version = parse_major_minor(&self.release)?;
        (version < OLDEST_SUPPORTED).then(|| {
            format!(
                "Linux {} is older than {}.{}, the oldest ebpfstatd supports: run-time statistics \
                 held by a descriptor (BPF_ENABLE_STATS) and BPF links came in 5.8. The daemon \
                 keeps sampling, but run counts and times advance only while \
                 kernel.bpf_stats_enabled is 1 (5.1 and later), and attach points through links \
                 are not listed",
                self.release, OLDEST_SUPPORTED.0, OLDEST_SUPPORTED.1
            )
        })
    }
}

/// The oldest kernel the daemon is built for (`BPF_ENABLE_STATS`, `BPF_LINK_GET_NEXT_ID`).
pub const OLDEST_SUPPORTED: (u32, u32) = (5, 8);

fn uname_release() -> Option<String> {
    // SAFETY: a zeroed utsname is a valid value for uname(2) to fill; it writes only into it.
    let mut uts: libc::utsname = unsafe { std::mem::zeroed() };
    // SAFETY: `uts` is a live, writable utsname for the call.
    if unsafe { libc::uname(&raw mut uts) } != 0 {
        return None;
    }
    let bytes: Vec<u8> = uts
        .release
        .iter()
        .take_while(|&&c| c != 0)
        .map(|&c| u8::from_ne_bytes(c.to_ne_bytes()))
        .collect();
    Some(String::from_utf8_lossy(&bytes).into_owned())
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

/// CPUs the kernel lays per-CPU values out for (`/sys/devices/system/cpu/possible`, e.g.
/// `0-3` or `0,2-5`).
pub fn cpu_count_of_list(list: &str) -> Option<u32> {
    let mut n = 0u32;
    for part in list.trim().split(',') {
        let (lo, hi) = match part.split_once('-') {
            Some((lo, hi)) => (lo.parse::<u32>().ok()?, hi.parse::<u32>().ok()?),
            None => {
                let one = part.parse::<u32>().ok()?;
                (one, one)
            }
        };
        n = n.checked_add(hi.checked_sub(lo)?.checked_add(1)?)?;
    }
    (n > 0).then_some(n)
}

/// CPUs the kernel lays per-CPU map values out for; `None` if it cannot be read.
pub fn possible_cpus() -> Option<u32> {
    let list = std::fs::read_to_string("/sys/devices/system/cpu/possible").ok()?;
    cpu_count_of_list(&list)
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
    fn kernels_before_5_8_are_said_to_be_unsupported() {
        for old in ["5.7.19", "4.19.0-27-amd64", "2.6.78"] {
            let said = KernelInfo::from_release(old).unsupported();
            assert!(said.is_some_and(|s| s.contains("older than 5.8")), "{old}");
        }
        for fine in [
            "5.8.0",
            "5.10.0-32-amd64",
            "6.1.0-57-amd64",
            "6.18.44",
            "unknown",
        ] {
            assert_eq!(KernelInfo::from_release(fine).unsupported(), None, "{fine}");
        }
    }

    #[test]
    fn possible_cpu_lists() {
        assert_eq!(cpu_count_of_list("0-3\n"), Some(4));
        assert_eq!(cpu_count_of_list("0"), Some(1));
        assert_eq!(cpu_count_of_list("0,2-5"), Some(5));
        assert_eq!(cpu_count_of_list("3-1"), None);
        assert_eq!(cpu_count_of_list(""), None);
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
