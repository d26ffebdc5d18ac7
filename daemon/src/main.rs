//! The `ebpfstatd` binary: argument parsing and the edges of the process.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, CommandFactory, FromArgMatches, Parser, Subcommand};
use ebpfstat_dbus::defaults;
use ebpfstatd::config::{
    Budget, Bus, Effective, LogLevel, Settings, Size, Sources, Span, StatsMode,
};
use ebpfstatd::sampler::{Pass, Sampler, SamplerConfig};
use ebpfstatd::service::{self, ServiceConfig};

#[derive(Debug, Parser)]
#[command(
    name = "ebpfstatd",
    version,
    about = "eBPF program statistics with history"
)]
struct Cli {
    /// Configuration file.
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Check the configuration (file and flags), print the settings in effect, and exit.
    #[arg(long, global = true)]
    check_config: bool,
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    run: RunArgs,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Sample on a schedule and keep history (the default).
    Run(Box<RunArgs>),
    /// Take sampling passes and print them (a debugging surface; stores nothing).
    Sample(SampleArgs),
    /// Write the man page into a directory (for packaging).
    #[command(hide = true)]
    GenerateDocs { dir: PathBuf },
}

fn size(s: &str) -> Result<Size, String> {
    ebpfstatd::units::parse_bytes(s).map(Size)
}

/// Flags of `run`; each overrides the same key of the configuration file. Their help ends in
/// the default, taken from [`Effective::default`] when the command is built (see `command`).
#[derive(Debug, Args)]
struct RunArgs {
    /// Time between passes.
    #[arg(long)]
    interval: Option<Span>,
    /// History database, created with its directory.
    #[arg(long)]
    db: Option<PathBuf>,
    /// Write buffered samples at least this often; a crash loses at most this window.
    #[arg(long)]
    flush_interval: Option<Span>,
    /// Age kept at full resolution.
    #[arg(long)]
    raw_retention: Option<Span>,
    /// Age kept as 1-minute rollups.
    #[arg(long)]
    minute_retention: Option<Span>,
    /// Age kept as 1-hour rollups.
    #[arg(long)]
    hour_retention: Option<Span>,
    /// Hard cap on the database file; the oldest data goes first.
    #[arg(long, value_parser = size)]
    max_db_size: Option<Size>,
    /// Rescan owners, pins, links and map memory at least every this many passes.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    rescan_every: Option<u64>,
    /// Bus to serve the API on: system, session, none, or a D-Bus address.
    #[arg(long)]
    bus: Option<Bus>,
    /// Private socket serving the API without a bus, or "none".
    #[arg(long)]
    socket: Option<PathBuf>,
    /// error, warn, info, debug or trace (RUST_LOG wins).
    #[arg(long)]
    log_level: Option<LogLevel>,
    /// How run-time stats are held: always, budget, or duty=W/P.
    #[arg(long, value_parser = stats_mode)]
    stats_mode: Option<StatsMode>,
    /// Most that stats may cost the host, as a share of one core.
    #[arg(long, value_parser = budget)]
    stats_overhead_budget: Option<Budget>,
    /// Most of one core the sampler's passes may take; slower passes stretch the interval.
    #[arg(long, value_parser = budget)]
    sampler_budget: Option<Budget>,
    /// A .prom file for node_exporter's textfile collector, or "none".
    #[arg(long)]
    textfile: Option<PathBuf>,
    /// How often the textfile is rewritten.
    #[arg(long)]
    textfile_interval: Option<Span>,
    /// Serve /metrics on this address (host:port), or "none".
    #[arg(long, value_name = "ADDR")]
    metrics_listen: Option<String>,
    /// Runs a new version of a program needs before it is compared with the one before.
    #[arg(long, value_name = "N")]
    compare_min_runs: Option<u64>,
    /// Time a new version must have been seen before it is compared.
    #[arg(long, value_name = "DURATION")]
    compare_min_time: Option<Span>,
    /// Testing aid: the sampler stops after this many passes (the watchdog then fires).
    #[arg(long, hide = true)]
    debug_stall_after: Option<u64>,
}

fn stats_mode(s: &str) -> Result<StatsMode, String> {
    s.parse().map(StatsMode)
}

fn budget(s: &str) -> Result<Budget, String> {
    ebpfstatd::observer::parse_budget(s).map(Budget)
}

impl RunArgs {
    fn settings(&self) -> Settings {
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
        }
    }
}

#[derive(Debug, Args)]
struct SampleArgs {
    /// One JSON object per pass, one per line.
    #[arg(long)]
    json: bool,
    /// Number of passes.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..))]
    count: u64,
    /// Time between passes (e.g. `1s`, `250ms`).
    #[arg(long, default_value_t = Span(defaults::INTERVAL))]
    interval: Span,
    /// Rescan owners, pins, links and map memory at least every this many passes.
    #[arg(
        long,
        default_value_t = defaults::RESCAN_EVERY,
        value_parser = clap::value_parser!(u64).range(1..)
    )]
    rescan_every: u64,
}

/// The command line, with each `run` flag's help ending in its default. The flags themselves
/// have none: an absent flag leaves the configuration file's key in force.
fn command() -> clap::Command {
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

fn main() -> std::process::ExitCode {
    let cli = match Cli::from_arg_matches(&command().get_matches()) {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    };
    let result = match cli.command {
        Some(Command::Sample(args)) => sample(&args),
        Some(Command::GenerateDocs { dir }) => generate_docs(&dir),
        Some(Command::Run(args)) => run(cli.config.as_deref(), cli.check_config, &args),
        None => run(cli.config.as_deref(), cli.check_config, &cli.run),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ebpfstatd: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn generate_docs(dir: &std::path::Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir)?;
    let man = clap_mangen::Man::new(command()).section("8");
    let mut out = Vec::new();
    man.render(&mut out)?;
    std::fs::write(dir.join("ebpfstatd.8"), out)?;
    Ok(())
}

/// Logs to stderr at `level` (`RUST_LOG` wins); the answer changes the level later (SIGHUP).
/// `RUST_LOG` takes `level` or `target=level` pairs: a `Targets` filter, which needs no regex
/// engine (`EnvFilter`'s cost 140 KB of the binary for span-field matching a daemon never uses).
fn init_logging(level: LogLevel) -> service::SetLogLevel {
    use tracing_subscriber::filter::Targets;
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    use tracing_subscriber::{fmt, reload};
    let of_level = |level: LogLevel| Targets::new().with_default(level.filter());
    let from_env = std::env::var("RUST_LOG").ok().map(|v| {
        let parsed = v.parse::<Targets>();
        (v, parsed)
    });
    let (filter, ignored) = match from_env {
        Some((_, Ok(targets))) => (targets, None),
        Some((v, Err(e))) => (
            of_level(level),
            Some(format!("RUST_LOG={v:?} ignored: {e}")),
        ),
        None => (of_level(level), None),
    };
    let (filter, handle) = reload::Layer::new(filter);
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    // Under systemd the journal stamps each line already.
    let journal = std::env::var_os("JOURNAL_STREAM").is_some();
    let stamped = (!journal).then(|| {
        fmt::layer()
            .with_writer(std::io::stderr)
            .with_ansi(ansi)
            .with_target(false)
    });
    let plain = journal.then(|| {
        fmt::layer()
            .with_writer(std::io::stderr)
            .with_ansi(ansi)
            .with_target(false)
            .without_time()
    });
    tracing_subscriber::registry()
        .with(filter)
        .with(stamped)
        .with(plain)
        .init();
    if let Some(why) = ignored {
        tracing::warn!("{why}");
    }
    Box::new(move |level: LogLevel| {
        handle
            .modify(|f| *f = of_level(level))
            .map_err(|e| e.to_string())
    })
}

/// Raises the soft limit on open files to the hard one: systemd's default soft limit (1024) is
/// meant for programs using `select(2)`, and sampling thousands of programs and maps needs more
/// room than that beside the API's peers.
fn raise_fd_limit() {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `lim` is a valid rlimit for getrlimit to write.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &raw mut lim) } != 0 {
        tracing::warn!(
            "cannot read the open-file limit: {}",
            std::io::Error::last_os_error()
        );
        return;
    }
    if lim.rlim_cur < lim.rlim_max {
        let wanted = libc::rlimit {
            rlim_cur: lim.rlim_max,
            rlim_max: lim.rlim_max,
        };
        // SAFETY: `wanted` is a valid rlimit for setrlimit to read.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raw const wanted) } != 0 {
            tracing::warn!(
                "cannot raise the open-file limit from {}: {}",
                lim.rlim_cur,
                std::io::Error::last_os_error()
            );
        }
    }
}

fn run(config: Option<&std::path::Path>, check: bool, args: &RunArgs) -> anyhow::Result<()> {
    // Configuration errors stop us before anything is opened.
    let sources = Sources {
        file: config.map(ToOwned::to_owned),
        flags: args.settings(),
    };
    let (settings, path) = sources.resolve()?;
    if check {
        let from = path.map_or("embedded defaults (no file)".to_owned(), |p| {
            p.display().to_string()
        });
        println!("configuration ok: {from}\n{settings}");
        return Ok(());
    }
    let set_log_level = init_logging(settings.log_level);
    // History is for root and group `ebpfstat`, through the API: whatever the caller's umask,
    // what the daemon creates (database, WAL, directories) is 0600/0700, as under the unit
    // (`UMask=0077`). The socket sets its own mode.
    // SAFETY: umask(2) only sets this process's file mode creation mask; it cannot fail.
    unsafe { libc::umask(0o077) };
    raise_fd_limit();
    service::run(
        ServiceConfig {
            settings,
            sources,
            stall_after: args.debug_stall_after,
        },
        set_log_level,
    )
    .map_err(Into::into)
}

fn sample(args: &SampleArgs) -> anyhow::Result<()> {
    let mut sampler = Sampler::new(SamplerConfig {
        rescan_every: args.rescan_every,
    });
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    for n in 0..args.count {
        if n > 0 {
            std::thread::sleep(args.interval.0);
        }
        let pass = sampler.pass();
        if args.json {
            serde_json::to_writer(&mut out, &pass).context("writing JSON")?;
            writeln!(out)?;
        } else {
            write_text(&mut out, &pass)?;
        }
        out.flush().context("writing to stdout")?;
    }
    Ok(())
}

fn write_text(out: &mut impl Write, pass: &Pass) -> std::io::Result<()> {
    writeln!(
        out,
        "pass {} · stats {} · kernel {} · {} programs",
        pass.seq,
        pass.stats_state,
        pass.kernel.release,
        pass.programs.len()
    )?;
    writeln!(
        out,
        "{:>7} {:<16} {:<16} {:>14} {:>16} {:>10} {:>8}",
        "ID", "NAME", "TYPE", "RUN_CNT", "RUN_TIME_NS", "ΔRUNS", "CPU%"
    )?;
    for p in &pass.programs {
        let (delta, cpu) = p
            .interval
            .map_or((String::from("-"), String::from("-")), |i| {
                (i.delta_run_cnt.to_string(), format!("{:.3}", i.cpu_pct))
            });
        writeln!(
            out,
            "{:>7} {:<16} {:<16} {:>14} {:>16} {:>10} {:>8}",
            p.meta.id,
            p.meta.display_name(),
            p.meta.prog_type,
            p.counters.run_cnt,
            p.counters.run_time_ns,
            delta,
            cpu
        )?;
    }
    for e in &pass.errors {
        writeln!(out, "error: {e}")?;
    }
    Ok(())
}
