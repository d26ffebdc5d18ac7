//! Calls in flight per bus sender. On the private socket a peer that has
//! [`MAX_CALLS_PER_PEER`] calls unanswered is not read from (see [`super::peer`]); the bus
//! connection is every caller's, so it is always read, and a sender past its share is
//! answered `Busy` at once instead of being queued.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use ebpfstat_dbus::Error;
use zbus::message::Header;

use super::peer::{MAX_CALLS, MAX_CALLS_PER_PEER};
use crate::shared::lock;

/// Calls being answered, by bus sender, and over all of them.
#[derive(Debug, Default)]
pub struct Turns {
    by_sender: Mutex<(usize, HashMap<String, usize>)>,
}

/// A call being answered; its place is given back when dropped.
#[derive(Debug)]
pub struct Turn {
    turns: Arc<Turns>,
    sender: String,
}

impl Turns {
    /// A place for the call `hdr` heads, or `Busy`. Calls on the private socket (no sender)
    /// are bounded where they are read.
    pub fn take(self: &Arc<Self>, hdr: &Header<'_>) -> Result<Option<Turn>, Error> {
        let Some(sender) = hdr.sender() else {
            return Ok(None);
        };
        let mut guard = lock(&self.by_sender);
        let (all, by_sender) = &mut *guard;
        let mine = by_sender.get(sender.as_str()).copied().unwrap_or(0);
        if mine >= MAX_CALLS_PER_PEER || *all >= MAX_CALLS {
            return Err(Error::Busy(format!(
                "{} calls are being answered for {} (at most {MAX_CALLS_PER_PEER} for one \
                 caller, {MAX_CALLS} in all); call again when one is answered",
                if mine >= MAX_CALLS_PER_PEER {
                    mine
                } else {
                    *all
                },
                if mine >= MAX_CALLS_PER_PEER {
                    "this caller"
                } else {
                    "all callers"
                },
            )));
        }
        *all += 1;
        by_sender.insert(sender.to_string(), mine + 1);
        Ok(Some(Turn {
            turns: Arc::clone(self),
            sender: sender.to_string(),
        }))
    }
}

impl Drop for Turn {
    fn drop(&mut self) {
        let mut guard = lock(&self.turns.by_sender);
        let (all, by_sender) = &mut *guard;
        *all = all.saturating_sub(1);
        if let Some(n) = by_sender.get_mut(&self.sender) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                by_sender.remove(&self.sender);
            }
        }
    }
}
