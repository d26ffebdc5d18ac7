//! The one model of ebpfstat's numbers, below every crate that computes or shows them.
//!
//! The kernel reports cumulative counters ([`Counters`]); everything a person or a fleet reads
//! is derived from them here, once: per-interval and since-load rates, CPU %, averages, what
//! run-time statistics cost ([`rates`]), how programs are ranked ([`rank`]), the conversions of
//! time ([`time`]) and how a number is written for people ([`text`]). Pure functions on plain
//! values, with their tests beside them; no I/O, no clocks read.
//!
//! The sampler, the store's queries, version comparison, alerts and export (in the daemon and
//! the store) call it; the API crate re-exports what the wire names; the client only renders.

pub mod order;
pub mod rank;
pub mod rates;
pub mod rollup;
pub mod text;
pub mod time;

pub use rank::{MIN_RUNS_FOR_AVG, SortKey};
pub use rates::{Counters, Interval, Overall, Rates, Share, SinceLoad};
pub use time::WallNs;
