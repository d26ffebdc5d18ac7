//! The command line, as data: the global flags, `run`'s (every setting of the configuration
//! file, from `config::defs`, and two hidden testing aids) and `sample`'s. The daemon parses
//! it with `lexopt` and writes its help from these tables; `ebpfstatd-docs` (built for
//! packaging, not shipped) makes the man page from the same tables. A full argument parser
//! (clap, 130 KB of the binary) stays out of the daemon.

use std::ffi::OsString;
use std::path::PathBuf;

use ebpfstatd::config::{CONFIG_PATH, Effective, Settings, Shown, Span, defs};

pub const ABOUT: &str = "eBPF program statistics with history";

/// One flag, as its help says it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Flag {
    /// Without the leading `--`.
    pub long: String,
    /// What its value is called; `None` for a switch.
    pub value: Option<String>,
    pub help: String,
    /// Said at the end of its help.
    pub default: Option<String>,
    pub hidden: bool,
}

impl Flag {
    fn switch(long: &str, help: &str) -> Self {
        Self {
            long: long.to_owned(),
            value: None,
            help: help.to_owned(),
            default: None,
            hidden: false,
        }
    }

    fn valued(long: &str, value: &str, help: &str, default: Option<String>) -> Self {
        Self {
            value: Some(value.to_owned()),
            default,
            ..Self::switch(long, help)
        }
    }
}

/// The flags every command takes.
pub fn global_flags() -> Vec<Flag> {
    vec![
        Flag::valued(
            "config",
            "FILE",
            "Configuration file.",
            Some(format!("{CONFIG_PATH} when it exists")),
        ),
        Flag::switch(
            "check-config",
            "Check the configuration (file and flags), print the settings in effect, and exit.",
        ),
    ]
}

/// The flags of `run`: each setting of the configuration file (it overrides the file's key),
/// its help ending in the default; and the hidden testing aids.
pub fn run_flags() -> Vec<Flag> {
    let mut flags: Vec<Flag> = defs()
        .into_iter()
        .map(|d| {
            let help = d.doc.lines().next().unwrap_or_default().trim();
            Flag::valued(
                &d.key.replace('_', "-"),
                &d.value_name,
                help,
                Some(d.default),
            )
        })
        .collect();
    for (long, help) in [
        (
            "debug-stall-after",
            "Testing aid: the sampler stops after this many passes (the watchdog then fires).",
        ),
        (
            "debug-panic-after",
            "Testing aid: the sampler panics after this many passes (the daemon then ends).",
        ),
    ] {
        flags.push(Flag {
            hidden: true,
            ..Flag::valued(long, "N", help, None)
        });
    }
    flags
}

/// The flags of `sample`.
pub fn sample_flags() -> Vec<Flag> {
    let defaults = Effective::default();
    vec![
        Flag::switch("json", "One JSON object per pass, one per line."),
        Flag::valued("count", "COUNT", "Number of passes.", Some("1".into())),
        Flag::valued(
            "interval",
            "INTERVAL",
            "Time between passes (e.g. `1s`, `250ms`).",
            Some(Span(defaults.interval).to_string()),
        ),
        Flag::valued(
            "rescan-every",
            "RESCAN_EVERY",
            "Rescan owners, pins, links and map memory at least every this many passes.",
            Some(defaults.rescan_every.to_string()),
        ),
    ]
}

/// The subcommands and what each does.
pub const COMMANDS: [(&str, &str); 2] = [
    (
        "run",
        "Sample on a schedule and keep history (the default).",
    ),
    (
        "sample",
        "Take sampling passes and print them (a debugging surface; stores nothing).",
    ),
];

/// What the command line asks for.
#[derive(Debug)]
pub enum Asked {
    Run(Box<RunArgs>),
    Sample(SampleArgs),
    /// Help for the command named (`None`: the whole).
    Help(Option<&'static str>),
    Version,
}

#[derive(Debug, Default)]
pub struct RunArgs {
    pub config: Option<PathBuf>,
    pub check_config: bool,
    /// The settings the flags give.
    pub settings: Settings,
    pub debug_stall_after: Option<u64>,
    pub debug_panic_after: Option<u64>,
}

#[derive(Debug)]
pub struct SampleArgs {
    pub json: bool,
    pub count: u64,
    pub interval: Span,
    pub rescan_every: u64,
}

/// A command line that cannot be followed: said, and the daemon exits 2.
#[derive(Debug)]
pub struct Refused(pub String);

impl From<lexopt::Error> for Refused {
    /// lexopt's own words, but with what it quotes of the command line [`Shown`].
    fn from(e: lexopt::Error) -> Self {
        use lexopt::Error as E;
        Self(match e {
            E::UnexpectedOption(o) => format!("invalid option '{}'", Shown(&o)),
            E::UnexpectedArgument(v) => {
                format!("unexpected argument {:?}", Shown(&v.to_string_lossy()))
            }
            E::UnexpectedValue { option, value } => format!(
                "unexpected argument for option '{}': {:?}",
                Shown(&option),
                Shown(&value.to_string_lossy())
            ),
            E::NonUnicodeValue(v) => {
                format!(
                    "argument is invalid unicode: {:?}",
                    Shown(&v.to_string_lossy())
                )
            }
            other => other.to_string(),
        })
    }
}

/// Reads the arguments after the program's name.
pub fn parse(args: impl IntoIterator<Item = OsString>) -> Result<Asked, Refused> {
    use lexopt::prelude::*;
    let mut p = lexopt::Parser::from_args(args);
    let mut run = RunArgs::default();
    let mut sample: Option<SampleArgs> = None;
    let mut command: Option<&'static str> = None;
    while let Some(arg) = p.next()? {
        match arg {
            Short('h') | Long("help") => return Ok(Asked::Help(command)),
            Short('V') | Long("version") => return Ok(Asked::Version),
            Long("config") => run.config = Some(p.value()?.into()),
            Long("check-config") => run.check_config = true,
            Value(v) if command.is_none() => {
                command = Some(match v.to_str() {
                    Some("run") => "run",
                    Some("sample") => {
                        sample = Some(sample_defaults());
                        "sample"
                    }
                    _ => {
                        let v = v.to_string_lossy();
                        return Err(Refused(format!(
                            "unknown command {:?} (run, sample)",
                            Shown(&v)
                        )));
                    }
                });
            }
            Long(flag) => {
                let flag = flag.to_owned();
                match sample.as_mut() {
                    Some(s) => sample_flag(s, &flag, &mut p)?,
                    None => run_flag(&mut run, &flag, &mut p)?,
                }
            }
            other => return Err(other.unexpected().into()),
        }
    }
    Ok(match sample {
        Some(s) => Asked::Sample(s),
        None => Asked::Run(Box::new(run)),
    })
}

/// The value of `--flag`, as text.
fn text(flag: &str, p: &mut lexopt::Parser) -> Result<String, Refused> {
    p.value()?.into_string().map_err(|v| {
        let v = v.to_string_lossy();
        Refused(format!("--{} {:?}: not UTF-8", Shown(flag), Shown(&v)))
    })
}

fn run_flag(run: &mut RunArgs, flag: &str, p: &mut lexopt::Parser) -> Result<(), Refused> {
    let value = text(flag, p)?;
    let count = |v: &str| {
        v.parse::<u64>()
            .map_err(|e| Refused(format!("--{flag} {}: {e}", Shown(v))))
    };
    match flag {
        "debug-stall-after" => run.debug_stall_after = Some(count(&value)?),
        "debug-panic-after" => run.debug_panic_after = Some(count(&value)?),
        _ => match run.settings.set(&flag.replace('-', "_"), &value) {
            Some(set) => set.map_err(|e| Refused(format!("--{flag} {}: {e}", Shown(&value))))?,
            None => return Err(Refused(format!("unknown flag --{}", Shown(flag)))),
        },
    }
    Ok(())
}

fn sample_defaults() -> SampleArgs {
    let defaults = Effective::default();
    SampleArgs {
        json: false,
        count: 1,
        interval: Span(defaults.interval),
        rescan_every: defaults.rescan_every,
    }
}

fn sample_flag(s: &mut SampleArgs, flag: &str, p: &mut lexopt::Parser) -> Result<(), Refused> {
    let at_least_one = |v: String| match v.parse::<u64>() {
        Ok(n) if n >= 1 => Ok(n),
        Ok(_) => Err(Refused(format!("--{flag} {}: at least 1", Shown(&v)))),
        Err(e) => Err(Refused(format!("--{flag} {}: {e}", Shown(&v)))),
    };
    match flag {
        "json" => s.json = true,
        "count" => s.count = at_least_one(text(flag, p)?)?,
        "rescan-every" => s.rescan_every = at_least_one(text(flag, p)?)?,
        "interval" => {
            let v = text(flag, p)?;
            s.interval = v
                .parse()
                .map_err(|e| Refused(format!("--interval {}: {e}", Shown(&v))))?;
        }
        _ => {
            return Err(Refused(format!(
                "unknown flag --{} for sample",
                Shown(flag)
            )));
        }
    }
    Ok(())
}

/// The help of the whole (`None`) or of one command, as `--help` prints it.
pub fn help(command: Option<&str>) -> String {
    let mut out = format!("{ABOUT}\n\n");
    let (usage, flags) = match command {
        Some("sample") => ("ebpfstatd sample [OPTIONS]", sample_flags()),
        Some(_) => ("ebpfstatd run [OPTIONS]", run_flags()),
        None => ("ebpfstatd [OPTIONS] [COMMAND]", run_flags()),
    };
    out.push_str(&format!("Usage: {usage}\n\n"));
    if command.is_none() {
        out.push_str("Commands:\n");
        for (name, what) in COMMANDS {
            out.push_str(&format!("  {name:<8}{what}\n"));
        }
        out.push('\n');
    }
    out.push_str("Options:\n");
    let mut all = global_flags();
    all.extend(flags);
    all.push(Flag::switch("help", "Print help."));
    all.push(Flag::switch("version", "Print version."));
    for f in all.iter().filter(|f| !f.hidden) {
        let named = match &f.value {
            Some(v) => format!("--{} <{v}>", f.long),
            None => format!("--{}", f.long),
        };
        let default = f
            .default
            .as_ref()
            .map_or_else(String::new, |d| format!(" [default: {d}]"));
        out.push_str(&format!("      {named}\n          {}{default}\n", f.help));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(args: &[&str]) -> String {
        match parse(args.iter().map(OsString::from)) {
            Err(Refused(why)) => why,
            Ok(asked) => panic!("{args:?} was taken: {asked:?}"),
        }
    }

    #[test]
    fn a_long_argument_is_quoted_by_its_start_and_length() {
        let long = "x".repeat(100_000);
        let flag = format!("--{long}");
        for args in [
            &["run", "--interval", &long][..],
            &["run", &flag, "1"],
            &["run", "--debug-stall-after", &long],
            &["sample", "--count", &long],
            &["sample", "--interval", &long],
            &["sample", &flag],
            &[&long],
            &["run", &long],
        ] {
            let why = refused(args);
            assert!(
                why.len() < 400 && why.contains("… (100000 bytes)"),
                "{} bytes: {}",
                why.len(),
                why.get(..400).unwrap_or(&why)
            );
        }
    }
}
