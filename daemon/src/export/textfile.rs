//! The node_exporter textfile: the live exposition rewritten every period, atomically (a
//! temporary file in the same directory, then a rename), so the collector never reads half a
//! file. It names programs, tags, holders and units, which the API keeps to group `ebpfstat`:
//! the file is mode 0640, group `ebpfstat` (node_exporter's user is added to it). A failed
//! write is said in status and, at most once a minute, in the log; sampling goes on.

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

/// The group that may read the textfile, as the API's readers (the package creates it).
pub const READERS: &str = "ebpfstat";

/// Rewrites `path` every `period` until the runtime stops.
pub async fn keep_writing(path: PathBuf, period: Duration, shared: Arc<Shared>) {
    let group = readers(&path);
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
        let written =
            tokio::task::spawn_blocking(move || write_atomically(&target, &text, group)).await;
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

/// The id of group [`READERS`], looked up once; without it (an install without the package)
/// the file is root's alone, which the log says once.
fn readers(path: &Path) -> Option<libc::gid_t> {
    let why = match group_id(READERS) {
        Ok(Some(gid)) => return Some(gid),
        Ok(None) => format!("there is no group {READERS}"),
        Err(e) => format!("cannot look up group {READERS}: {e}"),
    };
    tracing::warn!(
        "{why}: the textfile {} is readable by root alone (create the group, as the package \
         does, add node_exporter's user to it, and restart ebpfstatd)",
        path.display()
    );
    None
}

/// The id of group `name`, as the system's group database (files or NSS) gives it; `None` when
/// there is no such group.
pub fn group_id(name: &str) -> std::io::Result<Option<libc::gid_t>> {
    let c = std::ffi::CString::new(name)
        .map_err(|_| std::io::Error::from(std::io::ErrorKind::InvalidInput))?;
    let mut buf = vec![0u8; 1024];
    loop {
        // SAFETY: all-zero is a valid `group` (null pointers, zero id) for getgrnam_r to fill.
        let mut group: libc::group = unsafe { std::mem::zeroed() };
        let mut found: *mut libc::group = std::ptr::null_mut();
        // SAFETY: `c` is NUL-terminated, `group` and `buf` are valid for writes of their sizes
        // and `found` for one pointer, all alive for the call; `found` is read only as null or
        // not, and `group` only for its id (its pointers into `buf` are not kept).
        let rc = unsafe {
            libc::getgrnam_r(
                c.as_ptr(),
                &raw mut group,
                buf.as_mut_ptr().cast(),
                buf.len(),
                &raw mut found,
            )
        };
        match rc {
            0 if found.is_null() => return Ok(None),
            0 => return Ok(Some(group.gr_gid)),
            // A group with many members needs more room for their names.
            libc::ERANGE if buf.len() < 1 << 20 => buf.resize(buf.len() * 2, 0),
            // Some C libraries say "no such group" so.
            libc::ENOENT => return Ok(None),
            e => return Err(std::io::Error::from_raw_os_error(e)),
        }
    }
}

/// Mode of the textfile: the owner (root) writes, the group reads, others nothing.
const MODE: u32 = 0o640;

/// Writes `text` to `path` through a temporary file beside it (not `*.prom`, which the
/// collector would read) and a rename, the temporary file given its mode and `group` first, so
/// the file at `path` is never readable by more. No fsync: after a crash the file is rewritten
/// within a period, and a device's flash is spared a sync every period.
pub fn write_atomically(
    path: &Path,
    text: &str,
    group: Option<libc::gid_t>,
) -> std::io::Result<()> {
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
        .mode(MODE)
        .open(&tmp)
        .and_then(|mut f| {
            // The service is a member of the group (SupplementaryGroups=), so it may give the
            // file to it without CAP_CHOWN.
            if let Some(gid) = group {
                std::os::unix::fs::fchown(&f, None, Some(gid))?;
            }
            // The group reads it whatever the umask (the service's, 0077, would hide it).
            f.set_permissions(std::fs::Permissions::from_mode(MODE))?;
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

    use std::os::unix::fs::MetadataExt as _;

    /// A group the test may give a file to: any, as root; else its own.
    fn some_group() -> libc::gid_t {
        // SAFETY: geteuid and getegid have no preconditions and cannot fail.
        let (uid, gid) = unsafe { (libc::geteuid(), libc::getegid()) };
        if uid == 0 { 4242 } else { gid }
    }

    #[test]
    fn replaces_the_file_whole_for_its_group_alone() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("ebpfstat.prom");
        let group = some_group();
        write_atomically(&path, "a 1\n", Some(group)).expect("first");
        write_atomically(&path, "b 2\n", Some(group)).expect("second");
        assert_eq!(std::fs::read_to_string(&path).expect("read"), "b 2\n");
        let meta = std::fs::metadata(&path).expect("stat");
        assert_eq!(meta.permissions().mode() & 0o777, 0o640);
        assert_eq!(meta.gid(), group);
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
        write_atomically(&path, "a 1\n", None).expect("write");
        assert_eq!(std::fs::read_to_string(&victim).expect("read"), "keep");
        assert_eq!(std::fs::read_to_string(&path).expect("read"), "a 1\n");
    }

    #[test]
    fn a_missing_directory_is_an_error() {
        let err = write_atomically(Path::new("/nonexistent-dir/x.prom"), "a 1\n", None)
            .expect_err("no directory");
        assert_eq!(err.kind(), std::io::ErrorKind::NotFound);
    }

    #[test]
    fn groups_are_found_by_name() {
        assert_eq!(group_id("root").expect("lookup"), Some(0));
        assert_eq!(group_id("no-such-group-ebpfstat").expect("lookup"), None);
    }
}
