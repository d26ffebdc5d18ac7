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

mod commands;
mod connect;
mod notes;
mod render;
mod units;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, SystemTime};

use clap::{Args, CommandFactory, Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(
    name = "ebpfstatctl",
    version,
    about = "Query ebpfstatd: which eBPF programs cost CPU, now and over time"
)]
pub struct Cli {
    /// Print JSON instead of tables (fields: see the README).
    #[arg(long, global = true)]
    pub json: bool,
    /// D-Bus address of the bus the daemon is on (instead of the system bus).
    #[arg(long, global = true, value_name = "ADDR")]
    pub address: Option<String>,
    /// The daemon's private socket (instead of the system bus).
    #[arg(long, global = true, value_name = "PATH", conflicts_with = "address")]
    pub socket: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Sort {
    Runtime,
    Runs,
    Avg,
    Cpu,
    Mapmem,
}

impl Sort {
    pub fn wire(self) -> &'static str {
        match self {
            Self::Runtime => "runtime",
            Self::Runs => "runs",
            Self::Avg => "avg",
            Self::Cpu => "cpu",
            Self::Mapmem => "mapmem",
        }
    }
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Metric {
    Cpu,
    Runs,
    Runtime,
    Avg,
}

/// A point in time: a duration ago (`6h`, `90m`) or an RFC 3339 time (`2026-11-25T10:00:00Z`).
#[derive(Debug, Clone, Copy)]
pub struct When(pub SystemTime);

fn when(s: &str) -> Result<When, String> {
    if let Ok(d) = humantime::parse_duration(s) {
        return SystemTime::now()
            .checked_sub(d)
            .map(When)
            .ok_or_else(|| format!("{s:?} reaches before 1970"));
    }
    humantime::parse_rfc3339_weak(s).map(When).map_err(|_| {
        format!("{s:?} is neither a duration (6h, 90m) nor a time (2026-11-25T10:00:00Z)")
    })
}

fn positive(s: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(s).map_err(|e| format!("{s:?}: {e}"))?;
    if d.is_zero() {
        return Err("must be longer than zero".into());
    }
    Ok(d)
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Programs ranked by cost over a window (default: the last 5 minutes).
    Top(TopArgs),
    /// History of one program (an id, series:<id>, or a name: every load of it).
    History(HistoryArgs),
    /// All programs loaded now.
    List,
    /// Everything about one loaded program: metadata, maps, owners, attach points, notes.
    Show {
        /// Program id or name.
        program: String,
    },
    /// Every map on the host.
    Maps,
    /// Daemon health: stats state, database size against its cap, tiers, own CPU and memory.
    Status,
    /// Write man pages and shell completions into a directory (for packaging).
    #[command(hide = true)]
    GenerateDocs { dir: PathBuf },
}

#[derive(Debug, Args)]
pub struct TopArgs {
    /// Number of programs.
    #[arg(short, default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub n: u32,
    #[arg(long, value_enum, default_value = "cpu")]
    pub sort: Sort,
    /// Length of the window, ending now.
    #[arg(long, default_value = "5m", value_parser = positive, conflicts_with = "since")]
    pub window: Duration,
    /// Start of the window (a duration ago or a time), ending now.
    #[arg(long, value_parser = when)]
    pub since: Option<When>,
    /// Totals since each program was loaded, instead of the window.
    #[arg(long)]
    pub cumulative: bool,
    /// Refresh until interrupted.
    #[arg(long)]
    pub watch: bool,
    #[arg(long, default_value = "1s", value_parser = positive, requires = "watch")]
    pub refresh: Duration,
}

#[derive(Debug, Args)]
pub struct HistoryArgs {
    /// Program id, series:<id>, or name.
    pub program: String,
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
