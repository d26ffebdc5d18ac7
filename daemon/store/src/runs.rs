//! Whether the daemon's previous run on this database stopped in order: a mark in `meta`
//! (`running`), set when a run begins and cleared when it ends in order, after its last flush.
//! A run killed (SIGKILL, the OOM killer), aborted by a panic or cut off by a power loss leaves
//! it set, and the next run says so: in the log, in status and as an event.

use std::time::SystemTime;

use serde::Serialize;

use crate::Store;
use crate::error::StoreError;
use crate::events::{Event, KIND_UNCLEAN_STOP};
use crate::model::opt_rfc3339;
use crate::read;
use crate::write::set_meta;

/// The `meta` key of the mark.
const RUNNING: &str = "running";

/// The previous run did not stop in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct UncleanStop {
    /// When the previous run began this one (ours): the moment it was found.
    #[serde(serialize_with = "crate::model::rfc3339")]
    pub found: SystemTime,
    /// The newest sample it had written; what it sampled after, up to a flush interval, is
    /// lost. `None`: it had written none.
    #[serde(serialize_with = "opt_rfc3339")]
    pub last_written: Option<SystemTime>,
}

impl UncleanStop {
    /// In words, for the log and the event.
    pub fn text(&self) -> String {
        let last = self.last_written.map_or_else(
            || "it had written no samples".to_owned(),
            |t| {
                format!(
                    "its newest samples written are from {}; what it sampled after them (up \
                     to a flush interval) is lost",
                    humantime::format_rfc3339_seconds(t)
                )
            },
        );
        format!(
            "the previous run of the daemon did not stop cleanly (killed, crashed or the power \
             was cut): {last}"
        )
    }
}

impl Store {
    /// Begins a run at `now`: finds whether the run before it stopped uncleanly (logged, and
    /// kept as an `unclean_stop` event), then marks this one running.
    pub fn begin_run(&mut self, now: SystemTime) -> Result<Option<UncleanStop>, StoreError> {
        let was_running = read::meta(&self.db.conn, RUNNING)?.is_some_and(|v| v != 0);
        let unclean = if was_running {
            let stop = UncleanStop {
                found: now,
                last_written: read::last_tick(&self.db.conn)?
                    .and_then(|(boot, bt_us)| self.boots.wall_of_us(boot, bt_us)),
            };
            tracing::warn!("{}", stop.text());
            self.record_event(&Event {
                time: now,
                kind: KIND_UNCLEAN_STOP.into(),
                program: String::new(),
                prog_type: String::new(),
                tag: String::new(),
                before_tag: String::new(),
                judged: false,
                significant: false,
                ratio: 0.0,
                ratio_low: 0.0,
                ratio_high: 0.0,
                text: stop.text(),
            })?;
            Some(stop)
        } else {
            None
        };
        self.mark_running(true)?;
        self.unclean = unclean;
        Ok(unclean)
    }

    /// Ends the run in order: the next run finds it stopped cleanly. After the last flush.
    pub fn end_run(&mut self) -> Result<(), StoreError> {
        self.mark_running(false)
    }

    /// How the run before this one ended, when it did not stop cleanly.
    pub fn unclean_stop(&self) -> Option<UncleanStop> {
        self.unclean
    }

    fn mark_running(&mut self, running: bool) -> Result<(), StoreError> {
        let tx = self.db.conn.transaction()?;
        set_meta(&tx, RUNNING, i64::from(running))?;
        tx.commit()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, SystemTime};

    use crate::{Retention, Store, StoreConfig};

    fn open(path: &std::path::Path) -> Store {
        let day = Duration::from_secs(86_400);
        let retention = Retention {
            raw: day,
            min1: day,
            hour1: day,
        };
        Store::open(StoreConfig::new(path, retention, 64 << 20)).expect("open")
    }

    #[test]
    fn a_run_that_did_not_end_is_found_by_the_next() {
        let dir = std::env::temp_dir().join(format!("ebpfstat-runs-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let path = dir.join("h.db");
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let mut s = open(&path);
        assert_eq!(s.begin_run(now).expect("begin"), None, "a new file");
        s.end_run().expect("end");
        drop(s);
        let mut s = open(&path);
        assert_eq!(s.begin_run(now).expect("begin"), None, "it ended in order");
        // Killed: no end.
        drop(s);
        let mut s = open(&path);
        let found = s.begin_run(now).expect("begin").expect("unclean");
        assert_eq!(found.found, now);
        assert_eq!(s.unclean_stop(), Some(found));
        let events = s.events(SystemTime::UNIX_EPOCH, 10).expect("events");
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].kind, "unclean_stop");
        assert!(
            events[0].text.contains("did not stop cleanly"),
            "{events:?}"
        );
        drop(s);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
