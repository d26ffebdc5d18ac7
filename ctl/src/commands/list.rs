//! `ebpfstatctl list`: every program loaded now.

use anyhow::Result;
use ebpfstat_dbus::Stats1Proxy;
use ebpfstat_dbus::json::SnapshotJson;

use super::explain;
use crate::notes::coded_notes;
use crate::render::{
    estimated, fit_programs, left_align_last, marks, owners, plural, print_json, print_notes,
    print_table, say, stamp, table,
};
use crate::{FilterArgs, units};

pub async fn list(p: &Stats1Proxy<'_>, f: &FilterArgs, json: bool) -> Result<()> {
    let snap = p.snapshot(f.options()).await.map_err(explain)?;
    if json {
        return print_json(&SnapshotJson::from(&snap));
    }
    say(&format!(
        "{} · stats {} · {}",
        plural(snap.programs.len(), "program"),
        snap.stats_state,
        stamp(snap.time_ns)
    ))?;
    let mut t = table(
        &[
            "ID", "NAME", "TYPE", "RUNS", "RUNS/S", "AVG", "CPU%", "MAP MEM*", "HOLDERS",
        ],
        3,
    );
    left_align_last(&mut t);
    fit_programs(&mut t, &["TYPE", "RUNS", "MAP MEM*", "HOLDERS", "AVG"], "");
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
        // First seen in the last pass: no interval yet, so no rate (not a rate of 0).
        let rate = |v: f64, show: fn(f64) -> String| {
            if r.interval_ns == 0 {
                "-".into()
            } else {
                estimated(v * scale, partial, show)
            }
        };
        t.add_row(vec![
            r.id.to_string(),
            r.full_name.clone(),
            r.prog_type.clone(),
            units::count(r.run_cnt as f64),
            rate(r.runs_per_sec, units::count),
            units::ns(r.avg_ns_per_run),
            rate(r.cpu_pct, units::pct),
            format!(
                "{}{}",
                units::bytes(r.map_memory_bytes),
                marks(&r.notes, &notes)
            ),
            owners(&r.owners),
        ]);
    }
    if print_table(&t)?.shows("MAP MEM*") {
        print_notes(notes)?;
    }
    Ok(())
}
