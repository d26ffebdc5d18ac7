//! `ebpfstatctl status`: the daemon's health.

use anyhow::Result;
use ebpfstat_dbus::Stats1Proxy;
use serde_json::{Value, json};

use super::explain;
use crate::render::{print_json, stamp};
use crate::units;

/// An `a{sv}` value as JSON (the status map holds only basic types).
fn to_json(v: &zbus::OwnedVariant) -> Value {
    if let Ok(s) = <&str>::try_from(v) {
        return json!(s);
    }
    if let Ok(n) = u64::try_from(v) {
        return json!(n);
    }
    if let Ok(n) = i64::try_from(v) {
        return json!(n);
    }
    if let Ok(n) = u32::try_from(v) {
        return json!(n);
    }
    if let Ok(n) = f64::try_from(v) {
        return json!(n);
    }
    if let Ok(b) = bool::try_from(v) {
        return json!(b);
    }
    Value::Null
}

pub async fn status(p: &Stats1Proxy<'_>, json: bool) -> Result<()> {
    let st = p.status().await.map_err(explain)?;
    let map: serde_json::Map<String, Value> =
        st.iter().map(|(k, v)| (k.clone(), to_json(v))).collect();
    if json {
        return print_json(&map);
    }
    let get = |k: &str| map.get(k).cloned().unwrap_or(Value::Null);
    let num = |k: &str| get(k).as_f64().unwrap_or(0.0);
    let count = |k: &str| get(k).as_u64().unwrap_or(0);
    let time = |k: &str| get(k).as_i64().unwrap_or(0);
    let text = |k: &str| get(k).as_str().unwrap_or("-").to_owned();
    out!("ebpfstatd {} · kernel {}", text("version"), text("kernel"))?;
    out!("stats: {}", text("stats_state"))?;
    out!(
        "stats cost: {} per program run ({}); now {} of one core · mode {}{}",
        units::ns(num("stats_cost_ns")),
        text("stats_cost_source"),
        units::pct(num("stats_overhead_pct")),
        text("stats_mode"),
        match get("stats_other_holder").as_bool() {
            Some(true) => " · another process also holds stats on",
            _ => "",
        }
    )?;
    let every = |k: &str| humantime::format_duration(std::time::Duration::from_nanos(count(k)));
    let (configured, paced) = (count("interval_ns"), count("paced_interval_ns"));
    // An older daemon does not pace: its interval is the configured one.
    let pace = if paced > configured {
        format!(
            "every {} (stretched from {}: passes take {} on average, over the sampler budget \
             of {} of one core)",
            every("paced_interval_ns"),
            every("interval_ns"),
            units::ns(num("pass_ns")),
            units::pct(num("sampler_budget_pct")),
        )
    } else if map.contains_key("pass_ns") {
        format!(
            "every {} · passes take {}",
            every("interval_ns"),
            units::ns(num("pass_ns"))
        )
    } else {
        format!("every {}", every("interval_ns"))
    };
    out!(
        "sampling: {pace} · {} passes, {} late, {} failed, {} not stored{}",
        num("passes"),
        num("late_passes"),
        num("failed_passes"),
        num("dropped_passes"),
        match count("programs_unread") {
            0 => String::new(),
            n => format!(" · {n} programs unreadable"),
        }
    )?;
    if time("last_failed_pass_ns") > 0 {
        out!(
            "last failed pass: {} · {}",
            stamp(time("last_failed_pass_ns")),
            text("last_failure")
        )?;
    }
    // An older daemon has no alerts.
    if map.contains_key("alert_rules") {
        out!(
            "alerts: {} raised now · {} rules",
            count("alerts_active"),
            count("alert_rules")
        )?;
    }
    let (used, cap) = (count("used_bytes"), count("cap_bytes"));
    out!(
        "database: {} used of the {} cap ({}) · file {} + WAL {} · {}",
        units::bytes(used),
        units::bytes(cap),
        units::pct(used as f64 * 100.0 / cap.max(1) as f64),
        units::bytes(count("db_bytes")),
        units::bytes(count("wal_bytes")),
        text("db_path"),
    )?;
    out!(
        "history: {} series (one per load of a program) · {} programs loaded now",
        num("series"),
        num("programs")
    )?;
    out!(
        "writes: last flush {} · {} passes buffered, {} dropped{}",
        stamp(time("last_flush_ns")),
        num("ticks_buffered"),
        num("ticks_dropped"),
        match text("last_error").as_str() {
            "" | "-" => String::new(),
            e => format!(" · last error: {e}"),
        }
    )?;
    for tier in ["raw", "1m", "1h"] {
        let k = |w: &str| format!("tier_{tier}_{w}");
        out!(
            "tier {tier:>3}: {} → {} ({})",
            stamp(time(&k("oldest_ns"))),
            stamp(time(&k("newest_ns"))),
            units::bytes(count(&k("bytes")))
        )?;
    }
    let mut export = Vec::new();
    match text("metrics_listen").as_str() {
        "" | "-" => {}
        at => export.push(format!("/metrics on {at}")),
    }
    if time("textfile_written_ns") > 0 {
        export.push(format!(
            "textfile written {}",
            stamp(time("textfile_written_ns"))
        ));
    }
    for key in ["metrics_error", "textfile_error"] {
        match text(key).as_str() {
            "" | "-" => {}
            e => export.push(format!("ERROR {e}")),
        }
    }
    if !export.is_empty() {
        out!("export: {}", export.join(" · "))?;
    }
    let uptime = num("uptime_ns").max(1.0);
    out!(
        "daemon: {} CPU over {} up ({} of a core) · RSS {} (peak {})",
        units::ns(num("daemon_cpu_ns")),
        units::ns(uptime),
        units::pct(num("daemon_cpu_ns") * 100.0 / uptime),
        units::bytes(count("daemon_rss_bytes")),
        units::bytes(count("daemon_peak_rss_bytes"))
    )?;
    if num("clock_steps") > 0.0 {
        out!(
            "the wall clock stepped {} times; series stay ordered by boot time",
            num("clock_steps")
        )?;
    }
    Ok(())
}
