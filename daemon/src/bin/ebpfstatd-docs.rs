//! `ebpfstatd-docs DIR`: writes `ebpfstatd.8` from the command line's tables (`cli.rs`, which
//! the daemon parses with). Packaging runs it; it is not shipped (the man page generator would
//! add to the daemon's size).

#[path = "../cli.rs"]
#[allow(dead_code, reason = "the man page needs the tables, not the parser")]
mod cli;

use std::path::Path;
use std::process::ExitCode;

use clap::{Arg, ArgAction, Command};

/// A name for clap, which keeps `&'static str` names: this program runs once and ends.
fn name(s: &str) -> &'static str {
    s.to_owned().leak()
}

fn arg(f: &cli::Flag) -> Arg {
    let help = match &f.default {
        Some(d) => format!("{} [default: {d}]", f.help),
        None => f.help.clone(),
    };
    let a = Arg::new(name(&f.long))
        .long(name(&f.long))
        .help(help)
        .hide(f.hidden);
    match &f.value {
        Some(v) => a.value_name(name(v)).num_args(1),
        None => a.action(ArgAction::SetTrue),
    }
}

/// The command line as clap describes it, for the man page.
fn command() -> Command {
    let [(run, run_about), (sample, sample_about)] = cli::COMMANDS;
    Command::new("ebpfstatd")
        .version(env!("CARGO_PKG_VERSION"))
        .about(cli::ABOUT)
        .args(cli::global_flags().iter().map(arg))
        .args(cli::run_flags().iter().map(arg))
        .subcommand(
            Command::new(run)
                .about(run_about)
                .args(cli::run_flags().iter().map(arg)),
        )
        .subcommand(
            Command::new(sample)
                .about(sample_about)
                .args(cli::sample_flags().iter().map(arg)),
        )
}

fn generate(dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let man = clap_mangen::Man::new(command()).section("8");
    let mut out = Vec::new();
    man.render(&mut out)?;
    std::fs::write(dir.join("ebpfstatd.8"), out)
}

fn main() -> ExitCode {
    let mut args = std::env::args_os().skip(1);
    let (Some(dir), None) = (args.next(), args.next()) else {
        eprintln!("usage: ebpfstatd-docs DIR");
        return ExitCode::from(2);
    };
    match generate(Path::new(&dir)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ebpfstatd-docs: {}: {e}", Path::new(&dir).display());
            ExitCode::FAILURE
        }
    }
}
