//! `PropertiesChanged` for the properties that change while the daemon runs (`StatsState`,
//! `DatabaseBytes`, and `IntervalNs`, `RetentionNs`, `CapBytes` on a reload): the threads that
//! change them publish new values, and a task per connection signals each change to that
//! connection's peers. The others are `const` or, for `StatsOverheadPct` which changes every
//! pass, never signalled.

use zbus::object_server::SignalEmitter;

use super::{Stats1, convert};

/// Signals changes of published properties on `conn` until the daemon stops publishing or the
/// connection fails.
pub async fn signal_changes(conn: zbus::Connection, iface: Stats1) {
    let mut rx = iface.shared.published.subscribe();
    let mut versions = iface.shared.versions.subscribe();
    let mut alerts = iface.shared.alert_changes.subscribe();
    let mut last = rx.borrow_and_update().clone();
    let emitter = match SignalEmitter::new(&conn, ebpfstat_dbus::OBJECT_PATH) {
        Ok(e) => e,
        Err(e) => {
            tracing::warn!("cannot signal property changes: {e}");
            return;
        }
    };
    loop {
        tokio::select! {
            changed = rx.changed() => if changed.is_err() { return },
            compared = versions.recv() => {
                use tokio::sync::broadcast::error::RecvError;
                let sent = match compared {
                    Ok(c) => Stats1::version_compared(&emitter, convert::comparison(&c)).await,
                    // Missed while this connection lagged: kept as events all the same.
                    Err(RecvError::Lagged(_)) => Ok(()),
                    Err(RecvError::Closed) => return,
                };
                if let Err(e) = sent {
                    tracing::debug!("version comparison not signalled: {e}");
                    return;
                }
                continue;
            }
            changed = alerts.recv() => {
                use tokio::sync::broadcast::error::RecvError;
                let sent = match changed {
                    Ok(a) => Stats1::alert_changed(&emitter, convert::alert(a)).await,
                    // Missed while this connection lagged: `Alerts` lists them all the same.
                    Err(RecvError::Lagged(_)) => Ok(()),
                    Err(RecvError::Closed) => return,
                };
                if let Err(e) = sent {
                    tracing::debug!("alert change not signalled: {e}");
                    return;
                }
                continue;
            }
        }
        let now = rx.borrow_and_update().clone();
        let mut sent = Ok(());
        if now.stats_state != last.stats_state {
            sent = iface.stats_state_changed(&emitter).await;
        }
        if sent.is_ok() && now.database_bytes != last.database_bytes {
            sent = iface.database_bytes_changed(&emitter).await;
        }
        if sent.is_ok() && now.interval != last.interval {
            sent = iface.interval_ns_changed(&emitter).await;
        }
        if sent.is_ok() && now.retention != last.retention {
            sent = iface.retention_ns_changed(&emitter).await;
        }
        if sent.is_ok() && now.cap_bytes != last.cap_bytes {
            sent = iface.cap_bytes_changed(&emitter).await;
        }
        if let Err(e) = sent {
            // The peer went away (its connection task ends too), or the bus did.
            tracing::debug!("property change not signalled: {e}");
            return;
        }
        last = now;
    }
}
