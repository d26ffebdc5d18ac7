//! Reaching the daemon: the system bus, else its private socket (as `systemctl` falls back to
//! `/run/systemd/private`), or an explicit `--address` / `--socket`.

use std::path::{Path, PathBuf};

use ebpfstat_dbus::{self as wire, BUS_NAME, GROUP, OBJECT_PATH, Stats1Proxy};

#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error(
        "ebpfstatd is not running: {BUS_NAME} is not on the system bus ({bus}) and the private \
         socket {socket} does not answer ({sock}).\nStart it with `systemctl start ebpfstatd` \
         (or run `ebpfstatd` as root)."
    )]
    NotRunning {
        bus: String,
        socket: String,
        sock: String,
    },
    #[error(
        "permission denied: querying ebpfstatd needs root or membership in group `{GROUP}` \
         (`usermod -aG {GROUP} $USER`, then log in again)"
    )]
    Denied,
    #[error("cannot connect to {what}: {why}")]
    Explicit { what: String, why: String },
    #[error(
        "cannot connect to bus {address}: {why}.\nIt answers, but it is not a message bus: \
         if it is ebpfstatd's private socket, use --socket {socket}"
    )]
    NotABus {
        address: String,
        why: String,
        socket: String,
    },
    #[error(
        "nothing answers on {path} ({why}): ebpfstatd is not running there. Start it with \
         `systemctl start ebpfstatd`, or run `ebpfstatd --socket {path}` as root."
    )]
    NoDaemonAt { path: String, why: String },
    #[error(
        "ebpfstatd at {path} turned the connection away: it serves at most 64 clients at once, 16 \
         per user. Close some, or use the system bus (drop --socket)."
    )]
    TurnedAway { path: String },
}

/// Why an explicit socket gave no connection: no daemon there, a full daemon, or else.
fn socket_error(path: &Path, e: zbus::Error) -> ConnectError {
    use std::io::ErrorKind as K;
    if is_denied(&e) {
        return ConnectError::Denied;
    }
    let shown = path.display().to_string();
    match &e {
        zbus::Error::InputOutput(io) if matches!(io.kind(), K::NotFound | K::ConnectionRefused) => {
            ConnectError::NoDaemonAt {
                path: shown,
                why: io.to_string(),
            }
        }
        zbus::Error::InputOutput(io)
            if matches!(
                io.kind(),
                K::BrokenPipe | K::ConnectionReset | K::UnexpectedEof
            ) =>
        {
            // The daemon closes on a peer it does not let in, as on one past its caps: which
            // one this caller is, it can tell itself.
            if may_query() {
                ConnectError::TurnedAway { path: shown }
            } else {
                ConnectError::Denied
            }
        }
        _ => ConnectError::Explicit {
            what: format!("socket {shown}"),
            why: e.to_string(),
        },
    }
}

/// Whether connecting to `address` as a bus failed because what answered is no bus: a peer
/// (such as ebpfstatd's private socket) knows no bus object to say hello to.
fn not_a_bus(address: &str, e: &zbus::Error) -> Option<ConnectError> {
    use zbus::fdo::Error as F;
    const NO_BUS: [&str; 3] = [
        "org.freedesktop.DBus.Error.UnknownObject",
        "org.freedesktop.DBus.Error.UnknownMethod",
        "org.freedesktop.DBus.Error.UnknownInterface",
    ];
    let no_bus = match e {
        zbus::Error::MethodError(name, _, _) => NO_BUS.contains(&name.as_str()),
        zbus::Error::FDO(f) => matches!(
            **f,
            F::UnknownObject(_) | F::UnknownMethod(_) | F::UnknownInterface(_)
        ),
        _ => false,
    };
    // `unix:path=/run/ebpfstat/private,guid=…`: the path, else a placeholder.
    let socket = address
        .strip_prefix("unix:path=")
        .map_or("PATH", |rest| rest.split(',').next().unwrap_or(rest));
    no_bus.then(|| ConnectError::NotABus {
        address: address.to_owned(),
        why: e.to_string(),
        socket: socket.to_owned(),
    })
}

/// Whether this process is one the daemon lets in: root, or in group `ebpfstat`.
fn may_query() -> bool {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        return true;
    }
    let Ok(name) = std::ffi::CString::new(GROUP) else {
        return false;
    };
    // SAFETY: getgrnam reads a NUL-terminated name; the record it returns (static storage) is
    // read at once, before any other call could replace it.
    let group = unsafe {
        let gr = libc::getgrnam(name.as_ptr());
        if gr.is_null() {
            return false;
        }
        (*gr).gr_gid
    };
    let mut groups = [0 as libc::gid_t; 256];
    let len = libc::c_int::try_from(groups.len()).unwrap_or(0);
    // SAFETY: the buffer holds `len` gids; getgroups writes at most that many.
    let n = unsafe { libc::getgroups(len, groups.as_mut_ptr()) };
    // SAFETY: getegid has no preconditions.
    let egid = unsafe { libc::getegid() };
    let n = usize::try_from(n).unwrap_or(0);
    egid == group || groups[..n.min(groups.len())].contains(&group)
}

/// Whether a call failed for lack of permission, on the bus or the socket.
pub fn is_denied(e: &zbus::Error) -> bool {
    match e {
        zbus::Error::MethodError(name, _, _) => {
            name.as_str() == "org.freedesktop.DBus.Error.AccessDenied"
        }
        zbus::Error::FDO(f) => matches!(**f, zbus::fdo::Error::AccessDenied(_)),
        zbus::Error::InputOutput(io) => io.kind() == std::io::ErrorKind::PermissionDenied,
        _ => false,
    }
}

async fn over_socket(path: &Path) -> Result<Stats1Proxy<'static>, zbus::Error> {
    let stream = std::os::unix::net::UnixStream::connect(path)
        .map_err(|e| zbus::Error::InputOutput(std::sync::Arc::new(e)))?;
    let conn = zbus::connection::Builder::unix_stream(stream)
        .p2p()
        .build()
        .await?;
    Stats1Proxy::builder(&conn).path(OBJECT_PATH).build().await
}

async fn over_bus(conn: zbus::Connection) -> Result<Stats1Proxy<'static>, zbus::Error> {
    Stats1Proxy::new(&conn).await
}

async fn bus_has_daemon() -> Result<zbus::Connection, String> {
    let conn = zbus::Connection::system()
        .await
        .map_err(|e| e.to_string())?;
    let dbus = zbus::fdo::DBusProxy::new(&conn)
        .await
        .map_err(|e| e.to_string())?;
    let name = zbus::names::BusName::try_from(BUS_NAME).map_err(|e| e.to_string())?;
    match dbus.name_has_owner(name).await {
        Ok(true) => Ok(conn),
        Ok(false) => Err("no owner".into()),
        Err(e) => Err(e.to_string()),
    }
}

/// Connects as asked, or by default: system bus first, then the private socket.
pub async fn connect(
    address: Option<&str>,
    socket: Option<&PathBuf>,
) -> Result<Stats1Proxy<'static>, ConnectError> {
    let explicit = |what: String, e: zbus::Error| {
        if is_denied(&e) {
            ConnectError::Denied
        } else {
            ConnectError::Explicit {
                what,
                why: e.to_string(),
            }
        }
    };
    if let Some(address) = address {
        let conn = zbus::connection::Builder::address(address)
            .build()
            .await
            .map_err(|e| {
                not_a_bus(address, &e).unwrap_or_else(|| explicit(format!("bus {address}"), e))
            })?;
        return over_bus(conn)
            .await
            .map_err(|e| explicit(format!("bus {address}"), e));
    }
    if let Some(path) = socket {
        return over_socket(path).await.map_err(|e| socket_error(path, e));
    }
    let bus_err = match bus_has_daemon().await {
        Ok(conn) => match over_bus(conn).await {
            Ok(p) => return Ok(p),
            Err(e) => e.to_string(),
        },
        Err(e) => e,
    };
    let path = Path::new(ebpfstat_dbus::SOCKET);
    match over_socket(path).await {
        Ok(p) => Ok(p),
        Err(e) if is_denied(&e) => Err(ConnectError::Denied),
        Err(e) => Err(ConnectError::NotRunning {
            bus: bus_err,
            socket: path.display().to_string(),
            sock: e.to_string(),
        }),
    }
}

/// A failed call in words a person can act on.
pub fn explain(e: zbus::Error) -> anyhow::Error {
    if is_denied(&e) {
        return ConnectError::Denied.into();
    }
    match wire::Error::from(e) {
        wire::Error::NoSuchProgram(msg) => anyhow::anyhow!("no such program: {msg}"),
        wire::Error::NoSuchMap(msg) => anyhow::anyhow!("{msg}"),
        wire::Error::InvalidArgument(msg) => anyhow::anyhow!("invalid argument: {msg}"),
        wire::Error::Unavailable(msg) => anyhow::anyhow!("unavailable: {msg}"),
        wire::Error::Busy(msg) => anyhow::anyhow!("busy: {msg}"),
        wire::Error::NotSupported(msg) => anyhow::anyhow!("not supported: {msg}"),
        wire::Error::ZBus(e) => match wire::error_name(&e) {
            Some((name, msg)) => anyhow::anyhow!("{name}: {msg}"),
            None => anyhow::anyhow!("the call to ebpfstatd failed: {e}"),
        },
    }
}
