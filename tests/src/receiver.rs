//! A remote-write receiver that answers what a test scripts (500, 429, 400, then 204): to see
//! what a pusher does with each answer. It records every request it reads.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};

/// One request as read: its head and body.
#[derive(Debug, Clone)]
pub struct Received {
    pub head: String,
    pub body: Vec<u8>,
    /// The status it was answered with.
    pub status: u16,
}

/// Answers the scripted statuses in turn, then 204 to everything.
#[derive(Debug)]
pub struct ScriptedReceiver {
    pub port: u16,
    pub received: Arc<Mutex<Vec<Received>>>,
}

impl ScriptedReceiver {
    pub fn start(script: &[u16]) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let received = Arc::new(Mutex::new(Vec::new()));
        let (log, mut script) = (Arc::clone(&received), script.to_vec());
        script.reverse();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(mut conn) = conn else { continue };
                let Some((head, body)) = read_request(&mut conn) else {
                    continue;
                };
                let status = script.pop().unwrap_or(204);
                let text = format!("status {status} from the script");
                let _ = write!(
                    conn,
                    "HTTP/1.1 {status} Scripted\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{text}",
                    text.len()
                );
                log.lock()
                    .expect("log")
                    .push(Received { head, body, status });
            }
        });
        Self { port, received }
    }

    pub fn received(&self) -> Vec<Received> {
        self.received.lock().expect("log").clone()
    }
}

fn read_request(conn: &mut std::net::TcpStream) -> Option<(String, Vec<u8>)> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    let end = loop {
        let n = conn.read(&mut chunk).ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break end;
        }
    };
    let head = String::from_utf8_lossy(&buf[..end]).into_owned();
    let len: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("Content-Length: "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    let mut body = buf[end + 4..].to_vec();
    while body.len() < len {
        let n = conn.read(&mut chunk).ok()?;
        if n == 0 {
            break;
        }
        body.extend_from_slice(&chunk[..n]);
    }
    Some((head, body))
}

/// Says, in the database at `db` (the daemon not running), that the push target `url`'s
/// receiver has everything up to `at`.
pub fn set_pushed(db: &std::path::Path, url: &str, at: std::time::SystemTime) {
    let ns = at
        .duration_since(std::time::SystemTime::UNIX_EPOCH)
        .expect("after 1970")
        .as_nanos();
    let conn = rusqlite::Connection::open(db).expect("db");
    conn.execute(
        "INSERT INTO meta (key, value) VALUES (?1, ?2)",
        (format!("pushed:{url}"), i64::try_from(ns).expect("ns")),
    )
    .expect("position");
}
