//! One remote-write request over HTTP/1.1: the request's head, and the answer's status read
//! from what the receiver sends back. Only as much HTTP as a push needs: one request per
//! connection (`Connection: close`), the answer's body read only to quote an error.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

use crate::config::remote_write::Url;

/// Most of an answer read: its head and enough of its body to quote an error.
pub const MAX_ANSWER: usize = 16 * 1024;
/// Most of an error's body quoted in a log line or the status.
pub const QUOTED: usize = 200;

#[derive(Debug, thiserror::Error)]
pub enum PostError {
    #[error("cannot resolve {0}: {1}")]
    Resolve(String, std::io::Error),
    #[error("cannot connect to {0}: {1}")]
    Connect(String, std::io::Error),
    #[error("sending to {0}: {1}")]
    Io(String, std::io::Error),
    #[error("TLS with {0}: {1}")]
    Tls(String, String),
    #[error("{0} answered something that is not HTTP/1.x: {1:?}")]
    NotHttp(String, String),
}

/// What the receiver answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub status: u16,
    /// What `Retry-After` asked for (seconds), on a 429 or 503.
    pub retry_after: Option<Duration>,
    /// The start of the body, for an error's message.
    pub body: String,
}

/// The request's head for `body_len` bytes of a snappy-compressed `WriteRequest`, with the
/// `Authorization` value when there is one.
pub fn head(url: &Url, authorization: Option<&str>, body_len: usize) -> String {
    let host = if url.host.contains(':') {
        format!("[{}]", url.host)
    } else {
        url.host.clone()
    };
    let auth = authorization.map_or(String::new(), |a| format!("Authorization: {a}\r\n"));
    format!(
        "POST {} HTTP/1.1\r\nHost: {host}:{}\r\nUser-Agent: ebpfstatd/{}\r\n\
         Content-Type: application/x-protobuf\r\nContent-Encoding: snappy\r\n\
         X-Prometheus-Remote-Write-Version: 0.1.0\r\n{auth}Content-Length: {body_len}\r\n\
         Connection: close\r\n\r\n",
        url.path,
        url.port,
        env!("CARGO_PKG_VERSION")
    )
}

/// Reads an answer: its status line, `Retry-After`, and the start of its body. `who` names
/// the receiver in errors.
pub fn parse_answer(who: &str, answer: &[u8]) -> Result<Answer, PostError> {
    let not_http = || {
        let start = String::from_utf8_lossy(&answer[..answer.len().min(60)]).into_owned();
        PostError::NotHttp(who.to_owned(), start)
    };
    let end = answer
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(not_http)?;
    let head = std::str::from_utf8(&answer[..end]).map_err(|_| not_http())?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or("");
    let mut parts = status_line.splitn(3, ' ');
    let (Some(version), Some(code)) = (parts.next(), parts.next()) else {
        return Err(not_http());
    };
    let status = code.parse::<u16>().map_err(|_| not_http())?;
    if !version.starts_with("HTTP/1.") || !(100..600).contains(&status) {
        return Err(not_http());
    }
    let retry_after = lines
        .filter_map(|l| l.split_once(':'))
        .find(|(k, _)| k.trim().eq_ignore_ascii_case("retry-after"))
        .and_then(|(_, v)| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs);
    let body = &answer[end + 4..];
    let body = String::from_utf8_lossy(&body[..body.len().min(QUOTED)])
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect::<String>()
        .trim()
        .to_owned();
    Ok(Answer {
        status,
        retry_after,
        body,
    })
}

/// A connection to the target's host and port, within `timeout` (each address in turn).
pub fn connect(url: &Url, timeout: Duration) -> Result<TcpStream, PostError> {
    let at = format!("{}:{}", url.host, url.port);
    let addrs = (url.host.as_str(), url.port)
        .to_socket_addrs()
        .map_err(|e| PostError::Resolve(at.clone(), e))?;
    let mut last = std::io::Error::new(std::io::ErrorKind::NotFound, "no address");
    for addr in addrs {
        match TcpStream::connect_timeout(&addr, timeout) {
            Ok(s) => {
                let set = s
                    .set_read_timeout(Some(timeout))
                    .and_then(|()| s.set_write_timeout(Some(timeout)))
                    .and_then(|()| s.set_nodelay(true));
                set.map_err(|e| PostError::Connect(at.clone(), e))?;
                return Ok(s);
            }
            Err(e) => last = e,
        }
    }
    Err(PostError::Connect(at, last))
}

/// Sends the head and body on `stream` and reads the answer (until the receiver closes, or
/// [`MAX_ANSWER`] bytes).
pub fn exchange(
    who: &str,
    stream: &mut dyn ReadWrite,
    head: &str,
    body: &[u8],
) -> Result<Answer, PostError> {
    let io = |e| PostError::Io(who.to_owned(), e);
    stream.write_all(head.as_bytes()).map_err(io)?;
    stream.write_all(body).map_err(io)?;
    stream.flush().map_err(io)?;
    let mut answer = Vec::with_capacity(1024);
    let mut chunk = [0u8; 4096];
    while answer.len() < MAX_ANSWER {
        let n = match stream.read(&mut chunk) {
            Ok(n) => n,
            // The answer's head is in: a receiver that keeps the connection open is done.
            Err(e) if answer.windows(4).any(|w| w == b"\r\n\r\n") && is_timeout(&e) => 0,
            Err(e) => return Err(io(e)),
        };
        if n == 0 {
            break;
        }
        answer.extend_from_slice(&chunk[..n]);
        if complete(&answer) {
            break;
        }
    }
    parse_answer(who, &answer)
}

fn is_timeout(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
    )
}

/// Whether the answer holds its head and the whole body its `Content-Length` gives.
fn complete(answer: &[u8]) -> bool {
    let Some(end) = answer.windows(4).position(|w| w == b"\r\n\r\n") else {
        return false;
    };
    let head = String::from_utf8_lossy(&answer[..end]);
    let len = head
        .split("\r\n")
        .filter_map(|l| l.split_once(':'))
        .find(|(k, _)| k.trim().eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.trim().parse::<usize>().ok());
    len.is_some_and(|len| answer.len() >= end + 4 + len.min(QUOTED))
}

/// A byte stream both ways: a TCP connection, or TLS over one.
pub trait ReadWrite: Read + Write {}
impl<T: Read + Write> ReadWrite for T {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_head_says_what_remote_write_asks() {
        let url: Url = "http://[::1]:9090/api/v1/write".parse().expect("url");
        let h = head(&url, Some("Bearer t"), 42);
        assert!(
            h.starts_with("POST /api/v1/write HTTP/1.1\r\nHost: [::1]:9090\r\n"),
            "{h}"
        );
        for want in [
            "Content-Encoding: snappy\r\n",
            "Content-Type: application/x-protobuf\r\n",
            "X-Prometheus-Remote-Write-Version: 0.1.0\r\n",
            "Authorization: Bearer t\r\n",
            "Content-Length: 42\r\n",
        ] {
            assert!(h.contains(want), "{want} in {h}");
        }
        assert!(h.ends_with("\r\n\r\n"));
    }

    #[test]
    fn answers_are_read_or_refused() {
        let a = parse_answer("r", b"HTTP/1.1 204 No Content\r\nDate: x\r\n\r\n").expect("204");
        assert_eq!((a.status, a.retry_after, a.body.as_str()), (204, None, ""));
        let a = parse_answer(
            "r",
            b"HTTP/1.1 429 Too Many\r\nretry-after: 7\r\nContent-Length: 5\r\n\r\nslow\n",
        )
        .expect("429");
        assert_eq!(
            (a.status, a.retry_after, a.body.as_str()),
            (429, Some(Duration::from_secs(7)), "slow")
        );
        assert!(complete(
            b"HTTP/1.1 400 Bad\r\nContent-Length: 3\r\n\r\nbad"
        ));
        assert!(!complete(
            b"HTTP/1.1 400 Bad\r\nContent-Length: 3\r\n\r\nba"
        ));
        for bad in [
            &b"SSH-2.0-OpenSSH\r\n\r\n"[..],
            b"HTTP/1.1 20 x\r\n\r\n",
            b"HTTP/1.1 204",
        ] {
            let e = parse_answer("r", bad).expect_err("not http");
            assert!(e.to_string().contains("not HTTP/1.x"), "{e}");
        }
    }
}
