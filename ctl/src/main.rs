//! `ebpfstatctl`: ask ebpfstatd which eBPF programs cost CPU, now and over time.

/// `println!` that hands back the error instead of panicking when stdout is gone (a pager
/// quit, `| head -1`): `main` then ends quietly.
macro_rules! out {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        writeln!(std::io::stdout().lock(), $($arg)*)
    }};
}

/// `print!` in the same way.
macro_rules! out_raw {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let mut out = std::io::stdout().lock();
        write!(out, $($arg)*).and_then(|()| out.flush())
    }};
}

mod args;
mod commands;
mod connect;
mod help;
mod live;
mod notes;
mod render;
mod units;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand};

pub use args::{ExportArgs, ExportFormat, FilterArgs, HistoryArgs, Metric, Sort, TopArgs};

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
    /// Programs ranked by cost over a window (default: the last 5 minutes).
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
        /// Program id or name.
        program: String,
    },
    /// Every map on the host, with the programs using it and the processes holding it.
    #[command(after_long_help = help::MAPS)]
    Maps(FilterArgs),
    /// Stored history as OpenMetrics with time stamps, for backfill into Prometheus or
    /// VictoriaMetrics.
    #[command(after_long_help = help::EXPORT)]
    Export(ExportArgs),
    /// Daemon health: stats state, database size against its cap, tiers, own CPU and memory.
    #[command(after_long_help = help::STATUS)]
    Status,
    /// Write man pages and shell completions into a directory (packaging installs them).
    GenerateDocs { dir: PathBuf },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Command::GenerateDocs { dir } = &cli.command {
        return match generate_docs(dir) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("ebpfstatctl: {e}");
                ExitCode::FAILURE
            }
        };
    }
    units::set_exact(cli.exact || matches!(cli.command, Command::Show { .. }));
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("ebpfstatctl: cannot start: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(commands::run(&cli)) {
        Ok(()) => ExitCode::SUCCESS,
        // The reader went away (`| head -1`): nothing is left to say to anyone.
        Err(e) if reader_gone(&e) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ebpfstatctl: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn reader_gone(e: &anyhow::Error) -> bool {
    let pipe = Some(std::io::ErrorKind::BrokenPipe);
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>().map(std::io::Error::kind) == pipe
            || c.downcast_ref::<serde_json::Error>()
                .and_then(serde_json::Error::io_error_kind)
                == pipe
    })
}

/// Man pages (`ebpfstatctl.1`, one per subcommand) and bash/zsh/fish completions.
fn generate_docs(dir: &std::path::Path) -> std::io::Result<()> {
    let man = dir.join("man");
    let completions = dir.join("completions");
    std::fs::create_dir_all(&man)?;
    std::fs::create_dir_all(&completions)?;
    let cmd = Cli::command();
    clap_mangen::generate_to(cmd.clone(), &man)?;
    for shell in [
        clap_complete::Shell::Bash,
        clap_complete::Shell::Zsh,
        clap_complete::Shell::Fish,
    ] {
        clap_complete::generate_to(shell, &mut cmd.clone(), "ebpfstatctl", &completions)?;
    }
    Ok(())
}
