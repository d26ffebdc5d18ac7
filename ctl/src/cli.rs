//! The command line: global options and the subcommands. Kept apart from `main` so the man
//! pages and completions are generated from it by `ebpfstatctl-docs`, a binary that is built for
//! packaging and not shipped (their generators would add ~80 KB to `ebpfstatctl`).

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::args::{CompareArgs, ExportArgs, FilterArgs, HistoryArgs, ProfileArgs, TopArgs};
use crate::help;

#[derive(Debug, Parser)]
#[command(
    name = "ebpfstatctl",
    version,
    about = "Query ebpfstatd: which eBPF programs cost CPU, now and over time"
)]
pub struct Cli {
    /// Print JSON instead of tables (fields: see the README).
    #[arg(long, global = true, help_heading = "Global options")]
    pub json: bool,
    /// Exact numbers (123456, 48213ns) instead of rounded ones (123k, 48.2µs); `show` is exact.
    #[arg(long, global = true, help_heading = "Global options")]
    pub exact: bool,
    /// D-Bus address of the bus the daemon is on (instead of the system bus).
    #[arg(
        long,
        global = true,
        value_name = "ADDR",
        help_heading = "Global options"
    )]
    pub address: Option<String>,
    /// The daemon's private socket (instead of the system bus).
    #[arg(
        long,
        global = true,
        value_name = "PATH",
        conflicts_with = "address",
        help_heading = "Global options"
    )]
    pub socket: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Programs ranked by cost: on a terminal an interactive view, else a table over a window
    /// (default: the last 5 minutes).
    #[command(after_long_help = help::TOP)]
    Top(TopArgs),
    /// History of one program (an id, series:<id>, or a name: every load of it).
    #[command(after_long_help = help::HISTORY)]
    History(HistoryArgs),
    /// All programs loaded now, with their holders.
    #[command(after_long_help = help::LIST)]
    List(FilterArgs),
    /// Everything about one loaded program: metadata, maps, owners, attach points, notes.
    #[command(after_long_help = help::SHOW)]
    Show {
        /// Program id, series:<id>, or name (digits that are both an id and a name: id:<id> or
        /// name:<name>).
        program: String,
    },
    /// Every map on the host, with the programs using it and the processes holding it.
    #[command(after_long_help = help::MAPS)]
    Maps(FilterArgs),
    /// Stored history as OpenMetrics with time stamps, for backfill into Prometheus or
    /// VictoriaMetrics.
    #[command(after_long_help = help::EXPORT)]
    Export(ExportArgs),
    /// Two versions of a program (its loads with one tag) compared: cost per run with a 95 %
    /// interval, runs/s, CPU%, map memory, code size.
    #[command(after_long_help = help::COMPARE)]
    Compare(CompareArgs),
    /// What each run of a program costs: every run timed for a while (fentry/fexit), then the
    /// percentiles and the histogram.
    #[command(after_long_help = help::PROFILE)]
    Profile(ProfileArgs),
    /// What the daemon concluded: each new version of a program compared with the one before.
    #[command(after_long_help = help::EVENTS)]
    Events {
        /// From (a duration ago or a time).
        #[arg(long, default_value = "7d", value_parser = crate::args::when)]
        since: crate::args::When,
    },
    /// The alerts raised now (rules in the daemon's configuration), and those raised and
    /// cleared since `--since`.
    #[command(after_long_help = help::ALERTS)]
    Alerts {
        /// From (a duration ago or a time).
        #[arg(long, default_value = "1d", value_parser = crate::args::when)]
        since: crate::args::When,
    },
    /// Daemon health: stats state, database size against its cap, tiers, own CPU and memory.
    #[command(after_long_help = help::STATUS)]
    Status,
}
