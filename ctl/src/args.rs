//! The command line's own arguments: windows, times, sort keys and the filters the views share.

use std::time::{Duration, SystemTime};

use clap::{Args, ValueEnum};
use ebpfstat_dbus::{GroupBy, Options, SortKey};
use zbus::{OwnedVariant, Str};

/// What `top` ranks by.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Sort {
    /// Total run time in the window: what each program cost the host there.
    Runtime,
    /// Number of runs in the window.
    Runs,
    /// Average cost per run, among programs with at least 100 runs (the others rank last).
    Avg,
    /// Share of one core while each program was observed (a short-lived hot program ranks high).
    Cpu,
    /// Map memory held now (unloaded programs hold none).
    Mapmem,
}

impl Sort {
    /// The key the daemon ranks by.
    pub fn key(self) -> SortKey {
        match self {
            Self::Runtime => SortKey::RunTime,
            Self::Runs => SortKey::Runs,
            Self::Avg => SortKey::Avg,
            Self::Cpu => SortKey::Cpu,
            Self::Mapmem => SortKey::MapMem,
        }
    }
}

/// What `top --by` sums programs by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum By {
    /// The container of the processes holding each program (podman, docker, containerd,
    /// CRI-O, systemd-nspawn, LXC).
    Container,
    /// Their systemd unit.
    Unit,
    /// Their command.
    Owner,
}

impl By {
    /// What the daemon sums by.
    pub fn group_by(self) -> GroupBy {
        match self {
            Self::Container => GroupBy::Container,
            Self::Unit => GroupBy::Unit,
            Self::Owner => GroupBy::Owner,
        }
    }
}

/// What the `history` chart shows.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Metric {
    /// CPU% per step (with --cumulative: run time since load).
    Cpu,
    /// Runs per step (since load).
    Runs,
    /// Run time per step (since load).
    Runtime,
    /// Average cost per run.
    Avg,
}

/// A point in time: a duration ago (`6h`, `90m`) or an RFC 3339 time with any offset
/// (`2026-11-25T10:00:00Z`, `2026-11-25T11:00:00+01:00`); a time without an offset is local
/// time, and a note on standard error says so and what it is in UTC.
#[derive(Debug, Clone, Copy)]
pub struct When(pub SystemTime);

pub fn when(s: &str) -> Result<When, String> {
    if let Ok(d) = humantime::parse_duration(s) {
        return SystemTime::now()
            .checked_sub(d)
            .map(When)
            .ok_or_else(|| format!("{s:?} reaches before 1970"));
    }
    let not_a_time = || {
        format!(
            "{s:?} is neither a duration (6h, 90m) nor a time (2026-11-25T10:00:00Z, \
             2026-11-25T11:00:00+01:00, or 2026-11-25T11:00:00 in local time)"
        )
    };
    let time = match utc_offset(s) {
        Some((bare, east)) => {
            let as_utc = humantime::parse_rfc3339_weak(bare).map_err(|_| not_a_time())?;
            shift(as_utc, -east).ok_or_else(not_a_time)?
        }
        None if s.ends_with(['Z', 'z']) => {
            humantime::parse_rfc3339_weak(&s[..s.len() - 1]).map_err(|_| not_a_time())?
        }
        None => {
            let as_utc = humantime::parse_rfc3339_weak(s).map_err(|_| not_a_time())?;
            let (local, east) = local_time(as_utc).ok_or_else(not_a_time)?;
            eprintln!(
                "ebpfstatctl: note: {} has no UTC offset: read as local time (UTC{}), that is {}",
                humantime::format_rfc3339_seconds(as_utc)
                    .to_string()
                    .trim_end_matches('Z'),
                offset_text(east),
                humantime::format_rfc3339_seconds(local)
            );
            local
        }
    };
    Ok(When(time))
}

/// The time before a `+HH:MM` or `-HH:MM` offset at the end of `s`, and the offset in seconds
/// east of UTC.
fn utc_offset(s: &str) -> Option<(&str, i64)> {
    let cut = s.len().checked_sub(6)?;
    let (bare, offset) = (s.get(..cut)?, s.get(cut..)?.as_bytes());
    let digit = |i: usize| {
        offset
            .get(i)
            .filter(|b| b.is_ascii_digit())
            .map(|b| i64::from(b - b'0'))
    };
    let sign = match offset.first()? {
        b'+' => 1,
        b'-' => -1,
        _ => return None,
    };
    if offset.get(3) != Some(&b':') {
        return None;
    }
    let (hours, minutes) = (digit(1)? * 10 + digit(2)?, digit(4)? * 10 + digit(5)?);
    (hours < 24 && minutes < 60).then_some((bare, sign * (hours * 3600 + minutes * 60)))
}

/// `t` moved by `seconds` (either way).
fn shift(t: SystemTime, seconds: i64) -> Option<SystemTime> {
    let by = Duration::from_secs(seconds.unsigned_abs());
    if seconds >= 0 {
        t.checked_add(by)
    } else {
        t.checked_sub(by)
    }
}

/// `+01:00`, `-05:30`.
fn offset_text(east: i64) -> String {
    let sign = if east < 0 { '-' } else { '+' };
    let minutes = east.unsigned_abs() / 60;
    format!("{sign}{:02}:{:02}", minutes / 60, minutes % 60)
}

/// The wall-clock reading `as_utc` (read as if in UTC) taken as local time instead: the time
/// it is, and the local offset then (seconds east of UTC). The C library knows the time zone
/// (`TZ`, `/etc/localtime`) and its daylight saving time.
fn local_time(as_utc: SystemTime) -> Option<(SystemTime, i64)> {
    let since = as_utc.duration_since(SystemTime::UNIX_EPOCH).ok()?;
    let naive = libc::time_t::try_from(since.as_secs()).ok()?;
    // SAFETY: an all-zero `tm` is a valid value of this plain C struct.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    // SAFETY: both pointers are to live values; gmtime_r writes only `tm`.
    if unsafe { libc::gmtime_r(&naive, &mut tm) }.is_null() {
        return None;
    }
    // Whether daylight saving time is on then is for mktime to find out.
    tm.tm_isdst = -1;
    // SAFETY: `tm` is a valid broken-down time; mktime reads and normalises it.
    let local = unsafe { libc::mktime(&mut tm) };
    if local == -1 {
        return None;
    }
    #[allow(
        clippy::useless_conversion,
        reason = "time_t is 32 bits on some targets (armhf without time64)"
    )]
    let east = i64::from(naive) - i64::from(local);
    let whole = shift(as_utc, -east)?;
    Some((whole, east))
}

fn positive(s: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(s).map_err(|e| format!("{s:?}: {e}"))?;
    if d.is_zero() {
        return Err("must be longer than zero".into());
    }
    Ok(d)
}

#[derive(Debug, Args)]
pub struct TopArgs {
    /// Number of programs.
    #[arg(short, default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub n: u32,
    /// What to rank by.
    #[arg(long, value_enum, default_value = "cpu")]
    pub sort: Sort,
    /// Length of the window, ending now [default: 5m; on a terminal, the last interval].
    #[arg(long, value_parser = positive, conflicts_with = "since")]
    pub window: Option<Duration>,
    /// Start of the window (a duration ago or a time), ending now.
    #[arg(long, value_parser = when)]
    pub since: Option<When>,
    /// Totals since each program was loaded, instead of a window (so not with --window or
    /// --since).
    #[arg(long, conflicts_with_all = ["window", "since"])]
    pub cumulative: bool,
    /// Print the table once, even on a terminal (which otherwise gets the interactive view).
    #[arg(long, conflicts_with = "watch")]
    pub once: bool,
    /// Print the table again and again until interrupted (the interactive view on a terminal).
    #[arg(long)]
    pub watch: bool,
    /// Time between refreshes [default: 1s with --watch; the daemon's interval on a terminal].
    #[arg(long, value_parser = positive)]
    pub refresh: Option<Duration>,
    /// Sum the programs by the container, systemd unit or command of the processes holding
    /// them (a program held from two counts in each; each map once per group).
    #[arg(long, value_enum, value_name = "WHAT")]
    pub by: Option<By>,
    #[command(flatten)]
    pub filter: FilterArgs,
}

#[derive(Debug, Args)]
pub struct HistoryArgs {
    /// Program id, series:<id>, or name (digits that are both an id and a name: id:<id> or
    /// name:<name>).
    #[arg(required_unless_present = "map")]
    pub program: Option<String>,
    /// A map instead of a program: its id (the newest map with it) or its name (each map of
    /// it): memory and entries where they changed.
    #[arg(long, value_name = "ID|NAME", conflicts_with_all = ["program", "cumulative", "metric", "step"])]
    pub map: Option<String>,
    /// Start (a duration ago or a time).
    #[arg(long, default_value = "6h", value_parser = when)]
    pub since: When,
    /// End (a duration ago or a time); default now.
    #[arg(long, value_parser = when)]
    pub until: Option<When>,
    /// Step between points.
    #[arg(long, default_value = "1m", value_parser = positive)]
    pub step: Duration,
    /// Show cumulative values (since load) instead of per-step values.
    #[arg(long)]
    pub cumulative: bool,
    /// What the chart shows.
    #[arg(long, value_enum, default_value = "cpu")]
    pub metric: Metric,
    /// Most points in one answer; a longer range says where to continue (`--since`).
    #[arg(long, default_value_t = ebpfstat_dbus::DEFAULT_HISTORY_POINTS,
          value_parser = clap::value_parser!(u32).range(1..=i64::from(ebpfstat_dbus::MAX_HISTORY_POINTS)))]
    pub max_points: u32,
}

#[derive(Debug, Args)]
pub struct CompareArgs {
    /// Program name (full or kernel name, or a unique start of one).
    pub program: String,
    /// The older version: a tag (or a unique start of one) or series:<id> [default: the second
    /// newest version].
    #[arg(long)]
    pub before: Option<String>,
    /// The newer version, likewise [default: the newest version].
    #[arg(long)]
    pub after: Option<String>,
    /// Runs each version needs before it is judged [default: the daemon's compare_min_runs,
    /// which its events are judged by].
    #[arg(long)]
    pub min_runs: Option<u32>,
    /// Seconds each version must have been observed before it is judged [default: the
    /// daemon's compare_min_time].
    #[arg(long, value_parser = clap::value_parser!(u32).range(0..=31_536_000))]
    pub min_seconds: Option<u32>,
    /// A gate for CI: exit 3 when the newer version is slower per run by more than PCT percent
    /// at 95 % confidence (its whole interval above +PCT %), and 0 otherwise.
    #[arg(long, value_name = "PCT", value_parser = gate_percent)]
    pub fail_above: Option<f64>,
}

/// A gate's limit: a percentage from 0 to 10000.
fn gate_percent(s: &str) -> Result<f64, String> {
    match s.trim_end_matches('%').parse::<f64>() {
        Ok(v) if (0.0..=10_000.0).contains(&v) => Ok(v),
        _ => Err(format!("{s:?}: give a percentage from 0 to 10000, e.g. 10")),
    }
}

#[derive(Debug, Args)]
pub struct ProfileArgs {
    /// Program id, series:<id>, or name (a loaded program).
    pub program: String,
    /// How long to trace it (100ms to 10m).
    #[arg(long = "for", default_value = "10s", value_name = "DURATION", value_parser = positive)]
    pub duration: Duration,
}

/// What `export` writes.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum ExportFormat {
    /// OpenMetrics text with time stamps, ending in `# EOF`.
    Openmetrics,
}

#[derive(Debug, Args)]
pub struct ExportArgs {
    /// Start (a duration ago or a time).
    #[arg(long, default_value = "1h", value_parser = when)]
    pub since: When,
    /// End (a duration ago or a time); default now.
    #[arg(long, value_parser = when)]
    pub until: Option<When>,
    /// Step between points (never finer than the sampling interval).
    #[arg(long, default_value = "1m", value_parser = positive)]
    pub step: Duration,
    #[arg(long, value_enum, default_value = "openmetrics")]
    pub format: ExportFormat,
    /// Write here instead of standard output.
    #[arg(long, short, value_name = "FILE")]
    pub output: Option<std::path::PathBuf>,
    /// Most points the daemon puts in one page (each page is one call).
    #[arg(long, default_value_t = ebpfstat_dbus::DEFAULT_EXPORT_POINTS,
          value_parser = clap::value_parser!(u32).range(1..=i64::from(ebpfstat_dbus::MAX_HISTORY_POINTS)))]
    pub page_points: u32,
    #[command(flatten)]
    pub filter: FilterArgs,
}

/// Which programs a view shows (combined with *and*); the daemon applies them.
#[derive(Debug, Clone, Default, Args)]
pub struct FilterArgs {
    /// Only programs (or maps) whose name matches this glob (`sys_enter_*`).
    #[arg(long, value_name = "GLOB")]
    pub name: Option<String>,
    /// Only this program (or map) type (`tracepoint`, `kprobe`, `xdp`, `hash`...); an
    /// unknown type is refused with the list of types.
    #[arg(long = "type", value_name = "TYPE")]
    pub prog_type: Option<String>,
    /// Only programs attached so: `uprobe`, `uretprobe`, `kprobe`, `tracepoint`... (uprobes
    /// are programs of type kprobe), a link type (`xdp`, `tcx`) or an attach type
    /// (`cgroup_inet_ingress`); only loaded programs are attached.
    #[arg(long, value_name = "KIND")]
    pub attach: Option<String>,
    /// Only what this process holds: a pid or a command name (`bpftrace`).
    #[arg(long, value_name = "PID|COMM")]
    pub owner: Option<String>,
    /// Only what processes of this systemd unit hold (a glob: `cilium*`).
    #[arg(long, value_name = "UNIT")]
    pub unit: Option<String>,
    /// Only what processes of this container hold (a glob on `runtime:name`, the name or the
    /// full id: `docker:web*`, `nspawn:*`).
    #[arg(long, value_name = "GLOB")]
    pub container: Option<String>,
    /// Show the daemon's own calibration probe too.
    #[arg(long)]
    pub all: bool,
}

impl FilterArgs {
    /// The D-Bus options carrying these filters.
    pub fn options(&self) -> Options {
        let mut o = Options::new();
        let text = |v: &str| OwnedVariant::from(Str::from(v.to_owned()));
        for (key, value) in [
            ("name", &self.name),
            ("type", &self.prog_type),
            ("attach", &self.attach),
            ("owner", &self.owner),
            ("unit", &self.unit),
            ("container", &self.container),
        ] {
            if let Some(v) = value {
                o.insert(key.into(), text(v));
            }
        }
        if self.all {
            o.insert("all".into(), OwnedVariant::from(true));
        }
        o
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> SystemTime {
        when(s).map(|w| w.0).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn times_with_any_offset_are_one_instant() {
        let utc = at("2026-12-06T05:55:00Z");
        assert_eq!(at("2026-12-06T06:55:00+01:00"), utc);
        assert_eq!(at("2026-12-06T00:25:00-05:30"), utc);
        assert_eq!(at("2026-12-06T05:55:00+00:00"), utc);
        assert_eq!(at("2026-12-06 05:55:00z"), utc);
        assert!(when("2026-12-06T06:55:00+25:00").is_err());
        assert!(when("2026-12-06T06:55:00+0100").is_err());
        assert!(when("2026-12-06").is_err());
        assert_eq!(offset_text(-19_800), "-05:30");
    }
}
