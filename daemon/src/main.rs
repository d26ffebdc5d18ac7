//! The `ebpfstatd` binary: argument parsing and the edges of the process.

use std::io::Write;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use ebpfstatd::sampler::{Pass, Sampler, SamplerConfig};

#[derive(Debug, Parser)]
#[command(
    name = "ebpfstatd",
    version,
    about = "eBPF program statistics with history"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Take sampling passes and print them (a debugging surface; stores nothing).
    Sample(SampleArgs),
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
    #[arg(long, default_value = "1s", value_parser = humantime::parse_duration)]
    interval: Duration,
    /// Rescan owners, pins, links and map memory at least every this many passes.
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..))]
    rescan_every: u64,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Sample(args) => sample(&args),
    }
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
