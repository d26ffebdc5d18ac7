//! `Export()`: stored history as OpenMetrics with time stamps, a page per call (the text
//! itself is made in `crate::export::history`).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use ebpfstat_dbus::{self as wire, Error, Options};
use ebpfstat_numbers::WallNs;
use ebpfstat_numbers::time::duration_ns;
use ebpfstat_store::{ProgramRef, Store};

use super::Stats1;
use super::args::{check_options, check_range, max_points, query_error};
use super::filter::{self, Filter};
use super::queries::Query;
use crate::export::history::{self, Cursor, Point, Series};
use crate::sampler::owners::Owner;

/// Steps per program an export may span: 10 years at a minute is 5.3 million.
pub const MAX_EXPORT_STEPS: u64 = 10_000_000;

/// The holders of the programs loaded now, by id (for the owner and unit filters).
pub type ExportOwners = HashMap<u32, Vec<Arc<Owner>>>;

/// An export page asked for, checked.
#[derive(Debug)]
pub struct Asked {
    filter: Filter,
    at: Cursor,
    max_points: u32,
    range: (i64, i64),
    /// Never finer than passes are taken.
    step_ns: u64,
}

impl Stats1 {
    pub(super) async fn export_page(
        &self,
        from_ns: i64,
        to_ns: i64,
        step_ns: u64,
        options: Options,
    ) -> Result<(String, String), Error> {
        let asked = self.asked(from_ns, to_ns, step_ns, &options)?;
        // Holders of the live programs, for the owner and unit filters.
        let owners: ExportOwners = match (asked.filter.needs_owners(), self.latest_pass()) {
            (true, Some(p)) => p
                .programs
                .iter()
                .map(|s| (s.meta.id, s.context.owners.clone()))
                .collect(),
            _ => HashMap::new(),
        };
        let (text, next) = self.ask(|r| Query::Export(asked, owners, r)).await??;
        Ok((text, next.map_or_else(String::new, |c| c.to_string())))
    }

    /// The page's options and range, checked.
    fn asked(
        &self,
        from_ns: i64,
        to_ns: i64,
        step_ns: u64,
        options: &Options,
    ) -> Result<Asked, Error> {
        let mut keys = filter::KEYS.to_vec();
        keys.extend([("cursor", "s"), ("max_points", "u")]);
        check_options(options, &keys)?;
        let filter = Filter::from_options(options)?;
        let at = match options.get("cursor") {
            None => Cursor::start(from_ns),
            Some(v) => <&str>::try_from(v)
                .unwrap_or("")
                .parse::<Cursor>()
                .map_err(|e| Error::InvalidArgument(e.to_string()))?,
        };
        let max_points = max_points(options, wire::DEFAULT_EXPORT_POINTS)?;
        check_range(from_ns, to_ns, step_ns)?;
        if !(from_ns..to_ns).contains(&at.continues_at_ns()) {
            return Err(Error::InvalidArgument(format!(
                "the cursor continues at {} ns, outside the range asked for",
                at.continues_at_ns()
            )));
        }
        let interval = duration_ns(self.shared.published.borrow().interval);
        let step_ns = step_ns.max(interval);
        let steps = to_ns.abs_diff(from_ns) / step_ns;
        if steps > MAX_EXPORT_STEPS {
            return Err(Error::InvalidArgument(format!(
                "that range at a step of {} is {steps} steps per program; an export spans at \
                 most {MAX_EXPORT_STEPS} (a larger step, or a shorter range)",
                humantime::format_duration(Duration::from_nanos(step_ns))
            )));
        }
        Ok(Asked {
            filter,
            at,
            max_points,
            range: (from_ns, to_ns),
            step_ns,
        })
    }
}

/// One page of the export, on the storage thread.
pub fn export_page(
    s: &Store,
    asked: &Asked,
    owners: &ExportOwners,
) -> Result<(String, Option<Cursor>), Error> {
    let series = exported_series(s, asked, owners)?;
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
fn exported_series(
    s: &Store,
    asked: &Asked,
    owners: &HashMap<u32, Vec<Arc<Owner>>>,
) -> Result<Vec<Series>, Error> {
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
            let held = r.alive.then(|| owners.get(&r.prog_id)).flatten();
            asked
                .filter
                .keeps(&r.name, &r.full_name, &r.prog_type, held.map(Vec::as_slice))
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
