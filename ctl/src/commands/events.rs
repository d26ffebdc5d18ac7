//! `ebpfstatctl events`: what the daemon concluded (new versions compared), oldest first.

use anyhow::Result;
use ebpfstat_dbus::json::EventJson;
use ebpfstat_dbus::{Options, Stats1Proxy};
use ebpfstat_numbers::WallNs;

use super::explain;
use crate::args::When;
use crate::render::{left_align_last, print_json, print_table, stamp, table, wrap_to_terminal};

pub async fn events(p: &Stats1Proxy<'_>, since: When, json: bool) -> Result<()> {
    let events = p
        .events(WallNs::of(since.0).ns(), Options::new())
        .await
        .map_err(explain)?;
    if json {
        let rows: Vec<EventJson> = events.iter().map(EventJson::from).collect();
        return print_json(&rows);
    }
    if events.is_empty() {
        out!("no events since {}", stamp(WallNs::of(since.0).ns()))?;
        return Ok(());
    }
    let mut t = table(&["TIME", "KIND", "WHAT"], 3);
    left_align_last(&mut t);
    wrap_to_terminal(&mut t);
    for e in &events {
        t.add_row(vec![stamp(e.time_ns), e.kind.clone(), e.text.clone()]);
    }
    print_table(&t)?;
    Ok(())
}
