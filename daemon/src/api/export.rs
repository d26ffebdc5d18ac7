//! `Export()`: stored history as OpenMetrics with time stamps, a page per call (the text
//! itself is made in `crate::export::history`).

use std::time::Duration;

use ebpfstat_dbus::{self as wire, Error, Options};
use ebpfstat_numbers::time::duration_ns;

use super::Stats1;
use super::args::{check_options, check_range, max_points};
use super::filter::{self, Filter};
use super::page::Asked;
use super::queries::Query;
use crate::export::history::Cursor;

/// Steps per program an export may span: 10 years at a minute is 5.3 million.
pub const MAX_EXPORT_STEPS: u64 = 10_000_000;

impl Stats1 {
    pub(super) async fn export_page(
        &self,
        from_ns: i64,
        to_ns: i64,
        step_ns: u64,
        options: Options,
    ) -> Result<(String, String), Error> {
        let asked = self.asked(from_ns, to_ns, step_ns, &options)?;
        // Holders of the live programs, for the owner and unit filters.
        let held = asked.filter.held_now(self.latest_pass().as_deref());
        let (text, next) = self.ask(|r| Query::Export(asked, held, r)).await??;
        Ok((text, next.map_or_else(String::new, |c| c.to_string())))
    }

    /// The page's options and range, checked.
    fn asked(
        &self,
        from_ns: i64,
        to_ns: i64,
        step_ns: u64,
        options: &Options,
    ) -> Result<Asked, Error> {
        let mut keys = filter::KEYS.to_vec();
        keys.extend([("cursor", "s"), ("max_points", "u")]);
        check_options(options, &keys)?;
        let filter = Filter::from_options(options)?;
        let at = match options.get("cursor") {
            None => Cursor::start(from_ns),
            Some(v) => <&str>::try_from(v)
                .unwrap_or("")
                .parse::<Cursor>()
                .map_err(|e| Error::InvalidArgument(e.to_string()))?,
        };
        let max_points = max_points(options, wire::DEFAULT_EXPORT_POINTS)?;
        check_range(from_ns, to_ns, step_ns)?;
        if !(from_ns..to_ns).contains(&at.continues_at_ns()) {
            return Err(Error::InvalidArgument(format!(
                "the cursor continues at {} ns, outside the range asked for",
                at.continues_at_ns()
            )));
        }
        let interval = duration_ns(self.shared.published.borrow().interval);
        let step_ns = step_ns.max(interval);
        let steps = to_ns.abs_diff(from_ns) / step_ns;
        if steps > MAX_EXPORT_STEPS {
            return Err(Error::InvalidArgument(format!(
                "that range at a step of {} is {steps} steps per program; an export spans at \
                 most {MAX_EXPORT_STEPS} (a larger step, or a shorter range)",
                humantime::format_duration(Duration::from_nanos(step_ns))
            )));
        }
        Ok(Asked {
            filter,
            at,
            max_points,
            range: (from_ns, to_ns),
            step_ns,
        })
    }
}
