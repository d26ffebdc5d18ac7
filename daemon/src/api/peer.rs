//! A private-socket peer's stream as zbus reads it, within limits zbus does not keep itself.
//!
//! zbus allocates a message's whole declared length (up to 128 MiB) from its 16-byte header,
//! grows its handshake buffer without bound until a line ends, and panics on a handshake line
//! that ends in `\n` alone (the daemon runs with `panic = abort`). The bytes a peer sends are
//! checked here as they pass, before zbus sees them: a handshake of at most
//! [`MAX_HANDSHAKE`] bytes whose lines end in `\r\n`, then messages of at most
//! [`MAX_MESSAGE`] bytes. A peer that breaks a limit loses its connection, and nothing was
//! allocated for it.

use std::os::fd::{BorrowedFd, OwnedFd};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};
use zbus::connection::socket::{ReadHalf, Socket, Split, WriteHalf};

/// The authentication lines, up to `BEGIN`: about a hundred bytes in practice.
pub const MAX_HANDSHAKE: usize = 4096;

/// The longest message a peer may send. The API's calls are small (a program name is at most
/// 512 bytes); the replies, which the daemon writes, are not bounded by this.
pub const MAX_MESSAGE: u64 = 64 << 10;

/// D-Bus's fixed primary header.
const PRIMARY_HEADER: usize = 16;

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
    /// The rest of a message.
    Body { left: u64 },
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
    /// Follows `bytes`, the next ones the peer sent.
    pub fn follow(&mut self, mut bytes: &[u8]) -> Result<(), Refused> {
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
                        self.phase = Phase::Body {
                            left: len - PRIMARY_HEADER as u64,
                        };
                    }
                }
                Phase::Body { left } => {
                    let take = usize::try_from(*left).map_or(bytes.len(), |l| l.min(bytes.len()));
                    *left -= take as u64;
                    bytes = &bytes[take..];
                    if *left == 0 {
                        self.phase = Phase::Header {
                            bytes: [0; PRIMARY_HEADER],
                            got: 0,
                        };
                    }
                }
            }
        }
        Ok(())
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
    pub fn idle_for(&self) -> std::time::Duration {
        let last = std::time::Duration::from_millis(self.last_ms.load(Ordering::Relaxed));
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
    pub fn new(stream: UnixStream, activity: Arc<Activity>) -> Self {
        let (read, write) = stream.into_split();
        Self {
            read: CheckedRead {
                inner: read,
                shape: Shape::default(),
                activity,
            },
            write: PlainWrite { inner: write },
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
}

#[async_trait::async_trait]
impl ReadHalf for CheckedRead {
    async fn recvmsg(&mut self, buf: &mut [u8]) -> std::io::Result<(usize, Vec<OwnedFd>)> {
        let n = self.inner.read(buf).await?;
        self.shape
            .follow(&buf[..n])
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?;
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
        self.inner.write(buffer).await
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
        assert_eq!(shape.follow(b"X\0\0\0"), Ok(()));
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
