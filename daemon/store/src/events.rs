//! What the daemon concluded, kept beside the history: a bounded ring of events (a new version
//! of a program compared with the one before), so a client that was away can catch up and a
//! restart does not conclude the same thing twice.

use std::time::SystemTime;

use ebpfstat_numbers::WallNs;
use rusqlite::params;

use crate::Store;
use crate::clock::wall_ns;
use crate::error::StoreError;

/// Events kept; older ones are dropped as new ones come (a few hundred bytes each).
pub const MAX_EVENTS: i64 = 1000;

/// The kind of event that is a new version compared with the one before.
pub const KIND_VERSION: &str = "version";
/// The kind of event that says the daemon's previous run did not stop in order.
pub const KIND_UNCLEAN_STOP: &str = "unclean_stop";

/// One event.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub time: SystemTime,
    /// `version`: a new version compared with the one before it.
    pub kind: String,
    pub program: String,
    pub prog_type: String,
    pub tag: String,
    pub before_tag: String,
    pub judged: bool,
    pub significant: bool,
    pub ratio: f64,
    pub ratio_low: f64,
    pub ratio_high: f64,
    pub text: String,
}

impl Store {
    /// Keeps `e` (written at once: events are rare) and drops the oldest beyond
    /// [`MAX_EVENTS`]. A `version` event also marks its version concluded (kept apart from
    /// the ring, for as long as the version has a stored load).
    pub fn record_event(&mut self, e: &Event) -> Result<(), StoreError> {
        let conn = &self.db.conn;
        if e.kind == KIND_VERSION {
            conn.execute(
                "INSERT OR IGNORE INTO concluded (program, type, tag) VALUES (?1, ?2, ?3)",
                params![e.program, e.prog_type, e.tag],
            )?;
            // Versions whose loads retention removed are forgotten.
            conn.execute(
                "DELETE FROM concluded WHERE NOT EXISTS (SELECT 1 FROM series s \
                 WHERE s.full_name = concluded.program AND s.type = concluded.type \
                 AND s.tag = concluded.tag)",
                [],
            )?;
        }
        conn.execute(
            "INSERT INTO events (time_ns, kind, program, type, tag, before_tag, judged, \
             significant, ratio, ratio_low, ratio_high, text) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
            params![
                wall_ns(e.time),
                e.kind,
                e.program,
                e.prog_type,
                e.tag,
                e.before_tag,
                e.judged,
                e.significant,
                e.ratio,
                e.ratio_low,
                e.ratio_high,
                e.text
            ],
        )?;
        conn.execute(
            "DELETE FROM events WHERE event_id <= (SELECT max(event_id) FROM events) - ?1",
            [MAX_EVENTS],
        )?;
        Ok(())
    }

    /// Events at or after `since`, oldest first, at most `limit`.
    pub fn events(&self, since: SystemTime, limit: u32) -> Result<Vec<Event>, StoreError> {
        let mut stmt = self.db.conn.prepare_cached(
            "SELECT time_ns, kind, program, type, tag, before_tag, judged, significant, ratio, \
             ratio_low, ratio_high, text FROM events WHERE time_ns >= ?1 \
             ORDER BY event_id LIMIT ?2",
        )?;
        let rows = stmt.query_map(params![wall_ns(since), limit], |r| {
            let ns: i64 = r.get(0)?;
            Ok(Event {
                time: WallNs::from_ns(ns).time(),
                kind: r.get(1)?,
                program: r.get(2)?,
                prog_type: r.get(3)?,
                tag: r.get(4)?,
                before_tag: r.get(5)?,
                judged: r.get(6)?,
                significant: r.get(7)?,
                ratio: r.get(8)?,
                ratio_low: r.get(9)?,
                ratio_high: r.get(10)?,
                text: r.get(11)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Whether this version of the program was concluded on (compared with the one before).
    pub fn is_concluded(
        &self,
        program: &str,
        prog_type: &str,
        tag: &str,
    ) -> Result<bool, StoreError> {
        let mut stmt = self.db.conn.prepare_cached(
            "SELECT 1 FROM concluded WHERE program = ?1 AND type = ?2 AND tag = ?3",
        )?;
        Ok(stmt.exists(params![program, prog_type, tag])?)
    }
}
