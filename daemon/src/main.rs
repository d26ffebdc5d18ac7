//! The `ebpfstatd` binary: argument parsing and the edges of the process.

mod cli;

use std::io::Write;
use std::path::PathBuf;

use cli::{Asked, RunArgs, SampleArgs};
use ebpfstatd::PassJson;
use ebpfstatd::config::{ConfigError, LogLevel, Sources};
use ebpfstatd::sampler::host::KernelInfo;
use ebpfstatd::sampler::{Pass, Sampler, SamplerConfig};
use ebpfstatd::service::{self, ServiceConfig, TestingAids};

fn main() -> std::process::ExitCode {
    let asked = match cli::parse(std::env::args_os().skip(1)) {
        Ok(asked) => asked,
        Err(cli::Refused(why)) => {
            eprintln!("ebpfstatd: {why}\n\nFor more information, try '--help'.");
            return std::process::ExitCode::from(2);
        }
    };
    let result = match asked {
        Asked::Help(command) => say(&cli::help(command)),
        Asked::Version => say(&format!("ebpfstatd {}\n", env!("CARGO_PKG_VERSION"))),
        Asked::Sample(args) => sample(&args),
        Asked::Run(args) => run(&args),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ebpfstatd: {}", with_causes(e.as_ref()));
            std::process::ExitCode::FAILURE
        }
    }
}

/// What ends the process with a failure. (Not anyhow: the few lines here spare the binary
/// room it lacked.)
type Failure = Box<dyn std::error::Error>;

/// An error and its causes, as `what: why: why`; a cause its error already says (as
/// `cannot read configuration …: {source}` does) is not said again.
fn with_causes(e: &dyn std::error::Error) -> String {
    let mut said = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let why = c.to_string();
        if !said.ends_with(&why) {
            said.push_str(": ");
            said.push_str(&why);
        }
        cause = c.source();
    }
    said
}

/// `e`, said as what was being done when it happened.
fn doing(what: &str, e: impl std::fmt::Display) -> Failure {
    format!("{what}: {e}").into()
}

/// A reader that went away (`ebpfstatd --check-config | head -1`) asked for no more: that is
/// not a failure. (print! would panic on it: Rust ignores SIGPIPE, so the write fails.)
fn unless_pipe_closed(written: std::io::Result<()>) -> std::io::Result<()> {
    match written {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => other,
    }
}

/// Writes `text` to stdout; a closed pipe ends it quietly.
fn say(text: &str) -> Result<(), Failure> {
    let mut out = std::io::stdout().lock();
    unless_pipe_closed(out.write_all(text.as_bytes()).and_then(|()| out.flush()))
        .map_err(|e| doing("writing to stdout", e))
}

/// Logs to stderr at `level` (`RUST_LOG` wins); the answer changes the level later (SIGHUP).
fn init_logging(level: LogLevel) -> service::SetLogLevel {
    use ebpfstatd::logging::{Logger, Targets};
    let of_level = |level: LogLevel| Targets::at(level.filter());
    let (targets, ignored) = match std::env::var("RUST_LOG") {
        Ok(v) => match v.parse::<Targets>() {
            Ok(targets) => (targets, None),
            Err(e) => (
                of_level(level),
                Some(format!("RUST_LOG={v:?} ignored: {e}")),
            ),
        },
        Err(_) => (of_level(level), None),
    };
    // Under systemd the journal stamps each line already.
    let stamped = std::env::var_os("JOURNAL_STREAM").is_none();
    let logger = Logger::new(targets, stamped);
    let levels = logger.levels();
    if let Err(e) = tracing::subscriber::set_global_default(logger) {
        eprintln!("logging not set up: {e}");
    }
    if let Some(why) = ignored {
        tracing::warn!("{why}");
    }
    Box::new(move |level: LogLevel| {
        levels.set(of_level(level));
        Ok(())
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

fn run(args: &RunArgs) -> Result<(), Failure> {
    // Configuration errors stop us before anything is opened.
    let sources = Sources {
        file: args.config.clone(),
        flags: args.settings.clone(),
    };
    let (settings, path) = sources.resolve()?;
    if args.check_config {
        let from = path.map_or("embedded defaults (no file)".to_owned(), |p| {
            p.display().to_string()
        });
        for t in &settings.remote_write {
            t.check_files().map_err(|message| ConfigError::Invalid {
                path: PathBuf::from(&from),
                message: format!("remote_write {:?}: {message}", t.url.text),
            })?;
        }
        return say(&format!("configuration ok: {from}\n{settings}\n"));
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
            aids: TestingAids {
                stall_after: args.debug_stall_after,
                panic_after: args.debug_panic_after,
            },
        },
        set_log_level,
    )
    .map_err(Into::into)
}

fn sample(args: &SampleArgs) -> Result<(), Failure> {
    let mut sampler = Sampler::new(SamplerConfig {
        rescan_every: args.rescan_every,
    });
    if let Some(why) = KernelInfo::current().unsupported() {
        eprintln!("ebpfstatd: {why}");
    }
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    for n in 0..args.count {
        if n > 0 {
            std::thread::sleep(args.interval.0);
        }
        let pass = sampler.pass();
        let written = if args.json {
            // Encoded first, so a failed write is an io::Error like any other.
            let line = serde_json::to_string(&PassJson::of(&pass))
                .map_err(|e| doing("encoding a pass as JSON", e))?;
            writeln!(out, "{line}")
        } else {
            write_text(&mut out, &pass)
        };
        if let Err(e) = written.and_then(|()| out.flush()) {
            // A closed pipe ends it quietly: nobody reads the passes still to come.
            return unless_pipe_closed(Err(e)).map_err(|e| doing("writing to stdout", e));
        }
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
