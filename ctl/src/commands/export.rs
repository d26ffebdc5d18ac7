//! `ebpfstatctl export`: stored history as OpenMetrics, a page per call, each written as it
//! comes.

use std::io::Write;

use anyhow::{Context, Result};
use ebpfstat_dbus::Stats1Proxy;
use ebpfstat_numbers::time;
use zbus::{OwnedVariant, Str};

use super::{explain, range_ns};
use crate::{ExportArgs, ExportFormat};

pub async fn export(p: &Stats1Proxy<'_>, a: &ExportArgs) -> Result<()> {
    let ExportFormat::Openmetrics = a.format;
    let (from, to) = range_ns(a.since, a.until, "7d")?;
    let step = time::duration_ns(a.step);
    let mut out: Box<dyn Write> = match &a.output {
        Some(path) => Box::new(std::io::BufWriter::new(
            std::fs::File::create(path)
                .with_context(|| format!("cannot create {}", path.display()))?,
        )),
        None => Box::new(std::io::stdout().lock()),
    };
    let mut cursor = String::new();
    loop {
        let mut options = a.filter.options();
        options.insert("max_points".into(), OwnedVariant::from(a.page_points));
        if !cursor.is_empty() {
            options.insert(
                "cursor".into(),
                OwnedVariant::from(Str::from(cursor.clone())),
            );
        }
        let (text, next) = p.export(from, to, step, options).await.map_err(explain)?;
        out.write_all(text.as_bytes())
            .context("cannot write the export")?;
        if next.is_empty() {
            break;
        }
        cursor = next;
    }
    out.flush().context("cannot write the export")?;
    Ok(())
}
