//! The view's only way to the daemon: a task that owns the connection and answers typed
//! requests over a channel, one at a time. It connects again after the daemon went away, and
//! bounds every call, so a stalled daemon never freezes the keys.

use std::path::PathBuf;
use std::time::Duration;

use ebpfstat_dbus::{self as wire, Options, Stats1Proxy};
use ebpfstat_numbers::WallNs;
use ebpfstat_numbers::time;
use tokio::sync::mpsc;

use super::chart::{self, Span};
use super::model::Window;
use crate::connect;

/// Longest wait for one answer before the view says the daemon does not answer.
const CALL_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug)]
pub enum Request {
    Table {
        window: Window,
        /// Ask for the window's ranking (Top) too; else the snapshot alone.
        rank: bool,
        /// Sum the programs by this (`g`): ask for the groups too.
        group: Option<wire::GroupBy>,
    },
    Chart {
        /// The program's full name (every load of it) and the series picked in the table.
        name: String,
        series_id: i64,
        /// Kernel id, when loaded now (for its maps, owners and attach points).
        id: Option<u32>,
        span: Span,
        points: u32,
    },
}

/// What the table needs from one refresh.
#[derive(Debug)]
pub struct TableData {
    pub window: Window,
    pub snap: wire::Snapshot,
    /// The window's ranking; `None` for windows the snapshot answers alone.
    pub top: Option<Vec<wire::TopRow>>,
    /// What the ranking adds up to (what stats cost over the window), with `top`.
    pub info: Option<wire::TopInfo>,
    /// The programs summed by what they were asked to be grouped by.
    pub groups: Option<(wire::GroupBy, Vec<wire::Group>)>,
    pub interval: Duration,
}

#[derive(Debug)]
pub struct ChartData {
    pub series_id: i64,
    pub span: Span,
    pub now_ns: i64,
    pub from_ns: i64,
    pub info: wire::HistoryInfo,
    pub points: Vec<wire::HistoryPoint>,
    /// Maps, owners and attach points, when the program is loaded.
    pub detail: Option<wire::ProgramDetail>,
    /// How full its maps are, when the program is loaded.
    pub usage: Vec<wire::MapUsage>,
    /// Its maps' entries over the span (the first [`MAP_CHARTS`] with counted entries), as
    /// stored: by map id, each change (time, entries).
    pub map_entries: Vec<(u32, Vec<(i64, i64)>)>,
}

/// Maps of the program charted beside it at most (each is one call).
pub const MAP_CHARTS: usize = 4;

#[derive(Debug)]
pub enum Reply {
    Table(Result<Box<TableData>, String>),
    Chart(Result<Box<ChartData>, String>),
    Profile(Result<Box<wire::Profile>, String>),
}

/// A profile of program `id` on a connection of its own, which ends with it (or when the task
/// asking is aborted: the daemon then stops tracing).
pub async fn profile(target: Target, id: u32, length: Duration) -> Reply {
    let ns = u64::try_from(length.as_nanos()).unwrap_or(u64::MAX);
    let answer = async {
        let p = connect::connect(target.address.as_deref(), target.socket.as_ref())
            .await
            .map_err(|e| format!("{e:#}"))?;
        p.profile(&format!("id:{id}"), ns, Options::new())
            .await
            .map(Box::new)
            .map_err(say)
    };
    Reply::Profile(answer.await)
}

/// Where the daemon is, as the command line said.
#[derive(Debug, Clone)]
pub struct Target {
    pub address: Option<String>,
    pub socket: Option<PathBuf>,
    pub filter: Options,
}

/// Runs until the view drops its sender.
pub async fn serve(
    target: Target,
    first: Stats1Proxy<'static>,
    mut requests: mpsc::Receiver<Request>,
    replies: mpsc::UnboundedSender<Reply>,
) {
    let mut proxy = Some(first);
    while let Some(request) = requests.recv().await {
        let p = match proxy.take() {
            Some(p) => p,
            None => match tokio::time::timeout(
                CALL_TIMEOUT,
                connect::connect(target.address.as_deref(), target.socket.as_ref()),
            )
            .await
            {
                Ok(Ok(p)) => p,
                failed => {
                    let why = match failed {
                        Ok(Err(e)) => e.to_string(),
                        _ => format!(
                            "connecting to ebpfstatd took more than {}",
                            humantime::format_duration(CALL_TIMEOUT)
                        ),
                    };
                    let reply = match request {
                        Request::Table { .. } => Reply::Table(Err(why)),
                        Request::Chart { .. } => Reply::Chart(Err(why)),
                    };
                    if replies.send(reply).is_err() {
                        return;
                    }
                    continue;
                }
            },
        };
        let (reply, keep) = match request {
            Request::Table {
                window,
                rank,
                group,
            } => {
                let r = bounded(table(&p, &target.filter, window, rank, group)).await;
                let keep = keeps_connection(&r);
                (Reply::Table(r.map(Box::new).map_err(say)), keep)
            }
            Request::Chart {
                name,
                series_id,
                id,
                span,
                points,
            } => {
                let r = bounded(chart(&p, &name, series_id, id, span, points)).await;
                let keep = keeps_connection(&r);
                (Reply::Chart(r.map(Box::new).map_err(say)), keep)
            }
        };
        // After a failure that may be the connection's, the next request connects anew (to a
        // restarted daemon, or its socket again).
        if keep {
            proxy = Some(p);
        }
        if replies.send(reply).is_err() {
            return;
        }
    }
}

async fn bounded<T>(call: impl Future<Output = Result<T, zbus::Error>>) -> Result<T, zbus::Error> {
    tokio::time::timeout(CALL_TIMEOUT, call)
        .await
        .unwrap_or_else(|_| {
            Err(zbus::Error::Failure(format!(
                "ebpfstatd did not answer within {}",
                humantime::format_duration(CALL_TIMEOUT)
            )))
        })
}

/// An answer, or the daemon's own refusal of an argument: the connection is fine.
fn keeps_connection<T>(r: &Result<T, zbus::Error>) -> bool {
    match r {
        Ok(_) => true,
        Err(e) => matches!(
            wire::Error::from(e.clone()),
            wire::Error::NoSuchProgram(_)
                | wire::Error::NoSuchMap(_)
                | wire::Error::InvalidArgument(_)
                | wire::Error::Busy(_)
        ),
    }
}

fn say(e: zbus::Error) -> String {
    format!("{:#}", connect::explain(e))
}

async fn table(
    p: &Stats1Proxy<'static>,
    filter: &Options,
    window: Window,
    rank: bool,
    group: Option<wire::GroupBy>,
) -> Result<TableData, zbus::Error> {
    let snap = p.snapshot(filter.clone()).await?;
    let interval = Duration::from_nanos(p.interval_ns().await?);
    let groups = match group {
        Some(by) => Some((by, groups(p, filter, window, by, (&snap, interval)).await?)),
        None => None,
    };
    let (info, top) = match window {
        Window::Last(d) if rank => {
            let to = snap.time_ns.saturating_add(1);
            let from = to.saturating_sub(time::duration_ns(d).try_into().unwrap_or(i64::MAX));
            let (info, top) = p
                .top(from, to, "cpu", wire::MAX_TOP_N, filter.clone())
                .await?;
            (Some(info), Some(top))
        }
        _ => (None, None),
    };
    Ok(TableData {
        window,
        snap,
        top,
        info,
        groups,
        interval,
    })
}

/// The groups over the window (the last interval's, as long as one interval), or since load.
async fn groups(
    p: &Stats1Proxy<'static>,
    filter: &Options,
    window: Window,
    by: wire::GroupBy,
    (snap, interval): (&wire::Snapshot, Duration),
) -> Result<Vec<wire::Group>, zbus::Error> {
    let mut options = filter.clone();
    let to = snap.time_ns.saturating_add(1);
    let length = match window {
        Window::Last(d) => d,
        Window::Interval => interval,
        Window::SinceLoad => {
            options.insert("since_load".into(), true.into());
            Duration::ZERO
        }
    };
    let from = to.saturating_sub(time::duration_ns(length).try_into().unwrap_or(i64::MAX));
    let (_, groups) = p
        .groups(by.as_str(), from, to, "cpu", wire::MAX_TOP_N, options)
        .await?;
    Ok(groups)
}

async fn chart(
    p: &Stats1Proxy<'static>,
    name: &str,
    series_id: i64,
    id: Option<u32>,
    span: Span,
    points: u32,
) -> Result<ChartData, zbus::Error> {
    let now_ns = WallNs::of(std::time::SystemTime::now()).ns();
    let mut options = Options::new();
    options.insert("max_points".into(), zbus::OwnedVariant::from(points));
    // Every load of the name, so reloads show; when the name means other programs too (another
    // tag loaded later, or loads side by side), the picked load alone.
    let mut spec = name.to_owned();
    let first_seen = match span {
        Span::All => {
            let (retain_raw, retain_1m, retain_1h) = p.retention_ns().await?;
            let longest = retain_raw.max(retain_1m).max(retain_1h);
            let from = now_ns.saturating_sub(i64::try_from(longest).unwrap_or(i64::MAX));
            let len = u64::try_from(now_ns + 1 - from).unwrap_or(u64::MAX);
            let mut one = Options::new();
            one.insert("max_points".into(), zbus::OwnedVariant::from(1u32));
            let (info, _) = p.history(&spec, from, now_ns + 1, len, one.clone()).await?;
            let info = if !chart::not_one_program(&info.series, series_id, now_ns) {
                info
            } else {
                spec = format!("series:{series_id}");
                p.history(&spec, from, now_ns + 1, len, one).await?.0
            };
            info.series
                .iter()
                .map(|s| s.first_seen_ns)
                .filter(|t| *t > 0)
                .min()
        }
        Span::Last(_) => None,
    };
    let (from_ns, to_ns, step) = chart::range(span, now_ns, first_seen.unwrap_or(now_ns), points);
    let (mut info, mut pts) = p
        .history(&spec, from_ns, to_ns, step, options.clone())
        .await?;
    if chart::not_one_program(&info.series, series_id, now_ns) {
        (info, pts) = p
            .history(
                &format!("series:{series_id}"),
                from_ns,
                to_ns,
                step,
                options,
            )
            .await?;
    }
    let detail = match id {
        Some(id) => match p.program(&id.to_string()).await {
            Ok(d) if d.program.series_id == series_id => Some(d),
            Ok(_) => None,
            Err(e) if matches!(wire::Error::from(e.clone()), wire::Error::NoSuchProgram(_)) => None,
            Err(e) => return Err(e),
        },
        None => None,
    };
    let usage = match &detail {
        Some(_) => p.map_usage(Options::new()).await?,
        None => Vec::new(),
    };
    let map_entries = map_entries(p, detail.as_ref(), &usage, (from_ns, to_ns)).await?;
    Ok(ChartData {
        series_id,
        span,
        now_ns,
        from_ns,
        info,
        points: pts,
        detail,
        usage,
        map_entries,
    })
}

/// The entries of the program's first counted maps over `range`, from their stored history; a
/// map the history does not have yet (seen less than a flush ago, or just freed) has none.
async fn map_entries(
    p: &Stats1Proxy<'_>,
    detail: Option<&wire::ProgramDetail>,
    usage: &[wire::MapUsage],
    (from_ns, to_ns): (i64, i64),
) -> zbus::Result<Vec<(u32, Vec<(i64, i64)>)>> {
    let counted = detail
        .into_iter()
        .flat_map(|d| &d.maps)
        .filter(|m| wire::MapUsage::of(usage, m.id).is_some_and(|u| u.counted().is_some()))
        .take(MAP_CHARTS);
    let mut out = Vec::new();
    for m in counted {
        match p
            .map_history(&m.id.to_string(), from_ns, to_ns, Options::new())
            .await
        {
            Ok((_, points)) => {
                out.push((
                    m.id,
                    points
                        .iter()
                        .map(|pt| (pt.time_ns, pt.peak_entries))
                        .collect(),
                ));
            }
            Err(e) if matches!(wire::Error::from(e.clone()), wire::Error::NoSuchMap(_)) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(out)
}
