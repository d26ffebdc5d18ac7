//! `ebpfstatctl profile`: every run of a program timed for a while; percentiles and histogram.

use anyhow::Result;
use ebpfstat_dbus::{Options, Stats1Proxy};

use super::explain;
use crate::ProfileArgs;
use crate::render::histogram::{COLUMNS, PERCENTILES, percentiles, rows, summary};
use crate::render::{left_align_last, print_json, print_table, say, table};

pub async fn profile(p: &Stats1Proxy<'_>, a: &ProfileArgs, json: bool) -> Result<()> {
    let ns = u64::try_from(a.duration.as_nanos()).unwrap_or(u64::MAX);
    let profile = p
        .profile(&a.program, ns, Options::new())
        .await
        .map_err(explain)?;
    if json {
        return print_json(&profile);
    }
    for line in summary(&profile) {
        say(&line)?;
    }
    if profile.runs == 0 {
        return Ok(());
    }
    let mut t = table(&PERCENTILES, 0);
    t.add_row(percentiles(&profile).to_vec());
    print_table(&t)?;
    out!()?;
    let mut t = table(&COLUMNS, 0);
    left_align_last(&mut t);
    for r in rows(&profile, 30) {
        t.add_row(r.to_vec());
    }
    print_table(&t)?;
    Ok(())
}
