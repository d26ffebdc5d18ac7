//! What the API may ask the storage thread, as typed questions. The storage thread owns the
//! store; each question carries the channel its answer goes back on, and [`Query::answer`] is
//! the one place the store is read for the API.

use std::time::{Duration, SystemTime};

use ebpfstat_dbus::{self as wire, Error};
use ebpfstat_store::{
    AlertRecord, Event, History, MapHistory, MapTarget, ProgramRef, QueryError, Ranking, Retention,
    SeriesRow, SortKey, Store, StoreError, StoreStatus, Tier, TopRow,
};
use tokio::sync::oneshot;

use super::args::{Spec, program_ref, query_error};
use super::convert;
use super::filter::HeldNow;
use super::page::{Asked, PushAsk, PushBatch, export_page, push_batch};
use crate::compare::{self, CompareError, Needs, NeedsAsked, Pick};
use crate::export::history::Cursor;

/// Where an answer goes.
pub type Reply<T> = oneshot::Sender<T>;

/// Keeps the rows a ranking is about (the view's filters).
pub type Keep = Box<dyn Fn(&TopRow) -> bool + Send>;

/// A history asked for: which program (as the caller named it), the range, the step and tier,
/// and how many points at most.
#[derive(Debug)]
pub struct HistoryAsk {
    pub spec: Spec,
    pub range: (SystemTime, SystemTime),
    pub step: Duration,
    pub tier: Option<Tier>,
    pub max_points: u32,
}

/// Two versions of a program to compare.
#[derive(Debug)]
pub struct CompareAsk {
    pub spec: Spec,
    pub before: Pick,
    pub after: Pick,
    /// What the caller asked of each version; the rest is the daemon's configured needs.
    pub needs: NeedsAsked,
    pub interval: Duration,
}

/// A question for the storage thread, and where its answer goes.
pub enum Query {
    /// What a name finds among every full and kernel name ever stored (found here, so the
    /// names never travel and the search never runs on the API's thread).
    FindName(String, Reply<Result<super::names::Found, QueryError>>),
    /// The series of programs `(index, id, load time)` of a pass.
    SeriesIds(Vec<(usize, u32, u64)>, Reply<Vec<(usize, Option<i64>)>>),
    SeriesIdOf((u32, u64), Reply<Option<i64>>),
    Resolve(ProgramRef, Reply<Result<Vec<SeriesRow>, QueryError>>),
    /// A window's programs that `Keep` keeps: the first `n` by the key, and all of them
    /// summed.
    Ranking {
        range: (SystemTime, SystemTime),
        rank: (SortKey, usize),
        keep: Keep,
        reply: Reply<Result<Ranking, QueryError>>,
    },
    History(
        HistoryAsk,
        Reply<Result<(History, Option<SystemTime>), Error>>,
    ),
    Export(
        Asked,
        HeldNow,
        Reply<Result<(String, Option<Cursor>), Error>>,
    ),
    Compare(CompareAsk, Reply<Result<wire::Comparison, Error>>),
    /// The next batch a push target sends.
    PushBatch(PushAsk, Reply<Result<PushBatch, Error>>),
    /// Where a push target's receiver has everything up to, as stored.
    Pushed(String, Reply<Result<Option<i64>, StoreError>>),
    /// A push target's receiver acknowledged everything up to this time (ns); written at once
    /// when the target is catching up (`true`), else with the next flush.
    SetPushed(String, i64, bool),
    /// Maps over a range, at most so many points.
    MapHistory(
        (MapTarget, (SystemTime, SystemTime), usize),
        Reply<Result<MapHistory, QueryError>>,
    ),
    Events(SystemTime, Reply<Result<Vec<Event>, StoreError>>),
    Alerts(SystemTime, Reply<Result<Vec<AlertRecord>, StoreError>>),
    Status(Reply<Result<StoreStatus, StoreError>>),
    /// A reload's retention and byte cap.
    SetLimits(Retention, u64),
    /// Answered once everything asked before it is done (a reload waits for a flush so).
    Done(Reply<()>),
}

impl std::fmt::Debug for Query {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::FindName(..) => "FindName",
            Self::SeriesIds(..) => "SeriesIds",
            Self::SeriesIdOf(..) => "SeriesIdOf",
            Self::Resolve(..) => "Resolve",
            Self::Ranking { .. } => "Ranking",
            Self::History(..) => "History",
            Self::Export(..) => "Export",
            Self::Compare(..) => "Compare",
            Self::PushBatch(..) => "PushBatch",
            Self::Pushed(..) => "Pushed",
            Self::SetPushed(..) => "SetPushed",
            Self::MapHistory(..) => "MapHistory",
            Self::Events(..) => "Events",
            Self::Alerts(..) => "Alerts",
            Self::Status(_) => "Status",
            Self::SetLimits(..) => "SetLimits",
            Self::Done(_) => "Done",
        })
    }
}

impl Query {
    /// Answers on the storage thread; `needs` are the daemon's configured needs of a version
    /// compared. An answer nobody waits for any more (the caller went away) is dropped.
    pub fn answer(self, s: &mut Store, needs: &Needs) {
        match self {
            Self::FindName(name, r) => {
                let found = s
                    .known_names()
                    .map(|known| super::names::find(&name, &known));
                drop(r.send(found));
            }
            Self::SeriesIds(keys, r) => {
                let ids = keys
                    .iter()
                    .map(|&(i, id, bt)| (i, s.series_id_of(id, bt)))
                    .collect();
                drop(r.send(ids));
            }
            Self::SeriesIdOf((id, bt), r) => drop(r.send(s.series_id_of(id, bt))),
            Self::Resolve(target, r) => drop(r.send(s.resolve(&target))),
            Self::Ranking {
                range,
                rank,
                keep,
                reply,
            } => drop(reply.send(s.ranking(range.0, range.1, rank, &keep))),
            Self::History(ask, r) => drop(r.send(history(s, &ask))),
            Self::Export(asked, owners, r) => drop(r.send(export_page(s, &asked, &owners))),
            Self::Compare(ask, r) => drop(r.send(compare(s, &ask, needs))),
            Self::PushBatch(ask, r) => drop(r.send(push_batch(s, &ask))),
            Self::Pushed(target, r) => drop(r.send(s.pushed(&target))),
            Self::SetPushed(target, at, now) => {
                if let Err(e) = s.set_pushed(&target, at, now) {
                    tracing::warn!(
                        "remote_write {target}: its position: {e} (written with the next flush)"
                    );
                }
            }
            Self::MapHistory((target, range, max), r) => {
                drop(r.send(s.map_history(&target, range, max, SystemTime::now())));
            }
            Self::Events(since, r) => {
                let limit = u32::try_from(ebpfstat_store::MAX_EVENTS).unwrap_or(u32::MAX);
                drop(r.send(s.events(since, limit)));
            }
            Self::Alerts(since, r) => {
                let limit = u32::try_from(ebpfstat_store::MAX_ALERTS).unwrap_or(u32::MAX);
                drop(r.send(s.alerts_since(since, limit)));
            }
            Self::Status(r) => drop(r.send(s.status())),
            Self::SetLimits(retention, cap) => s.set_limits(retention, cap),
            Self::Done(r) => drop(r.send(())),
        }
    }
}

fn history(s: &Store, ask: &HistoryAsk) -> Result<(History, Option<SystemTime>), Error> {
    let target = program_ref(s, &ask.spec)?;
    s.history_page(
        &target,
        ask.range,
        ask.step,
        ask.tier,
        u64::from(ask.max_points),
    )
    .map_err(query_error)
}

fn compare(s: &Store, ask: &CompareAsk, needs: &Needs) -> Result<wire::Comparison, Error> {
    let target = program_ref(s, &ask.spec)?;
    let one = s
        .resolve(&target)
        .map_err(query_error)?
        .into_iter()
        .next()
        .ok_or_else(|| Error::NoSuchProgram("no stored series".into()))?;
    compare::compare(
        s,
        &one.full_name,
        &one.prog_type,
        (&ask.before, &ask.after),
        &needs.with(ask.needs),
        ask.interval,
    )
    .map(|c| convert::comparison(&c))
    .map_err(|e| match e {
        CompareError::Query(q) => query_error(q),
        CompareError::Store(e) => Error::Unavailable(format!("the history store failed: {e}")),
        CompareError::NoVersion(m) => Error::InvalidArgument(m),
    })
}
