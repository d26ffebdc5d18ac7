//! `ebpfstatctl history --map ID|NAME`: a map's memory and entries over time, one row where
//! they changed.

use anyhow::Result;
use ebpfstat_dbus::json::MapHistoryJson;
use ebpfstat_dbus::{self as wire, Stats1Proxy};
use ebpfstat_numbers::rates::fill_pct;

use super::explain;
use crate::HistoryArgs;
use crate::render::{print_json, print_table, say, stamp, table, terminal_width};
use crate::units;

pub async fn map_history(
    p: &Stats1Proxy<'_>,
    map: &str,
    a: &HistoryArgs,
    json: bool,
) -> Result<()> {
    let ((from, to), options) = super::history::asked(a)?;
    let (info, points) = p
        .map_history(map, from, to, options)
        .await
        .map_err(explain)?;
    if json {
        return print_json(&MapHistoryJson::of(&info, &points));
    }
    for s in &info.series {
        say(&header(s, &info.tier))?;
    }
    if points.is_empty() {
        say("no samples of it in that range")?;
        return Ok(());
    }
    if let [only] = info.series.as_slice() {
        chart(only, &points, (from, to))?;
    }
    print_table(&rows(&info, &points))?;
    if info.next_from_ns > 0 {
        say(&format!(
            "{} points shown; the range goes on: continue with --since {}",
            points.len(),
            stamp(info.next_from_ns)
        ))?;
    }
    say("a row is a change: the map held its values until the next row")?;
    Ok(())
}

/// `map NAME (id, type, max entries) · tier`, and when it went.
fn header(s: &wire::MapSeriesInfo, tier: &str) -> String {
    let gone = if s.gone_ns > 0 {
        format!(", gone {}", stamp(s.gone_ns))
    } else {
        String::new()
    };
    format!(
        "map {} (id {}, {}, max {} entries, seen from {}{gone}) · tier {tier}",
        crate::render::visible(&s.name),
        s.id,
        s.map_type,
        s.max_entries,
        stamp(s.first_seen_ns),
    )
}

/// Entries across the range, one column per equal slice of time (the value the map held then).
fn chart(
    s: &wire::MapSeriesInfo,
    points: &[wire::MapHistoryPoint],
    (from, to): (i64, i64),
) -> Result<()> {
    if points.iter().all(|p| p.entries < 0) {
        return Ok(());
    }
    let (label, scale) = ("Entries: ", format!(" (0 to {})", s.max_entries));
    // The whole line within the terminal: the label, one column per slice of time, the scale.
    let width = terminal_width()
        .map_or(80, usize::from)
        .saturating_sub(label.len() + scale.chars().count())
        .max(10);
    let steps: Vec<(i64, i64)> = points.iter().map(|p| (p.time_ns, p.peak_entries)).collect();
    let values = units::step_columns(&steps, (from, to), width);
    say(&format!(
        "{label}{}{scale}",
        units::sparkline_to(&values, f64::from(s.max_entries)),
    ))?;
    Ok(())
}

/// TIME, MAP (with more than one), ENTRIES, PEAK (the most in the tier's bucket), FILL, MEMORY.
fn rows(info: &wire::MapHistoryInfo, points: &[wire::MapHistoryPoint]) -> crate::render::Grid {
    let many = info.series.len() > 1;
    let header: &[&str] = if many {
        &["TIME", "MAP", "ENTRIES", "PEAK", "FILL", "MEMORY"]
    } else {
        &["TIME", "ENTRIES", "PEAK", "FILL", "MEMORY"]
    };
    let mut t = table(header, if many { 2 } else { 1 });
    let shown = |v: i64| u64::try_from(v).map_or_else(|_| "-".to_owned(), |v| v.to_string());
    for p in points {
        let s = usize::try_from(p.series)
            .ok()
            .and_then(|i| info.series.get(i));
        let max = s.map_or(0, |s| s.max_entries);
        let fill = u64::try_from(p.entries)
            .map_or_else(|_| "-".to_owned(), |n| format!("{:.1}%", fill_pct(n, max)));
        let memory = u64::try_from(p.memory_bytes).map_or_else(|_| "-".to_owned(), units::bytes);
        let mut row = vec![stamp(p.time_ns)];
        if many {
            row.push(s.map_or_else(String::new, |s| {
                format!("{} ({})", crate::render::visible(&s.name), s.id)
            }));
        }
        row.extend([shown(p.entries), shown(p.peak_entries), fill, memory]);
        t.add_row(row);
    }
    t
}
