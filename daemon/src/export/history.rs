//! Stored history as OpenMetrics with time stamps, for backfill (`promtool tsdb
//! create-blocks-from openmetrics`, VictoriaMetrics' `/api/v1/import/prometheus`), in pages:
//! neither side holds a whole export, however long the range.
//!
//! Counters carry the program's cumulative values since load, as the live exposition does, so
//! backfilled and scraped samples of one series agree. Each series starts with the value at
//! the start of its first step, so the last value minus the first (and `increase()` over the
//! imported range) is exactly the stored runs.

use ebpfstat_numbers::WallNs;
use ebpfstat_numbers::time::secs_of_ns;
use std::fmt;
use std::str::FromStr;

use super::families::{RUN_TIME, RUNS, program_labels};
use super::text::{Encoder, Family, Format, Sink, Value};

/// The families an export writes, in order (a family's samples may not interleave another's).
pub const FAMILIES: [Family; 2] = [RUNS, RUN_TIME];

/// Series read in one page, whatever the point budget: each read scans the ticks of its range
/// on the storage thread, so a coarse step over many programs (one point each) must not make
/// one call read them all.
pub const MAX_SERIES_PER_PAGE: usize = 64;

/// A stored series to export.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Series {
    pub series_id: i64,
    pub prog_id: u32,
    pub full_name: String,
    pub prog_type: String,
    /// When it was first sampled (ns since the epoch; 0: unknown). Its first sample is never
    /// stamped earlier: a program of the same id and name in the boot before may have been
    /// sampled inside the same step, and an engine takes a series' samples in time order.
    pub first_seen_ns: i64,
}

/// One step of a series' stored history.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Point {
    pub start_ns: i64,
    pub end_ns: i64,
    /// Passes in the step: 0 means no data, and the step is skipped.
    pub samples: u32,
    pub run_cnt: u64,
    pub run_time_ns: u64,
    pub cum_run_cnt: u64,
    pub cum_run_time_ns: u64,
}

/// Where a page continues: the family, the series (`None`: the family's start, its header
/// not yet written; else the first series id it may be, as series are read in id order), the
/// time from which that series continues, the time (ms) of the series' last sample written
/// (`None`: none yet, so its first value is still to come), and where the export ends (fixed
/// by its first page at the newest stored sample then, so that every family ends at the same
/// step however long the export takes; `None` until the first page fixes it), and the
/// series' cumulative counters where it continues, when a page before read them (so the next
/// page reads only what it covers).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor {
    family: usize,
    series_id: Option<i64>,
    from_ns: i64,
    last_ms: Option<i64>,
    until_ns: Option<i64>,
    cum: Option<Cum>,
}

/// A series' cumulative runs and run time (ns).
pub type Cum = (u64, u64);

/// A cursor that no export returned.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cursor {0:?} is not one an export returned")]
pub struct BadCursor(pub String);

impl Cursor {
    /// The start of an export of `[from_ns, …)`.
    pub fn start(from_ns: i64) -> Self {
        Self {
            family: 0,
            series_id: None,
            from_ns,
            last_ms: None,
            until_ns: None,
            cum: None,
        }
    }

    /// Where the export ends, when a page before fixed it.
    pub fn until_ns(&self) -> Option<i64> {
        self.until_ns
    }

    /// Where the export continues: within `[from_ns, to_ns)` for an export of that range.
    pub fn continues_at_ns(&self) -> i64 {
        self.from_ns
    }
}

impl fmt::Display for Cursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = |v: Option<i64>| v.map_or("-".to_owned(), |v| v.to_string());
        let cum = self
            .cum
            .map_or("-".to_owned(), |(cnt, rt)| format!("{cnt}/{rt}"));
        write!(
            f,
            "{}:{}:{}:{}:{}:{cum}",
            self.family,
            text(self.series_id),
            self.from_ns,
            text(self.last_ms),
            text(self.until_ns)
        )
    }
}

impl FromStr for Cursor {
    type Err = BadCursor;

    fn from_str(s: &str) -> Result<Self, BadCursor> {
        let bad = || BadCursor(s.chars().take(40).collect());
        let fields: Vec<&str> = s.split(':').take(7).collect();
        let [family, series, from, last, until, cum] = fields[..] else {
            return Err(bad());
        };
        let family: usize = family.parse().map_err(|_| bad())?;
        if family >= FAMILIES.len() {
            return Err(bad());
        }
        let optional = |v: &str| match v {
            "-" => Ok(None),
            n => n.parse().map(Some).map_err(|_| bad()),
        };
        Ok(Self {
            family,
            series_id: optional(series)?,
            from_ns: from.parse().map_err(|_| bad())?,
            last_ms: optional(last)?,
            until_ns: optional(until)?,
            cum: match cum {
                "-" => None,
                c => {
                    let (cnt, rt) = c.split_once('/').ok_or_else(bad)?;
                    Some((
                        cnt.parse().map_err(|_| bad())?,
                        rt.parse().map_err(|_| bad())?,
                    ))
                }
            },
        })
    }
}

/// One page of the export over `[from_ns, until_ns)`, from `at`, of at most about `budget`
/// points. `next(id)` is the first series to export with an id at or above `id` (series go in
/// id order), read only when the page goes on to it: a page reads the series it writes, not
/// those before it. `fetch(series_id, from_ns, max_points, cum)` returns a series' points
/// from `from_ns` on, and where it continues when it stopped at `max_points`; `cum` is the
/// series' cumulative counters at `from_ns` when a page before read them. `until_ns` is where
/// the export ends: the caller fixes it at the first page (`at.until_ns()` after that).
/// Returns the text and the cursor of the next page (`None`: this page ends the export).
pub fn page<E>(
    range: (i64, i64),
    at: Cursor,
    budget: u64,
    next: impl FnMut(i64) -> Result<Option<Series>, E>,
    fetch: impl FnMut(i64, i64, u64, Option<Cum>) -> Result<(Vec<Point>, Option<i64>), E>,
) -> Result<(String, Option<Cursor>), E> {
    let mut out = String::new();
    let mut e = Encoder::new(&mut out, Format::OpenMetrics);
    let next = write_page(&mut e, (range, false), at, budget, next, fetch)?;
    if next.is_none() {
        e.finish();
    }
    Ok((out, next))
}

/// [`page`] into any sink. `resumed`: what came before `from_ns` was already sent (the range
/// goes on from an earlier one), so a series seen before it does not start with its value at
/// its first step's start, which is the last value sent. Returns the next page's cursor.
pub fn write_page<E>(
    e: &mut dyn Sink,
    ((from_ns, until_ns), resumed): ((i64, i64), bool),
    at: Cursor,
    budget: u64,
    mut next: impl FnMut(i64) -> Result<Option<Series>, E>,
    mut fetch: impl FnMut(i64, i64, u64, Option<Cum>) -> Result<(Vec<Point>, Option<i64>), E>,
) -> Result<Option<Cursor>, E> {
    let mut left = budget.max(1);
    let mut reads = 0;
    let mut at = Cursor {
        until_ns: Some(until_ns),
        ..at
    };
    while let Some(family) = FAMILIES.get(at.family) {
        if at.series_id.is_none() {
            e.family(family);
        }
        let mut start = at.series_id.unwrap_or(i64::MIN);
        loop {
            if left == 0 || reads == MAX_SERIES_PER_PAGE {
                // The next page starts at the first series from here: not looked up now.
                let next = Cursor {
                    series_id: Some(start),
                    from_ns,
                    last_ms: None,
                    cum: None,
                    ..at
                };
                return Ok(Some(next));
            }
            let Some(s) = next(start)? else { break };
            let (from, mut last_ms, known) = if Some(s.series_id) == at.series_id {
                (at.from_ns, at.last_ms, at.cum)
            } else if resumed && s.first_seen_ns < from_ns {
                (from_ns, Some(WallNs::from_ns(from_ns).millis()), None)
            } else {
                (from_ns, None, None)
            };
            let (points, more) = fetch(s.series_id, from, left, known)?;
            reads += 1;
            left = left.saturating_sub(points.len() as u64);
            let id = s.prog_id.to_string();
            let labels = program_labels(&id, &s.full_name, &s.prog_type);
            let mut w = SeriesWriter {
                e: &mut *e,
                family,
                runs: at.family == 0,
                labels: &labels,
                not_before_ns: s.first_seen_ns,
                last_ms: &mut last_ms,
            };
            w.write(&points);
            if let Some(next_from) = more.filter(|&t| t < until_ns) {
                // The counters after the last step with data: where the series continues.
                let cum = points
                    .iter()
                    .rev()
                    .find(|p| p.samples > 0)
                    .map(|p| (p.cum_run_cnt, p.cum_run_time_ns))
                    .or(known);
                let next = Cursor {
                    series_id: Some(s.series_id),
                    from_ns: next_from,
                    last_ms,
                    cum,
                    ..at
                };
                return Ok(Some(next));
            }
            start = s.series_id.saturating_add(1);
        }
        at = Cursor {
            family: at.family + 1,
            series_id: None,
            from_ns,
            last_ms: None,
            cum: None,
            ..at
        };
    }
    Ok(None)
}

/// Writes a series' points of one family (runs, or run time).
struct SeriesWriter<'a> {
    e: &'a mut dyn Sink,
    family: &'a Family,
    runs: bool,
    labels: &'a [(&'a str, &'a str)],
    not_before_ns: i64,
    /// The time (ms) of the series' last sample written: before it, the series' first
    /// sample is its value at the start of its first step with data; after it, a sample in
    /// the same millisecond (a partial last step ending just after a full one) is left out,
    /// as engines refuse two values at one time.
    last_ms: &'a mut Option<i64>,
}

impl SeriesWriter<'_> {
    fn write(&mut self, points: &[Point]) {
        for p in points.iter().filter(|p| p.samples > 0) {
            let (cum, step) = if self.runs {
                (p.cum_run_cnt, p.run_cnt)
            } else {
                (p.cum_run_time_ns, p.run_time_ns)
            };
            if self.last_ms.is_none() {
                self.sample(cum.saturating_sub(step), p.start_ns.max(self.not_before_ns));
            }
            self.sample(cum, p.end_ns);
        }
    }

    fn sample(&mut self, v: u64, at_ns: i64) {
        let ms = WallNs::from_ns(at_ns).millis();
        if self.last_ms.is_some_and(|last| ms <= last) {
            return;
        }
        *self.last_ms = Some(ms);
        let value = if self.runs {
            Value::Int(v)
        } else {
            Value::Float(secs_of_ns(v as f64))
        };
        self.e.sample(self.family, self.labels, value, Some(at_ns));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The first of `all` (sorted by id) at or above an id, as the store finds it.
    fn in_order(all: &[Series]) -> impl FnMut(i64) -> Result<Option<Series>, String> + '_ {
        |id| Ok(all.iter().find(|s| s.series_id >= id).cloned())
    }

    fn series(id: i64) -> Series {
        Series {
            series_id: id,
            prog_id: u32::try_from(id).expect("small") + 100,
            full_name: format!("p{id}"),
            prog_type: "socket_filter".into(),
            first_seen_ns: 0,
        }
    }

    /// Series `id` has a point a second from 0 to 10 s, one run each, 1000 runs before.
    fn store(
        id: i64,
        from: i64,
        max: u64,
        _: Option<Cum>,
    ) -> Result<(Vec<Point>, Option<i64>), String> {
        let _ = id;
        let all: Vec<Point> = (0..10)
            .map(|i| Point {
                start_ns: i * 1_000_000_000,
                end_ns: (i + 1) * 1_000_000_000,
                samples: 1,
                run_cnt: 1,
                run_time_ns: 500,
                cum_run_cnt: 1001 + u64::try_from(i).expect("small"),
                cum_run_time_ns: 500_500 + 500 * u64::try_from(i).expect("small"),
            })
            .filter(|p| p.start_ns >= from)
            .collect();
        let take = usize::try_from(max).unwrap_or(usize::MAX).min(all.len());
        let more = all.get(take).map(|p| p.start_ns);
        Ok((all[..take].to_vec(), more))
    }

    #[test]
    fn one_page_is_the_whole_export() {
        let one = [series(1)];
        let (text, next) = page(
            (0, 10_000_000_000),
            Cursor::start(0),
            100,
            in_order(&one),
            store,
        )
        .expect("page");
        assert_eq!(next, None);
        assert!(text.ends_with("# EOF\n"));
        assert!(text.starts_with("# TYPE ebpfstat_program_runs counter\n"));
        let runs: Vec<&str> = text
            .lines()
            .filter(|l| l.starts_with("ebpfstat_program_runs_total"))
            .collect();
        // The value at the start, then one a step: last − first = the 10 stored runs.
        assert_eq!(runs.len(), 11);
        assert_eq!(
            runs[0],
            "ebpfstat_program_runs_total{id=\"101\",name=\"p1\",type=\"socket_filter\"} 1000 0.000"
        );
        assert!(runs[10].ends_with(" 1010 10.000"), "{}", runs[10]);
        assert!(text.contains("ebpfstat_program_run_time_seconds_total{id=\"101\",name=\"p1\",type=\"socket_filter\"} 0.000505 10.000\n"));
    }

    #[test]
    fn pages_join_into_the_same_text() {
        let all = [series(1), series(2), series(3)];
        let range = (0, 10_000_000_000);
        let (whole, _) = page(range, Cursor::start(0), 1000, in_order(&all), store).expect("whole");
        let mut joined = String::new();
        let mut at = Some(Cursor::start(0));
        let mut pages = 0;
        while let Some(c) = at {
            let c: Cursor = c.to_string().parse().expect("round trip");
            let (text, next) = page(range, c, 4, in_order(&all), store).expect("page");
            joined.push_str(&text);
            at = next;
            pages += 1;
        }
        assert_eq!(joined, whole);
        assert!(pages > 10, "{pages}");
    }

    type Fetched = Result<(Vec<Point>, Option<i64>), String>;

    /// Points a second apart from 0, the first `empty` without data, one run each.
    fn with_empty(empty: i64) -> impl FnMut(i64, i64, u64, Option<Cum>) -> Fetched {
        move |_, from, max, _| {
            let all: Vec<Point> = (0..10)
                .map(|i| Point {
                    start_ns: i * 1_000_000_000,
                    end_ns: (i + 1) * 1_000_000_000,
                    samples: u32::from(i >= empty),
                    run_cnt: u64::from(i >= empty),
                    run_time_ns: 0,
                    cum_run_cnt: 100 + u64::try_from((i + 1 - empty).max(0)).expect("small"),
                    cum_run_time_ns: 0,
                })
                .filter(|p| p.start_ns >= from)
                .collect();
            let take = usize::try_from(max).unwrap_or(usize::MAX).min(all.len());
            Ok((all[..take].to_vec(), all.get(take).map(|p| p.start_ns)))
        }
    }

    #[test]
    fn the_first_value_survives_empty_steps_at_a_page_end() {
        let range = (0, 10_000_000_000);
        let one = [series(1)];
        let (whole, _) =
            page(range, Cursor::start(0), 100, in_order(&one), with_empty(4)).expect("whole");
        let mut joined = String::new();
        let mut at = Some(Cursor::start(0));
        while let Some(c) = at {
            let (text, next) = page(range, c, 3, in_order(&one), with_empty(4)).expect("page");
            joined.push_str(&text);
            at = next;
        }
        assert_eq!(joined, whole);
        let runs: Vec<&str> = whole
            .lines()
            .filter(|l| l.starts_with("ebpfstat_program_runs_total"))
            .collect();
        // The value at the start of the first step with data (4 s), then one a step.
        assert!(runs[0].ends_with(" 100 4.000"), "{}", runs[0]);
        assert!(runs[6].ends_with(" 106 10.000"), "{}", runs[6]);
        assert_eq!(runs.len(), 7);
    }

    #[test]
    fn a_sample_in_the_same_millisecond_is_left_out_and_none_before_first_seen() {
        let mut out = String::new();
        let mut e = Encoder::new(&mut out, Format::OpenMetrics);
        let mut last = None;
        let point = |start_ns, end_ns, cum| Point {
            start_ns,
            end_ns,
            samples: 1,
            run_cnt: 1,
            run_time_ns: 0,
            cum_run_cnt: cum,
            cum_run_time_ns: 0,
        };
        SeriesWriter {
            e: &mut e,
            family: &RUNS,
            runs: true,
            labels: &[],
            not_before_ns: 500_000_000,
            last_ms: &mut last,
        }
        .write(&[
            point(0, 1_000_000_000, 5),
            point(1_000_000_000, 1_000_000_001, 6),
        ]);
        assert_eq!(
            out,
            "ebpfstat_program_runs_total 4 0.500\nebpfstat_program_runs_total 5 1.000\n"
        );
    }

    #[test]
    fn a_page_reads_a_bounded_number_of_series() {
        let all: Vec<Series> = (1..=200).map(series).collect();
        let range = (0, 10_000_000_000);
        let (whole, _) =
            page(range, Cursor::start(0), u64::MAX, in_order(&all), store).expect("page");
        assert!(!whole.contains("# EOF"));
        let names = whole.lines().filter(|l| l.ends_with(" 0.000")).count();
        assert_eq!(names, MAX_SERIES_PER_PAGE);
    }

    #[test]
    fn a_page_looks_up_only_the_series_it_writes() {
        let all: Vec<Series> = (1..=200).map(series).collect();
        let range = (0, 10_000_000_000);
        let (mut at, mut pages, mut most) = (Some(Cursor::start(0)), 0, 0);
        while let Some(c) = at {
            let mut looked = 0;
            let mut find = in_order(&all);
            let lookup = |id| {
                looked += 1;
                find(id)
            };
            let (_, next) = page(range, c, 5, lookup, store).expect("page");
            most = most.max(looked);
            at = next;
            pages += 1;
        }
        // 200 series of 10 points, 5 a page, in each family: none read twice or ahead.
        assert_eq!(pages, 2 * 200 * 2 + 1);
        assert!(most <= 2, "a page looked up {most} series");
    }

    #[test]
    fn a_page_passes_on_the_counters_where_the_series_continues() {
        let one = [series(1)];
        let range = (0, 10_000_000_000);
        let mut known = Vec::new();
        let mut at = Some(Cursor::start(0));
        while let Some(c) = at {
            let fetch = |id, from, max, cum| {
                known.push((from, cum));
                store(id, from, max, cum)
            };
            at = page(range, c, 4, in_order(&one), fetch).expect("page").1;
        }
        // The first read of each family knows nothing; the next start where the last ended.
        assert_eq!(known[0], (0, None));
        assert_eq!(known[1], (4_000_000_000, Some((1004, 502_000))));
        assert_eq!(known[2], (8_000_000_000, Some((1008, 504_000))));
        assert_eq!(known[3], (0, None));
        let c: Cursor = "1:7:0:5:9:12/34".parse().expect("cursor");
        assert_eq!(c.to_string(), "1:7:0:5:9:12/34");
    }

    #[test]
    fn bad_cursors_are_refused() {
        for bad in [
            "",
            "x",
            "0:1",
            "0:1:2",
            "9:-:0:-",
            "0:1:2:3",
            "0:1:2:3:4",
            "0:1:2:3:4:5:6",
            "0:1:2:3:x:-",
            "0:-:0:-:-:5",
            "0:-:0:-:-:5/x",
            "0:a:0:-",
            "0:1:2:x",
        ] {
            assert!(bad.parse::<Cursor>().is_err(), "{bad}");
        }
    }
}
