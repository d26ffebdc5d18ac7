//! Calls in flight per bus sender. On the private socket a peer that has
//! [`MAX_CALLS_PER_PEER`] calls unanswered is not read from (see [`super::peer`]); the bus
//! connection is every caller's, so it is always read, and a sender past its share is
//! answered `Busy` at once instead of being queued. There is no cap over all senders: one user
//! with many bus connections would fill it for everyone, and what the calls hold is bounded
//! elsewhere (big answers take turns, [`super::heavy`]; `dbus-daemon` bounds connections).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use ebpfstat_dbus::Error;
use zbus::message::Header;

use super::peer::MAX_CALLS_PER_PEER;
use crate::shared::lock;

/// Calls being answered, by bus sender.
#[derive(Debug, Default)]
pub struct Turns {
    by_sender: Mutex<HashMap<String, usize>>,
}

/// A call being answered; its place is given back when dropped.
#[derive(Debug)]
pub struct Turn {
    turns: Arc<Turns>,
    sender: String,
}

impl Turns {
    /// A place for the call `hdr` heads, or `Busy`; `None` for a call without a sender.
    pub fn take(self: &Arc<Self>, hdr: &Header<'_>) -> Result<Option<Turn>, Error> {
        let Some(sender) = hdr.sender() else {
            return Ok(None);
        };
        let mut by_sender = lock(&self.by_sender);
        let mine = by_sender.get(sender.as_str()).copied().unwrap_or(0);
        if mine >= MAX_CALLS_PER_PEER {
            return Err(Error::Busy(format!(
                "{mine} calls of this caller are being answered (at most \
                 {MAX_CALLS_PER_PEER}); call again when one is answered"
            )));
        }
        by_sender.insert(sender.to_string(), mine + 1);
        Ok(Some(Turn {
            turns: Arc::clone(self),
            sender: sender.to_string(),
        }))
    }
}

impl Drop for Turn {
    fn drop(&mut self) {
        let mut by_sender = lock(&self.turns.by_sender);
        if let Some(n) = by_sender.get_mut(&self.sender) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                by_sender.remove(&self.sender);
            }
        }
    }
}
