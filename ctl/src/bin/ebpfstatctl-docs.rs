//! `ebpfstatctl-docs DIR`: man pages (`ebpfstatctl.1`, one per subcommand) and bash, zsh and
//! fish completions of `ebpfstatctl`, from its command-line definitions. Packaging runs it; it is
//! not shipped.

#[path = "../args.rs"]
#[allow(
    dead_code,
    reason = "the docs need the definitions, not the parsing helpers"
)]
mod args;
#[path = "../cli.rs"]
mod cli;
#[path = "../help.rs"]
mod help;

use std::path::Path;
use std::process::ExitCode;

use clap::CommandFactory;

fn generate(dir: &Path) -> std::io::Result<()> {
    let man = dir.join("man");
    let completions = dir.join("completions");
    std::fs::create_dir_all(&man)?;
    std::fs::create_dir_all(&completions)?;
    let cmd = cli::Cli::command();
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

fn main() -> ExitCode {
    let mut args = std::env::args_os().skip(1);
    let (Some(dir), None) = (args.next(), args.next()) else {
        eprintln!("usage: ebpfstatctl-docs DIR");
        return ExitCode::from(2);
    };
    match generate(Path::new(&dir)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ebpfstatctl-docs: {}: {e}", Path::new(&dir).display());
            ExitCode::FAILURE
        }
    }
}
