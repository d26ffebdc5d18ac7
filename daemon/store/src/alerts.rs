//! Alerts raised and cleared, kept beside the history in a bounded ring of their own (a
//! flapping rule cannot push out the version events), so a client that was away can catch up;
//! and the alerts raised now, so a restart carries them on.

use std::time::SystemTime;

use ebpfstat_numbers::WallNs;
use rusqlite::params;

use crate::Store;
use crate::clock::wall_ns;
use crate::error::StoreError;

/// Alert records kept; older ones are dropped as new ones come (about 250 bytes each).
pub const MAX_ALERTS: i64 = 1000;

/// An alert raised or cleared.
#[derive(Debug, Clone, PartialEq)]
pub struct AlertRecord {
    pub time: SystemTime,
    pub rule: String,
    pub metric: String,
    /// `raised` or `cleared`.
    pub state: String,
    /// 0 for a host-wide rule.
    pub prog_id: u32,
    pub program: String,
    pub prog_type: String,
    pub value: f64,
    pub threshold: f64,
    pub clear: f64,
    /// When it was raised.
    pub since: SystemTime,
    pub text: String,
}

fn time_of(ns: i64) -> SystemTime {
    WallNs::from_ns(ns).time()
}

const COLUMNS: &str =
    "time_ns, rule, metric, state, prog_id, program, type, value, threshold, clear, since_ns, text";

fn record(r: &rusqlite::Row<'_>) -> rusqlite::Result<AlertRecord> {
    Ok(AlertRecord {
        time: time_of(r.get(0)?),
        rule: r.get(1)?,
        metric: r.get(2)?,
        state: r.get(3)?,
        prog_id: r.get(4)?,
        program: r.get(5)?,
        prog_type: r.get(6)?,
        value: r.get(7)?,
        threshold: r.get(8)?,
        clear: r.get(9)?,
        since: time_of(r.get(10)?),
        text: r.get(11)?,
    })
}

/// Writes `a` with `insert`, a statement over [`COLUMNS`] in their order.
fn insert_record(
    insert: &mut rusqlite::CachedStatement<'_>,
    a: &AlertRecord,
) -> rusqlite::Result<()> {
    insert.execute(params![
        wall_ns(a.time),
        a.rule,
        a.metric,
        a.state,
        a.prog_id,
        a.program,
        a.prog_type,
        a.value,
        a.threshold,
        a.clear,
        wall_ns(a.since),
        a.text
    ])?;
    Ok(())
}

impl Store {
    /// Keeps `records` (written at once, in one transaction) and drops the oldest beyond
    /// [`MAX_ALERTS`].
    pub fn record_alerts(&mut self, records: &[AlertRecord]) -> Result<(), StoreError> {
        if records.is_empty() {
            return Ok(());
        }
        let tx = self.db.conn.transaction()?;
        {
            let mut insert = tx.prepare_cached(&format!(
                "INSERT INTO alerts ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, \
                 ?11, ?12)"
            ))?;
            for a in records {
                insert_record(&mut insert, a)?;
            }
            tx.execute(
                "DELETE FROM alerts WHERE alert_id <= (SELECT max(alert_id) FROM alerts) - ?1",
                [MAX_ALERTS],
            )?;
        }
        tx.commit()?;
        Ok(())
    }

    /// Records at or after `since`, oldest first, at most `limit`.
    pub fn alerts_since(
        &self,
        since: SystemTime,
        limit: u32,
    ) -> Result<Vec<AlertRecord>, StoreError> {
        let mut stmt = self.db.conn.prepare_cached(&format!(
            "SELECT {COLUMNS} FROM alerts WHERE time_ns >= ?1 ORDER BY alert_id LIMIT ?2"
        ))?;
        let rows = stmt.query_map(params![wall_ns(since), limit], record)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Replaces the list of alerts raised now (at most a bounded number, chosen by the caller),
    /// read back by [`Store::open_alerts`] when the daemon starts again.
    pub fn save_open_alerts(&mut self, raised: &[AlertRecord]) -> Result<(), StoreError> {
        let tx = self.db.conn.transaction()?;
        tx.execute("DELETE FROM open_alerts", [])?;
        {
            let mut insert = tx.prepare_cached(&format!(
                "INSERT OR REPLACE INTO open_alerts ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, \
                 ?7, ?8, ?9, ?10, ?11, ?12)"
            ))?;
            for a in raised {
                insert_record(&mut insert, a)?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// The alerts raised when the list was last saved (at the last flush, and at a stop).
    pub fn open_alerts(&self) -> Result<Vec<AlertRecord>, StoreError> {
        let mut stmt = self.db.conn.prepare_cached(&format!(
            "SELECT {COLUMNS} FROM open_alerts ORDER BY rule, prog_id"
        ))?;
        let rows = stmt.query_map([], record)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}
