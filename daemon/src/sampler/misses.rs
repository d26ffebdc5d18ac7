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
    /// Which links those are (their ids summed): a rate is only taken between two reads of
    /// the same links.
    pub links: u64,
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
) -> (Option<u64>, u64) {
    let mut sum: Option<u64> = None;
    let mut links = 0u64;
    for i in 0..context.attach.len() {
        let Some(a) = context.attach.get(i).filter(|a| a.missed.is_some()) else {
            continue;
        };
        let link_id = a.link_id;
        links = links.wrapping_add(u64::from(link_id));
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
    (sum, links)
}

/// Missed runs per second between the last read (`prev`) and this one, over `elapsed_ns`;
/// `None` without a last read. Probe misses count only between two reads of the same links:
/// a link read for the first time (a program's first rescan, a link attached since) brings
/// its whole past, and one gone takes its share away.
pub fn per_sec(prev: Option<Misses>, now: Misses, elapsed_ns: Option<u64>) -> Option<f64> {
    let prev = prev?;
    let recursion = now.recursion.checked_sub(prev.recursion)?;
    let probes = match (prev.probes, now.probes) {
        (Some(before), Some(after)) if prev.links == now.links => after.saturating_sub(before),
        _ => 0,
    };
    #[expect(clippy::cast_precision_loss, reason = "counts and ns far below 2^53")]
    Some(ebpfstat_numbers::rates::per_sec(
        recursion.saturating_add(probes) as f64,
        elapsed_ns? as f64,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn misses_per_second_between_reads_of_the_same_links() {
        let m = |recursion, probes, links| Misses {
            recursion,
            probes,
            links,
        };
        let now = m(3, Some(7), 11);
        assert_eq!(
            per_sec(Some(m(1, Some(5), 11)), now, Some(2_000_000_000)),
            Some(2.0)
        );
        assert_eq!(per_sec(None, now, Some(1)), None);
        // The links read for the first time: their past is not this interval's.
        assert_eq!(
            per_sec(Some(m(3, None, 0)), now, Some(1_000_000_000)),
            Some(0.0)
        );
        // Another set of links: only the recursion misses count.
        assert_eq!(
            per_sec(Some(m(2, Some(1), 5)), now, Some(1_000_000_000)),
            Some(1.0)
        );
        assert_eq!(m(2, None, 0).total(), 2);
    }
}
