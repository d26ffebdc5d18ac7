//! The command line: flags resolved into [`Settings`] (the file's keys), and the help that
//! shows each flag's default. Kept apart from `main` so `ebpfstatd-docs` (built for packaging,
//! not shipped) makes the man page from it: the generator stays out of the daemon.

use std::path::PathBuf;

use clap::{Args, CommandFactory, Parser, Subcommand};
use ebpfstat_dbus::defaults;
use ebpfstatd::config::{Budget, Bus, Effective, LogLevel, Settings, Size, Span, StatsMode};

#[derive(Debug, Parser)]
#[command(
    name = "ebpfstatd",
    version,
    about = "eBPF program statistics with history"
)]
pub struct Cli {
    /// Configuration file.
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Check the configuration (file and flags), print the settings in effect, and exit.
    #[arg(long, global = true)]
    pub check_config: bool,
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub run: RunArgs,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Sample on a schedule and keep history (the default).
    Run(Box<RunArgs>),
    /// Take sampling passes and print them (a debugging surface; stores nothing).
    Sample(SampleArgs),
}

fn size(s: &str) -> Result<Size, String> {
    ebpfstatd::units::parse_bytes(s).map(Size)
}

/// Flags of `run`; each overrides the same key of the configuration file. Their help ends in
/// the default, taken from [`Effective::default`] when the command is built (see `command`).
#[derive(Debug, Args)]
pub struct RunArgs {
    /// Time between passes.
    #[arg(long)]
    pub interval: Option<Span>,
    /// History database, created with its directory.
    #[arg(long)]
    pub db: Option<PathBuf>,
    /// Write buffered samples at least this often; a crash loses at most this window.
    #[arg(long)]
    pub flush_interval: Option<Span>,
    /// Age kept at full resolution.
    #[arg(long)]
    pub raw_retention: Option<Span>,
    /// Age kept as 1-minute rollups.
    #[arg(long)]
    pub minute_retention: Option<Span>,
    /// Age kept as 1-hour rollups.
    #[arg(long)]
    pub hour_retention: Option<Span>,
    /// Hard cap on the database file; the oldest data goes first.
    #[arg(long, value_parser = size)]
    pub max_db_size: Option<Size>,
    /// Rescan owners, pins, links and map memory at least every this many passes.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    pub rescan_every: Option<u64>,
    /// Bus to serve the API on: system, session, none, or a D-Bus address.
    #[arg(long)]
    pub bus: Option<Bus>,
    /// Private socket serving the API without a bus, or "none".
    #[arg(long)]
    pub socket: Option<PathBuf>,
    /// error, warn, info, debug or trace (RUST_LOG wins).
    #[arg(long)]
    pub log_level: Option<LogLevel>,
    /// How run-time stats are held: always, budget, or duty=W/P.
    #[arg(long, value_parser = stats_mode)]
    pub stats_mode: Option<StatsMode>,
    /// Most that stats may cost the host, as a share of one core.
    #[arg(long, value_parser = budget)]
    pub stats_overhead_budget: Option<Budget>,
    /// Most of one core the sampler's passes may take; slower passes stretch the interval.
    #[arg(long, value_parser = budget)]
    pub sampler_budget: Option<Budget>,
    /// A .prom file for node_exporter's textfile collector, or "none".
    #[arg(long)]
    pub textfile: Option<PathBuf>,
    /// How often the textfile is rewritten.
    #[arg(long)]
    pub textfile_interval: Option<Span>,
    /// Serve /metrics on this address (host:port), or "none".
    #[arg(long, value_name = "ADDR")]
    pub metrics_listen: Option<String>,
    /// Runs a new version of a program needs before it is compared with the one before.
    #[arg(long, value_name = "N")]
    pub compare_min_runs: Option<u64>,
    /// Time a new version must have been seen before it is compared.
    #[arg(long, value_name = "DURATION")]
    pub compare_min_time: Option<Span>,
    /// Testing aid: the sampler stops after this many passes (the watchdog then fires).
    #[arg(long, hide = true)]
    pub debug_stall_after: Option<u64>,
}

fn stats_mode(s: &str) -> Result<StatsMode, String> {
    s.parse().map(StatsMode)
}

fn budget(s: &str) -> Result<Budget, String> {
    ebpfstatd::observer::parse_budget(s).map(Budget)
}

impl RunArgs {
    pub fn settings(&self) -> Settings {
        Settings {
            interval: self.interval,
            db: self.db.clone(),
            flush_interval: self.flush_interval,
            raw_retention: self.raw_retention,
            minute_retention: self.minute_retention,
            hour_retention: self.hour_retention,
            max_db_size: self.max_db_size,
            rescan_every: self.rescan_every,
            bus: self.bus.clone(),
            socket: self.socket.clone(),
            log_level: self.log_level,
            stats_mode: self.stats_mode,
            stats_overhead_budget: self.stats_overhead_budget,
            sampler_budget: self.sampler_budget,
            textfile: self.textfile.clone(),
            textfile_interval: self.textfile_interval,
            metrics_listen: self.metrics_listen.clone(),
            compare_min_runs: self.compare_min_runs,
            compare_min_time: self.compare_min_time,
            alert: None,
        }
    }
}

#[derive(Debug, Args)]
pub struct SampleArgs {
    /// One JSON object per pass, one per line.
    #[arg(long)]
    pub json: bool,
    /// Number of passes.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..))]
    pub count: u64,
    /// Time between passes (e.g. `1s`, `250ms`).
    #[arg(long, default_value_t = Span(defaults::INTERVAL))]
    pub interval: Span,
    /// Rescan owners, pins, links and map memory at least every this many passes.
    #[arg(
        long,
        default_value_t = defaults::RESCAN_EVERY,
        value_parser = clap::value_parser!(u64).range(1..)
    )]
    pub rescan_every: u64,
}

/// The command line, with each `run` flag's help ending in its default. The flags themselves
/// have none: an absent flag leaves the configuration file's key in force.
pub fn command() -> clap::Command {
    let defaults = Effective::default().entries();
    let with_defaults = |cmd: clap::Command| {
        // A flag given twice takes its last value, as a wrapper adding to a command line expects.
        let cmd = cmd.args_override_self(true);
        defaults.iter().fold(cmd, |cmd, (key, value)| {
            cmd.mut_arg(*key, |arg| {
                let help = arg.get_help().map(ToString::to_string).unwrap_or_default();
                arg.help(format!("{help} [default: {value}]"))
            })
        })
    };
    with_defaults(Cli::command())
        .mut_subcommand("run", with_defaults)
        .mut_arg("config", |arg| {
            let help = arg.get_help().map(ToString::to_string).unwrap_or_default();
            arg.help(format!(
                "{help} [default: {} when it exists]",
                defaults::CONFIG_PATH
            ))
        })
}
