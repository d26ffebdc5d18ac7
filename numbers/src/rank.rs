//! How programs are ranked: by what, and the rules that make a ranking fair (extrapolated
//! values, so programs seen under different duty cycles compare; an average over a handful of
//! runs ranks last; an unloaded program holds no memory).

use std::fmt;

use crate::order;
use std::str::FromStr;

use serde::Serialize;

/// Ranking by average cost per run considers programs with at least this many runs in the
/// window; the others rank last (a handful of runs says little about a program's cost).
pub const MIN_RUNS_FOR_AVG: u64 = 100;

/// What programs are ranked by. On the wire as its name (`runtime`, `runs`, `avg`, `cpu`,
/// `mapmem`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SortKey {
    /// Run time: what each program cost the host.
    RunTime,
    /// Number of runs.
    Runs,
    /// Average cost per run, among programs with at least [`MIN_RUNS_FOR_AVG`] runs.
    Avg,
    /// Share of one core while each program was observed.
    Cpu,
    /// Map memory held now.
    MapMem,
}

impl SortKey {
    pub const ALL: [Self; 5] = [
        Self::RunTime,
        Self::Runs,
        Self::Avg,
        Self::Cpu,
        Self::MapMem,
    ];

    /// The name on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::RunTime => "runtime",
            Self::Runs => "runs",
            Self::Avg => "avg",
            Self::Cpu => "cpu",
            Self::MapMem => "mapmem",
        }
    }

    /// The ranking in words, for a view's header.
    pub fn meaning(self) -> String {
        match self {
            Self::RunTime => "run time in the window".into(),
            Self::Runs => "runs in the window".into(),
            Self::Avg => {
                format!("average cost per run (of programs with at least {MIN_RUNS_FOR_AVG} runs)")
            }
            Self::Cpu => "CPU% while observed".into(),
            Self::MapMem => "map memory held now".into(),
        }
    }
}

impl fmt::Display for SortKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A sort key's name that is none of them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownSortKey(pub String);

impl fmt::Display for UnknownSortKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = SortKey::ALL.iter().map(|k| k.as_str()).collect();
        write!(
            f,
            "unknown sort key {:?} (one of {})",
            self.0,
            names.join(", ")
        )
    }
}

impl std::error::Error for UnknownSortKey {}

impl FromStr for SortKey {
    type Err = UnknownSortKey;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| UnknownSortKey(s.to_owned()))
    }
}

/// What a program is ranked on: its values over the window (or since load).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Ranked {
    /// Run time and runs (extrapolated to the whole window when stats were on for part of it).
    pub run_time_ns: f64,
    pub runs: f64,
    /// Runs observed: whether the average is worth ranking on.
    pub observed_runs: u64,
    pub avg_ns_per_run: Option<f64>,
    pub cpu_pct: f64,
    /// Map memory held now; `None` once unloaded (it holds none).
    pub map_memory: Option<u64>,
}

impl Ranked {
    /// The value ranked on, largest first.
    pub fn value(&self, key: SortKey) -> f64 {
        match key {
            SortKey::RunTime => self.run_time_ns,
            SortKey::Runs => self.runs,
            SortKey::Avg if self.observed_runs >= MIN_RUNS_FOR_AVG => {
                self.avg_ns_per_run.unwrap_or(0.0)
            }
            // Below the bar: last, those with more runs first.
            SortKey::Avg => -1.0 / (1.0 + self.observed_runs as f64),
            SortKey::Cpu => self.cpu_pct,
            SortKey::MapMem => self.map_memory.map_or(0.0, |m| m as f64),
        }
    }
}

/// Ranks `rows` by `key`, largest first, ties by `tie` ascending, and keeps the first `n`:
/// only those are ordered (the rest are cut without being sorted).
pub fn rank<T>(
    rows: &mut Vec<T>,
    key: SortKey,
    n: usize,
    ranked: impl Fn(&T) -> Ranked,
    tie: impl Fn(&T) -> i64,
) {
    // Largest first: the float key's bits inverted.
    let keys = rows
        .iter()
        .map(|r| (!order::float_key(ranked(r).value(key)), tie(r)))
        .collect();
    let kept = order::order(keys, n);
    order::permute(rows, &kept);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ranked(runs: u64, avg: Option<f64>, cpu: f64, mem: Option<u64>) -> Ranked {
        Ranked {
            run_time_ns: runs as f64 * avg.unwrap_or(0.0),
            runs: runs as f64,
            observed_runs: runs,
            avg_ns_per_run: avg,
            cpu_pct: cpu,
            map_memory: mem,
        }
    }

    #[test]
    fn names_round_trip() {
        for k in SortKey::ALL {
            assert_eq!(k.as_str().parse::<SortKey>(), Ok(k));
        }
        let e = "fast".parse::<SortKey>().expect_err("unknown");
        assert_eq!(
            e.to_string(),
            "unknown sort key \"fast\" (one of runtime, runs, avg, cpu, mapmem)"
        );
    }

    #[test]
    fn an_average_over_few_runs_ranks_last() {
        let rows = [
            ranked(5, Some(9000.0), 0.0, None),
            ranked(200, Some(300.0), 0.0, None),
            ranked(99, Some(5000.0), 0.0, None),
        ];
        let v: Vec<f64> = rows.iter().map(|r| r.value(SortKey::Avg)).collect();
        assert!(v[1] > v[2] && v[2] > v[0], "{v:?}");
    }

    #[test]
    fn an_unloaded_program_holds_no_memory() {
        assert_eq!(ranked(0, None, 0.0, None).value(SortKey::MapMem), 0.0);
        assert_eq!(
            ranked(0, None, 0.0, Some(4096)).value(SortKey::MapMem),
            4096.0
        );
    }

    #[test]
    fn rank_keeps_the_first_n_in_order_ties_by_id() {
        let mut rows: Vec<(i64, f64)> = vec![(4, 1.0), (1, 3.0), (3, 3.0), (2, 2.0), (5, 0.5)];
        let by_cpu = |r: &(i64, f64)| ranked(0, None, r.1, None);
        let mut all = rows.clone();
        rank(&mut all, SortKey::Cpu, usize::MAX, by_cpu, |r| r.0);
        assert_eq!(all.iter().map(|r| r.0).collect::<Vec<_>>(), [1, 3, 2, 4, 5]);
        rank(&mut rows, SortKey::Cpu, 3, by_cpu, |r| r.0);
        assert_eq!(rows.iter().map(|r| r.0).collect::<Vec<_>>(), [1, 3, 2]);
    }
}
