//! Answers that can be megabytes (`Top` over months with 10 000 rows is 4.5 MB on the wire and
//! three times that while it is made) are made a few at a time: at most [`HEAVY_AT_ONCE`] over
//! all callers and one per caller (a private-socket user, a bus sender). On the private socket
//! the turn is held until the answer is written whole, so a peer that does not read its
//! answers holds one answer's memory, not one per call (two connections of one user held 8
//! answers, 130 MiB: an OOM kill under the unit's 128 MiB).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use ebpfstat_dbus::Error;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::shared::lock;

/// Heavy answers being made or written at once, over all callers.
pub const HEAVY_AT_ONCE: usize = 3;

/// Who asks: one turn at a time each.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Caller {
    /// A user of the private socket.
    Uid(u32),
    /// A bus sender (its unique name).
    Sender(String),
}

/// The turns: over all callers, and each caller's own.
#[derive(Debug)]
pub struct Heavy {
    all: Arc<Semaphore>,
    mine: Mutex<HashMap<Caller, Arc<Semaphore>>>,
}

impl Default for Heavy {
    fn default() -> Self {
        Self {
            all: Arc::new(Semaphore::new(HEAVY_AT_ONCE)),
            mine: Mutex::default(),
        }
    }
}

/// A heavy answer's turn, given back when dropped.
#[derive(Debug)]
pub struct HeavyTurn {
    _mine: OwnedSemaphorePermit,
    _all: OwnedSemaphorePermit,
}

impl Heavy {
    /// Waits for `caller`'s turn, then for one among all (in that order, so a caller waiting
    /// for its own turn holds none of the shared ones).
    pub async fn turn(&self, caller: Caller) -> Result<HeavyTurn, Error> {
        let mine = {
            let mut map = lock(&self.mine);
            // A semaphore nobody holds or waits for (only the map has it) is forgotten: the map
            // stays as big as the callers at work.
            map.retain(|_, s| Arc::strong_count(s) > 1);
            Arc::clone(
                map.entry(caller)
                    .or_insert_with(|| Arc::new(Semaphore::new(1))),
            )
        };
        let closed = |_| Error::Unavailable("the daemon is stopping".into());
        let mine = mine.acquire_owned().await.map_err(closed)?;
        let all = Arc::clone(&self.all)
            .acquire_owned()
            .await
            .map_err(closed)?;
        Ok(HeavyTurn {
            _mine: mine,
            _all: all,
        })
    }
}
