//! The store's side of `Export()`: one page of stored history as OpenMetrics text, made on
//! the storage thread from what the handler checked (`api::export`).

use std::time::{Duration, SystemTime};

use ebpfstat_dbus::Error;
use ebpfstat_numbers::WallNs;
use ebpfstat_store::{Counters, Store};

use super::args::query_error;
use super::filter::{Filter, Held, HeldNow};
use crate::export::history::{self, Cum, Cursor, Point, Series};
use crate::export::remote::proto::Request;

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

/// One page of the export, on the storage thread. The first page fixes where the export ends:
/// at the newest sample stored then (or the end asked for, when sooner), so every family ends
/// at the same step however long the pages take while passes go on being stored.
pub fn export_page(
    s: &Store,
    asked: &Asked,
    held: &HeldNow,
) -> Result<(String, Option<Cursor>), Error> {
    let until_ns = match asked.at.until_ns() {
        Some(until) => until,
        None => {
            let newest = s.newest_time().map_err(|e| query_error(e.into()))?;
            // The newest sample is included: the range ends just after it.
            newest.map_or(asked.range.1, |t| {
                asked.range.1.min(WallNs::of(t).ns().saturating_add(1))
            })
        }
    };
    let until = WallNs::from_ns(until_ns).time();
    let step = Duration::from_nanos(asked.step_ns);
    // Nothing stored from the start on (a start after the newest sample): every family, no
    // series, rather than a range that ends before it starts, which the store refuses.
    let nothing = until_ns <= asked.range.0;
    history::page(
        (asked.range.0, until_ns),
        asked.at,
        u64::from(asked.max_points),
        |first| {
            if nothing {
                return Ok(None);
            }
            next_series(s, asked, held, first)
        },
        |id, from, max, cum| {
            let range = (WallNs::from_ns(from).time(), until);
            points(s, id, range, (step, max), cum)
        },
    )
}

/// A batch of stored history to push: from where, at what step, at most how many steps, as
/// which device.
#[derive(Debug)]
pub struct PushAsk {
    /// Where the receiver has everything up to (ns since the epoch).
    pub from_ns: i64,
    /// Never earlier than this (the backlog's limit), ns.
    pub floor_ns: i64,
    pub step_ns: u64,
    /// About the most samples a batch holds (at least a step of every series).
    pub max_samples: u64,
    pub device: std::sync::Arc<[(String, String)]>,
}

/// A batch made: the encoded request (every series' samples over `range`, in time order) and
/// how many samples it holds. `range.1` is where the receiver will have everything once it
/// acknowledges the batch.
#[derive(Debug)]
pub struct PushBatch {
    pub body: Vec<u8>,
    pub samples: u64,
    pub range: (i64, i64),
    /// The newest stored sample then (ns; 0: none): what is left to send after this batch.
    pub newest_ns: i64,
}

/// The next batch to push, on the storage thread: whole steps after `from_ns` (or the floor,
/// or the oldest stored data, whichever is latest) up to the last whole step stored, as many
/// as keep the batch within `max_samples` (two a step for every series the backlog holds). The
/// receiver has nothing to gain from steps not yet complete.
pub fn push_batch(s: &Store, ask: &PushAsk) -> Result<PushBatch, Error> {
    let step = ebpfstat_numbers::time::signed(ask.step_ns.max(1));
    let newest = s.newest_time().map_err(|e| query_error(e.into()))?;
    let oldest = s.oldest_time().map_err(|e| query_error(e.into()))?;
    let newest_ns = WallNs::of_known(newest).ns();
    let whole_until = newest_ns.div_euclid(step).saturating_mul(step);
    let start = ask
        .from_ns
        .max(ask.floor_ns)
        .max(WallNs::of_known(oldest).ns());
    // Batches start on a step boundary so that every batch's steps are the same ones.
    let from = start.div_euclid(step).saturating_mul(step).max(ask.from_ns);
    let held = HeldNow::new();
    let mut asked = Asked {
        filter: Filter::default(),
        at: Cursor::start(from),
        max_points: u32::MAX,
        range: (from, whole_until.max(from)),
        step_ns: ask.step_ns,
    };
    let series = count_series(s, &asked, &held)?;
    let steps = (ask.max_samples / (2 * series).max(1)).max(1);
    let steps = i64::try_from(steps).unwrap_or(i64::MAX);
    let to = whole_until.min(from.saturating_add(step.saturating_mul(steps)));
    let mut batch = PushBatch {
        body: Vec::new(),
        samples: 0,
        range: (from, to.max(from)),
        newest_ns,
    };
    if to <= from {
        return Ok(batch);
    }
    asked.range = (from, to);
    let until = WallNs::from_ns(to).time();
    let mut req = Request::new(&ask.device, 0, &[]);
    let mut at = Some(asked.at);
    while let Some(c) = at {
        at = history::write_page(
            &mut req,
            ((from, to), true),
            c,
            u64::MAX,
            |first| next_series(s, &asked, &held, first),
            |id, from, max, cum| {
                let range = (WallNs::from_ns(from).time(), until);
                points(s, id, range, (Duration::from_nanos(ask.step_ns), max), cum)
            },
        )?;
    }
    batch.samples = req.samples_written;
    batch.body = req.finish();
    Ok(batch)
}

/// The series a range holds (those an export of it would write).
fn count_series(s: &Store, asked: &Asked, held: &HeldNow) -> Result<u64, Error> {
    let (mut n, mut first) = (0, i64::MIN);
    while let Some(series) = next_series(s, asked, held, first)? {
        n += 1;
        first = series.series_id.saturating_add(1);
    }
    Ok(n)
}

/// Most series read from the store at a time while looking for the next one the filter keeps:
/// the first read takes one (the next series is most often kept), each read after doubles.
const SERIES_BATCH: u32 = 64;

/// The first stored series with an id at or above `first` seen in the range that the filter
/// keeps: only the series from `first` on are read, a batch at a time.
fn next_series(
    s: &Store,
    asked: &Asked,
    held: &HeldNow,
    first: i64,
) -> Result<Option<Series>, Error> {
    let (from, to) = (
        WallNs::from_ns(asked.range.0).time(),
        WallNs::from_ns(asked.range.1).time(),
    );
    let (mut first, mut batch_len) = (first, 1);
    loop {
        let batch = s.series_from(first, batch_len).map_err(query_error)?;
        batch_len = (batch_len * 2).min(SERIES_BATCH);
        let Some(last) = batch.last().map(|r| r.series_id) else {
            return Ok(None);
        };
        let kept = batch
            .into_iter()
            .filter(|r| r.first_seen.is_none_or(|f| f < to))
            .find(|r| {
                let seen = r.alive || r.last_seen.is_none_or(|l| l >= from);
                let now = r.alive.then(|| held.get(&r.prog_id)).flatten();
                seen && asked.filter.keeps(
                    &r.name,
                    &r.full_name,
                    &r.prog_type,
                    now.map(|c| Held::of(c)),
                )
            });
        if let Some(r) = kept {
            return Ok(Some(Series {
                first_seen_ns: WallNs::of_known(r.first_seen).ns(),
                series_id: r.series_id,
                prog_id: r.prog_id,
                full_name: r.full_name,
                prog_type: r.prog_type,
            }));
        }
        first = last.saturating_add(1);
    }
}

/// At most `max` points of series `id` over `range`, and where it goes on; `cum`: its
/// cumulative counters at the range's start, when a page before read them.
fn points(
    s: &Store,
    id: i64,
    range: (SystemTime, SystemTime),
    (step, max): (Duration, u64),
    cum: Option<Cum>,
) -> Result<(Vec<Point>, Option<i64>), Error> {
    let known = cum.map(|(run_cnt, run_time_ns)| Counters {
        run_cnt,
        run_time_ns,
    });
    let (h, next) = s
        .series_page(id, range, step, max, known)
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
