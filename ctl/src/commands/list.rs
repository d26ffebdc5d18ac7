//! `ebpfstatctl list`: every program loaded now.

use anyhow::Result;
use ebpfstat_dbus::Stats1Proxy;

use super::explain;
use crate::notes::coded_notes;
use crate::render::{
    estimated, left_align_last, marks, owners, print_json, print_notes, print_table, stamp, table,
};
use crate::{FilterArgs, units};

pub async fn list(p: &Stats1Proxy<'_>, f: &FilterArgs, json: bool) -> Result<()> {
    let snap = p.snapshot(f.options()).await.map_err(explain)?;
    if json {
        return print_json(&snap);
    }
    out!(
        "{} programs · stats {} · {}",
        snap.programs.len(),
        snap.stats_state,
        stamp(snap.time_ns)
    )?;
    let mut t = table(
        &[
            "ID", "NAME", "TYPE", "RUNS", "RUNS/S", "AVG", "CPU%", "MAP MEM*", "HOLDERS",
        ],
        3,
    );
    left_align_last(&mut t);
    let notes = coded_notes(
        &snap.memlock_meaning,
        snap.programs
            .iter()
            .flat_map(|r| r.notes.iter().map(String::as_str)),
    );
    // Duty-cycled: the last interval was observed in part; rates are scaled to all of it.
    let partial = snap.coverage < 0.999;
    let scale = 1.0 / snap.coverage.max(0.01);
    for r in &snap.programs {
        t.add_row(vec![
            r.id.to_string(),
            r.full_name.clone(),
            r.prog_type.clone(),
            units::count(r.run_cnt as f64),
            estimated(r.runs_per_sec * scale, partial, units::count),
            units::ns(r.avg_ns_per_run),
            estimated(r.cpu_pct * scale, partial, units::pct),
            format!(
                "{}{}",
                units::bytes(r.map_memory_bytes),
                marks(&r.notes, &notes)
            ),
            owners(&r.owners),
        ]);
    }
    print_table(&t)?;
    print_notes(notes)?;
    Ok(())
}
