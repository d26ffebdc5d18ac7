//! Runs a program missed: the kernel's `recursion_misses` (it was already running on that
//! CPU), and its kprobe links' missed hits (another kprobe was running, or a kretprobe had no
//! free instance; Linux 6.7 reports them). Uprobe links report none.

use std::os::fd::AsFd;
use std::sync::Arc;

use super::links::AttachPoint;
use super::model::ProgramContext;
use crate::bpf::sys::{self, ObjKind};

/// A program's misses as read on this pass.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Misses {
    pub recursion: u64,
    /// Its kprobe links' missed hits, summed; `None` when none of its links reports any.
    pub probes: Option<u64>,
}

impl Misses {
    pub fn total(self) -> u64 {
        self.recursion.saturating_add(self.probes.unwrap_or(0))
    }
}

/// Reads again the links the last rescan found reporting missed hits, keeping what changed in
/// the program's context (so `show` tells each link's as of this pass) and in the rescan's
/// links (`scanned`, which contexts are rebuilt from), and gives their sum; `None` when no link
/// of it reports any. A link gone since keeps what it last said. `name` is scratch room for
/// the kernel's names.
pub fn refresh(
    context: &mut Arc<ProgramContext>,
    mut scanned: Option<&mut Vec<AttachPoint>>,
    name: &mut [u8],
) -> Option<u64> {
    let mut sum: Option<u64> = None;
    for i in 0..context.attach.len() {
        let Some(a) = context.attach.get(i).filter(|a| a.missed.is_some()) else {
            continue;
        };
        let link_id = a.link_id;
        let fresh = sys::fd_by_id(ObjKind::Link, link_id)
            .and_then(|fd| sys::link_info(fd.as_fd(), name))
            .map(|r| r.kprobe_missed());
        if let Ok(Some(n)) = fresh
            && a.missed != Some(n)
        {
            if let Some(changed) = Arc::make_mut(context).attach.get_mut(i) {
                changed.missed = Some(n);
            }
            let same = scanned.as_deref_mut().into_iter().flatten();
            for l in same.filter(|l| l.link_id == link_id) {
                l.missed = Some(n);
            }
        }
        let now = context.attach.get(i).and_then(|a| a.missed).unwrap_or(0);
        sum = Some(sum.unwrap_or(0).saturating_add(now));
    }
    sum
}

/// Missed runs per second between the last read (`prev`, its total) and this one, over
/// `elapsed_ns`; `None` without a last read, or when the total went down (links went away).
pub fn per_sec(prev: Option<u64>, now: Misses, elapsed_ns: Option<u64>) -> Option<f64> {
    let more = now.total().checked_sub(prev?)?;
    #[expect(clippy::cast_precision_loss, reason = "counts and ns far below 2^53")]
    Some(ebpfstat_numbers::rates::per_sec(
        more as f64,
        elapsed_ns? as f64,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn misses_per_second_between_reads() {
        let now = Misses {
            recursion: 3,
            probes: Some(7),
        };
        assert_eq!(per_sec(Some(4), now, Some(2_000_000_000)), Some(3.0));
        assert_eq!(per_sec(None, now, Some(1)), None);
        assert_eq!(per_sec(Some(11), now, Some(1)), None);
        assert_eq!(
            Misses {
                recursion: 2,
                probes: None
            }
            .total(),
            2
        );
    }
}
