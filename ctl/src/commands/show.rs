//! `ebpfstatctl show`: everything about one loaded program.

use anyhow::Result;
use ebpfstat_dbus::json::DetailJson;
use ebpfstat_dbus::{self as wire, Options, Stats1Proxy};
use zbus::Str;

use super::explain;
use crate::notes::map_memory_notes;
use crate::render::fit::{self, say_named};
use crate::render::{
    footnotes, left_align_last, owners, print_json, print_table, render_maps, say_indented, stamp,
    table,
};
use crate::units;

pub async fn show(p: &Stats1Proxy<'_>, program: &str, json: bool) -> Result<()> {
    let d = p.program(program).await.map_err(explain)?;
    let usage = p.map_usage(Options::new()).await.map_err(explain)?;
    if json {
        // The coverage of the pass, for the rates extrapolated over the interval: a snapshot
        // filtered to the program (it has coverage whichever programs match). By the kernel's
        // name: at most 15 bytes of [A-Za-z0-9_.], where a full name may be longer than a
        // filter accepts or hold a glob's `*`.
        let mut only = Options::new();
        only.insert("name".into(), Str::from(d.program.name.as_str()).into());
        let snap = p.snapshot(only).await.map_err(explain)?;
        return print_json(&DetailJson::of(&d, snap.coverage, &usage));
    }
    let meaning = p.memlock_meaning().await.unwrap_or_default();
    // On a terminal, names are cut with `…` and the other values break between words under
    // where values start; piped, each fact is one whole line.
    for (k, v) in facts(&d) {
        let lead = format!("{k:>15}: ");
        if matches!(k, "name" | "full name") {
            say_named(&lead, &v, "", lead.len())?;
        } else {
            say_indented(&format!("{lead}{v}"), lead.len())?;
        }
    }
    if !d.attach.is_empty() {
        out!()?;
        out!("attached")?;
        // MISSED only where a link reports it (kprobes, Linux 6.7).
        let missed = d.attach.iter().any(|a| a.missed >= 0);
        let mut header = vec!["LINK", "TYPE", "ATTACH TYPE"];
        header.extend(missed.then_some("MISSED"));
        header.push("TARGET");
        // MISSED right-aligned (a number), TARGET left.
        let mut t = table(&header, 3);
        left_align_last(&mut t);
        t.cut("TARGET", fit::MIN_NAME, 1);
        t.drop_first(&["TYPE", "ATTACH TYPE"]);
        for a in &d.attach {
            let mut row = vec![
                a.link_id.to_string(),
                a.link_type.clone(),
                a.attach_type.clone(),
            ];
            if missed {
                row.push(u64::try_from(a.missed).map_or_else(|_| "-".into(), |m| m.to_string()));
            }
            row.push(a.target.clone());
            t.add_row(row);
        }
        print_table(&t)?;
    }
    out!()?;
    out!("maps")?;
    render_maps(&d.maps, &usage, None)?;
    if !d.notes.is_empty() {
        out!()?;
        out!("notes")?;
        for n in &d.notes {
            say_indented(&format!("  {}: {}", n.code, n.text), 4)?;
        }
    }
    out!()?;
    footnotes(&map_memory_notes(
        &meaning,
        d.program.notes.iter().map(String::as_str),
    ))?;
    Ok(())
}

/// `-` for nothing.
fn or_dash(empty: bool, shown: impl FnOnce() -> String) -> String {
    if empty { "-".into() } else { shown() }
}

/// The program's facts, one `name: value` line each.
fn facts(d: &wire::ProgramDetail) -> [(&'static str, String); 17] {
    let r = &d.program;
    [
        ("id", r.id.to_string()),
        ("name", r.name.clone()),
        ("full name", r.full_name.clone()),
        ("type", r.prog_type.clone()),
        ("tag", r.tag.clone()),
        ("loaded", stamp(r.load_time_ns)),
        ("series", r.series_id.to_string()),
        ("runs", units::count(r.run_cnt as f64)),
        ("run time", units::ns(r.run_time_ns as f64)),
        (
            "now",
            format!(
                "{} runs/s, {} of a core, {} per run",
                units::count(r.runs_per_sec),
                units::pct(r.cpu_pct),
                units::ns(r.avg_ns_per_run)
            ),
        ),
        (
            "map memory*",
            format!(
                "{} ({} own, {} shared)",
                units::bytes(r.map_memory_bytes),
                units::bytes(r.map_memory_own_bytes),
                units::bytes(r.map_memory_shared_bytes)
            ),
        ),
        ("program memory", units::bytes(d.prog_memlock_bytes)),
        (
            "instructions",
            format!(
                "{} verified, {} translated bytes, {} jited bytes",
                d.verified_insns, d.xlated_size, d.jited_size
            ),
        ),
        ("created by uid", d.created_by_uid.to_string()),
        ("btf id", or_dash(d.btf_id == 0, || d.btf_id.to_string())),
        ("owners", or_dash(r.owners.is_empty(), || owners(&r.owners))),
        ("pins", or_dash(d.pins.is_empty(), || d.pins.join(", "))),
    ]
}
