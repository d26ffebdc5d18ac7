//! `ebpfstatctl maps`: every map on the host, who uses it and who holds it.

use anyhow::Result;
use ebpfstat_dbus::json::MapJson;
use ebpfstat_dbus::{MapUsage, Stats1Proxy};

use super::explain;
use crate::FilterArgs;
use crate::render::{plural, print_json, render_maps, say};
use crate::units;

pub async fn maps(p: &Stats1Proxy<'_>, f: &FilterArgs, json: bool) -> Result<()> {
    let maps = p.maps(f.options()).await.map_err(explain)?;
    let usage = p.map_usage(f.options()).await.map_err(explain)?;
    if json {
        let rows: Vec<MapJson> = maps.iter().map(|m| MapJson::of(m, &usage)).collect();
        return print_json(&rows);
    }
    let meaning = p.memlock_meaning().await.unwrap_or_default();
    render_maps(&maps, &usage, Some(&meaning))?;
    let total: u64 = maps.iter().map(|m| m.memlock_bytes).sum();
    let perf: u64 = maps
        .iter()
        .filter_map(|m| MapUsage::of(&usage, m.id))
        .map(|u| u.perf_buffer_bytes)
        .sum();
    let perf = if perf > 0 {
        format!(", and {} of perf ring buffers", units::bytes(perf))
    } else {
        String::new()
    };
    say(&format!(
        "{} · {} in all (each map once){perf}",
        plural(maps.len(), "map"),
        units::bytes(total)
    ))?;
    Ok(())
}
