//! Stored history as OpenMetrics with time stamps, for backfill (`promtool tsdb
//! create-blocks-from openmetrics`, VictoriaMetrics' `/api/v1/import/prometheus`), in pages:
//! neither side holds a whole export, however long the range.
//!
//! Counters carry the program's cumulative values since load, as the live exposition does, so
//! backfilled and scraped samples of one series agree. Each series starts with the value at
//! the start of its first step, so the last value minus the first (and `increase()` over the
//! imported range) is exactly the stored runs.

use ebpfstat_numbers::time::secs_of_ns;
use std::fmt;
use std::str::FromStr;

use super::families::{RUN_TIME, RUNS, program_labels};
use super::text::{Encoder, Family, Format, Value};

/// The families an export writes, in order (a family's samples may not interleave another's).
const FAMILIES: [Family; 2] = [RUNS, RUN_TIME];

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
/// not yet written), the time from which that series continues, and the time (ms) of the
/// series' last sample written (`None`: none yet, so its first value is still to come).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor {
    family: usize,
    series_id: Option<i64>,
    from_ns: i64,
    last_ms: Option<i64>,
}

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
        }
    }

    /// Where the export continues: within `[from_ns, to_ns)` for an export of that range.
    pub fn continues_at_ns(&self) -> i64 {
        self.from_ns
    }
}

impl fmt::Display for Cursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = |v: Option<i64>| v.map_or("-".to_owned(), |v| v.to_string());
        write!(
            f,
            "{}:{}:{}:{}",
            self.family,
            text(self.series_id),
            self.from_ns,
            text(self.last_ms)
        )
    }
}

impl FromStr for Cursor {
    type Err = BadCursor;

    fn from_str(s: &str) -> Result<Self, BadCursor> {
        let bad = || BadCursor(s.chars().take(40).collect());
        let mut parts = s.split(':');
        let (Some(family), Some(series), Some(from), Some(last), None) = (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
        ) else {
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
        })
    }
}

/// One page of the export of `series` (sorted by id) over `[from_ns, to_ns)`, from `at`, of
/// at most about `budget` points. `fetch(series_id, from_ns, max_points)` returns a series'
/// points from `from_ns` on, and where it continues when it stopped at `max_points`.
/// Returns the text and the cursor of the next page (`None`: this page ends the export).
pub fn page<E>(
    series: &[Series],
    (from_ns, to_ns): (i64, i64),
    at: Cursor,
    budget: u64,
    mut fetch: impl FnMut(i64, i64, u64) -> Result<(Vec<Point>, Option<i64>), E>,
) -> Result<(String, Option<Cursor>), E> {
    let mut out = String::new();
    let mut e = Encoder::new(&mut out, Format::OpenMetrics);
    let mut left = budget.max(1);
    let mut reads = 0;
    let mut at = at;
    while let Some(family) = FAMILIES.get(at.family) {
        if at.series_id.is_none() {
            e.family(family);
        }
        let start = at.series_id.unwrap_or(i64::MIN);
        for s in series.iter().filter(|s| s.series_id >= start) {
            let (from, mut last_ms) = if Some(s.series_id) == at.series_id {
                (at.from_ns, at.last_ms)
            } else {
                (from_ns, None)
            };
            if left == 0 || reads == MAX_SERIES_PER_PAGE {
                let next = Cursor {
                    series_id: Some(s.series_id),
                    from_ns: from,
                    last_ms,
                    ..at
                };
                return Ok((out, Some(next)));
            }
            let (points, more) = fetch(s.series_id, from, left)?;
            reads += 1;
            left = left.saturating_sub(points.len() as u64);
            let id = s.prog_id.to_string();
            let labels = program_labels(&id, &s.full_name, &s.prog_type);
            let runs = at.family == 0;
            let mut w = SeriesWriter {
                e: &mut e,
                family,
                runs,
                labels: &labels,
                not_before_ns: s.first_seen_ns,
                last_ms: &mut last_ms,
            };
            w.write(&points);
            if let Some(next_from) = more.filter(|&t| t < to_ns) {
                let next = Cursor {
                    series_id: Some(s.series_id),
                    from_ns: next_from,
                    last_ms,
                    ..at
                };
                return Ok((out, Some(next)));
            }
        }
        at = Cursor {
            family: at.family + 1,
            series_id: None,
            from_ns,
            last_ms: None,
        };
    }
    e.finish();
    Ok((out, None))
}

/// Writes a series' points of one family (runs, or run time).
struct SeriesWriter<'a, 'e> {
    e: &'a mut Encoder<'e>,
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

impl SeriesWriter<'_, '_> {
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
        let ms = at_ns.div_euclid(1_000_000);
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
    fn store(id: i64, from: i64, max: u64) -> Result<(Vec<Point>, Option<i64>), String> {
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
        let (text, next) = page(
            &[series(1)],
            (0, 10_000_000_000),
            Cursor::start(0),
            100,
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
        let (whole, _) = page(&all, range, Cursor::start(0), 1000, store).expect("whole");
        let mut joined = String::new();
        let mut at = Some(Cursor::start(0));
        let mut pages = 0;
        while let Some(c) = at {
            let c: Cursor = c.to_string().parse().expect("round trip");
            let (text, next) = page(&all, range, c, 4, store).expect("page");
            joined.push_str(&text);
            at = next;
            pages += 1;
        }
        assert_eq!(joined, whole);
        assert!(pages > 10, "{pages}");
    }

    type Fetched = Result<(Vec<Point>, Option<i64>), String>;

    /// Points a second apart from 0, the first `empty` without data, one run each.
    fn with_empty(empty: i64) -> impl FnMut(i64, i64, u64) -> Fetched {
        move |_, from, max| {
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
        let (whole, _) =
            page(&[series(1)], range, Cursor::start(0), 100, with_empty(4)).expect("whole");
        let mut joined = String::new();
        let mut at = Some(Cursor::start(0));
        while let Some(c) = at {
            let (text, next) = page(&[series(1)], range, c, 3, with_empty(4)).expect("page");
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
        let (whole, _) = page(&all, range, Cursor::start(0), u64::MAX, store).expect("page");
        assert!(!whole.contains("# EOF"));
        let names = whole.lines().filter(|l| l.ends_with(" 0.000")).count();
        assert_eq!(names, MAX_SERIES_PER_PAGE);
    }

    #[test]
    fn bad_cursors_are_refused() {
        for bad in [
            "",
            "x",
            "0:1",
            "0:1:2",
            "9:-:0:-",
            "0:1:2:3:4",
            "0:a:0:-",
            "0:1:2:x",
        ] {
            assert!(bad.parse::<Cursor>().is_err(), "{bad}");
        }
    }
}
