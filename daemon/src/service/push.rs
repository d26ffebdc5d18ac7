//! Pushing to remote-write receivers: a thread per target sends the stored history after the
//! receiver's position, oldest first, a batch at a time, and moves the position (kept in the
//! store) only when the receiver acknowledges. An outage or a restart is made up from the
//! store; nothing is buffered apart from it.

use std::sync::Arc;
use std::sync::mpsc as std_mpsc;
use std::time::{Duration, SystemTime};

use ebpfstat_numbers::WallNs;
use ebpfstat_numbers::time::duration_ns;
use tokio::sync::{mpsc, oneshot};

use crate::api::page::{PushAsk, PushBatch};
use crate::api::queries::Query;
use crate::config::remote_write::{Target, read_secret};
use crate::export::families::live_to;
use crate::export::history::FAMILIES;
use crate::export::live_now;
use crate::export::remote::post::{self, Answer, PostError};
use crate::export::remote::proto::Request;
use crate::export::remote::tls;
use ebpfstat_dbus::RemoteWrite;

use crate::shared::{Shared, lock};

/// Most samples in one request (what a batch's steps are sized by).
pub const MAX_SAMPLES_PER_BATCH: u64 = 10_000;
/// The longest wait a receiver's `Retry-After` may ask for.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(300);

/// The pushing threads, and how to stop them.
#[derive(Debug)]
pub struct Pushers {
    stop: Vec<std_mpsc::Sender<()>>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Pushers {
    /// Tells every thread to stop and waits for them (a request in flight ends first, within
    /// its timeout).
    pub fn stop(self) {
        drop(self.stop);
        for t in self.threads {
            let _ = t.join();
        }
    }
}

/// Starts a thread per target. A target that cannot start (a secret unreadable) is said and
/// shown in its status; sampling goes on.
pub fn start(targets: &[Target], queries: &mpsc::Sender<Query>, shared: &Arc<Shared>) -> Pushers {
    *lock(&shared.exports.pushes) = targets
        .iter()
        .map(|t| RemoteWrite {
            url: t.url.text.clone(),
            max_bytes_per_second: t.max_bytes_per_second.unwrap_or(0),
            ..RemoteWrite::default()
        })
        .collect();
    let mut pushers = Pushers {
        stop: Vec::new(),
        threads: Vec::new(),
    };
    for (i, target) in targets.iter().enumerate() {
        let (stop_tx, stop) = std_mpsc::channel();
        let pusher = match Pusher::new(i, target.clone(), queries.clone(), Arc::clone(shared), stop)
        {
            Ok(p) => p,
            Err(e) => {
                tracing::error!("remote_write {}: {e}; not pushing to it", target.url.text);
                lock(&shared.exports.pushes)[i].last_error = e;
                continue;
            }
        };
        match std::thread::Builder::new()
            .name(format!("push-{i}"))
            .spawn(move || pusher.run())
        {
            Ok(t) => {
                pushers.stop.push(stop_tx);
                pushers.threads.push(t);
            }
            Err(e) => tracing::error!(
                "remote_write {}: cannot start its thread: {e}",
                target.url.text
            ),
        }
    }
    pushers
}

struct Pusher {
    index: usize,
    target: Target,
    device: Arc<[(String, String)]>,
    authorization: Option<String>,
    /// The TLS context of an `https://` target.
    tls: Option<tls::Client>,
    queries: mpsc::Sender<Query>,
    shared: Arc<Shared>,
    stop: std_mpsc::Receiver<()>,
    /// The time (ms) of the newest live samples sent: the next are sent only when newer.
    live_sent_ms: i64,
}

/// Why a push round ended early.
enum Stopped {
    /// The daemon is stopping.
    Stop,
    /// The store went away.
    Store,
}

impl Pusher {
    fn new(
        index: usize,
        target: Target,
        queries: mpsc::Sender<Query>,
        shared: Arc<Shared>,
        stop: std_mpsc::Receiver<()>,
    ) -> Result<Self, String> {
        let authorization = authorization(&target)?;
        let tls = target
            .url
            .tls
            .then(|| tls::Client::new(&target.tls.clone().unwrap_or_default()))
            .transpose()?;
        Ok(Self {
            index,
            device: target.labels.clone().into(),
            target,
            authorization,
            tls,
            queries,
            shared,
            stop,
            live_sent_ms: i64::MIN,
        })
    }

    fn run(mut self) {
        tracing::info!(
            "pushing to {} every {} at a step of {}",
            self.target.url.text,
            humantime::format_duration(self.target.interval),
            humantime::format_duration(self.target.step)
        );
        let Ok(mut position) = self.position() else {
            return;
        };
        loop {
            match self.round(&mut position) {
                Ok(()) => {}
                Err(Stopped::Stop | Stopped::Store) => return,
            }
            if self.wait(self.target.interval).is_err() {
                return;
            }
        }
    }

    /// Where the receiver has everything up to: as stored, else the last whole step now (a
    /// new target starts with what comes next, not with the whole history).
    fn position(&self) -> Result<i64, Stopped> {
        let url = self.target.url.text.clone();
        let stored = self.ask(|r| Query::Pushed(url, r))?;
        let stored = stored.unwrap_or_else(|e| {
            tracing::warn!(
                "remote_write {}: its position cannot be read ({e}); starting now",
                self.target.url.text
            );
            None
        });
        let step = step_ns(self.target.step);
        Ok(stored.unwrap_or_else(|| {
            let now = WallNs::of(SystemTime::now()).ns();
            now.div_euclid(step)
                .saturating_mul(step)
                .saturating_sub(step)
        }))
    }

    /// Sends batches until the receiver has every whole step stored.
    fn round(&mut self, position: &mut i64) -> Result<(), Stopped> {
        loop {
            let batch = self.next_batch(*position)?;
            let at = *position;
            self.set_status(|s| s.position_ns = at);
            let caught_up =
                batch.range.1.saturating_add(step_ns(self.target.step)) > batch.newest_ns;
            let mut body = batch.body;
            let mut samples = batch.samples;
            if caught_up {
                let (live, n) = self.live();
                body.extend(live);
                samples += n;
            }
            if samples > 0 {
                self.send(&body, samples)?;
            }
            if batch.range.1 > *position {
                *position = batch.range.1;
                let url = self.target.url.text.clone();
                // While catching up, each batch's position is written at once: a crash sends
                // at most that batch again.
                self.queries
                    .blocking_send(Query::SetPushed(url, *position, !caught_up))
                    .map_err(|_| Stopped::Store)?;
            }
            let at = *position;
            self.set_status(|s| s.position_ns = at);
            if caught_up {
                return Ok(());
            }
        }
    }

    fn next_batch(&self, position: i64) -> Result<PushBatch, Stopped> {
        let floor_ns = self
            .target
            .max_backlog
            .map_or(i64::MIN, |b| WallNs::of(SystemTime::now()).minus(b).ns());
        let ask = PushAsk {
            from_ns: position,
            floor_ns,
            step_ns: duration_ns(self.target.step),
            max_samples: MAX_SAMPLES_PER_BATCH,
            device: Arc::clone(&self.device),
        };
        match self.ask(|r| Query::PushBatch(ask, r))? {
            Ok(b) => Ok(b),
            Err(e) => {
                tracing::warn!(
                    "remote_write {}: reading the history: {e}",
                    self.target.url.text
                );
                Err(Stopped::Store)
            }
        }
    }

    /// The live families that are not in the history (program info, maps, stats, the daemon),
    /// stamped with the newest pass's time, once per pass.
    fn live(&mut self) -> (Vec<u8>, u64) {
        let (pass, figures) = live_now(&self.shared);
        let Some(pass) = pass else {
            return (Vec::new(), 0);
        };
        let ms = WallNs::of(pass.time).millis();
        if ms <= self.live_sent_ms {
            return (Vec::new(), 0);
        }
        self.live_sent_ms = ms;
        let skip = FAMILIES.map(|f| f.name);
        let mut req = Request::new(&self.device, ms, &skip);
        live_to(&mut req, Some(&pass), &figures);
        let n = req.samples_written;
        (req.finish(), n)
    }

    /// Sends one request until the receiver takes it (or refuses it for good), backing off
    /// between attempts; then waits what the bandwidth cap asks.
    fn send(&mut self, body: &[u8], samples: u64) -> Result<(), Stopped> {
        let compressed = match snap::raw::Encoder::new().compress_vec(body) {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(
                    "remote_write {}: compressing a batch: {e}",
                    self.target.url.text
                );
                return Ok(());
            }
        };
        // From a second, doubling up to the target's interval: a receiver back from an outage
        // hears from the device within an interval, as it would have without the outage.
        let most = self.target.interval.max(Duration::from_secs(1));
        let mut backoff = Duration::from_secs(1).min(most);
        loop {
            let wait = match self.attempt(&compressed) {
                Ok(a) if (200..300).contains(&a.status) => {
                    self.set_status(|s| {
                        s.bytes_sent += compressed.len() as u64;
                        s.samples_sent += samples;
                        s.requests += 1;
                        s.last_error.clear();
                    });
                    break;
                }
                Ok(a) if a.status == 429 || a.status >= 500 => {
                    let why = format!("HTTP {}: {}", a.status, a.body);
                    let asked = a.retry_after.unwrap_or(backoff).min(MAX_RETRY_AFTER);
                    self.failed(why, asked.max(backoff))
                }
                Ok(a) => {
                    tracing::error!(
                        "remote_write {}: the receiver refused a batch of {samples} samples \
                         (HTTP {}: {}); dropped",
                        self.target.url.text,
                        a.status,
                        a.body
                    );
                    self.set_status(|s| {
                        s.dropped += 1;
                        s.last_error = format!("HTTP {}: {} (batch dropped)", a.status, a.body);
                    });
                    break;
                }
                Err(e) => self.failed(e.to_string(), backoff),
            };
            self.wait(with_jitter(wait))?;
            backoff = (backoff * 2).min(most);
        }
        if let Some(rate) = self.target.max_bytes_per_second {
            let secs = compressed.len() as f64 / rate as f64;
            self.wait(Duration::from_secs_f64(secs))?;
        }
        Ok(())
    }

    /// A failed attempt: said once while it keeps failing the same way; waits `wait`.
    fn failed(&self, why: String, wait: Duration) -> Duration {
        let mut said = false;
        self.set_status(|s| {
            said = s.last_error == why;
            s.retries += 1;
            s.last_error.clone_from(&why);
        });
        if !said {
            tracing::warn!("remote_write {}: {why}; trying again", self.target.url.text);
        }
        wait
    }

    fn attempt(&self, body: &[u8]) -> Result<Answer, PostError> {
        let url = &self.target.url;
        let tcp = post::connect(url, self.target.timeout)?;
        let head = post::head(url, self.authorization.as_deref(), body.len());
        match &self.tls {
            Some(tls) => {
                let mut stream = tls
                    .connect(tcp, &url.host)
                    .map_err(|e| PostError::Tls(url.text.clone(), e))?;
                post::exchange(&url.text, &mut stream, &head, body)
            }
            None => post::exchange(&url.text, &mut { tcp }, &head, body),
        }
    }

    /// Waits `d`, or until the daemon stops.
    fn wait(&self, d: Duration) -> Result<(), Stopped> {
        match self.stop.recv_timeout(d) {
            Err(std_mpsc::RecvTimeoutError::Timeout) => Ok(()),
            _ => Err(Stopped::Stop),
        }
    }

    fn ask<T>(&self, query: impl FnOnce(oneshot::Sender<T>) -> Query) -> Result<T, Stopped> {
        let (tx, rx) = oneshot::channel();
        self.queries
            .blocking_send(query(tx))
            .map_err(|_| Stopped::Store)?;
        rx.blocking_recv().map_err(|_| Stopped::Store)
    }

    fn set_status(&self, f: impl FnOnce(&mut RemoteWrite)) {
        if let Some(s) = lock(&self.shared.exports.pushes).get_mut(self.index) {
            f(s);
        }
    }
}

fn step_ns(step: Duration) -> i64 {
    ebpfstat_numbers::time::signed(duration_ns(step)).max(1)
}

/// `d` with up to a fifth more, so that devices that failed together do not retry together.
fn with_jitter(d: Duration) -> Duration {
    let nanos = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |t| t.subsec_nanos());
    d + d / 5 * (nanos % 1000) / 1000
}

/// The `Authorization` header's value: a bearer token, or basic authentication, read from
/// their files (which must be private).
fn authorization(t: &Target) -> Result<Option<String>, String> {
    if let Some(file) = &t.bearer_token_file {
        return Ok(Some(format!("Bearer {}", read_secret(file)?)));
    }
    if let Some(b) = &t.basic_auth {
        let password = read_secret(&b.password_file)?;
        let pair = format!("{}:{password}", b.username);
        return Ok(Some(format!("Basic {}", base64(pair.as_bytes()))));
    }
    Ok(None)
}

/// Standard base64 with padding (RFC 4648), for basic authentication.
fn base64(b: &[u8]) -> String {
    const ABC: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(b.len().div_ceil(3) * 4);
    for chunk in b.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, &c)| n | u32::from(c) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ABC[(n >> (18 - 6 * i) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_as_rfc_4648_writes_it() {
        for (plain, coded) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("user:pass", "dXNlcjpwYXNz"),
        ] {
            assert_eq!(base64(plain.as_bytes()), coded);
        }
    }

    #[test]
    fn jitter_adds_at_most_a_fifth() {
        let d = Duration::from_secs(10);
        let j = with_jitter(d);
        assert!(j >= d && j <= d + d / 5, "{j:?}");
    }
}
