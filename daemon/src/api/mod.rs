//! The D-Bus object `org.ebpfstat.Stats1`, served on the system bus and on a private socket.
//!
//! Handlers run on the async runtime; everything that reads the store is asked of the storage
//! thread as a typed [`queries::Query`] and awaited, so no query ever runs on the sampling
//! thread.

mod args;
mod compare;
mod convert;
mod export;
mod filter;
mod groups;
mod heavy;
mod loaded;
mod names;
pub mod page;
pub mod peer;
mod profile;
mod properties;
pub mod queries;
pub mod sample;
pub mod socket;
mod status;
mod turns;
mod usage;

use std::sync::Arc;
use std::time::Duration;

use ebpfstat_dbus::{self as wire, Error, Options, SortKey};
use ebpfstat_numbers::WallNs;
use ebpfstat_numbers::rank;
use ebpfstat_numbers::time::duration_ns;
use tokio::sync::{mpsc, oneshot};
use zbus::message::Header;

pub use properties::signal_changes;

use crate::alerts;
use crate::sampler::Pass;
use crate::sampler::maps::MapSample;
use crate::shared::{SamplerCmd, Shared, lock};
use args::{
    Spec, bounded, check_options, check_range, map_target, max_points, parse_spec, query_error,
    sort_key,
};
use filter::{Filter, Held};
use names::quoted;
use queries::{HistoryAsk, Query};

/// The served object.
#[derive(Debug, Clone)]
pub struct Stats1 {
    shared: Arc<Shared>,
    /// Questions for the storage thread.
    store: mpsc::Sender<Query>,
    /// Calls being answered per bus sender.
    turns: Arc<turns::Turns>,
    /// Heavy answers' turns.
    heavy: Arc<heavy::Heavy>,
    /// The programs being profiled.
    profiling: Arc<profile::Profiling>,
    /// The private-socket peer this copy serves; `None` on the bus.
    peer: Option<PeerCtx>,
}

/// A private-socket peer: its user and its calls in flight.
#[derive(Debug, Clone)]
struct PeerCtx {
    uid: u32,
    flow: Arc<peer::Flow>,
}

/// Whether the call `hdr` heads wants a reply.
fn wants_reply(hdr: &Header<'_>) -> bool {
    !hdr.primary()
        .flags()
        .contains(zbus::message::Flags::NO_REPLY_EXPECTED)
}

impl Stats1 {
    pub fn new(shared: Arc<Shared>, store: mpsc::Sender<Query>) -> Self {
        Self {
            shared,
            store,
            turns: Arc::default(),
            heavy: Arc::default(),
            profiling: Arc::default(),
            peer: None,
        }
    }

    /// This object as one private-socket peer's connection serves it.
    pub fn for_peer(&self, uid: u32, flow: Arc<peer::Flow>) -> Self {
        Self {
            peer: Some(PeerCtx { uid, flow }),
            ..self.clone()
        }
    }

    /// Lets a call in: on the bus within its sender's share (`Busy` past it); on the private
    /// socket its read was let in already (see [`peer`]), and the sender there is whatever
    /// the peer wrote: it is not counted against a bus name.
    fn admit(&self, hdr: &Header<'_>) -> Result<Option<turns::Turn>, Error> {
        match self.peer {
            Some(_) => Ok(None),
            None => self.turns.take(hdr),
        }
    }

    /// Waits for a heavy answer's turn ([`heavy`]), held until the handler ends and, on the
    /// private socket, until the answer is written too (`dbus-daemon` takes answers as they
    /// come).
    async fn heavy(&self, hdr: &Header<'_>) -> Result<Arc<heavy::HeavyTurn>, Error> {
        let caller = match &self.peer {
            Some(p) => heavy::Caller::Uid(p.uid),
            None => heavy::Caller::Sender(hdr.sender().map(|s| s.to_string()).unwrap_or_default()),
        };
        let turn = Arc::new(self.heavy.turn(caller).await?);
        if let Some(p) = &self.peer {
            // A peer let go while this call waited: its answer could not be written.
            if p.flow.is_ended() {
                return Err(Error::Unavailable("the connection ended".into()));
            }
            if wants_reply(hdr) {
                let serial = hdr.primary().serial_num().get();
                p.flow.hold_until_answered(serial, Arc::clone(&turn));
            }
        }
        Ok(turn)
    }

    /// The newest pass, if there is one yet.
    fn latest_pass(&self) -> Option<Arc<Pass>> {
        // A thread that panicked while setting it left a whole `Option` behind: read it.
        let latest = lock(&self.shared.latest);
        latest.clone()
    }

    /// Why `name` names no loaded program: it was loaded once (its history remains), or it
    /// is the start of several names, or nothing like it was ever seen.
    async fn not_loaded(&self, name: &str, among_loaded: names::Found) -> Error {
        let owned = name.to_owned();
        let found = self
            .ask(|r| Query::FindName(owned.clone(), r))
            .await
            .and_then(|r| r.map_err(query_error));
        let found = match found {
            Ok(f) => f,
            Err(e) => return e,
        };
        match (found, among_loaded) {
            (_, several @ names::Found::Several(_)) => {
                names::not_found(&owned, &several, "program")
            }
            (names::Found::One(full), _) => Error::NoSuchProgram(format!(
                "{} is not loaded now; its history remains: ebpfstatctl history {full}",
                quoted(&owned)
            )),
            (found, _) => names::not_found(&owned, &found, "program was ever seen"),
        }
    }

    /// The stats state every view shows (the sampler publishes it after each pass).
    fn published_state(&self) -> String {
        self.shared
            .published
            .borrow()
            .stats_state
            .clone()
            .unwrap_or_else(|| "unknown: no pass yet".into())
    }

    /// The newest pass's maps the filter `options` keep, each as `row` makes it.
    fn maps_as<T>(&self, options: &Options, row: fn(&MapSample) -> T) -> Result<Vec<T>, Error> {
        check_options(options, &filter::KEYS)?;
        let filter = Filter::for_maps(options)?;
        Ok(self
            .latest()?
            .maps
            .iter()
            .filter(|m| filter.keeps(&m.name, &m.name, m.map_type, Some(Held::map(&m.owners))))
            .map(|m| row(m))
            .collect())
    }

    fn latest(&self) -> Result<Arc<Pass>, Error> {
        self.latest_pass()
            .ok_or_else(|| Error::Unavailable("no sampling pass yet; try again in a second".into()))
    }

    /// A window's stored programs that `filter` keeps (`held`: what the loaded ones have now),
    /// the first `n` by the key, and all of them summed.
    async fn ranking(
        &self,
        filter: Filter,
        held: filter::HeldNow,
        range: (std::time::SystemTime, std::time::SystemTime),
        rank: (SortKey, usize),
    ) -> Result<ebpfstat_store::Ranking, Error> {
        // The filter keeps rows before they are ranked: only the first `n` are ordered.
        let keep = move |r: &ebpfstat_store::TopRow| {
            let now = r
                .series
                .alive
                .then(|| held.get(&r.series.prog_id))
                .flatten()
                .map(|c| Held::of(c));
            filter.keeps(
                &r.series.name,
                &r.series.full_name,
                &r.series.prog_type,
                now,
            )
        };
        self.ask(|reply| Query::Ranking {
            range,
            rank,
            keep: Box::new(keep),
            reply,
        })
        .await?
        .map_err(query_error)
    }

    /// `Groups` since load: the newest pass's programs that `filter` keeps.
    fn groups_since_load(
        &self,
        filter: &Filter,
        by: groups::GroupBy,
        rank: (SortKey, usize),
    ) -> Result<(wire::TopInfo, Vec<wire::Group>), Error> {
        let pass = self.latest()?;
        let kept: Vec<&crate::sampler::ProgramSample> = pass
            .programs
            .iter()
            .filter(|p| {
                filter.keeps(
                    &p.meta.name,
                    &p.meta.full_name,
                    p.meta.prog_type,
                    Some(Held::of(&p.context)),
                )
            })
            .collect();
        let info = wire::TopInfo {
            programs: u64::try_from(kept.len()).unwrap_or(u64::MAX),
            observed_ns: 0,
            stats_overhead_ns: 0.0,
            stats_overhead_pct: 0.0,
        };
        Ok((info, groups::since_load(&kept, &pass, by, rank)))
    }

    /// Asks the storage thread `query` (made with the channel its answer comes back on).
    async fn ask<T>(&self, query: impl FnOnce(oneshot::Sender<T>) -> Query) -> Result<T, Error> {
        let (tx, rx) = oneshot::channel();
        let gone = || Error::Unavailable("the history store is shutting down".into());
        self.store.send(query(tx)).await.map_err(|_| gone())?;
        rx.await.map_err(|_| gone())
    }
}

/// The options that rank a snapshot's programs by their values since load.
const RANKING_KEYS: [(&str, &str); 2] = [("sort_by", "s"), ("n", "u")];

/// The ranking a snapshot's options ask for: `sort_by`, and `n` (every program if absent).
fn since_load_ranking(options: &Options) -> Result<Option<(SortKey, usize)>, Error> {
    // `check_options` made sure of their types.
    let n = options.get("n").map(|v| u32::try_from(v).unwrap_or(0));
    match (options.get("sort_by"), n) {
        (None, None) => Ok(None),
        (None, Some(_)) => Err(Error::InvalidArgument(
            "option \"n\" needs \"sort_by\"".into(),
        )),
        (Some(v), n) => {
            let key = sort_key(<&str>::try_from(v).unwrap_or(""))?;
            Ok(Some((key, n.map_or(Ok(usize::MAX), top_n)?)))
        }
    }
}

/// `n` of a ranking, checked.
fn top_n(n: u32) -> Result<usize, Error> {
    if n == 0 || n > wire::MAX_TOP_N {
        return Err(Error::InvalidArgument(format!(
            "n is {n}; it must be between 1 and {}",
            wire::MAX_TOP_N
        )));
    }
    usize::try_from(n).map_err(|_| Error::InvalidArgument(format!("n is {n}: too many")))
}

#[zbus::interface(name = "org.ebpfstat.Stats1")]
impl Stats1 {
    #[zbus(out_args("snapshot"))]
    async fn snapshot(
        &self,
        #[zbus(header)] hdr: Header<'_>,
        options: Options,
    ) -> Result<wire::Snapshot, Error> {
        let _admitted = self.admit(&hdr)?;
        let _heavy = self.heavy(&hdr).await?;
        check_options(&options, &[&filter::KEYS[..], &RANKING_KEYS].concat())?;
        let filter = Filter::from_options(&options)?;
        let ranking = since_load_ranking(&options)?;
        let pass = self.latest()?;
        let mut keys: Vec<(usize, u32, u64)> = pass
            .programs
            .iter()
            .enumerate()
            .filter(|(_, p)| {
                filter.keeps(
                    &p.meta.name,
                    &p.meta.full_name,
                    p.meta.prog_type,
                    Some(Held::of(&p.context)),
                )
            })
            .map(|(i, p)| (i, p.meta.id, p.meta.load_boottime_ns))
            .collect();
        if let Some((key, n)) = ranking {
            let ranked = |k: &(usize, u32, u64)| pass.programs[k.0].ranked_since_load();
            rank::rank(&mut keys, key, n, ranked, |k| i64::from(k.1));
        }
        let shown = self.ask(|r| Query::SeriesIds(keys, r)).await?;
        Ok(convert::snapshot(&pass, &shown, self.published_state()))
    }

    #[zbus(out_args("info", "rows"))]
    async fn top(
        &self,
        #[zbus(header)] hdr: Header<'_>,
        from_ns: i64,
        to_ns: i64,
        sort_by: &str,
        n: u32,
        options: Options,
    ) -> Result<(wire::TopInfo, Vec<wire::TopRow>), Error> {
        let _admitted = self.admit(&hdr)?;
        let _heavy = self.heavy(&hdr).await?;
        check_options(&options, &filter::KEYS)?;
        let filter = Filter::from_options(&options)?;
        let key = sort_key(sort_by)?;
        let n = top_n(n)?;
        let (from, to) = (
            WallNs::from_ns(from_ns).time(),
            WallNs::from_ns(to_ns).time(),
        );
        // What the programs loaded now have (holders, attach points), when the filter asks.
        let held = filter.held_now(self.latest_pass().as_deref());
        let ranking = self.ranking(filter, held, (from, to), (key, n)).await?;
        Ok((
            convert::top_info(&ranking.overall),
            ranking.rows.into_iter().map(convert::top_row).collect(),
        ))
    }

    #[zbus(out_args("info", "groups"))]
    #[expect(clippy::too_many_arguments, reason = "the D-Bus method's arguments")]
    async fn groups(
        &self,
        #[zbus(header)] hdr: Header<'_>,
        group_by: &str,
        from_ns: i64,
        to_ns: i64,
        sort_by: &str,
        n: u32,
        options: Options,
    ) -> Result<(wire::TopInfo, Vec<wire::Group>), Error> {
        let _admitted = self.admit(&hdr)?;
        let _heavy = self.heavy(&hdr).await?;
        check_options(
            &options,
            &[&filter::KEYS[..], &[("since_load", "b")]].concat(),
        )?;
        let filter = Filter::from_options(&options)?;
        let by = groups::group_by(group_by)?;
        let rank = (sort_key(sort_by)?, top_n(n)?);
        if options
            .get("since_load")
            .and_then(|v| bool::try_from(v).ok())
            == Some(true)
        {
            return self.groups_since_load(&filter, by, rank);
        }
        let (from, to) = (
            WallNs::from_ns(from_ns).time(),
            WallNs::from_ns(to_ns).time(),
        );
        let pass = self.latest_pass();
        // Every program's holders: each row needs its group.
        let held = filter::held_now(pass.as_deref());
        let all = (rank.0, usize::MAX);
        let ranking = self.ranking(filter, held.clone(), (from, to), all).await?;
        let groups = groups::of_window(&ranking.rows, &held, pass.as_deref(), by, rank);
        Ok((convert::top_info(&ranking.overall), groups))
    }

    #[zbus(out_args("info", "points"))]
    async fn history(
        &self,
        #[zbus(header)] hdr: Header<'_>,
        program: &str,
        from_ns: i64,
        to_ns: i64,
        step_ns: u64,
        options: Options,
    ) -> Result<(wire::HistoryInfo, Vec<wire::HistoryPoint>), Error> {
        let _admitted = self.admit(&hdr)?;
        let _heavy = self.heavy(&hdr).await?;
        check_options(&options, &[("tier", "s"), ("max_points", "u")])?;
        let spec = parse_spec(program)?;
        let tier = match options.get("tier") {
            None => None,
            Some(v) => {
                // `check_options` made sure it is a string.
                let name = <&str>::try_from(v).unwrap_or("");
                let tier = bounded("the tier", name, 64)?
                    .parse::<wire::Tier>()
                    .map_err(|e| Error::InvalidArgument(e.to_string()))?;
                Some(convert::store_tier(tier))
            }
        };
        let max_points = max_points(&options, wire::DEFAULT_HISTORY_POINTS)?;
        check_range(from_ns, to_ns, step_ns)?;
        // Never finer than passes are taken: finer steps would repeat the same samples.
        let interval = duration_ns(self.shared.published.borrow().interval);
        let step = Duration::from_nanos(step_ns.max(interval));
        let range = (
            WallNs::from_ns(from_ns).time(),
            WallNs::from_ns(to_ns).time(),
        );
        let ask = HistoryAsk {
            spec,
            range,
            step,
            tier,
            max_points,
        };
        let (h, next) = self.ask(|r| Query::History(ask, r)).await??;
        let next = next.map_or(0, |t| WallNs::of(t).ns());
        Ok(convert::history(h, next))
    }

    #[zbus(out_args("text", "next"))]
    async fn export(
        &self,
        #[zbus(header)] hdr: Header<'_>,
        from_ns: i64,
        to_ns: i64,
        step_ns: u64,
        options: Options,
    ) -> Result<(String, String), Error> {
        let _admitted = self.admit(&hdr)?;
        let _heavy = self.heavy(&hdr).await?;
        self.export_page(from_ns, to_ns, step_ns, options).await
    }

    #[zbus(out_args("comparison"))]
    async fn compare(
        &self,
        #[zbus(header)] hdr: Header<'_>,
        program: &str,
        before: &str,
        after: &str,
        options: Options,
    ) -> Result<wire::Comparison, Error> {
        let _admitted = self.admit(&hdr)?;
        let _heavy = self.heavy(&hdr).await?;
        self.compare_versions(program, before, after, options).await
    }

    /// Answers once the profile ends: call it with a timeout longer than duration_ns.
    #[zbus(out_args("profile"))]
    async fn profile(
        &self,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &zbus::Connection,
        program: &str,
        duration_ns: u64,
        options: Options,
    ) -> Result<wire::Profile, Error> {
        // No heavy turn: it mostly waits, and reads little.
        let _admitted = self.admit(&hdr)?;
        self.run_profile(conn, &hdr, program, duration_ns, &options)
            .await
    }

    #[zbus(out_args("events"))]
    async fn events(
        &self,
        #[zbus(header)] hdr: Header<'_>,
        since_ns: i64,
        options: Options,
    ) -> Result<Vec<wire::Event>, Error> {
        let _admitted = self.admit(&hdr)?;
        let _heavy = self.heavy(&hdr).await?;
        check_options(&options, &[])?;
        let since = WallNs::from_ns(since_ns).time();
        let events = self
            .ask(|r| Query::Events(since, r))
            .await?
            .map_err(|e| Error::Unavailable(format!("the history store failed: {e}")))?;
        Ok(events.into_iter().map(convert::event).collect())
    }

    /// Signalled when a new version of a program was compared with the one before, once it
    /// had run enough (compare_min_runs over compare_min_time); kept as an event too.
    #[zbus(signal)]
    pub async fn version_compared(
        emitter: &zbus::object_server::SignalEmitter<'_>,
        comparison: wire::Comparison,
    ) -> zbus::Result<()>;

    #[zbus(out_args("active", "changes"))]
    async fn alerts(
        &self,
        #[zbus(header)] hdr: Header<'_>,
        since_ns: i64,
        options: Options,
    ) -> Result<(Vec<wire::Alert>, Vec<wire::Alert>), Error> {
        let _admitted = self.admit(&hdr)?;
        let _heavy = self.heavy(&hdr).await?;
        check_options(&options, &[])?;
        let since = WallNs::from_ns(since_ns).time();
        let changes = self
            .ask(|r| Query::Alerts(since, r))
            .await?
            .map_err(|e| Error::Unavailable(format!("the history store failed: {e}")))?;
        let raised = Arc::clone(&lock(&self.shared.alerts));
        Ok((
            raised
                .active
                .iter()
                .map(|c| convert::alert(alerts::record_of(c, alerts::text(c))))
                .collect(),
            changes.into_iter().map(convert::alert).collect(),
        ))
    }

    /// Signalled when an alert is raised or cleared (at most 100 a pass); kept too.
    #[zbus(signal)]
    pub async fn alert_changed(
        emitter: &zbus::object_server::SignalEmitter<'_>,
        alert: wire::Alert,
    ) -> zbus::Result<()>;

    #[zbus(out_args("detail"))]
    async fn program(
        &self,
        #[zbus(header)] hdr: Header<'_>,
        program: &str,
    ) -> Result<wire::ProgramDetail, Error> {
        let _admitted = self.admit(&hdr)?;
        let spec = parse_spec(program)?;
        let pass = self.latest()?;
        let p = self.one_loaded(&pass, &spec, program).await?;
        let series = match spec {
            // The series asked for is the one found loaded above.
            Spec::Series(series) => series,
            Spec::Id(_) | Spec::Name(_) | Spec::Digits(_) => {
                let key = (p.meta.id, p.meta.load_boottime_ns);
                self.ask(|r| Query::SeriesIdOf(key, r)).await?.unwrap_or(0)
            }
        };
        Ok(convert::detail(&pass, p, series))
    }

    #[zbus(out_args("maps"))]
    async fn maps(
        &self,
        #[zbus(header)] hdr: Header<'_>,
        options: Options,
    ) -> Result<Vec<wire::MapRow>, Error> {
        let _admitted = self.admit(&hdr)?;
        let _heavy = self.heavy(&hdr).await?;
        self.maps_as(&options, convert::map_row)
    }

    #[zbus(out_args("usage"))]
    async fn map_usage(
        &self,
        #[zbus(header)] hdr: Header<'_>,
        options: Options,
    ) -> Result<Vec<wire::MapUsage>, Error> {
        let _admitted = self.admit(&hdr)?;
        let _heavy = self.heavy(&hdr).await?;
        self.maps_as(&options, convert::map_usage)
    }

    #[zbus(out_args("info", "points"))]
    async fn map_history(
        &self,
        #[zbus(header)] hdr: Header<'_>,
        map: &str,
        from_ns: i64,
        to_ns: i64,
        options: Options,
    ) -> Result<(wire::MapHistoryInfo, Vec<wire::MapHistoryPoint>), Error> {
        let _admitted = self.admit(&hdr)?;
        let _heavy = self.heavy(&hdr).await?;
        check_options(&options, &[("max_points", "u")])?;
        let max = max_points(&options, wire::DEFAULT_MAP_HISTORY_POINTS)?;
        let target = map_target(map)?;
        check_range(from_ns, to_ns, 1)?;
        let range = (
            WallNs::from_ns(from_ns).time(),
            WallNs::from_ns(to_ns).time(),
        );
        let max = usize::try_from(max).unwrap_or(usize::MAX);
        let h = self
            .ask(|r| Query::MapHistory((target, range, max), r))
            .await?
            .map_err(query_error)?;
        Ok(convert::map_history(&h))
    }

    #[zbus(out_args("status"))]
    async fn status(&self, #[zbus(header)] hdr: Header<'_>) -> Result<Options, Error> {
        let _admitted = self.admit(&hdr)?;
        Ok(self.health().await?.to_map())
    }

    #[zbus(out_args("ns_per_run", "spread_ns", "source"))]
    async fn calibrate(
        &self,
        #[zbus(header)] hdr: Header<'_>,
    ) -> Result<(f64, f64, String), Error> {
        let _admitted = self.admit(&hdr)?;
        // A measurement holds the sampling thread (~0.2 s) and logs a line: a caller in a loop
        // (20 000 calls in 0.5 s) stalled sampling and flooded the log. One is made a period
        // (Quiet's minute); calls meanwhile get the cost in use, counted in the next line.
        static MEASURED: std::sync::Mutex<Option<crate::quiet::Quiet>> =
            std::sync::Mutex::new(None);
        let due = lock(&MEASURED)
            .get_or_insert_with(Default::default)
            .note(std::time::Instant::now());
        let Some(calls) = due else {
            let cost = Arc::clone(&self.latest()?.stats_cost);
            return Ok((cost.ns_per_run, cost.spread_ns, cost.source.clone()));
        };
        if calls > 1 {
            tracing::info!(
                "Calibrate(): {} calls since the last measurement got the cost in use",
                calls - 1
            );
        }
        let (tx, rx) = oneshot::channel();
        let gone = || Error::Unavailable("the sampler is not running".into());
        self.shared
            .sampler_cmds
            .send(SamplerCmd::Calibrate(tx))
            .map_err(|_| gone())?;
        let cost = rx.await.map_err(|_| gone())?;
        Ok((cost.ns_per_run, cost.spread_ns, cost.source))
    }

    /// Changes with every pass: never signalled (proxies do not cache it); read it when needed.
    #[zbus(property(emits_changed_signal = "false"))]
    async fn stats_overhead_pct(&self) -> f64 {
        self.latest_pass()
            .and_then(|p| p.stats_overhead)
            .unwrap_or_default()
            .percent()
    }

    #[zbus(property(emits_changed_signal = "const"))]
    async fn version(&self) -> String {
        env!("CARGO_PKG_VERSION").to_owned()
    }

    #[zbus(property(emits_changed_signal = "const"))]
    async fn kernel(&self) -> String {
        self.shared.kernel.release.clone()
    }

    /// Signalled (`PropertiesChanged`) after a pass that changed it.
    #[zbus(property)]
    async fn stats_state(&self) -> String {
        self.published_state()
    }

    #[zbus(property(emits_changed_signal = "const"))]
    async fn memlock_meaning(&self) -> String {
        self.shared.kernel.memlock.as_str().to_owned()
    }

    /// Signalled when a reload changes it, as are RetentionNs and CapBytes.
    #[zbus(property)]
    async fn interval_ns(&self) -> u64 {
        duration_ns(self.shared.published.borrow().interval)
    }

    #[zbus(property)]
    async fn retention_ns(&self) -> (u64, u64, u64) {
        let r = self.shared.published.borrow().retention;
        (
            duration_ns(r.raw),
            duration_ns(r.min1),
            duration_ns(r.hour1),
        )
    }

    #[zbus(property)]
    async fn cap_bytes(&self) -> u64 {
        self.shared.published.borrow().cap_bytes
    }

    /// Signalled after a flush that changed it.
    #[zbus(property)]
    async fn database_bytes(&self) -> u64 {
        self.shared.published.borrow().database_bytes
    }
}
