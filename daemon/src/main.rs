//! The `ebpfstatd` binary: argument parsing and the edges of the process.

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use ebpfstatd::sampler::{Pass, Sampler, SamplerConfig};
use ebpfstatd::service::{self, ServiceConfig};
use ebpfstatd::store::{Retention, StoreConfig};

#[derive(Debug, Parser)]
#[command(
    name = "ebpfstatd",
    version,
    about = "eBPF program statistics with history"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    run: RunArgs,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Sample on a schedule and keep history (the default).
    Run(RunArgs),
    /// Take sampling passes and print them (a debugging surface; stores nothing).
    Sample(SampleArgs),
}

fn duration(s: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(s).map_err(|e| format!("{s:?}: {e}"))?;
    if d.is_zero() {
        return Err("must be longer than zero".into());
    }
    Ok(d)
}

#[derive(Debug, Args)]
struct RunArgs {
    /// Time between passes.
    #[arg(long, default_value = "1s", value_parser = duration)]
    interval: Duration,
    /// History database (created with its directory).
    #[arg(long, default_value = "/var/lib/ebpfstat/history.db")]
    db: PathBuf,
    /// Write buffered samples at least this often; a crash loses at most this window.
    #[arg(long, default_value = "60s", value_parser = duration)]
    flush_interval: Duration,
    /// Age kept at full resolution.
    #[arg(long, default_value = "6h", value_parser = duration)]
    raw_retention: Duration,
    /// Age kept as 1-minute rollups.
    #[arg(long, default_value = "7d", value_parser = duration)]
    minute_retention: Duration,
    /// Age kept as 1-hour rollups.
    #[arg(long, default_value = "90d", value_parser = duration)]
    hour_retention: Duration,
    /// Hard cap on the database file; the oldest data goes first (e.g. 64MiB).
    #[arg(long, default_value = "64MiB", value_parser = ebpfstatd::units::parse_bytes)]
    max_db_size: u64,
    /// Rescan owners, pins, links and map memory at least every this many passes.
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..))]
    rescan_every: u64,
    /// Bus to serve the API on: system, session, none, or a D-Bus address.
    #[arg(long, default_value = "system")]
    bus: service::Bus,
    /// Private socket serving the API without a bus ("none" for none).
    #[arg(long, default_value = ebpfstat_dbus::DEFAULT_SOCKET)]
    socket: PathBuf,
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
    #[arg(long, default_value = "1s", value_parser = duration)]
    interval: Duration,
    /// Rescan owners, pins, links and map memory at least every this many passes.
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..))]
    rescan_every: u64,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Some(Command::Sample(args)) => sample(&args),
        Some(Command::Run(args)) => run(args),
        None => run(cli.run),
    }
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false)
        .init();
}

fn run(args: RunArgs) -> anyhow::Result<()> {
    init_logging();
    let mut store = StoreConfig::new(&args.db);
    store.retention = Retention {
        raw: args.raw_retention,
        min1: args.minute_retention,
        hour1: args.hour_retention,
    };
    store.max_bytes = args.max_db_size;
    service::run(ServiceConfig {
        interval: args.interval,
        flush_interval: args.flush_interval,
        sampler: SamplerConfig {
            rescan_every: args.rescan_every,
            ..SamplerConfig::default()
        },
        store,
        bus: args.bus,
        socket: (args.socket.as_os_str() != "none").then_some(args.socket),
    })
    .context("ebpfstatd")
}

fn sample(args: &SampleArgs) -> anyhow::Result<()> {
    let mut sampler = Sampler::new(SamplerConfig {
        rescan_every: args.rescan_every,
        ..SamplerConfig::default()
    });
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    for n in 0..args.count {
        if n > 0 {
            std::thread::sleep(args.interval);
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
