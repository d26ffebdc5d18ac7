//! The interactive table's rows, columns, windows, sorting and filtering: plain values and pure
//! functions, so each is tested without a terminal or a daemon.

use std::cmp::Ordering;
use std::time::Duration;

use ebpfstat_dbus as wire;

/// What the rates in the table are over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Window {
    /// The daemon's last sampling interval (one Snapshot, no Top).
    Interval,
    /// The last `d`, from stored history (Top).
    Last(Duration),
    /// Since each program was loaded (one Snapshot).
    SinceLoad,
}

/// The windows `w` steps through, in order.
pub const WINDOWS: [Window; 6] = [
    Window::Interval,
    Window::Last(Duration::from_secs(60)),
    Window::Last(Duration::from_secs(300)),
    Window::Last(Duration::from_secs(3600)),
    Window::Last(Duration::from_secs(86_400)),
    Window::SinceLoad,
];

impl Window {
    pub fn label(self) -> String {
        match self {
            Self::Interval => "last interval".into(),
            Self::Last(d) => format!("last {}", humantime::format_duration(d)),
            Self::SinceLoad => "since load".into(),
        }
    }

    /// The next window of `WINDOWS` (a window given on the command line that is not in the list
    /// goes to the first one).
    pub fn next(self) -> Self {
        let at = WINDOWS.iter().position(|w| *w == self);
        at.map_or(WINDOWS[0], |i| WINDOWS[(i + 1) % WINDOWS.len()])
    }
}

/// How often a window's ranking is asked for again: a day's ranking moves little in a second,
/// and each asks the daemon to read its stored tiers. The daemon's interval at least; a minute
/// at most (what a day's window gets).
pub fn rank_period(window: Duration, interval: Duration) -> Duration {
    // Whole seconds: a 5-minute window is ranked every interval, not every 208 ms.
    Duration::from_secs((window / 1440).as_secs())
        .min(Duration::from_secs(60))
        .max(interval)
}

/// One line of the table: a program loaded now, or one that was in the window and is gone.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub series_id: i64,
    pub id: u32,
    pub name: String,
    pub prog_type: String,
    pub alive: bool,
    /// Average ns per run over the window; `None` when it did not run there.
    pub avg_ns: Option<f64>,
    /// Average ns per run since load; `None` for a gone program or one that never ran.
    pub avg_load_ns: Option<f64>,
    /// `None` with no interval yet: a program seen in one pass only has no rate (not 0).
    pub runs_per_sec: Option<f64>,
    pub cpu_pct: Option<f64>,
    /// Rates extrapolated from partial stats coverage (duty-cycling).
    pub estimated: bool,
    /// Held now; `None` once unloaded.
    pub map_memory: Option<u64>,
    pub owner: String,
}

/// Rows of groups (`b`): the name is the group's, the id its program count; a group of
/// unloaded programs is dim, as an unloaded program is.
pub fn group_rows(groups: &[wire::Group], by: wire::GroupBy) -> Vec<Row> {
    groups
        .iter()
        .map(|g| Row {
            // Its name's hash: the selection stays on it across refreshes.
            series_id: name_hash(&crate::render::groups::group_name(g, by)),
            id: g.programs,
            name: crate::render::groups::group_name(g, by),
            // Not shown grouped: what kind of group it is.
            prog_type: g.kind.clone(),
            alive: g.kind != "unloaded",
            avg_ns: (g.avg_ns_per_run >= 0.0).then_some(g.avg_ns_per_run),
            avg_load_ns: None,
            runs_per_sec: Some(g.runs_per_sec),
            cpu_pct: Some(g.cpu_pct),
            estimated: g.estimated,
            map_memory: (g.kind != "unloaded").then_some(g.map_memory_bytes),
            owner: String::new(),
        })
        .collect()
}

/// FNV-1a of a name: a group row's stand-in for a series id.
fn name_hash(name: &str) -> i64 {
    let h = name.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    h.cast_signed()
}

/// The columns, left to right.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Column {
    Id,
    Name,
    Type,
    Avg,
    AvgLoad,
    RunsPerSec,
    Cpu,
    MapMem,
    Owner,
}

pub const COLUMNS: [Column; 9] = [
    Column::Id,
    Column::Name,
    Column::Type,
    Column::Avg,
    Column::AvgLoad,
    Column::RunsPerSec,
    Column::Cpu,
    Column::MapMem,
    Column::Owner,
];

impl Column {
    pub fn title(self) -> &'static str {
        match self {
            Self::Id => "ID",
            Self::Name => "NAME",
            Self::Type => "TYPE",
            Self::Avg => "AVG",
            Self::AvgLoad => "AVG LOAD",
            Self::RunsPerSec => "RUNS/S",
            Self::Cpu => "CPU%",
            Self::MapMem => "MAP MEM",
            Self::Owner => "OWNER",
        }
    }

    /// Text columns read A to Z first; numbers largest first.
    fn descending_first(self) -> bool {
        !matches!(self, Self::Id | Self::Name | Self::Type | Self::Owner)
    }

    fn compare(self, a: &Row, b: &Row) -> Ordering {
        // A missing value ranks below every present one.
        let opt = |x: Option<f64>, y: Option<f64>| match (x, y) {
            (Some(x), Some(y)) => x.total_cmp(&y),
            (x, y) => x.is_some().cmp(&y.is_some()),
        };
        match self {
            Self::Id => a.id.cmp(&b.id),
            Self::Name => a.name.cmp(&b.name),
            Self::Type => a.prog_type.cmp(&b.prog_type),
            Self::Avg => opt(a.avg_ns, b.avg_ns),
            Self::AvgLoad => opt(a.avg_load_ns, b.avg_load_ns),
            Self::RunsPerSec => opt(a.runs_per_sec, b.runs_per_sec),
            Self::Cpu => opt(a.cpu_pct, b.cpu_pct),
            Self::MapMem => a.map_memory.cmp(&b.map_memory),
            Self::Owner => a.owner.cmp(&b.owner),
        }
    }
}

/// How rows are ordered: a column, and whether reversed from its natural direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sorting {
    pub column: Column,
    pub reversed: bool,
}

impl Sorting {
    pub fn descending(self) -> bool {
        self.column.descending_first() != self.reversed
    }

    /// The next (or previous) column; the direction starts natural again.
    pub fn step(self, forward: bool) -> Self {
        let at = COLUMNS.iter().position(|c| *c == self.column).unwrap_or(0);
        let n = COLUMNS.len();
        let next = if forward {
            (at + 1) % n
        } else {
            (at + n - 1) % n
        };
        Self {
            column: COLUMNS[next],
            reversed: false,
        }
    }

    /// Sorts in place; ties by program id, so rows keep still between refreshes.
    pub fn apply(self, rows: &mut [Row]) {
        rows.sort_by(|a, b| {
            let o = self.column.compare(a, b);
            let o = if self.descending() { o.reverse() } else { o };
            o.then(a.id.cmp(&b.id)).then(a.series_id.cmp(&b.series_id))
        });
    }
}

/// Whether `row` matches a typed filter: a case-insensitive substring of its name, type or
/// owner (an empty filter matches everything).
pub fn matches(row: &Row, filter: &str) -> bool {
    if filter.is_empty() {
        return true;
    }
    let needle = filter.to_lowercase();
    [&row.name, &row.prog_type, &row.owner]
        .iter()
        .any(|field| field.to_lowercase().contains(&needle))
}

/// A wire average (negative: the program did not run) as an option.
fn avg(avg_ns_per_run: f64) -> Option<f64> {
    (avg_ns_per_run >= 0.0).then_some(avg_ns_per_run)
}

fn owner(p: &wire::ProgramRow) -> String {
    crate::render::owners(&p.owners)
}

/// The rows of a window: from the snapshot alone (last interval, since load), or from a Top
/// answer joined with the snapshot (owners, map memory, since-load average) by series.
pub fn rows(snap: &wire::Snapshot, window: Window, top: Option<&[wire::TopRow]>) -> Vec<Row> {
    let by_series: std::collections::HashMap<i64, &wire::ProgramRow> =
        snap.programs.iter().map(|p| (p.series_id, p)).collect();
    let live = |series_id: i64| by_series.get(&series_id).copied();
    let from_snapshot = |p: &wire::ProgramRow, since_load: bool| {
        let (avg_ns, runs_per_sec, cpu_pct) = if since_load {
            (
                avg(p.avg_ns_per_run_since_load),
                Some(p.runs_per_sec_since_load),
                Some(p.cpu_pct_since_load),
            )
        } else {
            let interval = p.interval_ns > 0;
            (
                avg(p.avg_ns_per_run),
                interval.then_some(p.runs_per_sec),
                interval.then_some(p.cpu_pct),
            )
        };
        Row {
            series_id: p.series_id,
            id: p.id,
            name: p.full_name.clone(),
            prog_type: p.prog_type.clone(),
            alive: true,
            avg_ns,
            avg_load_ns: avg(p.avg_ns_per_run_since_load),
            runs_per_sec,
            cpu_pct,
            estimated: !since_load && snap.coverage < 1.0,
            map_memory: Some(p.map_memory_bytes),
            owner: owner(p),
        }
    };
    match (window, top) {
        (Window::Last(_), Some(top)) => top
            .iter()
            .map(|t| {
                let l = live(t.series_id).filter(|_| t.alive);
                Row {
                    series_id: t.series_id,
                    id: t.id,
                    name: t.full_name.clone(),
                    prog_type: t.prog_type.clone(),
                    alive: t.alive,
                    avg_ns: avg(t.avg_ns_per_run),
                    avg_load_ns: l.and_then(|l| avg(l.avg_ns_per_run_since_load)),
                    runs_per_sec: (t.span_ns > 0).then_some(t.rates.est_runs_per_sec),
                    cpu_pct: (t.span_ns > 0).then_some(t.rates.est_cpu_pct),
                    estimated: t.rates.estimated,
                    map_memory: l.map(|l| l.map_memory_bytes),
                    owner: l.map(owner).unwrap_or_default(),
                }
            })
            .collect(),
        (Window::SinceLoad, _) => snap
            .programs
            .iter()
            .map(|p| from_snapshot(p, true))
            .collect(),
        _ => snap
            .programs
            .iter()
            .map(|p| from_snapshot(p, false))
            .collect(),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    fn row(id: u32, name: &str, cpu: f64, avg: Option<f64>) -> Row {
        Row {
            series_id: i64::from(id) + 100,
            id,
            name: name.into(),
            prog_type: "tracepoint".into(),
            alive: true,
            avg_ns: avg,
            avg_load_ns: None,
            runs_per_sec: Some(0.0),
            cpu_pct: Some(cpu),
            estimated: false,
            map_memory: Some(0),
            owner: "bpftrace[12]".into(),
        }
    }

    fn ids(rows: &[Row]) -> Vec<u32> {
        rows.iter().map(|r| r.id).collect()
    }

    #[test]
    fn numbers_sort_largest_first_and_text_a_to_z_and_both_reverse() {
        let mut rows = vec![
            row(1, "b", 0.5, Some(10.0)),
            row(2, "a", 2.0, None),
            row(3, "c", 1.0, Some(30.0)),
        ];
        let mut s = Sorting {
            column: Column::Cpu,
            reversed: false,
        };
        s.apply(&mut rows);
        assert_eq!(ids(&rows), [2, 3, 1]);
        s.reversed = true;
        s.apply(&mut rows);
        assert_eq!(ids(&rows), [1, 3, 2]);
        let s = Sorting {
            column: Column::Name,
            reversed: false,
        };
        s.apply(&mut rows);
        assert_eq!(ids(&rows), [2, 1, 3]);
        // No average (did not run) ranks last when largest come first.
        let s = Sorting {
            column: Column::Avg,
            reversed: false,
        };
        s.apply(&mut rows);
        assert_eq!(ids(&rows), [3, 1, 2]);
    }

    #[test]
    fn ties_keep_id_order_so_rows_hold_still() {
        let mut rows = vec![row(9, "x", 1.0, None), row(4, "y", 1.0, None)];
        Sorting {
            column: Column::Cpu,
            reversed: false,
        }
        .apply(&mut rows);
        assert_eq!(ids(&rows), [4, 9]);
    }

    #[test]
    fn sort_column_steps_around_both_ways() {
        let s = Sorting {
            column: Column::Owner,
            reversed: true,
        };
        assert_eq!(s.step(true).column, Column::Id);
        assert!(!s.step(true).reversed);
        assert_eq!(s.step(false).column, Column::MapMem);
        let first = Sorting {
            column: Column::Id,
            reversed: false,
        };
        assert_eq!(first.step(false).column, Column::Owner);
    }

    #[test]
    fn filter_is_a_case_insensitive_substring_of_name_type_or_owner() {
        let r = row(1, "sys_enter_openat", 0.0, None);
        assert!(matches(&r, ""));
        assert!(matches(&r, "OPENAT"));
        assert!(matches(&r, "tracep"));
        assert!(matches(&r, "bpftrace"));
        assert!(!matches(&r, "xdp"));
    }

    #[test]
    fn long_windows_are_ranked_less_often() {
        let s = Duration::from_secs;
        assert_eq!(rank_period(s(60), s(1)), s(1));
        assert_eq!(
            rank_period(s(300), Duration::from_millis(200)),
            Duration::from_millis(200)
        );
        assert_eq!(rank_period(s(3600), s(1)), s(2));
        assert_eq!(rank_period(s(86_400), s(1)), s(60));
        assert_eq!(rank_period(s(86_400), s(120)), s(120));
    }

    #[test]
    fn windows_cycle_and_a_custom_one_rejoins_the_list() {
        assert_eq!(Window::Interval.next(), WINDOWS[1]);
        assert_eq!(Window::SinceLoad.next(), Window::Interval);
        assert_eq!(
            Window::Last(Duration::from_secs(7)).next(),
            Window::Interval
        );
        assert_eq!(WINDOWS[2].label(), "last 5m");
    }

    pub(crate) fn program(series_id: i64, run_cnt: u64, run_time_ns: u64) -> wire::ProgramRow {
        wire::ProgramRow {
            series_id,
            id: 7,
            name: "p".into(),
            full_name: "prog".into(),
            prog_type: "socket_filter".into(),
            tag: "00".into(),
            load_time_ns: 1_000_000_000,
            run_cnt,
            run_time_ns,
            interval_ns: 1_000_000_000,
            delta_run_cnt: 10,
            delta_run_time_ns: 500,
            runs_per_sec: 10.0,
            cpu_pct: 0.5,
            avg_ns_per_run: 50.0,
            map_memory_bytes: 4096,
            map_memory_own_bytes: 4096,
            map_memory_shared_bytes: 0,
            owners: vec![wire::Owner {
                pid: 42,
                comm: "loader".into(),
                unit: String::new(),
                container: wire::Container::default(),
            }],
            notes: Vec::new(),
            stats_overhead_ns: 0.0,
            // As the daemon says them for a program loaded 10 s before the snapshot.
            avg_ns_per_run_since_load: if run_cnt > 0 {
                run_time_ns as f64 / run_cnt as f64
            } else {
                -1.0
            },
            runs_per_sec_since_load: run_cnt as f64 / 10.0,
            cpu_pct_since_load: run_time_ns as f64 * 100.0 / 10e9,
        }
    }

    pub(crate) fn snapshot(programs: Vec<wire::ProgramRow>) -> wire::Snapshot {
        wire::Snapshot {
            time_ns: 11_000_000_000,
            stats_state: "on".into(),
            memlock_meaning: "estimate".into(),
            online_cpus: 2,
            coverage: 1.0,
            stats_cost_ns: 20.0,
            stats_overhead_pct: 0.0,
            programs,
        }
    }

    #[test]
    fn since_load_rows_show_the_daemons_values_since_load() {
        // 10 s loaded, 2000 runs taking 1 ms in all.
        let snap = snapshot(vec![program(5, 2000, 1_000_000)]);
        let r = &rows(&snap, Window::SinceLoad, None)[0];
        assert_eq!(r.avg_ns, Some(500.0));
        assert_eq!(r.avg_load_ns, Some(500.0));
        assert!(r.runs_per_sec.is_some_and(|v| (v - 200.0).abs() < 1e-9));
        assert!(r.cpu_pct.is_some_and(|v| (v - 0.01).abs() < 1e-12));
        assert_eq!(r.owner, "loader[42]");
        let r = &rows(&snap, Window::Interval, None)[0];
        assert_eq!(
            (r.avg_ns, r.runs_per_sec, r.cpu_pct),
            (Some(50.0), Some(10.0), Some(0.5))
        );
        // Seen in one pass only: no interval, no rate.
        let mut first = program(6, 20, 1000);
        first.interval_ns = 0;
        let r = &rows(&snapshot(vec![first]), Window::Interval, None)[0];
        assert_eq!((r.runs_per_sec, r.cpu_pct), (None, None));
    }

    #[test]
    fn a_window_joins_top_rows_with_the_snapshot_and_keeps_gone_programs() {
        let snap = snapshot(vec![program(5, 2000, 1_000_000)]);
        let rates = wire::Rates {
            runs_per_sec: 3.0,
            cpu_pct: 0.2,
            coverage: 1.0,
            estimated: false,
            est_run_cnt: 0,
            est_run_time_ns: 0,
            est_runs_per_sec: 3.0,
            est_cpu_pct: 0.2,
            stats_overhead_ns: 0.0,
            stats_overhead_pct: 0.0,
        };
        let top = |series_id: i64, alive: bool| wire::TopRow {
            series_id,
            id: 7,
            name: "p".into(),
            full_name: "prog".into(),
            prog_type: "socket_filter".into(),
            tag: "00".into(),
            alive,
            span_ns: 60_000_000_000,
            samples: 60,
            run_cnt: 180,
            run_time_ns: 9000,
            avg_ns_per_run: -1.0,
            rates,
            peak_runs_per_sec: 0,
            peak_cpu_pct: 0.0,
            map_memory_bytes: 0,
            map_memory_own_bytes: 0,
            map_memory_shared_bytes: 0,
            tier: "raw".into(),
        };
        let window = Window::Last(Duration::from_secs(60));
        let got = rows(&snap, window, Some(&[top(5, true), top(3, false)]));
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].avg_ns, None);
        assert_eq!(got[0].avg_load_ns, Some(500.0));
        assert_eq!(got[0].map_memory, Some(4096));
        assert_eq!(got[0].owner, "loader[42]");
        assert!(!got[1].alive);
        assert_eq!((got[1].map_memory, got[1].owner.as_str()), (None, ""));
    }
}
