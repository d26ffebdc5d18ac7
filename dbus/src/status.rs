//! `Status()`: the daemon's health, typed. On the wire it stays a dictionary (`a{sv}`): a
//! newer daemon adds keys without changing the method's signature, so older clients keep
//! working, and a client reads what it knows. Here every key the daemon sends is a field of
//! [`Status`], its name and D-Bus type written once: the daemon builds a `Status` and sends
//! [`Status::to_map`]; a client reads [`Status::from_map`]. A key an older daemon does not send
//! reads as its default (a number 0, an empty text, `None` where absence means something); a
//! key of another type is an error naming it; keys this crate does not know are left out.

use std::collections::HashMap;

use zbus::{OwnedVariant, Str};

/// The dictionary on the wire (the crate's `Options`).
type Options = HashMap<String, OwnedVariant>;

/// A key of the status map with a value of the wrong type.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("status key {key:?} is not a {want} (D-Bus type {got})")]
pub struct StatusError {
    pub key: &'static str,
    pub want: &'static str,
    pub got: String,
}

/// A value type of the status map.
trait Entry: Sized {
    const NAME: &'static str;
    fn put(&self) -> Option<OwnedVariant>;
    fn take(v: &OwnedVariant) -> Option<Self>;
    /// When the key is absent.
    fn absent() -> Self;
}

macro_rules! entries {
    ($($t:ty: $name:literal),+) => {$(
        impl Entry for $t {
            const NAME: &'static str = $name;
            fn put(&self) -> Option<OwnedVariant> {
                Some(OwnedVariant::from(*self))
            }
            fn take(v: &OwnedVariant) -> Option<Self> {
                <$t>::try_from(v).ok()
            }
            fn absent() -> Self {
                <$t>::default()
            }
        }
    )+};
}

entries!(u64: "u64 (t)", u32: "u32 (u)", i64: "i64 (x)", f64: "double (d)", bool: "boolean (b)");

impl Entry for String {
    const NAME: &'static str = "string (s)";
    fn put(&self) -> Option<OwnedVariant> {
        Some(OwnedVariant::from(Str::from(self.clone())))
    }
    fn take(v: &OwnedVariant) -> Option<Self> {
        <&str>::try_from(v).ok().map(str::to_owned)
    }
    fn absent() -> Self {
        Self::new()
    }
}

impl<T: Entry> Entry for Option<T> {
    const NAME: &'static str = T::NAME;
    fn put(&self) -> Option<OwnedVariant> {
        self.as_ref().and_then(T::put)
    }
    fn take(v: &OwnedVariant) -> Option<Self> {
        T::take(v).map(Some)
    }
    fn absent() -> Self {
        None
    }
}

/// A remote-write target's progress, one element of `remote_write` (`a(sxxtttttts)` on the
/// wire, in this order).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct RemoteWrite {
    pub url: String,
    /// Where the receiver has everything up to (ns since the epoch; 0: nothing yet).
    pub position_ns: i64,
    /// Stored history it does not have yet (ns).
    pub backlog_ns: i64,
    /// Compressed bytes, samples and requests it acknowledged.
    pub bytes_sent: u64,
    pub samples_sent: u64,
    pub requests: u64,
    /// Attempts that failed and were tried again; batches it refused (dropped).
    pub retries: u64,
    pub dropped: u64,
    /// Bytes a second at most (0: no cap).
    pub max_bytes_per_second: u64,
    /// Why the newest attempt failed; empty after a success.
    pub last_error: String,
}

impl RemoteWrite {
    /// The targets a `remote_write` value holds; `None` for a value of another type.
    pub fn list_of(v: &OwnedVariant) -> Option<Vec<Self>> {
        <Vec<Self> as Entry>::take(v)
    }
}

type RemoteWriteWire = (String, i64, i64, u64, u64, u64, u64, u64, u64, String);

impl Entry for Vec<RemoteWrite> {
    const NAME: &'static str = "array of (sxxtttttts)";
    fn put(&self) -> Option<OwnedVariant> {
        let wire: Vec<RemoteWriteWire> = self
            .iter()
            .map(|r| {
                (
                    r.url.clone(),
                    r.position_ns,
                    r.backlog_ns,
                    r.bytes_sent,
                    r.samples_sent,
                    r.requests,
                    r.retries,
                    r.dropped,
                    r.max_bytes_per_second,
                    r.last_error.clone(),
                )
            })
            .collect();
        // An empty list is left out: a daemon without targets sends no key.
        if wire.is_empty() {
            return None;
        }
        // Only a value holding file descriptors can fail to convert: this one holds none.
        OwnedVariant::try_from(zbus::Variant::from(wire)).ok()
    }
    fn take(v: &OwnedVariant) -> Option<Self> {
        let wire = Vec::<RemoteWriteWire>::try_from(v.try_clone().ok()?).ok()?;
        Some(
            wire.into_iter()
                .map(|w| RemoteWrite {
                    url: w.0,
                    position_ns: w.1,
                    backlog_ns: w.2,
                    bytes_sent: w.3,
                    samples_sent: w.4,
                    requests: w.5,
                    retries: w.6,
                    dropped: w.7,
                    max_bytes_per_second: w.8,
                    last_error: w.9,
                })
                .collect(),
        )
    }
    fn absent() -> Self {
        Vec::new()
    }
}

fn get<T: Entry>(m: &Options, key: &'static str) -> Result<T, StatusError> {
    match m.get(key) {
        None => Ok(T::absent()),
        Some(v) => T::take(v).ok_or_else(|| StatusError {
            key,
            want: T::NAME,
            got: v.value_signature().to_string(),
        }),
    }
}

macro_rules! status {
    ($( $(#[doc = $doc:literal])* $key:ident: $ty:ty, )+) => {
        /// The daemon's health: every key of `Status()`.
        #[derive(Debug, Clone, Default, PartialEq)]
        pub struct Status {
            $( $(#[doc = $doc])* pub $key: $ty, )+
        }

        impl Status {
            /// The dictionary sent on the wire (`None` fields are left out).
            pub fn to_map(&self) -> Options {
                let mut m = Options::new();
                $(
                    if let Some(v) = Entry::put(&self.$key) {
                        m.insert(stringify!($key).to_owned(), v);
                    }
                )+
                m
            }

            /// Reads the dictionary a daemon sent.
            pub fn from_map(m: &Options) -> Result<Self, StatusError> {
                Ok(Self {
                    $( $key: get(m, stringify!($key))?, )+
                })
            }
        }
    };
}

status! {
    version: String,
    /// The kernel's release; from the newest pass (absent before the first).
    kernel: Option<String>,
    /// The stats state every view shows (its first word is a `StatsState`).
    stats_state: Option<String>,
    /// What stats cost a program run (ns), its spread, and where the figure comes from.
    stats_cost_ns: Option<f64>,
    stats_cost_spread_ns: Option<f64>,
    stats_cost_source: Option<String>,
    /// Share of the last interval with stats on (below 1 while duty-cycling).
    stats_coverage: Option<f64>,
    /// What stats cost the host over the last interval, percent of one core.
    stats_overhead_pct: Option<f64>,
    /// Whether another process was last seen holding stats on too (absent: not checked yet).
    stats_other_holder: Option<bool>,
    /// `estimate` or `max-size`: what map memory means on this kernel.
    memlock_meaning: Option<String>,
    /// Programs in the newest pass (ebpfstatd's probes left out, as `list` shows them), and
    /// those that exist but could not be read.
    programs: Option<u32>,
    programs_unread: Option<u32>,
    last_pass_ns: Option<i64>,
    /// How stats are held, in words (`budget 1% of one core`, `always`, `duty 20%`).
    stats_mode: String,
    /// The configured interval, and the one in use (longer while passes are over the sampler
    /// budget); ns.
    interval_ns: u64,
    paced_interval_ns: Option<u64>,
    /// What a pass takes on average (ns): wall time, and the sampling thread's CPU time, which
    /// pacing measures against the sampler budget (percent of one core; absent from a daemon
    /// that paced by wall time).
    pass_ns: Option<u64>,
    pass_cpu_ns: Option<u64>,
    sampler_budget_pct: f64,
    passes: u64,
    late_passes: u64,
    /// Slots no pass was taken at: a pass ran past them (slow passes, a stalled machine).
    missed_passes: u64,
    dropped_passes: u64,
    failed_passes: u64,
    /// The newest failed pass (0: none) and why it failed.
    last_failed_pass_ns: i64,
    last_failure: String,
    uptime_ns: u64,
    /// The daemon's own CPU time (ns) and its share of one core since it started, percent;
    /// its memory. Absent when unreadable.
    daemon_cpu_ns: Option<u64>,
    daemon_cpu_pct: Option<f64>,
    daemon_rss_bytes: Option<u64>,
    daemon_peak_rss_bytes: Option<u64>,
    db_path: String,
    db_bytes: u64,
    wal_bytes: u64,
    used_bytes: u64,
    cap_bytes: u64,
    /// `used_bytes` as a share of `cap_bytes`, percent.
    used_pct: Option<f64>,
    series: u64,
    ticks_buffered: u64,
    ticks_dropped: u64,
    clock_steps: i64,
    last_flush_ns: i64,
    /// Each tier's oldest and newest time (ns since the epoch; 0: empty) and its bytes.
    tier_raw_oldest_ns: i64,
    tier_raw_newest_ns: i64,
    tier_raw_bytes: u64,
    tier_1m_oldest_ns: i64,
    tier_1m_newest_ns: i64,
    tier_1m_bytes: u64,
    tier_1h_oldest_ns: i64,
    tier_1h_newest_ns: i64,
    tier_1h_bytes: u64,
    /// The textfile's last write (0: never) and its error.
    textfile_written_ns: u64,
    textfile_error: String,
    /// Where `/metrics` is served (empty: nowhere), and its error.
    metrics_listen: String,
    metrics_error: String,
    /// `/metrics` connections refused (every place answering a request), and connections let
    /// go before sending a request to make room for new ones.
    metrics_refused: u64,
    metrics_evicted: u64,
    /// What is wrong now, if anything.
    last_error: String,
    /// Whether the daemon's previous run on this database stopped uncleanly (killed, crashed,
    /// power cut; absent from an older daemon), and the newest sample it had written (ns since
    /// the epoch; 0: none or unknown).
    previous_run_unclean: Option<bool>,
    previous_run_last_written_ns: i64,
    /// Rows the store has read to answer queries since the daemon started (raw segments
    /// stepped over, tick rows decoded, series rows): what queries and export pages cost the
    /// database, as a count.
    store_rows_read: u64,
    /// Alerts raised now, and the rules.
    alerts_active: Option<u32>,
    alert_rules: Option<u32>,
    /// Each remote-write target, in the configuration's order (absent: none configured).
    remote_write: Vec<RemoteWrite>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_status_reads_back_as_it_was_sent() {
        let st = Status {
            version: "1.2.3".into(),
            kernel: Some("6.1.0".into()),
            stats_other_holder: Some(true),
            programs: Some(7),
            interval_ns: 1_000_000_000,
            clock_steps: -1,
            used_pct: Some(12.5),
            remote_write: vec![RemoteWrite {
                url: "http://h/w".into(),
                position_ns: -5,
                bytes_sent: 7,
                last_error: "HTTP 503".into(),
                ..RemoteWrite::default()
            }],
            ..Status::default()
        };
        let m = st.to_map();
        assert!(!m.contains_key("stats_cost_ns"), "None is left out");
        assert_eq!(Status::from_map(&m), Ok(st));
    }

    #[test]
    fn an_older_daemon_reads_as_defaults_and_a_wrong_type_is_named() {
        let mut m = Options::new();
        m.insert("version".into(), OwnedVariant::from(Str::from("0.1.0")));
        m.insert("future_key".into(), OwnedVariant::from(1u32));
        let st = Status::from_map(&m).expect("reads");
        assert_eq!(
            (st.version.as_str(), st.passes, st.alert_rules),
            ("0.1.0", 0, None)
        );
        m.insert("passes".into(), OwnedVariant::from(Str::from("many")));
        let e = Status::from_map(&m).expect_err("wrong type");
        assert_eq!(e.key, "passes");
        assert!(e.to_string().contains("u64"), "{e}");
    }
}
