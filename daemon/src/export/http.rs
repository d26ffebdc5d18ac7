//! The scrape endpoint: `GET /metrics` answered with the live exposition, in OpenMetrics when
//! the scraper's `Accept` asks for it (Prometheus does), else in the Prometheus text format.
//! Only as much HTTP/1.x as a scrape needs: one request per connection, bounded in size, time
//! and number of connections, so a stuck or hostile client costs a slot for a few seconds and
//! never the sampler.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;

use super::live_text;
use super::text::Format;
use crate::quiet::Quiet;
use crate::shared::{Shared, lock};

/// Connections served at once; more are closed at once (a scraper retries at its next scrape).
pub const MAX_CONNECTIONS: usize = 8;
/// A request's head: a scrape's is a few hundred bytes.
pub const MAX_HEAD: usize = 8192;
/// Time a client has to send its request: an idle connection gives its slot back after it.
pub const REQUEST_TIME: Duration = Duration::from_secs(2);
/// Time a connection may take from accept to the last byte of the answer.
pub const CONNECTION_TIME: Duration = Duration::from_secs(10);

/// What a request asked for, or why it gets an error status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Asked {
    Metrics(Format),
    /// The HTTP status and its reason.
    Error(u16, &'static str),
}

/// Reads a request head (`head` up to and without the blank line).
pub fn parse(head: &[u8]) -> Asked {
    let Ok(head) = std::str::from_utf8(head) else {
        return Asked::Error(400, "Bad Request");
    };
    let mut lines = head.split("\r\n");
    let mut first = lines.next().unwrap_or("").split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (first.next(), first.next(), first.next(), first.next())
    else {
        return Asked::Error(400, "Bad Request");
    };
    if !version.starts_with("HTTP/1.") {
        return Asked::Error(505, "HTTP Version Not Supported");
    }
    let path = target.split_once('?').map_or(target, |(p, _)| p);
    if path != "/metrics" {
        return Asked::Error(404, "Not Found");
    }
    if method != "GET" && method != "HEAD" {
        return Asked::Error(405, "Method Not Allowed");
    }
    let accept = lines
        .filter_map(|l| l.split_once(':'))
        .find(|(k, _)| k.trim().eq_ignore_ascii_case("accept"))
        .map_or("", |(_, v)| v);
    Asked::Metrics(format_for(accept))
}

/// OpenMetrics when `accept` names it without refusing it (`q=0`), else the Prometheus format.
fn format_for(accept: &str) -> Format {
    let wanted = accept.split(',').any(|range| {
        let mut parts = range.split(';').map(str::trim);
        parts.next() == Some("application/openmetrics-text")
            && !parts.any(|p| {
                p.strip_prefix("q=")
                    .and_then(|q| q.parse::<f64>().ok())
                    .is_some_and(|q| q <= 0.0)
            })
    });
    if wanted {
        Format::OpenMetrics
    } else {
        Format::Prometheus
    }
}

/// One connection being served: whether it still waits for its request, and how it is told
/// to make room.
#[derive(Debug)]
struct Conn {
    waiting: AtomicBool,
    evict: Notify,
}

/// The connections being served, oldest first. When all [`MAX_CONNECTIONS`] are taken, a new
/// one takes the place of the oldest still waiting for its request: a client that sends its
/// request at once (a scraper) always gets in, and one that trickles it (slowloris) holds a
/// place only until the next connection comes.
#[derive(Debug, Default)]
struct Slots {
    conns: Mutex<Vec<(u64, Arc<Conn>)>>,
    next: AtomicU64,
}

/// A place among the [`Slots`], given back when dropped.
struct Slot {
    slots: Arc<Slots>,
    id: u64,
    conn: Arc<Conn>,
}

/// What taking a place did.
enum Taken {
    Free(Slot),
    /// The oldest connection waiting for its request was let go for it.
    Evicted(Slot),
    /// Every place holds a request being answered.
    Full,
}

impl Slots {
    fn take(self: &Arc<Self>) -> Taken {
        let mut conns = lock(&self.conns);
        let mut evicted = false;
        if conns.len() >= MAX_CONNECTIONS {
            let Some(at) = conns
                .iter()
                .position(|(_, c)| c.waiting.load(Ordering::Acquire))
            else {
                return Taken::Full;
            };
            let (_, old) = conns.remove(at);
            old.evict.notify_one();
            evicted = true;
        }
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let conn = Arc::new(Conn {
            waiting: AtomicBool::new(true),
            evict: Notify::new(),
        });
        conns.push((id, Arc::clone(&conn)));
        let slot = Slot {
            slots: Arc::clone(self),
            id,
            conn,
        };
        if evicted {
            Taken::Evicted(slot)
        } else {
            Taken::Free(slot)
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        lock(&self.slots.conns).retain(|(id, _)| *id != self.id);
    }
}

/// Serves `listener` until the runtime stops.
pub async fn serve(listener: TcpListener, shared: Arc<Shared>) {
    let slots = Arc::new(Slots::default());
    let mut failing = Quiet::default();
    let (mut refused, mut evicted) = (Quiet::default(), Quiet::default());
    loop {
        let stream = match listener.accept().await {
            Ok((s, _)) => s,
            Err(e) => {
                // Out of descriptors, say: wait a little rather than spin.
                if let Some(n) = failing.note(Instant::now()) {
                    tracing::warn!("the metrics endpoint cannot accept ({n} times): {e}");
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let stats = &shared.exports;
        let slot = match slots.take() {
            Taken::Free(slot) => slot,
            Taken::Evicted(slot) => {
                stats.metrics_evicted.fetch_add(1, Ordering::Relaxed);
                if let Some(n) = evicted.note(Instant::now()) {
                    tracing::warn!(
                        "/metrics: {n} connections that had not sent their request let go to \
                         make room for new ones since the last report"
                    );
                }
                slot
            }
            Taken::Full => {
                // Dropping the stream closes it; a scraper retries at its next scrape.
                stats.metrics_refused.fetch_add(1, Ordering::Relaxed);
                if let Some(n) = refused.note(Instant::now()) {
                    tracing::warn!(
                        "/metrics: {n} connections refused since the last report: all \
                         {MAX_CONNECTIONS} places were answering requests"
                    );
                }
                continue;
            }
        };
        let shared = Arc::clone(&shared);
        tokio::spawn(async move {
            let conn = Arc::clone(&slot.conn);
            let _slot = slot;
            // A client too slow to send or read in time loses its connection, as does one
            // still waiting to send when its place is needed.
            let served = tokio::time::timeout(CONNECTION_TIME, answer(stream, &shared, &conn));
            tokio::select! {
                _ = served => {}
                () = conn.evict.notified() => {}
            }
        });
        // The new connection's task reads a request already there before the next accept: a
        // flood of connections cannot push out a scraper whose request is waiting to be read.
        tokio::task::yield_now().await;
    }
}

async fn answer(mut stream: TcpStream, shared: &Shared, conn: &Conn) -> std::io::Result<()> {
    let mut buf = vec![0u8; MAX_HEAD];
    let Ok(head) = tokio::time::timeout(REQUEST_TIME, read_head(&mut stream, &mut buf)).await
    else {
        return error(&mut stream, 408, "Request Timeout").await;
    };
    conn.waiting.store(false, Ordering::Release);
    let Some(end) = head? else {
        return error(&mut stream, 431, "Request Header Fields Too Large").await;
    };
    let head = buf.get(..end).unwrap_or_default();
    let is_head = head.starts_with(b"HEAD ");
    match parse(head) {
        Asked::Metrics(format) => {
            let body = live_text(shared, format);
            let head = Head {
                content_type: format.content_type(),
                length: body.len(),
            };
            let body = if is_head {
                b"".as_slice()
            } else {
                body.as_bytes()
            };
            respond_with(&mut stream, 200, "OK", head, body).await
        }
        Asked::Error(code, reason) => error(&mut stream, code, reason).await,
    }
}

/// Reads until the blank line ending a request head; its length, or `None` when `buf` fills
/// first. A client that closes first ends it too (the length read so far).
async fn read_head(stream: &mut TcpStream, buf: &mut [u8]) -> std::io::Result<Option<usize>> {
    let mut n = 0;
    loop {
        let Some(room) = buf.get_mut(n..).filter(|r| !r.is_empty()) else {
            return Ok(None);
        };
        let got = stream.read(room).await?;
        if got == 0 {
            return Ok(Some(n));
        }
        n += got;
        if let Some(end) = buf
            .get(..n)
            .and_then(|b| b.windows(4).position(|w| w == b"\r\n\r\n"))
        {
            return Ok(Some(end));
        }
    }
}

/// What the head of an answer says of its body (a `HEAD` answer says it and sends none).
struct Head {
    content_type: &'static str,
    length: usize,
}

/// An error status, without a body.
async fn error(stream: &mut TcpStream, code: u16, reason: &str) -> std::io::Result<()> {
    let head = Head {
        content_type: "text/plain; charset=utf-8",
        length: 0,
    };
    respond_with(stream, code, reason, head, b"").await
}

async fn respond_with(
    stream: &mut TcpStream,
    code: u16,
    reason: &str,
    head: Head,
    body: &[u8],
) -> std::io::Result<()> {
    // A method other than these gets 405, which names what is allowed.
    let allow = if code == 405 {
        "Allow: GET, HEAD\r\n"
    } else {
        ""
    };
    let head = format!(
        "HTTP/1.1 {code} {reason}\r\nContent-Type: {}\r\nContent-Length: {}\r\n{allow}\
         Connection: close\r\n\r\n",
        head.content_type, head.length
    );
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(body).await?;
    stream.shutdown().await
}

/// The listening sockets for `/metrics`: those systemd passes (socket activation, so the
/// service itself may open no IP socket) and `configured`, bound now. A failure to bind is
/// returned with the sockets that could be had: the daemon samples on without it.
pub fn listeners(
    configured: Option<std::net::SocketAddr>,
) -> (Vec<std::net::TcpListener>, Option<String>) {
    use std::os::fd::FromRawFd as _;
    let mut found = Vec::new();
    let mut errors = Vec::new();
    // The fds become owned below: take them once in the process's life.
    static TAKEN: AtomicBool = AtomicBool::new(false);
    let first = !TAKEN.swap(true, Ordering::SeqCst);
    let passed = if first {
        sd_notify::listen_fds().map(Iterator::collect::<Vec<_>>)
    } else {
        Ok(Vec::new())
    };
    match passed {
        Ok(fds) => {
            for fd in fds {
                // SAFETY: systemd passed this fd to this process (LISTEN_PID names it): it was
                // open at exec, nothing here has taken or closed it, and `TAKEN` lets this
                // happen once, so the listener becomes its only owner.
                let listener = unsafe { std::net::TcpListener::from_raw_fd(fd) };
                if listener.local_addr().is_ok() && is_listening(&listener) {
                    found.push(listener);
                } else {
                    tracing::warn!("passed fd {fd} is not a listening TCP socket: not served");
                }
            }
        }
        Err(e) => errors.push(format!("the sockets systemd passed are unusable: {e}")),
    }
    if let Some(addr) = configured {
        match std::net::TcpListener::bind(addr) {
            Ok(l) => found.push(l),
            Err(e) => errors.push(format!("cannot serve /metrics on {addr}: {e}")),
        }
    }
    (found, (!errors.is_empty()).then(|| errors.join("; ")))
}

/// Whether `l` is a listening stream socket (`SO_ACCEPTCONN`): a UDP socket would make
/// `accept` fail for ever.
fn is_listening(l: &std::net::TcpListener) -> bool {
    use std::os::fd::AsRawFd as _;
    let mut on: libc::c_int = 0;
    let mut len = libc::socklen_t::try_from(size_of::<libc::c_int>()).unwrap_or(4);
    // SAFETY: `l` is an open socket for the call; `on` and `len` are valid for writes and
    // `len` says how many bytes `on` holds.
    let rc = unsafe {
        libc::getsockopt(
            l.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_ACCEPTCONN,
            (&raw mut on).cast(),
            &raw mut len,
        )
    };
    rc == 0 && on != 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scrapes_and_their_format() {
        let prometheus = b"GET /metrics HTTP/1.1\r\nHost: x\r\nAccept: application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5";
        assert_eq!(parse(prometheus), Asked::Metrics(Format::OpenMetrics));
        assert_eq!(
            parse(b"GET /metrics?x=1 HTTP/1.0\r\nACCEPT: text/plain"),
            Asked::Metrics(Format::Prometheus)
        );
        assert_eq!(
            parse(b"HEAD /metrics HTTP/1.1"),
            Asked::Metrics(Format::Prometheus)
        );
    }

    #[test]
    fn only_listening_sockets_are_served() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        assert!(is_listening(&l));
    }

    #[test]
    fn openmetrics_only_when_not_refused() {
        assert_eq!(
            format_for("application/openmetrics-text;q=0"),
            Format::Prometheus
        );
        assert_eq!(
            format_for("text/plain;q=0.5, application/openmetrics-text; version=1.0.0; q=0.75"),
            Format::OpenMetrics
        );
        assert_eq!(format_for("*/*"), Format::Prometheus);
    }

    #[test]
    fn everything_else_is_an_error() {
        assert_eq!(parse(b"GET / HTTP/1.1"), Asked::Error(404, "Not Found"));
        assert_eq!(
            parse(b"POST /metrics HTTP/1.1"),
            Asked::Error(405, "Method Not Allowed")
        );
        assert_eq!(parse(b"GET /metrics"), Asked::Error(400, "Bad Request"));
        assert_eq!(
            parse(b"GET /metrics HTTP/2.0"),
            Asked::Error(505, "HTTP Version Not Supported")
        );
        assert_eq!(parse(b"\xff\xfe"), Asked::Error(400, "Bad Request"));
        assert_eq!(parse(b""), Asked::Error(400, "Bad Request"));
    }
}
