//! `Compare()`: two versions of a program (the maths is `crate::compare`).

use std::time::Duration;

use ebpfstat_dbus::{self as wire, Error, Options};

use super::Stats1;
use super::args::{bounded, check_options, parse_spec};
use super::queries::{CompareAsk, Query};
use crate::compare::{NeedsAsked, Pick};

/// A caller's `min_seconds` is at most a year.
const MAX_MIN_SECONDS: u32 = 365 * 86_400;

fn option_u32(options: &Options, key: &str) -> Option<u32> {
    // `check_options` made sure it is a `u`.
    options.get(key).and_then(|v| u32::try_from(v).ok())
}

impl Stats1 {
    pub(super) async fn compare_versions(
        &self,
        program: &str,
        before: &str,
        after: &str,
        options: Options,
    ) -> Result<wire::Comparison, Error> {
        check_options(&options, &[("min_runs", "u"), ("min_seconds", "u")])?;
        let min_seconds = option_u32(&options, "min_seconds");
        if let Some(s) = min_seconds.filter(|s| *s > MAX_MIN_SECONDS) {
            return Err(Error::InvalidArgument(format!(
                "min_seconds {s} is more than a year ({MAX_MIN_SECONDS})"
            )));
        }
        // What the caller leaves out is the daemon's configured needs, the ones its own
        // comparisons (the events) are judged by.
        let needs = NeedsAsked {
            min_runs: option_u32(&options, "min_runs").map(u64::from),
            min_observed: min_seconds.map(|s| Duration::from_secs(u64::from(s))),
        };
        let spec = parse_spec(program)?;
        let pick = |s: &str, what: &str, default: Pick| {
            Pick::parse(bounded(what, s, 64)?, default)
                .map_err(|e| Error::InvalidArgument(format!("{what}: {e}")))
        };
        let before = pick(before, "before", Pick::Newest(1))?;
        let after = pick(after, "after", Pick::Newest(0))?;
        let interval = self.shared.published.borrow().interval;
        let ask = CompareAsk {
            spec,
            before,
            after,
            needs,
            interval,
        };
        self.ask(|r| Query::Compare(ask, r)).await?
    }
}
