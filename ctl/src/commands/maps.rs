//! `ebpfstatctl maps`: every map on the host.

use anyhow::Result;
use ebpfstat_dbus::Stats1Proxy;

use super::explain;
use crate::notes::map_memory_notes;
use crate::render::{footnotes, print_json, render_maps};

pub async fn maps(p: &Stats1Proxy<'_>, json: bool) -> Result<()> {
    let maps = p.maps().await.map_err(explain)?;
    if json {
        return print_json(&maps);
    }
    let meaning = p.memlock_meaning().await.unwrap_or_default();
    render_maps(&maps)?;
    footnotes(&map_memory_notes(&meaning, []))?;
    Ok(())
}
