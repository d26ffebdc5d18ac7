//! The private peer-to-peer socket: the API without a bus daemon, as systemd's
//! `/run/systemd/private`. Mode 0660, group `ebpfstat`; a peer must be root or in the group
//! (checked again with `SO_PEERCRED`, in case the file mode was loosened).

use std::collections::HashMap;
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::net::UnixListener;

use super::Stats1;
use super::peer::{Activity, Flow, Load, PeerStream, WRITE_STALL};
use crate::quiet::Quiet;
use crate::shared::lock;

#[derive(Debug, thiserror::Error)]
#[error("cannot serve the private socket {path}: {source}")]
pub struct SocketError {
    pub path: PathBuf,
    #[source]
    pub source: io::Error,
}

/// The group id of `name`, if the group exists.
pub fn group_id(name: &str) -> Option<u32> {
    let c = std::ffi::CString::new(name).ok()?;
    // SAFETY: getgrnam reads a NUL-terminated name; the returned record (static storage) is
    // read at once, before any other call could overwrite it.
    unsafe {
        let gr = libc::getgrnam(c.as_ptr());
        (!gr.is_null()).then(|| (*gr).gr_gid)
    }
}

/// The bound socket file: removed when dropped (the daemon's clean exit), if it is still ours.
#[derive(Debug)]
pub struct SocketFile {
    path: PathBuf,
    inode: u64,
}

impl Drop for SocketFile {
    fn drop(&mut self) {
        use std::os::unix::fs::MetadataExt;
        // Another instance may have taken the path since (it was refused while we answered,
        // but an administrator can remove the file): leave a file that is not ours.
        let ours = std::fs::symlink_metadata(&self.path).is_ok_and(|m| m.ino() == self.inode);
        if ours && let Err(e) = std::fs::remove_file(&self.path) {
            tracing::warn!(
                "cannot remove the private socket {}: {e}",
                self.path.display()
            );
        }
    }
}

/// Binds the socket with mode 0660 and group `ebpfstat`. A socket file left by a daemon that
/// is gone is replaced; one a live daemon answers on is not (an error says so), nor is a
/// file that is not a socket. A directory made for it is 0755, whatever the umask: the
/// socket's own mode guards it.
pub fn bind(path: &Path) -> Result<(UnixListener, SocketFile), SocketError> {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let err = |source| SocketError {
        path: path.to_owned(),
        source,
    };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty())
        && !dir.exists()
    {
        std::fs::create_dir_all(dir).map_err(err)?;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).map_err(err)?;
    }
    match std::fs::symlink_metadata(path) {
        Ok(m) if !m.file_type().is_socket() => {
            return Err(err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                "a file that is not a socket is there; remove it or choose another --socket",
            )));
        }
        Ok(_) => match std::os::unix::net::UnixStream::connect(path) {
            Ok(_) => {
                return Err(err(io::Error::new(
                    io::ErrorKind::AddrInUse,
                    "a running daemon answers on it; stop it, or give this one another --socket",
                )));
            }
            // Nobody listens: a socket file left behind by a daemon that is gone.
            Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
                tracing::info!("removing the stale socket file {}", path.display());
                std::fs::remove_file(path).map_err(err)?;
            }
            Err(e) => return Err(err(e)),
        },
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(err(e)),
    }
    let listener = UnixListener::bind(path).map_err(err)?;
    let inode = std::fs::symlink_metadata(path).map_err(err)?.ino();
    let file = SocketFile {
        path: path.to_owned(),
        inode,
    };
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660)).map_err(err)?;
    if let Some(gid) = group_id(ebpfstat_dbus::GROUP) {
        std::os::unix::fs::chown(path, None, Some(gid)).map_err(err)?;
    }
    Ok((listener, file))
}

/// (pid, uid, gid) of the peer.
fn peer(stream: &tokio::net::UnixStream) -> io::Result<(u32, u32, u32)> {
    let mut cred = libc::ucred {
        pid: 0,
        uid: 0,
        gid: 0,
    };
    let mut len = libc::socklen_t::try_from(size_of::<libc::ucred>()).map_err(io::Error::other)?;
    // SAFETY: `cred` and `len` are valid for writes of a ucred, as SO_PEERCRED requires.
    let rc = unsafe {
        libc::getsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_PEERCRED,
            std::ptr::from_mut(&mut cred).cast(),
            &mut len,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    // A peer's pid is never negative.
    Ok((cred.pid.cast_unsigned(), cred.uid, cred.gid))
}

/// Whether a peer may call: root, or a member (primary or supplementary) of the group.
fn allowed(pid: u32, uid: u32, gid: u32, group: Option<u32>) -> bool {
    if uid == 0 {
        return true;
    }
    let Some(group) = group else { return false };
    if gid == group {
        return true;
    }
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Groups:"))
                .map(|g| g.split_whitespace().any(|g| g.parse() == Ok(group)))
        })
        .unwrap_or(false)
}

/// Most peers served at once, and most for one user: beyond them a peer is turned away at
/// once, so connections cannot take the descriptors and memory sampling needs.
pub const MAX_PEERS: usize = 64;
pub const MAX_PEERS_PER_UID: usize = 16;
/// Descriptors never given to peers, whatever the open-file limit: sampling opens one per
/// program in turn, the rescan walks `/proc` and bpffs, SQLite keeps three.
pub const FDS_KEPT: libc::rlim_t = 64;
/// A peer has this long to authenticate.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);
/// A peer that sends nothing for this long, with no call being answered, is disconnected (it
/// may connect again).
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(600);

/// Peers being served, by user.
#[derive(Debug, Default)]
struct Peers {
    total: usize,
    by_uid: HashMap<u32, usize>,
}

/// A place among the peers, given back when dropped.
#[derive(Debug)]
struct PeerSlot {
    peers: Arc<Mutex<Peers>>,
    uid: u32,
}

impl PeerSlot {
    /// A place for a peer of `uid`, if the caps leave one.
    fn take(peers: &Arc<Mutex<Peers>>, uid: u32) -> Option<Self> {
        let mut p = lock(peers);
        let mine = p.by_uid.get(&uid).copied().unwrap_or(0);
        if p.total >= peer_cap() || mine >= MAX_PEERS_PER_UID {
            return None;
        }
        p.total += 1;
        p.by_uid.insert(uid, mine + 1);
        Some(Self {
            peers: Arc::clone(peers),
            uid,
        })
    }
}

impl Drop for PeerSlot {
    fn drop(&mut self) {
        let mut p = lock(&self.peers);
        p.total = p.total.saturating_sub(1);
        if let Some(n) = p.by_uid.get_mut(&self.uid) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                p.by_uid.remove(&self.uid);
            }
        }
    }
}

/// Peers allowed now: [`MAX_PEERS`], less when the open-file limit (which an administrator
/// may lower at run time) leaves fewer than that above [`FDS_KEPT`].
fn peer_cap() -> usize {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `lim` is a valid rlimit for getrlimit to write.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &raw mut lim) } != 0 {
        return MAX_PEERS;
    }
    let room = lim.rlim_cur.saturating_sub(FDS_KEPT);
    usize::try_from(room).map_or(MAX_PEERS, |r| r.min(MAX_PEERS))
}

/// Accepts peers for as long as the runtime runs; each gets its own D-Bus connection, within
/// the caps on peers, the handshake and idle timeouts, and the limits of [`super::peer`].
pub async fn serve(listener: UnixListener, iface: Stats1) {
    let group = group_id(ebpfstat_dbus::GROUP);
    let peers = Arc::new(Mutex::new(Peers::default()));
    let load = Arc::new(Load::default());
    let stalls = Arc::new(Mutex::new(Quiet::default()));
    let mut accept_failed = Quiet::default();
    let mut turned_away = Quiet::default();
    loop {
        let stream = match listener.accept().await {
            Ok((s, _)) => s,
            Err(e) => {
                // Out of descriptors, say: wait, and do not say it ten times a second.
                if let Some(n) = accept_failed.note(Instant::now()) {
                    tracing::warn!(
                        "private socket: accept failed ({n} since the last report): {e}"
                    );
                }
                tokio::time::sleep(Duration::from_millis(250)).await;
                continue;
            }
        };
        let uid = match peer(&stream) {
            Ok((pid, uid, gid)) if allowed(pid, uid, gid, group) => uid,
            Ok((pid, uid, _)) => {
                tracing::debug!("private socket: refused pid {pid} uid {uid}");
                continue;
            }
            Err(e) => {
                tracing::debug!("private socket: no peer credentials: {e}");
                continue;
            }
        };
        let Some(slot) = PeerSlot::take(&peers, uid) else {
            if let Some(n) = turned_away.note(Instant::now()) {
                tracing::warn!(
                    "private socket: {n} peers turned away at their cap since the last report \
                     (the latest: uid {uid})"
                );
            }
            continue;
        };
        let flow = Flow::new(&load, uid);
        let peer = Peer {
            uid,
            _slot: slot,
            flow,
            stalls: Arc::clone(&stalls),
        };
        tokio::spawn(serve_peer(stream, peer, iface.clone()));
    }
}

/// A peer being served: its place among the peers and its calls in flight, given back when
/// it goes.
struct Peer {
    uid: u32,
    _slot: PeerSlot,
    flow: Arc<Flow>,
    /// Peers let go for not reading their answers, said at most once a minute.
    stalls: Arc<Mutex<Quiet>>,
}

impl Drop for Peer {
    fn drop(&mut self) {
        self.flow.end();
    }
}

/// One peer's connection, from its handshake to its end.
async fn serve_peer(stream: tokio::net::UnixStream, peer: Peer, iface: Stats1) {
    let uid = peer.uid;
    let iface = iface.for_peer(uid, Arc::clone(&peer.flow));
    let activity = Activity::new();
    let guarded = PeerStream::new(stream, Arc::clone(&activity), Arc::clone(&peer.flow));
    let build = zbus::connection::Builder::socket(guarded)
        .server(zbus::Guid::generate())
        .p2p()
        .user_id(uid)
        .serve_at(ebpfstat_dbus::OBJECT_PATH, iface.clone())
        .build();
    let conn = match tokio::time::timeout(HANDSHAKE_TIMEOUT, build).await {
        Ok(Ok(conn)) => conn,
        Ok(Err(e)) => {
            tracing::debug!("private socket: handshake failed: {e}");
            return;
        }
        Err(_) => {
            tracing::debug!("private socket: no handshake within {HANDSHAKE_TIMEOUT:?}");
            return;
        }
    };
    // The peer hears of property changes for as long as it is connected, and is let go when
    // it has been silent for IDLE_TIMEOUT.
    let signals = super::signal_changes(conn.clone(), iface);
    let idle = async {
        loop {
            // A call being answered (a profile lasts up to IDLE_TIMEOUT) is not silence.
            if peer.flow.has_calls() {
                activity.touch();
            }
            let left = IDLE_TIMEOUT.saturating_sub(activity.idle_for());
            if left.is_zero() {
                tracing::debug!(
                    "private socket: uid {uid} idle for {IDLE_TIMEOUT:?}; disconnected"
                );
                return;
            }
            tokio::time::sleep(left).await;
        }
    };
    // The signals end when a write fails: the other ends are still watched after that.
    let signals = async {
        signals.await;
        conn.closed().await;
    };
    tokio::select! {
        biased;
        () = peer.flow.stalled() => {
            if let Some(n) = lock(&peer.stalls).note(Instant::now()) {
                tracing::warn!(
                    "private socket: {n} peers let go since the last report for not taking a \
                     message whole within {WRITE_STALL:?} (the latest: uid {uid})"
                );
            }
        }
        () = conn.closed() => {}
        () = idle => {}
        () = signals => {}
    }
}
