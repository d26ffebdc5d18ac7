//! The words both ends share: the values that travel as strings in the wire types (tiers,
//! stats states, alert metrics and states, note codes, what map memory means), typed here once
//! with their one spelling. On the wire they stay strings, so a newer daemon may send a word
//! this client does not know: each wire type's accessor then answers `None`, and the client
//! shows the word as it came.

use std::fmt;

use ebpfstat_numbers::text::Unit;
use serde::{Deserialize, Serialize};

/// A word this crate does not know.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownWord {
    pub what: &'static str,
    pub word: String,
    pub known: &'static [&'static str],
}

impl fmt::Display for UnknownWord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "unknown {} {:?} (one of {})",
            self.what,
            self.word,
            self.known.join(", ")
        )
    }
}

impl std::error::Error for UnknownWord {}

/// Defines a word enum: its variants and spellings, `as_str`, `ALL`, `FromStr`, `Display`.
macro_rules! words {
    ($(#[$m:meta])* $name:ident, $what:literal { $( $(#[doc = $doc:literal])* $v:ident = $s:literal, )+ }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name { $( $(#[doc = $doc])* $v, )+ }

        impl $name {
            pub const ALL: &'static [Self] = &[$(Self::$v),+];
            const NAMES: &'static [&'static str] = &[$($s),+];

            /// The one spelling, on the wire and in the configuration.
            pub const fn as_str(self) -> &'static str {
                match self { $(Self::$v => $s,)+ }
            }
        }

        impl std::str::FromStr for $name {
            type Err = UnknownWord;
            fn from_str(s: &str) -> Result<Self, UnknownWord> {
                match s {
                    $($s => Ok(Self::$v),)+
                    _ => Err(UnknownWord { what: $what, word: s.to_owned(), known: Self::NAMES }),
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }
    };
}

words!(
    /// Why a profile ended.
    ProfileEnd, "profile end" {
        /// The time asked for was up.
        Time = "time",
        /// Its tracing had cost as much as the stats budget allows (a share of one core).
        Budget = "budget",
        /// The caller went away.
        Client = "client",
    }
);

words!(
    /// What `Groups` sums programs by.
    GroupBy, "group_by" {
        /// The container of the processes holding each program.
        Container = "container",
        /// Their systemd unit.
        Unit = "unit",
        /// Their command (`comm`).
        Owner = "owner",
    }
);

words!(
    /// A resolution of stored history.
    Tier, "tier" {
        Raw = "raw",
        Min1 = "1m",
        Hour1 = "1h",
    }
);

words!(
    /// How run-time statistics stand: the first word of the state text every view shows
    /// (`duty-cycled: on 12% of the time over the last 10s`, `unavailable: <why>`).
    StatsState, "stats state" {
        /// The daemon's own hold keeps counters running.
        Enabled = "enabled",
        /// The daemon could not enable stats; the sysctl is 1 and counters run while it stays.
        EnabledBySysctl = "enabled-by-sysctl",
        /// The daemon let go for part of the interval, but another process held stats on.
        EnabledByOther = "enabled-by-other-holder",
        /// Held on for part of each interval to bound their cost: rates are extrapolated.
        DutyCycled = "duty-cycled",
        /// Counters may be frozen: equal values do not mean an idle program.
        Unavailable = "unavailable",
    }
);

impl StatsState {
    /// The kind of a state text (its first word); `None` for a word this crate does not know.
    pub fn of(text: &str) -> Option<Self> {
        text.split(':').next().and_then(|w| w.trim().parse().ok())
    }
}

words!(
    /// What an alert rule watches. Per program: the last interval's values; host-wide: one
    /// value for the whole host.
    #[derive(Deserialize)]
    #[serde(rename_all = "snake_case")]
    AlertMetric, "metric" {
        /// Share of one core the program took over the last interval, percent.
        CpuPct = "cpu_pct",
        /// Average run time per run over the last interval, ns; an interval without runs has
        /// none, and an alert on it keeps its state.
        AvgNs = "avg_ns",
        RunsPerSec = "runs_per_sec",
        /// Runs the program missed per second over the last interval: the kernel skipped it
        /// because it was already running on that CPU (`recursion_misses`), or its kprobes
        /// missed hits (Linux 6.7); an interval without a reading before it has none.
        MissedPerSec = "missed_per_sec",
        /// Memory of the program's maps, bytes.
        MapMemory = "map_memory",
        /// Share of one core all matched programs took together over the last interval.
        TotalCpuPct = "total_cpu_pct",
        /// Share of one core run-time stats cost the host over the last interval, percent.
        StatsOverheadPct = "stats_overhead_pct",
        /// A map's entries as a share of its max entries, percent, as last counted: one alert
        /// per map (its id, name and type where a program's would be).
        MapFillPct = "map_fill_pct",
    }
);

impl AlertMetric {
    /// One value for the host, not one per program.
    pub fn host_wide(self) -> bool {
        matches!(self, Self::TotalCpuPct | Self::StatsOverheadPct)
    }

    /// One value per map, not per program.
    pub fn per_map(self) -> bool {
        self == Self::MapFillPct
    }

    /// The unit of its values.
    pub fn unit(self) -> Unit {
        match self {
            Self::CpuPct | Self::TotalCpuPct | Self::StatsOverheadPct | Self::MapFillPct => {
                Unit::Percent
            }
            Self::AvgNs => Unit::Nanos,
            Self::RunsPerSec | Self::MissedPerSec => Unit::PerSecond,
            Self::MapMemory => Unit::Bytes,
        }
    }
}

words!(
    /// An alert raised, or cleared.
    AlertState, "alert state" {
        Raised = "raised",
        Cleared = "cleared",
    }
);

words!(
    /// What map memory means on the daemon's kernel.
    MemlockMeaning, "memlock meaning" {
        /// Linux ≥ 6.4: the kernel's estimate of what the maps use now.
        Estimate = "estimate",
        /// Before: the most the maps may use, from their declared sizes.
        MaxSize = "max-size",
    }
);

impl MemlockMeaning {
    /// What the map memory column means, as a footnote says it.
    pub fn footnote(self) -> &'static str {
        match self {
            Self::Estimate => {
                "map memory: the kernel's estimate of what the maps use now (Linux ≥ 6.4)"
            }
            Self::MaxSize => {
                "map memory: the most the maps may use, from their declared sizes (Linux < 6.4)"
            }
        }
    }
}

words!(
    /// How a map's entries were counted (`MapUsage`'s `counted_by`).
    CountedBy, "count method" {
        /// Batch reads of its elements (`BPF_MAP_LOOKUP_BATCH`): hash maps.
        Batch = "batch",
        /// Key by key (`BPF_MAP_GET_NEXT_KEY`): tries, stack traces, hash maps on kernels
        /// without batch reads.
        Keys = "keys",
        /// An array: every slot exists, so its entries are its max entries by definition.
        Array = "array",
        /// The kernel's own element counters (hash maps, Linux 6.6 and later), read for every
        /// map at once by the daemon's map iterator.
        Kernel = "kernel",
    }
);

words!(
    /// A remark needed to read a program's (or map's) numbers.
    NoteCode, "note" {
        SharedMaps = "shared_maps",
        PerfEventArray = "perf_event_array",
        MapOfMaps = "map_of_maps",
        TailCalls = "tail_calls",
        PinnedOnly = "pinned_only",
        NoHolder = "no_holder",
    }
);

impl NoteCode {
    /// The note about one program in words: `maps` are the maps it is about, `pins` the
    /// program's pins (named by `pinned_only`).
    pub fn detail(self, maps: &[u32], pins: &[String]) -> String {
        let maps = maps
            .iter()
            .map(u32::to_string)
            .collect::<Vec<_>>()
            .join(", ");
        match self {
            Self::PerfEventArray => format!(
                "perf_event_array map {maps}: memory counts its perf-event fd slots; the perf \
                 ring buffers its holders map are counted apart (`ebpfstatctl maps`: +N)"
            ),
            Self::MapOfMaps => {
                format!(
                    "map-of-maps {maps}: memory counts the outer map's slots, not the inner maps"
                )
            }
            Self::TailCalls => format!(
                "uses prog_array map {maps}: programs it tail-calls run on its clock, so their \
                 time is in this program's run time and their own run count stays 0"
            ),
            Self::SharedMaps => format!(
                "map {maps} shared with other programs: counted in each program using it (the \
                 per-owner total counts it once)"
            ),
            Self::NoHolder => "no process or pin holds this program: a kernel attachment keeps \
                               it (tc, a socket, a legacy cgroup or XDP attach)"
                .to_owned(),
            Self::PinnedOnly => format!("held only by a pin: {}", pins.join(", ")),
        }
    }

    /// What a table's footnote says of every row carrying the note; `None` for notes a
    /// table does not footnote (about holders, shown in `show`).
    pub fn footnote(self) -> Option<&'static str> {
        Some(match self {
            Self::SharedMaps => {
                "shared maps are counted in every program using them; `ebpfstatctl show` gives \
                 per-owner totals that count each map once"
            }
            Self::PerfEventArray => {
                "perf_event_array maps count their fd slots; +N: the perf ring buffers their \
                 holders map (each process's once)"
            }
            Self::MapOfMaps => "array_of_maps/hash_of_maps count the outer map, not the inner maps",
            Self::TailCalls => {
                "programs using a prog_array carry the run time of the programs they tail-call \
                 (those show 0 runs)"
            }
            Self::PinnedOnly | Self::NoHolder => return None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_round_trip_and_an_unknown_one_is_named() {
        for t in Tier::ALL {
            assert_eq!(t.as_str().parse::<Tier>(), Ok(*t));
        }
        for m in AlertMetric::ALL {
            assert_eq!(m.as_str().parse::<AlertMetric>(), Ok(*m));
        }
        let e = "2h".parse::<Tier>().expect_err("unknown");
        assert_eq!(e.to_string(), "unknown tier \"2h\" (one of raw, 1m, 1h)");
    }

    #[test]
    fn a_state_text_has_its_kind_first() {
        assert_eq!(
            StatsState::of("duty-cycled: on 12% of each interval"),
            Some(StatsState::DutyCycled)
        );
        assert_eq!(StatsState::of("enabled"), Some(StatsState::Enabled));
        assert_eq!(StatsState::of("unknown: no pass yet"), None);
    }

    #[test]
    fn notes_say_their_maps() {
        let t = NoteCode::SharedMaps.detail(&[3, 4], &[]);
        assert!(t.starts_with("map 3, 4 shared"), "{t}");
        assert_eq!(NoteCode::NoHolder.footnote(), None);
    }
}
