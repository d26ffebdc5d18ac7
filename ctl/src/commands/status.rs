//! `ebpfstatctl status`: the daemon's health.

use anyhow::Result;
use std::time::Duration;

use ebpfstat_dbus::{Stats1Proxy, Status, json};

use super::explain;
use crate::render::{print_json, stamp};
use crate::units;

pub async fn status(p: &Stats1Proxy<'_>, json: bool) -> Result<()> {
    let map = p.status().await.map_err(explain)?;
    if json {
        return print_json(&json::status(&map));
    }
    let st = Status::from_map(&map)?;
    let text = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".to_owned());
    out!("ebpfstatd {} · kernel {}", st.version, text(&st.kernel))?;
    out!("stats: {}", text(&st.stats_state))?;
    out!(
        "stats cost: {} per program run ({}); now {} of one core · mode {}{}",
        units::ns(st.stats_cost_ns.unwrap_or(0.0)),
        text(&st.stats_cost_source),
        units::pct(st.stats_overhead_pct.unwrap_or(0.0)),
        st.stats_mode,
        match st.stats_other_holder {
            Some(true) => " · another process also holds stats on",
            _ => "",
        }
    )?;
    sampling(&st)?;
    if st.previous_run_unclean == Some(true) {
        out!(
            "previous run: did not stop cleanly (killed, crashed or the power was cut); its \
             newest samples written are from {}, what it sampled after them is lost",
            stamp(st.previous_run_last_written_ns)
        )?;
    }
    if let (Some(active), Some(rules)) = (st.alerts_active, st.alert_rules) {
        out!("alerts: {active} raised now · {rules} rules")?;
    }
    storage(&st)?;
    exports(&st)?;
    pushes(&st)?;
    out!(
        "daemon: {} CPU over {} up ({} of a core) · RSS {} (peak {})",
        units::ns(st.daemon_cpu_ns.unwrap_or(0) as f64),
        units::ns(st.uptime_ns.max(1) as f64),
        units::pct(st.daemon_cpu_pct.unwrap_or(0.0)),
        units::bytes(st.daemon_rss_bytes.unwrap_or(0)),
        units::bytes(st.daemon_peak_rss_bytes.unwrap_or(0))
    )?;
    if st.clock_steps > 0 {
        out!(
            "the wall clock stepped {} times; series stay ordered by boot time",
            st.clock_steps
        )?;
    }
    Ok(())
}

/// The schedule, its pace, and how passes went.
fn sampling(st: &Status) -> Result<()> {
    let every = |ns: u64| humantime::format_duration(Duration::from_nanos(ns));
    let configured = st.interval_ns;
    // An older daemon does not pace: its interval is the configured one; one that paced by
    // wall time sends no CPU time.
    let took = |wall: u64| match st.pass_cpu_ns {
        Some(cpu) => format!(
            "{} of CPU ({} wall)",
            units::ns(cpu as f64),
            units::ns(wall as f64)
        ),
        None => units::ns(wall as f64),
    };
    let pace = match (st.paced_interval_ns, st.pass_ns) {
        (Some(paced), Some(pass)) if paced > configured => format!(
            "every {} (stretched from {}: passes take {} on average, over the sampler budget \
             of {} of one core)",
            every(paced),
            every(configured),
            took(pass),
            units::pct(st.sampler_budget_pct),
        ),
        (_, Some(pass)) => format!("every {} · passes take {}", every(configured), took(pass)),
        (_, None) => format!("every {}", every(configured)),
    };
    out!(
        "sampling: {pace} · {} passes, {} late, {} missed, {} failed, {} not stored{}",
        st.passes,
        st.late_passes,
        st.missed_passes,
        st.failed_passes,
        st.dropped_passes,
        match st.programs_unread.unwrap_or(0) {
            0 => String::new(),
            n => format!(" · {n} programs unreadable"),
        }
    )?;
    if st.last_failed_pass_ns > 0 {
        out!(
            "last failed pass: {} · {}",
            stamp(st.last_failed_pass_ns),
            st.last_failure
        )?;
    }
    Ok(())
}

/// The database against its cap, what is buffered, each tier's span.
fn storage(st: &Status) -> Result<()> {
    out!(
        "database: {} used of the {} cap ({}) · file {} + WAL {} · {}",
        units::bytes(st.used_bytes),
        units::bytes(st.cap_bytes),
        units::pct(st.used_pct.unwrap_or(0.0)),
        units::bytes(st.db_bytes),
        units::bytes(st.wal_bytes),
        st.db_path,
    )?;
    out!(
        "history: {} series (one per load of a program) · {} programs loaded now",
        st.series,
        st.programs.unwrap_or(0)
    )?;
    out!(
        "writes: last flush {} · {} passes buffered, {} dropped{}",
        stamp(st.last_flush_ns),
        st.ticks_buffered,
        st.ticks_dropped,
        match st.last_error.as_str() {
            "" => String::new(),
            e => format!(" · last error: {e}"),
        }
    )?;
    for (tier, oldest, newest, bytes) in [
        (
            "raw",
            st.tier_raw_oldest_ns,
            st.tier_raw_newest_ns,
            st.tier_raw_bytes,
        ),
        (
            "1m",
            st.tier_1m_oldest_ns,
            st.tier_1m_newest_ns,
            st.tier_1m_bytes,
        ),
        (
            "1h",
            st.tier_1h_oldest_ns,
            st.tier_1h_newest_ns,
            st.tier_1h_bytes,
        ),
    ] {
        out!(
            "tier {tier:>3}: {} → {} ({})",
            stamp(oldest),
            stamp(newest),
            units::bytes(bytes)
        )?;
    }
    Ok(())
}

/// Each remote-write target: how far its receiver has everything, what is left, what went.
fn pushes(st: &Status) -> Result<()> {
    for r in &st.remote_write {
        let position = if r.position_ns == 0 {
            "nothing acknowledged yet".to_owned()
        } else {
            format!("acknowledged up to {}", stamp(r.position_ns))
        };
        let backlog = Duration::from_nanos(u64::try_from(r.backlog_ns).unwrap_or(0));
        // Whole seconds: the position moves a step at a time.
        let backlog = Duration::from_secs(backlog.as_secs());
        let mut parts = vec![
            position,
            format!("backlog {}", humantime::format_duration(backlog)),
            format!(
                "{} in {} requests ({} samples)",
                units::bytes(r.bytes_sent),
                r.requests,
                units::count(r.samples_sent as f64)
            ),
        ];
        if r.max_bytes_per_second > 0 {
            parts.push(format!(
                "at most {}/s",
                units::bytes(r.max_bytes_per_second)
            ));
        }
        if r.retries > 0 || r.dropped > 0 {
            parts.push(format!(
                "{} retries, {} batches refused",
                r.retries, r.dropped
            ));
        }
        if !r.last_error.is_empty() {
            parts.push(format!("ERROR {}", r.last_error));
        }
        out!("remote_write {}: {}", r.url, parts.join(" · "))?;
    }
    Ok(())
}

/// Where the numbers leave for fleet engines, and what failed there.
fn exports(st: &Status) -> Result<()> {
    let mut export = Vec::new();
    if !st.metrics_listen.is_empty() {
        export.push(format!("/metrics on {}", st.metrics_listen));
    }
    if st.metrics_refused + st.metrics_evicted > 0 {
        export.push(format!(
            "/metrics refused {} connections, let {} go before their request",
            st.metrics_refused, st.metrics_evicted
        ));
    }
    if st.textfile_written_ns > 0 {
        let at = i64::try_from(st.textfile_written_ns).unwrap_or(i64::MAX);
        export.push(format!("textfile written {}", stamp(at)));
    }
    for e in [&st.metrics_error, &st.textfile_error] {
        if !e.is_empty() {
            export.push(format!("ERROR {e}"));
        }
    }
    if !export.is_empty() {
        out!("export: {}", export.join(" · "))?;
    }
    Ok(())
}
