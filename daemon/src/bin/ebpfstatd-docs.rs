//! `ebpfstatd-docs DIR`: writes `ebpfstatd.8` from the command-line definitions. Packaging runs
//! it; it is not shipped (the man page generator would add to the daemon's size).

#[path = "../cli.rs"]
#[allow(
    dead_code,
    reason = "the man page needs the definitions, not the settings they make"
)]
mod cli;

use std::path::Path;
use std::process::ExitCode;

fn generate(dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let man = clap_mangen::Man::new(cli::command()).section("8");
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
