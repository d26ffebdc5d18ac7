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
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::Notify;

use tokio::io::{AsyncReadExt, AsyncWriteExt, Interest};
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

/// The primary header's message type of a method call, and the flag of one that wants no
/// reply.
const METHOD_CALL: u8 = 1;
const NO_REPLY_EXPECTED: u8 = 0x1;

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
    #[error("a method call that wants no reply")]
    NoReply,
    #[error("a call with the serial {0} of a call not answered yet")]
    SerialInUse(u32),
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
    /// The rest of a message; `call`: the serial of a method call.
    Body { left: u64, call: Option<u32> },
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

/// The serial of the method call a primary header opens; `None` for another message. A call
/// that wants no reply is refused: the API has none, and no answer would ever give its place
/// back.
fn call_serial(h: &[u8; PRIMARY_HEADER]) -> Result<Option<u32>, Refused> {
    if h[1] != METHOD_CALL {
        return Ok(None);
    }
    if h[2] & NO_REPLY_EXPECTED != 0 {
        return Err(Refused::NoReply);
    }
    let b = [h[8], h[9], h[10], h[11]];
    Ok(Some(match h[0] {
        b'B' => u32::from_be_bytes(b),
        _ => u32::from_le_bytes(b),
    }))
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
    /// Follows `bytes`, the next ones the peer sent; what messages they completed (a method
    /// call's serial, or `None` for another message).
    pub fn follow(&mut self, mut bytes: &[u8]) -> Result<Vec<Option<u32>>, Refused> {
        let mut ended = Vec::new();
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
                        let call = call_serial(header)?;
                        self.phase = Phase::Body {
                            left: len - PRIMARY_HEADER as u64,
                            call,
                        };
                        ended.extend(self.end_of_message());
                    }
                }
                Phase::Body { left, .. } => {
                    let take = usize::try_from(*left).map_or(bytes.len(), |l| l.min(bytes.len()));
                    *left -= take as u64;
                    bytes = &bytes[take..];
                    ended.extend(self.end_of_message());
                }
            }
        }
        Ok(ended)
    }

    /// At a message's last byte, the next header, and what ended.
    fn end_of_message(&mut self) -> Option<Option<u32>> {
        let Phase::Body { left: 0, call } = self.phase else {
            return None;
        };
        self.phase = Phase::Header {
            bytes: [0; PRIMARY_HEADER],
            got: 0,
        };
        Some(call)
    }

    /// The most bytes the next read may take: up to the end of the message being read, so a
    /// read never takes a message after it (which would dispatch a call beyond the limits);
    /// in the handshake, a byte at a time (about fifty reads), so the first message is not
    /// begun before a place is taken for it.
    pub fn next_read(&self) -> usize {
        match &self.phase {
            Phase::Handshake { .. } => 1,
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
/// The same, over every peer.
pub const MAX_CALLS: usize = 32;
/// A peer that has not taken an answer whole this long after it was begun is let go.
pub const WRITE_STALL: Duration = Duration::from_secs(10);

/// The calls read and not yet answered over every peer, by user, and a wake-up for readers
/// waiting for room when one is answered.
#[derive(Debug, Default)]
pub struct Load {
    all: AtomicUsize,
    by_uid: Mutex<HashMap<u32, Arc<AtomicUsize>>>,
    answered: Notify,
}

/// Takes one place in `n` if it has fewer than `cap`.
fn take_place(n: &AtomicUsize, cap: usize) -> bool {
    n.fetch_update(Ordering::AcqRel, Ordering::Acquire, |v| {
        (v < cap).then_some(v + 1)
    })
    .is_ok()
}

/// One connection's calls: those read and not answered (by serial), the place taken for the
/// message being read, and heavy answers' turns held until their answers are written.
#[derive(Debug, Default)]
struct Calls {
    serials: Vec<u32>,
    reserved: bool,
    held: Vec<(u32, Arc<HeavyTurn>)>,
    ended: bool,
}

/// One connection's share of the [`Load`], and what the daemon knows of it.
#[derive(Debug)]
pub struct Flow {
    load: Arc<Load>,
    user: Arc<AtomicUsize>,
    calls: Mutex<Calls>,
    stalled: Notify,
}

impl Flow {
    pub fn new(load: &Arc<Load>, uid: u32) -> Arc<Self> {
        let user = Arc::clone(lock(&load.by_uid).entry(uid).or_default());
        Arc::new(Self {
            load: Arc::clone(load),
            user,
            calls: Mutex::default(),
            stalled: Notify::new(),
        })
    }

    /// Takes a place for the next message, if the peer, its user and all peers have room:
    /// taken before a byte of it is read, so no cap is ever passed. `None`: the connection
    /// ended.
    fn try_reserve(&self) -> Option<bool> {
        let mut calls = lock(&self.calls);
        if calls.ended {
            return None;
        }
        if calls.reserved {
            return Some(true);
        }
        if calls.serials.len() >= MAX_CALLS_PER_PEER || !take_place(&self.user, MAX_CALLS_PER_USER)
        {
            return Some(false);
        }
        if !take_place(&self.load.all, MAX_CALLS) {
            self.user.fetch_sub(1, Ordering::AcqRel);
            return Some(false);
        }
        calls.reserved = true;
        Some(true)
    }

    /// Waits until the peer may send another message; false when its connection ended.
    async fn reserve(&self) -> bool {
        loop {
            let answered = self.load.answered.notified();
            tokio::pin!(answered);
            answered.as_mut().enable();
            match self.try_reserve() {
                None => return false,
                Some(true) => return true,
                Some(false) => answered.await,
            }
        }
    }

    /// A message was read whole: a call keeps its place until answered; another message gives
    /// it back. A serial reused before its call was answered is refused: answers are matched
    /// to calls by serial.
    fn read(&self, ended: Option<u32>) -> Result<(), Refused> {
        let mut calls = lock(&self.calls);
        if !std::mem::take(&mut calls.reserved) {
            return Ok(());
        }
        match ended {
            Some(serial) if calls.serials.contains(&serial) => {
                drop(calls);
                self.release(1);
                Err(Refused::SerialInUse(serial))
            }
            Some(serial) => {
                calls.serials.push(serial);
                Ok(())
            }
            None => {
                drop(calls);
                self.release(1);
                Ok(())
            }
        }
    }

    /// Keeps a heavy answer's turn until the answer to call `serial` is written (or fails
    /// to be). A connection that ended writes nothing more: it is not kept.
    pub fn hold_until_answered(&self, serial: u32, turn: Arc<HeavyTurn>) {
        let mut calls = lock(&self.calls);
        if !calls.ended && calls.serials.contains(&serial) {
            calls.held.push((serial, turn));
        }
    }

    /// Whether calls of the peer are read and not yet answered.
    pub fn has_calls(&self) -> bool {
        !lock(&self.calls).serials.is_empty()
    }

    /// Whether the connection ended (or was let go).
    pub fn is_ended(&self) -> bool {
        lock(&self.calls).ended
    }

    /// The answer to call `serial` was written, whole or not: its place and its turn go.
    fn answered(&self, serial: u32) {
        let mut calls = lock(&self.calls);
        let Some(at) = calls.serials.iter().position(|&s| s == serial) else {
            return;
        };
        calls.serials.swap_remove(at);
        calls.held.retain(|(s, _)| *s != serial);
        drop(calls);
        self.release(1);
    }

    fn release(&self, n: usize) {
        self.user.fetch_sub(n, Ordering::AcqRel);
        self.load.all.fetch_sub(n, Ordering::AcqRel);
        self.load.answered.notify_waiters();
    }

    /// The connection ended: its calls no longer count, and its reader stops waiting.
    pub fn end(&self) {
        let mut calls = lock(&self.calls);
        calls.ended = true;
        let left = calls.serials.len() + usize::from(calls.reserved);
        calls.serials.clear();
        calls.reserved = false;
        let held = std::mem::take(&mut calls.held);
        drop(calls);
        drop(held);
        self.release(left);
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

    pub fn touch(&self) {
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
        let refused = |e| std::io::Error::new(std::io::ErrorKind::InvalidData, e);
        if self.shape.between_messages() {
            // A peer that hangs up while its calls fill its places is gone now, not when they
            // are answered (a profile's call may last minutes): its end is an end of file.
            let room = tokio::select! {
                room = self.flow.reserve() => room,
                () = hung_up(&self.inner) => false,
            };
            if !room {
                return Ok((0, Vec::new()));
            }
        }
        let most = self.shape.next_read().min(buf.len());
        let n = self.inner.read(&mut buf[..most]).await?;
        for ended in self.shape.follow(&buf[..n]).map_err(refused)? {
            self.flow.read(ended).map_err(refused)?;
        }
        if n > 0 {
            self.activity.touch();
        }
        // No descriptors travel on this socket (the API takes none; `can_pass_unix_fd` is
        // false, so none are negotiated).
        Ok((n, Vec::new()))
    }
}

/// Resolves when the peer has shut its end (or the socket failed), without reading: bytes it
/// sent before stay for when there is room for them.
async fn hung_up(read: &OwnedReadHalf) {
    loop {
        match read.ready(Interest::READABLE).await {
            Ok(ready) if !ready.is_read_closed() => {
                // Bytes wait unread: readiness stays set, so look again now and then.
                tokio::time::sleep(HANG_UP_LOOK).await;
            }
            _ => return,
        }
    }
}

/// How often [`hung_up`] looks again while a peer's bytes wait for room.
const HANG_UP_LOOK: Duration = Duration::from_secs(1);

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
        self.inner.write(buffer).await
    }

    /// Writes a message whole within [`WRITE_STALL`] (a peer that takes an answer a little at
    /// a time holds it no longer than one that takes none), and an answer written, whole or
    /// not, makes room for the peer's next call.
    async fn send_message(&mut self, msg: &Message) -> zbus::Result<()> {
        let data = msg.data();
        let whole = async {
            let mut pos = 0;
            while pos < data.len() {
                pos += self.sendmsg(&data[pos..], &[]).await?;
            }
            Ok::<(), std::io::Error>(())
        };
        let sent = match tokio::time::timeout(WRITE_STALL, whole).await {
            Ok(sent) => sent,
            Err(_) => {
                self.flow.stalled.notify_one();
                Err(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    "the peer did not take a message whole in time",
                ))
            }
        };
        if matches!(msg.message_type(), Type::MethodReturn | Type::Error)
            && let Some(serial) = msg.header().reply_serial()
        {
            self.flow.answered(serial.get());
        }
        sent.map_err(Into::into)
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
    fn calls_are_seen_by_serial_and_reads_stop_at_each_message() {
        let mut shape = Shape::default();
        assert_eq!(shape.next_read(), 1);
        assert_eq!(shape.follow(&handshake()), Ok(Vec::new()));
        assert!(shape.between_messages());
        // `header` writes serial 7.
        let message = |flags: u8, kind: u8| {
            let mut m = header(b'l', 8, 8);
            m[1] = kind;
            m[2] = flags;
            m.extend([0u8; 16]);
            m
        };
        // A call, then a signal.
        let mut bytes = message(0, METHOD_CALL);
        bytes.extend(message(0, 4));
        assert_eq!(shape.follow(&bytes), Ok(vec![Some(7), None]));
        // Read as the stream reads: never past the end of the message being read.
        let mut shape = Shape::default();
        shape.follow(&handshake()).expect("handshake");
        let mut at = 0;
        let mut ended = Vec::new();
        while at < bytes.len() {
            let n = shape.next_read().min(bytes.len() - at);
            ended.push(shape.follow(&bytes[at..at + n]).expect("well formed"));
            at += n;
        }
        // Header, body; header, body.
        assert_eq!(ended, [vec![], vec![Some(7)], vec![], vec![None]]);
        // A call that wants no reply would never give its place back.
        let mut shape = Shape::default();
        shape.follow(&handshake()).expect("handshake");
        assert_eq!(
            shape.follow(&message(NO_REPLY_EXPECTED, METHOD_CALL)),
            Err(Refused::NoReply)
        );
    }

    #[test]
    fn places_are_taken_before_reading_and_serials_are_not_reused() {
        let load = Arc::new(Load::default());
        let (a, b) = (Flow::new(&load, 1000), Flow::new(&load, 1000));
        for serial in 1..=4 {
            assert_eq!(a.try_reserve(), Some(true));
            assert_eq!(a.read(Some(serial)), Ok(()));
        }
        // The peer's four are taken.
        assert_eq!(a.try_reserve(), Some(false));
        for serial in 1..=4 {
            assert_eq!(b.try_reserve(), Some(true));
            assert_eq!(b.read(Some(serial)), Ok(()));
        }
        // The user's eight are taken: another of its connections waits too.
        let c = Flow::new(&load, 1000);
        assert_eq!(c.try_reserve(), Some(false));
        // Another user is not held up.
        let other = Flow::new(&load, 1001);
        assert_eq!(other.try_reserve(), Some(true));
        assert_eq!(other.read(None), Ok(()));
        // An answer makes room; a serial still unanswered cannot be sent again.
        a.answered(2);
        assert_eq!(c.try_reserve(), Some(true));
        assert_eq!(c.read(Some(9)), Ok(()));
        b.answered(1);
        assert_eq!(b.try_reserve(), Some(true));
        assert_eq!(b.read(Some(3)), Err(Refused::SerialInUse(3)));
        // A connection that ends gives back all it held.
        for f in [&a, &b, &c] {
            f.end();
            assert_eq!(f.try_reserve(), None);
        }
        assert_eq!(load.all.load(Ordering::Acquire), 0);
    }

    /// A peer whose four calls are unanswered, and that hangs up: its reader sees the end at
    /// once, not when the calls are answered.
    #[tokio::test]
    async fn a_peer_that_hangs_up_with_its_places_full_is_seen_gone() {
        let (ours, mut theirs) = UnixStream::pair().expect("a socket pair");
        let flow = Flow::new(&Arc::new(Load::default()), 1000);
        let mut read = PeerStream::new(ours, Activity::new(), Arc::clone(&flow)).read;
        // The handshake and four calls at once: the first call is counted too.
        let mut bytes = handshake();
        for serial in 1..=4u32 {
            let mut call = header(b'l', 0, 0);
            call[8..12].copy_from_slice(&serial.to_le_bytes());
            bytes.extend(call);
        }
        theirs.write_all(&bytes).await.expect("write");
        let mut buf = [0u8; 64];
        while lock(&flow.calls).serials.len() < MAX_CALLS_PER_PEER {
            tokio::time::timeout(Duration::from_secs(10), read.recvmsg(&mut buf))
                .await
                .expect("a call within 10 s")
                .expect("read");
        }
        // A fifth call waits for room; then the peer goes.
        theirs.write_all(&header(b'l', 0, 0)).await.expect("write");
        drop(theirs);
        let end = tokio::time::timeout(Duration::from_secs(10), read.recvmsg(&mut buf)).await;
        assert!(matches!(end, Ok(Ok((0, _)))), "{end:?}");
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
        assert_eq!(shape.follow(b"X\0\0\0"), Ok(Vec::new()));
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
