//! The subcommands, one file each: a call (or a few) to the daemon, then a table or JSON
//! (`crate::render`).

mod alerts;
mod compare;
mod events;
mod export;
mod groups;
mod history;
mod list;
mod map_history;
mod maps;
mod profile;
mod show;
mod status;
mod top;

use anyhow::Result;
pub use compare::{GATE_FAILED, GateFailed};
use ebpfstat_numbers::WallNs;

use crate::Cli;
use crate::Command;
use crate::connect::{self, explain};

/// `[since, until or now)` in ns, checked: `--since` in the past (`example` is a duration to
/// suggest), `--until` after it.
fn range_ns(
    since: crate::args::When,
    until: Option<crate::args::When>,
    example: &str,
) -> Result<(i64, i64)> {
    let now = std::time::SystemTime::now();
    if since.0 > now {
        anyhow::bail!("--since is in the future; give a duration ago ({example}) or a past time");
    }
    let to = until.map_or(now, |w| w.0);
    if to <= since.0 {
        anyhow::bail!("--until must be after --since");
    }
    Ok((WallNs::of(since.0).ns(), WallNs::of(to).ns()))
}

pub async fn run(cli: &Cli) -> Result<()> {
    let proxy = connect::connect(cli.address.as_deref(), cli.socket.as_ref()).await?;
    match &cli.command {
        Command::Top(a) => top::top(proxy, a, cli).await,
        Command::History(a) => match (&a.map, &a.program) {
            (Some(map), _) => map_history::map_history(&proxy, map, a, cli.json).await,
            (None, Some(program)) => history::history(&proxy, program, a, cli.json).await,
            (None, None) => anyhow::bail!("history needs a program, or --map ID|NAME"),
        },
        Command::List(f) => list::list(&proxy, f, cli.json).await,
        Command::Show { program } => show::show(&proxy, program, cli.json).await,
        Command::Maps(f) => maps::maps(&proxy, f, cli.json).await,
        Command::Status => status::status(&proxy, cli.json).await,
        Command::Export(a) => export::export(&proxy, a).await,
        Command::Compare(a) => compare::compare(&proxy, a, cli.json).await,
        Command::Profile(a) => profile::profile(&proxy, a, cli.json).await,
        Command::Events { since } => events::events(&proxy, *since, cli.json).await,
        Command::Alerts { since } => alerts::alerts(&proxy, *since, cli.json).await,
    }
}
