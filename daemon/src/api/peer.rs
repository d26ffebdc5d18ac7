//! A private-socket peer's stream as zbus reads it, within limits zbus does not keep itself.
//!
//! zbus allocates a message's whole declared length (up to 128 MiB) from its 16-byte header,
//! grows its handshake buffer without bound until a line ends, and panics on a handshake line
//! that ends in `\n` alone (the daemon runs with `panic = abort`). The bytes a peer sends are
//! checked here as they pass, before zbus sees them: a handshake of at most
//! [`MAX_HANDSHAKE`] bytes whose lines end in `\r\n`, then messages of at most
//! [`MAX_MESSAGE`] bytes. A peer that breaks a limit loses its connection, and nothing was
//! allocated for it.

use std::collections::HashMap;
use std::os::fd::{BorrowedFd, OwnedFd};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::Notify;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};
use zbus::connection::socket::{ReadHalf, Socket, Split, WriteHalf};
use zbus::message::{Message, Type};

use super::heavy::HeavyTurn;
use crate::shared::lock;

/// The authentication lines, up to `BEGIN`: about a hundred bytes in practice.
pub const MAX_HANDSHAKE: usize = 4096;

/// The longest message a peer may send. The API's calls are small (a program name is at most
/// 512 bytes); the replies, which the daemon writes, are not bounded by this.
pub const MAX_MESSAGE: u64 = 64 << 10;

/// D-Bus's fixed primary header.
const PRIMARY_HEADER: usize = 16;

/// The primary header's message type of a method call.
const METHOD_CALL: u8 = 1;

/// Why a peer's bytes were refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    #[error("a handshake longer than {MAX_HANDSHAKE} bytes")]
    LongHandshake,
    #[error("a handshake line that does not end in \\r\\n")]
    LineEnd,
    #[error("a message of {0} bytes (at most {MAX_MESSAGE} are accepted)")]
    LongMessage(u64),
    #[error("not a D-Bus message (first byte {0:#04x})")]
    NotAMessage(u8),
}

#[derive(Debug)]
enum Phase {
    /// The SASL lines, up to and including `BEGIN\r\n`.
    Handshake {
        seen: usize,
        line: Vec<u8>,
        last: Option<u8>,
    },
    /// A message's primary header, `got` bytes of it so far.
    Header {
        bytes: [u8; PRIMARY_HEADER],
        got: usize,
    },
    /// The rest of a message; `call`: it is a method call that expects a reply.
    Body { left: u64, call: bool },
}

/// The shape of what a peer sends, followed byte by byte (pure: no I/O).
#[derive(Debug)]
pub struct Shape {
    phase: Phase,
}

impl Default for Shape {
    fn default() -> Self {
        Self {
            phase: Phase::Handshake {
                seen: 0,
                line: Vec::new(),
                last: None,
            },
        }
    }
}

/// The length of the message a primary header opens (header fields, padding and body).
fn message_len(h: &[u8; PRIMARY_HEADER]) -> Result<u64, Refused> {
    let word = |at: usize| {
        let b = [h[at], h[at + 1], h[at + 2], h[at + 3]];
        match h[0] {
            b'l' => Ok(u64::from(u32::from_le_bytes(b))),
            b'B' => Ok(u64::from(u32::from_be_bytes(b))),
            other => Err(Refused::NotAMessage(other)),
        }
    };
    let (body, fields) = (word(4)?, word(12)?);
    let header = PRIMARY_HEADER as u64 + fields;
    Ok(header.next_multiple_of(8) + body)
}

impl Shape {
    /// Follows `bytes`, the next ones the peer sent; how many method calls expecting a reply
    /// they completed.
    pub fn follow(&mut self, mut bytes: &[u8]) -> Result<usize, Refused> {
        let mut calls = 0;
        while let Some(&first) = bytes.first() {
            match &mut self.phase {
                Phase::Handshake { seen, line, last } => {
                    bytes = &bytes[1..];
                    *seen += 1;
                    if *seen > MAX_HANDSHAKE {
                        return Err(Refused::LongHandshake);
                    }
                    if first == b'\n' {
                        if *last != Some(b'\r') {
                            return Err(Refused::LineEnd);
                        }
                        let begin = line.as_slice() == b"BEGIN\r";
                        line.clear();
                        *last = Some(first);
                        if begin {
                            self.phase = Phase::Header {
                                bytes: [0; PRIMARY_HEADER],
                                got: 0,
                            };
                        }
                    } else {
                        line.push(first);
                        *last = Some(first);
                    }
                }
                Phase::Header { bytes: header, got } => {
                    let take = (PRIMARY_HEADER - *got).min(bytes.len());
                    header[*got..*got + take].copy_from_slice(&bytes[..take]);
                    *got += take;
                    bytes = &bytes[take..];
                    if *got == PRIMARY_HEADER {
                        let len = message_len(header)?;
                        if len > MAX_MESSAGE {
                            return Err(Refused::LongMessage(len));
                        }
                        // A call that wants no reply counts too: its handler says it answered
                        // when it ends (`Flow::answered`), or the peer holds its own place.
                        let call = header[1] == METHOD_CALL;
                        self.phase = Phase::Body {
                            left: len - PRIMARY_HEADER as u64,
                            call,
                        };
                        calls += self.end_of_message();
                    }
                }
                Phase::Body { left, .. } => {
                    let take = usize::try_from(*left).map_or(bytes.len(), |l| l.min(bytes.len()));
                    *left -= take as u64;
                    bytes = &bytes[take..];
                    calls += self.end_of_message();
                }
            }
        }
        Ok(calls)
    }

    /// At a message's last byte, the next header; 1 if the message was a call to answer.
    fn end_of_message(&mut self) -> usize {
        let Phase::Body { left: 0, call } = self.phase else {
            return 0;
        };
        self.phase = Phase::Header {
            bytes: [0; PRIMARY_HEADER],
            got: 0,
        };
        usize::from(call)
    }

    /// The most bytes the next read may take: up to the end of the message being read, so a
    /// read never takes a message after it (which would dispatch a call beyond the limits);
    /// in the handshake, fewer than the smallest message.
    pub fn next_read(&self) -> usize {
        match &self.phase {
            Phase::Handshake { .. } => PRIMARY_HEADER,
            Phase::Header { got, .. } => PRIMARY_HEADER - got,
            Phase::Body { left, .. } => usize::try_from(*left).unwrap_or(usize::MAX),
        }
    }

    /// Whether the next byte opens a message.
    pub fn between_messages(&self) -> bool {
        matches!(self.phase, Phase::Header { got: 0, .. })
    }
}

/// Calls a peer may have read and not yet answered: past it, nothing more is read from it
/// until an answer is written (a peer that does not read its answers stops itself).
pub const MAX_CALLS_PER_PEER: usize = 4;
/// The same, over all of one user's connections.
pub const MAX_CALLS_PER_USER: usize = 8;
/// The same, over every peer: what answers waiting to be read may hold is at most this many
/// answers.
pub const MAX_CALLS: usize = 32;
/// A peer that takes none of an answer's bytes for this long is let go.
pub const WRITE_STALL: Duration = Duration::from_secs(10);

/// The calls read and not yet answered over every peer, by user, and a wake-up for readers
/// waiting for room when one is answered.
#[derive(Debug, Default)]
pub struct Load {
    all: AtomicUsize,
    by_uid: Mutex<HashMap<u32, Arc<AtomicUsize>>>,
    answered: Notify,
}

/// One connection's share of the [`Load`], and what the daemon knows of it.
#[derive(Debug)]
pub struct Flow {
    load: Arc<Load>,
    user: Arc<AtomicUsize>,
    calls: AtomicUsize,
    ended: AtomicBool,
    stalled: Notify,
    /// Heavy answers' turns, by the serial of the call they answer: given back when the
    /// answer is written whole.
    held: Mutex<Vec<(u32, HeavyTurn)>>,
}

impl Flow {
    pub fn new(load: &Arc<Load>, uid: u32) -> Arc<Self> {
        let user = Arc::clone(lock(&load.by_uid).entry(uid).or_default());
        Arc::new(Self {
            load: Arc::clone(load),
            user,
            calls: AtomicUsize::new(0),
            ended: AtomicBool::new(false),
            stalled: Notify::new(),
            held: Mutex::default(),
        })
    }

    fn room(&self) -> bool {
        self.ended.load(Ordering::Acquire)
            || (self.calls.load(Ordering::Acquire) < MAX_CALLS_PER_PEER
                && self.user.load(Ordering::Acquire) < MAX_CALLS_PER_USER
                && self.load.all.load(Ordering::Acquire) < MAX_CALLS)
    }

    /// Waits until the peer may send another call (or its connection ended).
    async fn wait_for_room(&self) {
        loop {
            let answered = self.load.answered.notified();
            tokio::pin!(answered);
            answered.as_mut().enable();
            if self.room() {
                return;
            }
            answered.await;
        }
    }

    fn called(&self, n: usize) {
        self.calls.fetch_add(n, Ordering::AcqRel);
        self.user.fetch_add(n, Ordering::AcqRel);
        self.load.all.fetch_add(n, Ordering::AcqRel);
    }

    /// Keeps a heavy answer's turn until the answer to call `serial` is written whole.
    /// A connection that ended writes nothing more: the turn goes at once.
    pub fn hold_until_answered(&self, serial: u32, turn: HeavyTurn) {
        let mut held = lock(&self.held);
        if !self.is_ended() {
            held.push((serial, turn));
        }
    }

    /// Whether the connection ended (or was let go).
    pub fn is_ended(&self) -> bool {
        self.ended.load(Ordering::Acquire)
    }

    /// The answer to call `serial` was written whole: its turn, if it held one, goes.
    fn written(&self, serial: u32) {
        lock(&self.held).retain(|(s, _)| *s != serial);
    }

    /// One call answered: its reply or error written whole, or the handler of a call that
    /// wants no reply ended.
    pub fn answered(&self) {
        let took = self
            .calls
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1));
        if took.is_ok() {
            self.release(1);
        }
    }

    fn release(&self, n: usize) {
        self.user.fetch_sub(n, Ordering::AcqRel);
        self.load.all.fetch_sub(n, Ordering::AcqRel);
        self.load.answered.notify_waiters();
    }

    /// The connection ended: its calls no longer count, and its reader stops waiting.
    pub fn end(&self) {
        let held = lock(&self.held);
        self.ended.store(true, Ordering::Release);
        drop(held);
        let left = self.calls.swap(0, Ordering::AcqRel);
        self.release(left);
        // Under the lock `hold_until_answered` checks `ended` with: nothing is kept after this.
        lock(&self.held).clear();
    }

    /// Resolves when an answer to this peer stalled for [`WRITE_STALL`].
    pub async fn stalled(&self) {
        self.stalled.notified().await;
    }
}

/// When a peer last sent anything, for the idle timeout (ms since `Activity::since`).
#[derive(Debug)]
pub struct Activity {
    since: Instant,
    last_ms: AtomicU64,
}

impl Activity {
    pub fn new() -> Arc<Self> {
        Arc::new(Self {
            since: Instant::now(),
            last_ms: AtomicU64::new(0),
        })
    }

    fn touch(&self) {
        let ms = u64::try_from(self.since.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_ms.store(ms, Ordering::Relaxed);
    }

    /// How long since the peer last sent anything.
    pub fn idle_for(&self) -> Duration {
        let last = Duration::from_millis(self.last_ms.load(Ordering::Relaxed));
        self.since.elapsed().saturating_sub(last)
    }
}

/// A peer's stream with its read side checked.
#[derive(Debug)]
pub struct PeerStream {
    read: CheckedRead,
    write: PlainWrite,
}

impl PeerStream {
    pub fn new(stream: UnixStream, activity: Arc<Activity>, flow: Arc<Flow>) -> Self {
        let (read, write) = stream.into_split();
        Self {
            read: CheckedRead {
                inner: read,
                shape: Shape::default(),
                activity,
                flow: Arc::clone(&flow),
            },
            write: PlainWrite { inner: write, flow },
        }
    }
}

impl Socket for PeerStream {
    type ReadHalf = CheckedRead;
    type WriteHalf = PlainWrite;

    fn split(self) -> Split<CheckedRead, PlainWrite> {
        Split::new(self.read, self.write)
    }
}

#[derive(Debug)]
pub struct CheckedRead {
    inner: OwnedReadHalf,
    shape: Shape,
    activity: Arc<Activity>,
    flow: Arc<Flow>,
}

#[async_trait::async_trait]
impl ReadHalf for CheckedRead {
    async fn recvmsg(&mut self, buf: &mut [u8]) -> std::io::Result<(usize, Vec<OwnedFd>)> {
        if self.shape.between_messages() {
            self.flow.wait_for_room().await;
            if self.flow.is_ended() {
                return Ok((0, Vec::new()));
            }
        }
        let most = self.shape.next_read().min(buf.len());
        let n = self.inner.read(&mut buf[..most]).await?;
        let calls = self
            .shape
            .follow(&buf[..n])
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?;
        self.flow.called(calls);
        if n > 0 {
            self.activity.touch();
        }
        // No descriptors travel on this socket (the API takes none; `can_pass_unix_fd` is
        // false, so none are negotiated).
        Ok((n, Vec::new()))
    }
}

#[derive(Debug)]
pub struct PlainWrite {
    inner: OwnedWriteHalf,
    flow: Arc<Flow>,
}

#[async_trait::async_trait]
impl WriteHalf for PlainWrite {
    async fn sendmsg(&mut self, buffer: &[u8], fds: &[BorrowedFd<'_>]) -> std::io::Result<usize> {
        if !fds.is_empty() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "no descriptors are passed on the private socket",
            ));
        }
        // Let go (it stalled, or its connection ended): the answers queued behind go at once,
        // with what they hold.
        if self.flow.is_ended() {
            return Err(std::io::ErrorKind::BrokenPipe.into());
        }
        match tokio::time::timeout(WRITE_STALL, self.inner.write(buffer)).await {
            Ok(written) => written,
            Err(_) => {
                self.flow.stalled.notify_one();
                Err(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    "the peer read nothing of an answer",
                ))
            }
        }
    }

    /// As zbus's own, and an answer written whole makes room for the peer's next call.
    async fn send_message(&mut self, msg: &Message) -> zbus::Result<()> {
        let data = msg.data();
        let mut pos = 0;
        let mut sent = Ok(());
        while pos < data.len() {
            match self.sendmsg(&data[pos..], &[]).await {
                Ok(n) => pos += n,
                Err(e) => {
                    sent = Err(e.into());
                    break;
                }
            }
        }
        // Written whole or not at all, the answer is done with: its turn and its place go.
        if matches!(msg.message_type(), Type::MethodReturn | Type::Error) {
            if let Some(serial) = msg.header().reply_serial() {
                self.flow.written(serial.get());
            }
            self.flow.answered();
        }
        sent
    }

    async fn close(&mut self) -> std::io::Result<()> {
        self.inner.shutdown().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(endian: u8, body: u32, fields: u32) -> Vec<u8> {
        let word = |v: u32| {
            if endian == b'l' {
                v.to_le_bytes()
            } else {
                v.to_be_bytes()
            }
        };
        let mut h = vec![endian, 1, 0, 1];
        h.extend(word(body));
        h.extend(word(7));
        h.extend(word(fields));
        h
    }

    fn handshake() -> Vec<u8> {
        b"\0AUTH EXTERNAL 30\r\nNEGOTIATE_UNIX_FD\r\nBEGIN\r\n".to_vec()
    }

    #[test]
    fn a_handshake_then_messages_in_any_pieces() {
        let mut bytes = handshake();
        for (body, fields) in [(8u32, 20u32), (0, 3), (100, 64)] {
            bytes.extend(header(b'l', body, fields));
            let len = usize::try_from(
                message_len(&header(b'l', body, fields).try_into().expect("16")).expect("len"),
            )
            .expect("len");
            bytes.extend(vec![7u8; len - PRIMARY_HEADER]);
        }
        // Big-endian: 16 + 8 bytes of header, 16 of body.
        bytes.extend(header(b'B', 16, 8));
        bytes.extend(vec![0u8; 8 + 16]);
        for piece in [1, 3, 16, 1000] {
            let mut shape = Shape::default();
            for chunk in bytes.chunks(piece) {
                shape.follow(chunk).expect("a well-formed stream");
            }
            assert!(
                matches!(shape.phase, Phase::Header { got: 0, .. }),
                "{piece}"
            );
        }
    }

    #[test]
    fn calls_expecting_a_reply_are_counted_and_reads_stop_at_each_message() {
        let mut shape = Shape::default();
        assert_eq!(shape.next_read(), PRIMARY_HEADER);
        assert_eq!(shape.follow(&handshake()), Ok(0));
        assert!(shape.between_messages());
        let call = |flags: u8, kind: u8| {
            let mut m = header(b'l', 8, 8);
            m[1] = kind;
            m[2] = flags;
            m.extend([0u8; 16]);
            m
        };
        // A call, a call wanting no reply, a signal: two calls to see through.
        let mut bytes = call(0, METHOD_CALL);
        bytes.extend(call(1, METHOD_CALL));
        bytes.extend(call(0, 4));
        assert_eq!(shape.follow(&bytes), Ok(2));
        // Read as the stream reads: never past the end of the message being read.
        let mut shape = Shape::default();
        shape.follow(&handshake()).expect("handshake");
        let mut at = 0;
        let mut counted = Vec::new();
        while at < bytes.len() {
            let n = shape.next_read().min(bytes.len() - at);
            counted.push(shape.follow(&bytes[at..at + n]).expect("well formed"));
            at += n;
        }
        // Header, body; header, body; header, body.
        assert_eq!(counted, [0, 1, 0, 1, 0, 0]);
    }

    #[test]
    fn a_huge_declared_body_is_refused_at_its_header() {
        let mut shape = Shape::default();
        shape.follow(&handshake()).expect("handshake");
        let huge = header(b'l', 127 << 20, 16);
        assert_eq!(
            shape.follow(&huge),
            Err(Refused::LongMessage(16 + 16 + (127 << 20)))
        );
        let mut shape = Shape::default();
        shape.follow(&handshake()).expect("handshake");
        assert_eq!(shape.follow(b"X\0\0\0"), Ok(0));
        assert_eq!(shape.follow(&[0u8; 12]), Err(Refused::NotAMessage(b'X')));
    }

    #[test]
    fn handshakes_that_would_break_zbus_are_refused() {
        // A lone `\n`: zbus indexes the byte before it (a panic, so an abort).
        assert_eq!(Shape::default().follow(b"\n"), Err(Refused::LineEnd));
        assert_eq!(
            Shape::default().follow(b"\0AUTH\r\n\n"),
            Err(Refused::LineEnd)
        );
        // A line that never ends: zbus's buffer would grow for as long as bytes come.
        let endless = vec![b'A'; MAX_HANDSHAKE + 1];
        assert_eq!(
            Shape::default().follow(&endless),
            Err(Refused::LongHandshake)
        );
    }
}
