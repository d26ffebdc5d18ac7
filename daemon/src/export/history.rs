//! Stored history as OpenMetrics with time stamps, for backfill (`promtool tsdb
//! create-blocks-from openmetrics`, VictoriaMetrics' `/api/v1/import/prometheus`), in pages:
//! neither side holds a whole export, however long the range.
//!
//! Counters carry the program's cumulative values since load, as the live exposition does, so
//! backfilled and scraped samples of one series agree. Each series starts with the value at
//! the start of its first step, so the last value minus the first (and `increase()` over the
//! imported range) is exactly the stored runs.

use std::fmt;
use std::str::FromStr;

use super::families::{RUN_TIME, RUNS, program_labels};
use super::text::{Encoder, Family, Format, Value};

/// The families an export writes, in order (a family's samples may not interleave another's).
const FAMILIES: [Family; 2] = [RUNS, RUN_TIME];

/// A stored series to export.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Series {
    pub series_id: i64,
    pub prog_id: u32,
    pub full_name: String,
    pub prog_type: String,
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
/// not yet written), and the time from which that series continues.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor {
    family: usize,
    series_id: Option<i64>,
    from_ns: i64,
}

impl Cursor {
    /// The start of an export of `[from_ns, …)`.
    pub fn start(from_ns: i64) -> Self {
        Self {
            family: 0,
            series_id: None,
            from_ns,
        }
    }
}

impl fmt::Display for Cursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let series = self.series_id.map_or("-".to_owned(), |s| s.to_string());
        write!(f, "{}:{series}:{}", self.family, self.from_ns)
    }
}

impl FromStr for Cursor {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("cursor {s:?} is not one an export returned");
        let mut parts = s.split(':');
        let (Some(family), Some(series), Some(from), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(bad());
        };
        let family: usize = family.parse().map_err(|_| bad())?;
        if family >= FAMILIES.len() {
            return Err(bad());
        }
        let series_id = match series {
            "-" => None,
            id => Some(id.parse().map_err(|_| bad())?),
        };
        Ok(Self {
            family,
            series_id,
            from_ns: from.parse().map_err(|_| bad())?,
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
    let mut at = at;
    while let Some(family) = FAMILIES.get(at.family) {
        if at.series_id.is_none() {
            e.family(family);
        }
        let start = at.series_id.unwrap_or(i64::MIN);
        for s in series.iter().filter(|s| s.series_id >= start) {
            let from = if Some(s.series_id) == at.series_id {
                at.from_ns
            } else {
                from_ns
            };
            if left == 0 {
                let next = Cursor {
                    series_id: Some(s.series_id),
                    from_ns: from,
                    ..at
                };
                return Ok((out, Some(next)));
            }
            let (points, more) = fetch(s.series_id, from, left)?;
            left = left.saturating_sub(points.len() as u64);
            let id = s.prog_id.to_string();
            let labels = program_labels(&id, &s.full_name, &s.prog_type);
            let runs = at.family == 0;
            write_points(&mut e, (family, runs), &labels, &points, from == from_ns);
            if let Some(next_from) = more.filter(|&t| t < to_ns) {
                let next = Cursor {
                    series_id: Some(s.series_id),
                    from_ns: next_from,
                    ..at
                };
                return Ok((out, Some(next)));
            }
        }
        at = Cursor {
            family: at.family + 1,
            series_id: None,
            from_ns,
        };
    }
    e.finish();
    Ok((out, None))
}

/// A series' points of one family (runs, or run time); `first` adds the value at the start
/// of its first step.
fn write_points(
    e: &mut Encoder<'_>,
    (family, runs): (&Family, bool),
    labels: &[(&str, &str)],
    points: &[Point],
    first: bool,
) {
    let value = |cum: u64, step: u64| -> Value {
        if runs {
            Value::Int(cum.saturating_sub(step))
        } else {
            Value::Float(cum.saturating_sub(step) as f64 / 1e9)
        }
    };
    let mut first = first;
    for p in points.iter().filter(|p| p.samples > 0) {
        let (cum, step) = if runs {
            (p.cum_run_cnt, p.run_cnt)
        } else {
            (p.cum_run_time_ns, p.run_time_ns)
        };
        if std::mem::take(&mut first) {
            e.sample(family, labels, value(cum, step), Some(p.start_ns));
        }
        e.sample(family, labels, value(cum, 0), Some(p.end_ns));
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
        let take = usize::try_from(max).expect("small").min(all.len());
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

    #[test]
    fn bad_cursors_are_refused() {
        for bad in ["", "x", "0:1", "9:-:0", "0:1:2:3", "0:a:0"] {
            assert!(bad.parse::<Cursor>().is_err(), "{bad}");
        }
    }
}
