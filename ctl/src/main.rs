//! `ebpfstatctl`: ask ebpfstatd which eBPF programs cost CPU, now and over time.

/// `println!` that hands back the error instead of panicking when stdout is gone (a pager
/// quit, `| head -1`): `main` then ends quietly. The line is made `render::visible` (text from
/// the daemon may hold terminal controls), so a line break is a second `out!`.
macro_rules! out {
    () => {
        out!("")
    };
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        writeln!(
            std::io::stdout().lock(),
            "{}",
            crate::render::visible(&format!($($arg)*))
        )
    }};
}

/// `print!` as is, for this program's own escape codes (clearing the screen), never for text
/// from the daemon.
macro_rules! out_raw {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let mut out = std::io::stdout().lock();
        write!(out, $($arg)*).and_then(|()| out.flush())
    }};
}

mod args;
mod cli;
mod commands;
mod connect;
mod help;
mod live;
mod notes;
mod render;
mod units;

use std::process::ExitCode;

use clap::Parser;

pub use args::{
    By, CompareArgs, ExportArgs, ExportFormat, FilterArgs, HistoryArgs, Metric, ProfileArgs, Sort,
    TopArgs,
};
pub use cli::{Cli, Command};

fn main() -> ExitCode {
    let cli = Cli::parse();
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
        Err(e) if e.is::<commands::GateFailed>() => {
            eprintln!("ebpfstatctl: {}", render::visible_lines(&format!("{e:#}")));
            ExitCode::from(commands::GATE_FAILED)
        }
        Err(e) => {
            // A daemon's error may quote what it was given or found (names, paths).
            eprintln!("ebpfstatctl: {}", render::visible_lines(&format!("{e:#}")));
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
