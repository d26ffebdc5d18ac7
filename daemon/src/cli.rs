//! The command line: flags resolved into [`Settings`] (the file's keys), and the help that
//! shows each flag's default. Kept apart from `main` so `ebpfstatd-docs` (built for packaging,
//! not shipped) makes the man page from it: the generator stays out of the daemon.

use std::path::PathBuf;

use clap::{Args, CommandFactory, Parser, Subcommand};
use ebpfstatd::config::{CONFIG_PATH, Effective, Settings, Span};

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

/// Flags of `run`: every setting of the configuration file ([`Settings`], each overriding the
/// same key of the file; their help ends in the default, added when the command is built: see
/// `command`), and a testing aid.
#[derive(Debug, Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub settings: Settings,
    /// Testing aid: the sampler stops after this many passes (the watchdog then fires).
    #[arg(long, hide = true)]
    pub debug_stall_after: Option<u64>,
    /// Testing aid: the sampler panics after this many passes (the daemon then ends).
    #[arg(long, hide = true)]
    pub debug_panic_after: Option<u64>,
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
    #[arg(long, default_value_t = Span(Effective::default().interval))]
    pub interval: Span,
    /// Rescan owners, pins, links and map memory at least every this many passes.
    #[arg(
        long,
        default_value_t = Effective::default().rescan_every,
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
            arg.help(format!("{help} [default: {} when it exists]", CONFIG_PATH))
        })
}
