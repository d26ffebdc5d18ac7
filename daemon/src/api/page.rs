//! The store's side of `Export()`: one page of stored history as OpenMetrics text, made on
//! the storage thread from what the handler checked (`api::export`).

use std::time::{Duration, SystemTime};

use ebpfstat_dbus::Error;
use ebpfstat_numbers::WallNs;
use ebpfstat_store::{ProgramRef, Store};

use super::args::query_error;
use super::filter::{Filter, Held, HeldNow};
use crate::export::history::{self, Cursor, Point, Series};

/// An export page asked for, checked.
#[derive(Debug)]
pub struct Asked {
    pub filter: Filter,
    pub at: Cursor,
    pub max_points: u32,
    pub range: (i64, i64),
    /// Never finer than passes are taken.
    pub step_ns: u64,
}

/// One page of the export, on the storage thread.
pub fn export_page(
    s: &Store,
    asked: &Asked,
    held: &HeldNow,
) -> Result<(String, Option<Cursor>), Error> {
    let series = exported_series(s, asked, held)?;
    let to = WallNs::from_ns(asked.range.1).time();
    let step = Duration::from_nanos(asked.step_ns);
    history::page(
        &series,
        asked.range,
        asked.at,
        u64::from(asked.max_points),
        |id, from, max| points(s, id, (WallNs::from_ns(from).time(), to), step, max),
    )
}

/// The stored series seen in the range that the filter keeps, in series order.
fn exported_series(s: &Store, asked: &Asked, held: &HeldNow) -> Result<Vec<Series>, Error> {
    let (from, to) = (
        WallNs::from_ns(asked.range.0).time(),
        WallNs::from_ns(asked.range.1).time(),
    );
    let mut series: Vec<Series> = s
        .all_series()
        .map_err(query_error)?
        .into_iter()
        .filter(|r| r.first_seen.is_none_or(|f| f < to))
        .filter(|r| r.alive || r.last_seen.is_none_or(|l| l >= from))
        .filter(|r| {
            let now = r.alive.then(|| held.get(&r.prog_id)).flatten();
            asked.filter.keeps(
                &r.name,
                &r.full_name,
                &r.prog_type,
                now.map(|c| Held::of(c)),
            )
        })
        .map(|r| Series {
            first_seen_ns: WallNs::of_known(r.first_seen).ns(),
            series_id: r.series_id,
            prog_id: r.prog_id,
            full_name: r.full_name,
            prog_type: r.prog_type,
        })
        .collect();
    series.sort_by_key(|s| s.series_id);
    Ok(series)
}

/// At most `max` points of series `id` over `range`, and where it goes on.
fn points(
    s: &Store,
    id: i64,
    range: (SystemTime, SystemTime),
    step: Duration,
    max: u64,
) -> Result<(Vec<Point>, Option<i64>), Error> {
    let (h, next) = s
        .history_page(&ProgramRef::Series(id), range, step, None, max)
        .map_err(query_error)?;
    let points = h
        .points
        .iter()
        .map(|p| Point {
            start_ns: WallNs::of(p.start).ns(),
            end_ns: WallNs::of(p.end).ns(),
            samples: p.samples,
            run_cnt: p.run_cnt,
            run_time_ns: p.run_time_ns,
            cum_run_cnt: p.cum_run_cnt,
            cum_run_time_ns: p.cum_run_time_ns,
        })
        .collect();
    Ok((points, next.map(|t| WallNs::of(t).ns())))
}
