//! The node_exporter textfile: the live exposition rewritten every period, atomically (a
//! temporary file in the same directory, then a rename), so the collector never reads half a
//! file. A failed write is said in status and, at most once a minute, in the log; sampling
//! goes on.

use std::io::Write as _;
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use ebpfstat_numbers::WallNs;

use super::live_text;
use super::text::Format;
use crate::quiet::Quiet;
use crate::shared::{Shared, lock};

/// Rewrites `path` every `period` until the runtime stops.
pub async fn keep_writing(path: PathBuf, period: Duration, shared: Arc<Shared>) {
    let mut timer = tokio::time::interval(period);
    timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut quiet = Quiet::default();
    loop {
        timer.tick().await;
        // No pass yet: nothing worth a file (node_exporter would show an empty device).
        if lock(&shared.exported).is_none() {
            continue;
        }
        let text = live_text(&shared, Format::Prometheus);
        let target = path.clone();
        let written = tokio::task::spawn_blocking(move || write_atomically(&target, &text)).await;
        let outcome = match written {
            Ok(r) => r,
            Err(e) => Err(std::io::Error::other(e.to_string())),
        };
        let mut error = lock(&shared.exports.textfile_error);
        match outcome {
            Ok(()) => {
                error.clear();
                shared.exports.textfile_written_ns.store(
                    u64::try_from(WallNs::of(std::time::SystemTime::now()).ns()).unwrap_or(0),
                    Ordering::Relaxed,
                );
            }
            Err(e) => {
                *error = format!("cannot write the textfile {}: {e}", path.display());
                if let Some(n) = quiet.note(Instant::now()) {
                    tracing::warn!("{} ({n} failed writes since the last report)", *error);
                }
            }
        }
    }
}

/// Writes `text` to `path` through a temporary file beside it (not `*.prom`, which the
/// collector would read) and a rename. No fsync: after a crash the file is rewritten within a
/// period, and a device's flash is spared a sync every period.
pub fn write_atomically(path: &Path, text: &str) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("/"));
    let name = path
        .file_name()
        .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidInput, "no file name"))?;
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(name);
    tmp_name.push(".tmp");
    let tmp = dir.join(tmp_name);
    // A leftover (or a link someone else put there) goes first; the new file is created, never
    // opened through a link, so a writer of that directory cannot aim the daemon elsewhere.
    match std::fs::remove_file(&tmp) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    let result = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .custom_flags(libc::O_NOFOLLOW)
        // Readable by node_exporter, which runs as its own user; the service's umask would
        // hide it.
        .mode(0o644)
        .open(&tmp)
        .and_then(|mut f| {
            f.set_permissions(std::fs::Permissions::from_mode(0o644))?;
            f.write_all(text.as_bytes())
        })
        .and_then(|()| std::fs::rename(&tmp, path));
    if result.is_err() {
        // What was left half-written goes; if it cannot, the next write replaces it.
        let _cleanup = std::fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_the_file_whole() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("ebpfstat.prom");
        write_atomically(&path, "a 1\n").expect("first");
        write_atomically(&path, "b 2\n").expect("second");
        assert_eq!(std::fs::read_to_string(&path).expect("read"), "b 2\n");
        let mode = std::fs::metadata(&path).expect("stat").permissions().mode();
        assert_eq!(mode & 0o777, 0o644);
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .expect("list")
            .map(|e| e.expect("entry").file_name())
            .collect();
        assert_eq!(names, ["ebpfstat.prom"]);
    }

    #[test]
    fn a_link_in_place_of_the_temporary_file_is_not_followed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let victim = dir.path().join("victim");
        std::fs::write(&victim, "keep").expect("victim");
        std::os::unix::fs::symlink(&victim, dir.path().join(".ebpfstat.prom.tmp")).expect("link");
        let path = dir.path().join("ebpfstat.prom");
        write_atomically(&path, "a 1\n").expect("write");
        assert_eq!(std::fs::read_to_string(&victim).expect("read"), "keep");
        assert_eq!(std::fs::read_to_string(&path).expect("read"), "a 1\n");
    }

    #[test]
    fn a_missing_directory_is_an_error() {
        let err = write_atomically(Path::new("/nonexistent-dir/x.prom"), "a 1\n")
            .expect_err("no directory");
        assert_eq!(err.kind(), std::io::ErrorKind::NotFound);
    }
}
