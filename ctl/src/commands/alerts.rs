//! `ebpfstatctl alerts`: the alerts raised now, then what was raised and cleared since
//! `--since`, oldest first.

use anyhow::Result;
use ebpfstat_dbus::json::AlertsJson;
use ebpfstat_dbus::{Alert, AlertMetric, Options, Stats1Proxy};
use ebpfstat_numbers::WallNs;
use ebpfstat_numbers::text::Unit;

use super::explain;
use crate::args::When;
use crate::render::{
    left_align_last, print_json, print_table, span, stamp, table, wrap_to_terminal,
};
use crate::units;

/// The most alerts raised an `Alerts()` answer lists.
const LISTED: usize = 1000;

/// A value in its metric's unit (as it came, for a metric this client does not know); exact
/// with `--exact`.
fn show(a: &Alert, v: f64) -> String {
    match a.metric().map(AlertMetric::unit) {
        Some(Unit::Percent) => units::pct(v),
        Some(Unit::Nanos) => units::ns(v),
        Some(Unit::PerSecond) => format!("{}/s", units::count(v)),
        Some(Unit::Bytes) => ebpfstat_numbers::text::bytes(v),
        None => v.to_string(),
    }
}

/// How long ago `ns` was ([`span`]): the table stays narrow; the exact time is in the
/// changes below and in `--json`.
fn ago(ns: i64) -> String {
    let since = WallNs::from_ns(ns).time();
    let raised = std::time::SystemTime::now()
        .duration_since(since)
        .unwrap_or_default();
    format!("{} ago", span(raised))
}

/// What an alert is about: a program, a map (`map_fill_pct`, whose alerts carry the map where a
/// program's carry the program), or the host.
fn subject(a: &Alert) -> String {
    if a.metric().is_some_and(AlertMetric::per_map) {
        format!("map {} ({})", a.program, a.program_id)
    } else if a.program_id == 0 {
        "(host)".into()
    } else {
        format!("{} ({})", a.program, a.program_id)
    }
}

pub async fn alerts(p: &Stats1Proxy<'_>, since: When, json: bool) -> Result<()> {
    let (active, changes) = p
        .alerts(WallNs::of(since.0).ns(), Options::new())
        .await
        .map_err(explain)?;
    if json {
        return print_json(&AlertsJson::of(&active, &changes));
    }
    if active.is_empty() {
        out!("no alert raised now")?;
    } else {
        out!(
            "{} raised now:",
            match active.len() {
                1 => "1 alert".to_owned(),
                n if n >= LISTED => format!(
                    "the first {n} (the most the daemon lists; `ebpfstatctl status` counts \
                     them all) of the alerts"
                ),
                n => format!("{n} alerts"),
            }
        )?;
        let mut t = table(
            &[
                "RULE",
                "SUBJECT (ID)",
                "METRIC",
                "NOW",
                "ABOVE",
                "CLEARS AT",
                "RAISED",
            ],
            3,
        );
        // On a narrow terminal names are cut: the values and levels stay whole.
        t.cut("SUBJECT (ID)", 12, 2);
        t.cut("RULE", 8, 1);
        for a in &active {
            t.add_row(vec![
                a.rule.clone(),
                subject(a),
                a.metric.clone(),
                show(a, a.value),
                show(a, a.threshold),
                show(a, a.clear),
                ago(a.since_ns),
            ]);
        }
        print_table(&t)?;
    }
    out!()?;
    if changes.is_empty() {
        out!(
            "no alert raised or cleared since {}",
            stamp(WallNs::of(since.0).ns())
        )?;
        return Ok(());
    }
    out!(
        "raised and cleared since {}:",
        stamp(WallNs::of(since.0).ns())
    )?;
    let mut t = table(&["TIME", "WHAT"], 2);
    left_align_last(&mut t);
    wrap_to_terminal(&mut t);
    for a in &changes {
        t.add_row(vec![stamp(a.time_ns), a.text.clone()]);
    }
    print_table(&t)?;
    Ok(())
}
