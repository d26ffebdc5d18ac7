//! Per-map history: each map's memory and entries over time, in the three tiers and within
//! the same cap as the programs' history.
//!
//! Maps change slowly (memory when they grow, entries as they fill), and are read at each
//! rescan, not each pass. So a point is kept only when a map's memory or entries changed since
//! the last rescan, in the bucket of each tier (a second, a minute, an hour of wall time) where
//! the change was seen: the last value of the bucket and the most entries seen in it. Between
//! points a map held the last one's values. A map gone has its series ended.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, SystemTime};

use ebpfstat_numbers::WallNs;
use rusqlite::{Connection, OptionalExtension, Transaction, params};

use crate::Store;
use crate::config::Retention;
use crate::error::{QueryError, StoreError};
use crate::tier::Tier;

/// What the store needs of one map at a rescan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MapReading {
    pub id: u32,
    pub name: String,
    pub map_type: &'static str,
    pub max_entries: u32,
    /// Its memory (`memlock`), when the kernel says.
    pub memory: Option<u64>,
    /// Entries as counted, when counted.
    pub entries: Option<u64>,
}

/// One map's life as history knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MapSeries {
    pub map_id: u32,
    pub name: String,
    pub map_type: String,
    pub max_entries: u32,
    pub first_seen: SystemTime,
    /// When it was last seen, if it is gone.
    pub gone: Option<SystemTime>,
    series_id: i64,
}

/// A map's values from `time` on: the last of its bucket, and the most entries in the bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MapPoint {
    pub time: SystemTime,
    /// Index into [`MapHistory::series`].
    pub series: usize,
    pub memory: Option<u64>,
    pub entries: Option<u64>,
    pub peak_entries: Option<u64>,
}

/// Maps over a time range (`Store::map_history`).
#[derive(Debug, Clone, PartialEq)]
pub struct MapHistory {
    pub series: Vec<MapSeries>,
    pub tier: Tier,
    /// Oldest first; each series starts with its value at the range's start, if it had one.
    pub points: Vec<MapPoint>,
    /// Where to go on when the answer was cut at its maximum.
    pub next_from: Option<SystemTime>,
}

/// Which maps `map_history` is asked about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MapTarget {
    /// The newest map with this id.
    Id(u32),
    /// Every map of this name.
    Name(String),
}

/// Series of one name answered at most (the newest).
pub const MAX_MAP_SERIES: usize = 50;

/// Width of a tier's bucket in seconds.
const fn width_s(tier: Tier) -> i64 {
    match tier {
        Tier::Raw => 1,
        Tier::Min1 => 60,
        Tier::Hour1 => 3600,
    }
}

/// The code of a tier in `map_points`.
fn tier_code(tier: Tier) -> i64 {
    i64::try_from(tier.index()).unwrap_or(0)
}

pub(crate) fn wall_s(t: SystemTime) -> i64 {
    WallNs::of(t).secs()
}

fn time_of_s(s: i64) -> SystemTime {
    WallNs::from_secs(s).time()
}

/// A bucket's values: the last of it and the most entries in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Values {
    memory: Option<u64>,
    entries: Option<u64>,
    peak_entries: Option<u64>,
}

impl Values {
    fn then(self, later: Self) -> Self {
        Self {
            peak_entries: self.peak_entries.max(later.peak_entries),
            ..later
        }
    }
}

/// What a map held at a rescan: memory and entries.
type Held = (Option<u64>, Option<u64>);

/// A series made since the last write.
#[derive(Debug, Clone)]
struct NewSeries {
    id: i64,
    boot_seq: i64,
    reading: MapReading,
    first_s: i64,
}

/// What rescans saw since the last write, and what the live maps last held.
#[derive(Debug, Default)]
pub(crate) struct MapBuffer {
    /// Live maps of the current boot: series id and the values last kept.
    live: HashMap<u32, (i64, Held)>,
    boot_seq: Option<i64>,
    next_id: Option<i64>,
    new_series: Vec<NewSeries>,
    ended: Vec<(i64, i64)>,
    points: BTreeMap<(i64, i64, i64), Values>,
}

/// Buffered points beyond which the oldest are dropped (a write that keeps failing).
const MAX_BUFFERED_POINTS: usize = 200_000;

impl MapBuffer {
    /// Takes a rescan's maps, seen at `wall` in boot `boot_seq`.
    pub fn observe(
        &mut self,
        conn: &Connection,
        boot_seq: i64,
        wall: SystemTime,
        maps: &[MapReading],
    ) -> Result<(), StoreError> {
        if self.boot_seq != Some(boot_seq) {
            self.enter_boot(conn, boot_seq, wall)?;
        }
        let now_s = wall_s(wall);
        let mut seen = HashMap::with_capacity(maps.len());
        for m in maps {
            let values = (m.memory, m.entries);
            let (id, before) = match self.live.get(&m.id) {
                Some(&(id, before)) => (id, Some(before)),
                None => (self.new_series(conn, boot_seq, m, now_s)?, None),
            };
            seen.insert(m.id, (id, values));
            if before != Some(values) {
                self.keep_point(id, now_s, values);
            }
        }
        for (_, (id, _)) in self
            .live
            .drain()
            .filter(|(map_id, _)| !seen.contains_key(map_id))
        {
            self.ended.push((id, now_s));
        }
        self.live = seen;
        Ok(())
    }

    fn keep_point(&mut self, id: i64, now_s: i64, (memory, entries): Held) {
        let values = Values {
            memory,
            entries,
            peak_entries: entries,
        };
        for tier in Tier::ALL {
            let key = (tier_code(tier), now_s.div_euclid(width_s(tier)), id);
            let merged = self.points.get(&key).map_or(values, |v| v.then(values));
            self.points.insert(key, merged);
        }
        while self.points.len() > MAX_BUFFERED_POINTS {
            self.points.pop_first();
        }
    }

    fn new_series(
        &mut self,
        conn: &Connection,
        boot_seq: i64,
        m: &MapReading,
        first_s: i64,
    ) -> Result<i64, StoreError> {
        let id = match self.next_id {
            Some(id) => id,
            None => conn.query_row(
                "SELECT coalesce(max(map_series_id), 0) + 1 FROM map_series",
                [],
                |r| r.get(0),
            )?,
        };
        self.next_id = Some(id + 1);
        self.new_series.push(NewSeries {
            id,
            boot_seq,
            reading: m.clone(),
            first_s,
        });
        Ok(id)
    }

    /// A boot entered (the daemon started, or the host rebooted under it): maps another boot
    /// left open end at their last point; this boot's open ones are live again, their values
    /// unknown (so each gets a point at once).
    fn enter_boot(
        &mut self,
        conn: &Connection,
        boot_seq: i64,
        wall: SystemTime,
    ) -> Result<(), StoreError> {
        for (_, (id, _)) in self.live.drain() {
            self.ended.push((id, wall_s(wall)));
        }
        end_other_boots(conn, boot_seq)?;
        let mut stmt = conn.prepare(
            "SELECT map_id, map_series_id FROM map_series WHERE boot_seq = ?1 AND end_s IS NULL",
        )?;
        let rows = stmt.query_map([boot_seq], |r| {
            Ok((r.get::<_, u32>(0)?, r.get::<_, i64>(1)?))
        })?;
        for row in rows {
            let (map_id, id) = row?;
            // Values no map has: the first rescan keeps a point for each.
            self.live
                .insert(map_id, (id, (Some(u64::MAX), Some(u64::MAX))));
        }
        self.boot_seq = Some(boot_seq);
        Ok(())
    }

    /// Writes what is buffered in `tx`; cleared by [`MapBuffer::written`] once committed.
    pub fn write(&self, tx: &Transaction<'_>) -> Result<(), StoreError> {
        let mut series = tx.prepare_cached(
            "INSERT OR IGNORE INTO map_series
                 (map_series_id, boot_seq, map_id, name, type, max_entries, first_s)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        )?;
        for s in &self.new_series {
            let r = &s.reading;
            series.execute(params![
                s.id,
                s.boot_seq,
                r.id,
                r.name,
                r.map_type,
                r.max_entries,
                s.first_s
            ])?;
        }
        let mut end =
            tx.prepare_cached("UPDATE map_series SET end_s = ?2 WHERE map_series_id = ?1")?;
        for (id, at) in &self.ended {
            end.execute(params![id, at])?;
        }
        let mut point = tx.prepare_cached(
            "INSERT INTO map_points (tier, bucket, map_series_id, memory, entries, peak_entries)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)
             ON CONFLICT (tier, bucket, map_series_id) DO UPDATE SET
                 memory = excluded.memory, entries = excluded.entries,
                 peak_entries = CASE WHEN peak_entries IS NULL
                     OR excluded.peak_entries > peak_entries
                     THEN excluded.peak_entries ELSE peak_entries END",
        )?;
        for (&(tier, bucket, id), v) in &self.points {
            point.execute(params![
                tier,
                bucket,
                id,
                v.memory,
                v.entries,
                v.peak_entries
            ])?;
        }
        Ok(())
    }

    pub fn is_empty(&self) -> bool {
        self.new_series.is_empty() && self.ended.is_empty() && self.points.is_empty()
    }

    /// What was written is no longer buffered.
    pub fn written(&mut self) {
        self.new_series.clear();
        self.ended.clear();
        self.points.clear();
    }
}

/// Ends the maps other boots left open (the host rebooted under the daemon, or while it was
/// stopped) at the last tick that boot's history still has, else where they began.
fn end_other_boots(conn: &Connection, boot_seq: i64) -> Result<(), StoreError> {
    let boots: Vec<i64> = conn
        .prepare("SELECT DISTINCT boot_seq FROM map_series WHERE end_s IS NULL AND boot_seq <> ?1")?
        .query_map([boot_seq], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    for boot in boots {
        let last_s: Option<i64> = conn.query_row(
            "SELECT (max(t.last_bt_us) * 1000 + b.wall_offset_ns) / 1000000000
             FROM ticks t JOIN boots b ON b.boot_seq = t.boot_seq WHERE t.boot_seq = ?1",
            [boot],
            |r| r.get(0),
        )?;
        conn.execute(
            "UPDATE map_series SET end_s = max(first_s, coalesce(?2, first_s))
             WHERE boot_seq = ?1 AND end_s IS NULL",
            params![boot, last_s],
        )?;
    }
    Ok(())
}

/// Deletes map points older than each tier keeps, and maps whose every point is gone.
pub(crate) fn retire(
    conn: &Connection,
    retention: &Retention,
    now: SystemTime,
) -> Result<(), StoreError> {
    let now_s = wall_s(now);
    for (tier, kept) in [
        (Tier::Raw, retention.raw),
        (Tier::Min1, retention.min1),
        (Tier::Hour1, retention.hour1),
    ] {
        let cut = now_s.saturating_sub(i64::try_from(kept.as_secs()).unwrap_or(i64::MAX));
        delete_before(conn, tier, cut)?;
    }
    conn.prepare_cached("DELETE FROM map_series WHERE end_s IS NOT NULL AND end_s < ?1")?
        .execute([
            now_s.saturating_sub(i64::try_from(retention.hour1.as_secs()).unwrap_or(i64::MAX))
        ])?;
    Ok(())
}

/// Deletes a tier's map points in buckets that end before `cut_s` (wall seconds).
pub(crate) fn delete_before(conn: &Connection, tier: Tier, cut_s: i64) -> Result<(), StoreError> {
    conn.prepare_cached("DELETE FROM map_points WHERE tier = ?1 AND bucket < ?2")?
        .execute(params![tier_code(tier), cut_s.div_euclid(width_s(tier))])?;
    Ok(())
}

/// The finest tier that keeps `from` (as old as it is at `now`).
fn tier_for(retention: &Retention, from: SystemTime, now: SystemTime) -> Tier {
    let age = now.duration_since(from).unwrap_or(Duration::ZERO);
    if age <= retention.raw {
        Tier::Raw
    } else if age <= retention.min1 {
        Tier::Min1
    } else {
        Tier::Hour1
    }
}

impl Store {
    /// Buffers a rescan's maps; they are written with the next flush.
    pub fn ingest_maps(
        &mut self,
        boot_id: &str,
        wall: SystemTime,
        maps: &[MapReading],
    ) -> Result<(), StoreError> {
        // The tick of the same pass came first and made the boot known.
        let Some(boot_seq) = self.boots.seq_of(boot_id) else {
            return Ok(());
        };
        self.maps.observe(&self.db.conn, boot_seq, wall, maps)
    }

    /// The maps `target` names over `[from, to]`, at most `max_points` points.
    pub fn map_history(
        &self,
        target: &MapTarget,
        (from, to): (SystemTime, SystemTime),
        max_points: usize,
        now: SystemTime,
    ) -> Result<MapHistory, QueryError> {
        let series = self.map_series(target, (from, to))?;
        if series.is_empty() {
            return Err(QueryError::NoSuchMap(match target {
                MapTarget::Id(id) => format!("id {id}"),
                MapTarget::Name(n) => format!("{n:?}"),
            }));
        }
        let tier = tier_for(&self.cfg.retention, from, now);
        let mut points = Vec::new();
        // Each series' first `max_points + 1` are enough to find the first `max_points` of all:
        // memory stays bounded by the answer, however many points the range holds.
        let each = max_points.saturating_add(1);
        for (index, s) in series.iter().enumerate() {
            self.points_of(s.series_id, tier, (from, to), (index, each), &mut points)?;
        }
        ebpfstat_numbers::order::sort_by_key(&mut points, |p| {
            (
                WallNs::of(p.time).ns(),
                i64::try_from(p.series).unwrap_or(i64::MAX),
            )
        });
        let next_from = (points.len() > max_points).then(|| points[max_points].time);
        points.truncate(max_points);
        Ok(MapHistory {
            series,
            tier,
            points,
            next_from,
        })
    }
}

/// Columns of a `map_series` row as [`series_row`] reads them.
const SERIES_COLUMNS: &str = "map_series_id, map_id, name, type, max_entries, first_s, end_s";

fn series_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<MapSeries> {
    Ok(MapSeries {
        series_id: r.get(0)?,
        map_id: r.get(1)?,
        name: r.get(2)?,
        map_type: r.get(3)?,
        max_entries: r.get(4)?,
        first_seen: time_of_s(r.get(5)?),
        gone: r.get::<_, Option<i64>>(6)?.map(time_of_s),
    })
}

impl MapBuffer {
    /// Series made since the last write, as history shows them.
    fn unwritten(&self) -> impl Iterator<Item = MapSeries> + '_ {
        self.new_series.iter().map(|s| MapSeries {
            series_id: s.id,
            map_id: s.reading.id,
            name: s.reading.name.clone(),
            map_type: s.reading.map_type.to_owned(),
            max_entries: s.reading.max_entries,
            first_seen: time_of_s(s.first_s),
            gone: self
                .ended
                .iter()
                .find(|(id, _)| *id == s.id)
                .map(|&(_, at)| time_of_s(at)),
        })
    }

    /// The end of a written series seen since the last write.
    fn ended_at(&self, series_id: i64) -> Option<SystemTime> {
        self.ended
            .iter()
            .find(|(id, _)| *id == series_id)
            .map(|&(_, at)| time_of_s(at))
    }

    /// Buffered points of `series_id` in `tier`, oldest first.
    fn points_of(&self, tier: Tier, series_id: i64) -> impl Iterator<Item = (i64, Values)> + '_ {
        let code = tier_code(tier);
        self.points
            .range((code, i64::MIN, i64::MIN)..=(code, i64::MAX, i64::MAX))
            .filter(move |((_, _, id), _)| *id == series_id)
            .map(|(&(_, bucket, _), &v)| (bucket, v))
    }
}

impl Store {
    /// The series `target` names that lived in `[from, to]`, oldest first (a name's newest
    /// [`MAX_MAP_SERIES`]).
    fn map_series(
        &self,
        target: &MapTarget,
        (from, to): (SystemTime, SystemTime),
    ) -> Result<Vec<MapSeries>, QueryError> {
        let (filter, key) = match target {
            MapTarget::Id(id) => ("map_id = ?1", rusqlite::types::Value::from(i64::from(*id))),
            MapTarget::Name(n) => ("name = ?1", rusqlite::types::Value::from(n.clone())),
        };
        let mut stmt = self.db.conn.prepare_cached(&format!(
            "SELECT {SERIES_COLUMNS} FROM map_series WHERE {filter} ORDER BY map_series_id DESC LIMIT ?2"
        ))?;
        let limit = i64::try_from(MAX_MAP_SERIES).unwrap_or(i64::MAX);
        let mut all: Vec<MapSeries> = stmt
            .query_map(params![key, limit], series_row)?
            .collect::<Result<_, _>>()?;
        for s in &mut all {
            s.gone = s.gone.or(self.maps.ended_at(s.series_id));
        }
        all.extend(self.maps.unwritten().filter(|s| match target {
            MapTarget::Id(id) => s.map_id == *id,
            MapTarget::Name(n) => s.name == *n,
        }));
        all.retain(|s| s.first_seen <= to && s.gone.is_none_or(|g| g >= from));
        ebpfstat_numbers::order::sort_by_key(&mut all, |s| (s.series_id, 0));
        if let MapTarget::Id(_) = target {
            // An id names one map: the newest with it.
            all.drain(..all.len().saturating_sub(1));
        }
        let excess = all.len().saturating_sub(MAX_MAP_SERIES);
        all.drain(..excess);
        Ok(all)
    }

    /// Series `index`'s points in `tier` over `[from, to]`: its value at `from` (from the
    /// tier, else a coarser one), then each bucket it changed in, the first `limit` of them.
    fn points_of(
        &self,
        series_id: i64,
        tier: Tier,
        (from, to): (SystemTime, SystemTime),
        (index, limit): (usize, usize),
        out: &mut Vec<MapPoint>,
    ) -> Result<(), QueryError> {
        let width = width_s(tier);
        let (first, last) = (wall_s(from).div_euclid(width), wall_s(to).div_euclid(width));
        let mut stmt = self.db.conn.prepare_cached(
            "SELECT bucket, memory, entries, peak_entries FROM map_points
             WHERE tier = ?1 AND map_series_id = ?2 AND bucket BETWEEN ?3 AND ?4
             ORDER BY bucket LIMIT ?5",
        )?;
        let n = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = stmt.query_map(params![tier_code(tier), series_id, first, last, n], |r| {
            Ok((r.get::<_, i64>(0)?, values(r, 1)?))
        })?;
        let mut buckets: BTreeMap<i64, Values> = rows.collect::<Result<_, _>>()?;
        for (bucket, v) in self
            .maps
            .points_of(tier, series_id)
            .filter(|(b, _)| (first..=last).contains(b))
        {
            let merged = buckets.get(&bucket).map_or(v, |old| old.then(v));
            buckets.insert(bucket, merged);
        }
        while buckets.len() > limit {
            buckets.pop_last();
        }
        if !buckets.contains_key(&first)
            && let Some(v) = self.value_before(series_id, tier, first * width)?
        {
            out.push(point(
                from,
                index,
                Values {
                    peak_entries: v.entries,
                    ..v
                },
            ));
        }
        out.extend(
            buckets
                .into_iter()
                .map(|(b, v)| point(time_of_s(b * width), index, v)),
        );
        Ok(())
    }

    /// A series' last values before `before_s`, from `tier` or a coarser one.
    fn value_before(
        &self,
        series_id: i64,
        tier: Tier,
        before_s: i64,
    ) -> Result<Option<Values>, QueryError> {
        for t in Tier::ALL.into_iter().filter(|t| *t >= tier) {
            let bucket = before_s.div_euclid(width_s(t));
            let buffered = self
                .maps
                .points_of(t, series_id)
                .filter(|(b, _)| *b < bucket)
                .last();
            if let Some((_, v)) = buffered {
                return Ok(Some(v));
            }
            let stored = self
                .db
                .conn
                .prepare_cached(
                    "SELECT memory, entries, peak_entries FROM map_points
                     WHERE tier = ?1 AND map_series_id = ?2 AND bucket < ?3
                     ORDER BY bucket DESC LIMIT 1",
                )?
                .query_row(params![tier_code(t), series_id, bucket], |r| values(r, 0))
                .optional()?;
            if stored.is_some() {
                return Ok(stored);
            }
        }
        Ok(None)
    }
}

fn values(r: &rusqlite::Row<'_>, first: usize) -> rusqlite::Result<Values> {
    Ok(Values {
        memory: r.get(first)?,
        entries: r.get(first + 1)?,
        peak_entries: r.get(first + 2)?,
    })
}

fn point(time: SystemTime, series: usize, v: Values) -> MapPoint {
    MapPoint {
        time,
        series,
        memory: v.memory,
        entries: v.entries,
        peak_entries: v.peak_entries,
    }
}
