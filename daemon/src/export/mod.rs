//! What leaves the device for fleet engines (Prometheus, VictoriaMetrics, node_exporter): the
//! exposition formats, the metric families, the node_exporter textfile and history exports.
//! Below the API and the service, above the sampler: it reads passes and shared state only.

pub mod families;
pub mod history;
pub mod http;
pub mod remote;
pub mod text;
pub mod textfile;

use std::sync::atomic::Ordering;

use crate::sampler::Pass;
use crate::sampler::procfs::own_usage;
use crate::shared::{Shared, lock};
use families::DaemonFigures;
use text::Format;

/// The live exposition: the newest pass that read every program, and the daemon's own figures.
pub fn live_text(shared: &Shared, format: Format) -> String {
    let (pass, figures) = live_now(shared);
    let mut out = String::with_capacity(512 + pass.as_ref().map_or(0, |p| p.programs.len() * 640));
    families::live(&mut out, format, pass.as_deref(), &figures);
    out
}

/// The newest pass that read every program, and the daemon's own figures now.
pub fn live_now(shared: &Shared) -> (Option<std::sync::Arc<Pass>>, DaemonFigures) {
    let pass: Option<std::sync::Arc<Pass>> = lock(&shared.exported).clone();
    let usage = own_usage().ok();
    let (database_bytes, cap_bytes) = {
        let p = shared.published.borrow();
        (p.database_bytes, p.cap_bytes)
    };
    let s = &shared.sampler;
    let figures = DaemonFigures {
        cpu_ns: usage.map(|u| u.cpu_ns),
        rss_bytes: usage.map(|u| u.rss_bytes),
        database_bytes,
        cap_bytes,
        passes: s.passes.load(Ordering::Relaxed),
        late: s.late.load(Ordering::Relaxed),
        dropped: s.dropped.load(Ordering::Relaxed),
        failed: s.failed.load(Ordering::Relaxed),
        pushes: pushes(shared),
    };
    (pass, figures)
}

/// Each push target's progress, its backlog being the stored history after its position: up
/// to the newest pass.
pub fn pushes(shared: &Shared) -> Vec<ebpfstat_dbus::RemoteWrite> {
    let newest = lock(&shared.latest)
        .as_ref()
        .map_or(0, |p| ebpfstat_numbers::WallNs::of(p.time).ns());
    let mut pushes = lock(&shared.exports.pushes).clone();
    for p in &mut pushes {
        p.backlog_ns = if p.position_ns == 0 {
            0
        } else {
            newest.saturating_sub(p.position_ns).max(0)
        };
    }
    pushes
}
