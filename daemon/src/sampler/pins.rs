//! Programs pinned in bpffs: a pin keeps a program alive with no process holding it.

use std::collections::HashMap;
use std::ffi::CString;
use std::os::fd::{AsFd, AsRawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use super::owners::{BpfFd, classify};
use crate::bpf::sys::{self, SysError};

/// Bound on files visited per scan, so a huge bpffs cannot stall a pass.
const MAX_ENTRIES: usize = 10_000;
const MAX_DEPTH: usize = 8;

/// Mount points of bpffs and cgroup2, from `/proc/self/mountinfo`.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Mounts {
    pub bpffs: Vec<PathBuf>,
    pub cgroup2: Option<PathBuf>,
}

pub fn mounts(mountinfo: &str) -> Mounts {
    let mut found = Mounts::default();
    for line in mountinfo.lines() {
        let Some((left, right)) = line.split_once(" - ") else {
            continue;
        };
        let Some(mount_point) = left.split(' ').nth(4) else {
            continue;
        };
        let path = PathBuf::from(unescape_octal(mount_point));
        match right.split(' ').next() {
            Some("bpf") => found.bpffs.push(path),
            Some("cgroup2") if found.cgroup2.is_none() => found.cgroup2 = Some(path),
            _ => {}
        }
    }
    found
}

/// mountinfo escapes space, tab, newline and backslash as `\ooo`.
fn unescape_octal(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let octal = bytes
            .get(i + 1..i + 4)
            .filter(|_| bytes[i] == b'\\')
            .and_then(|d| std::str::from_utf8(d).ok())
            .and_then(|d| u8::from_str_radix(d, 8).ok());
        match octal {
            Some(v) => {
                out.push(v);
                i += 4;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// What a scan of bpffs found: program id → pin paths (a pinned link counts for the program
/// it links), and what it could not read.
#[derive(Debug, Default)]
pub struct PinScan {
    pub pins: HashMap<u32, Vec<String>>,
    /// Entries that could not be read (removed meanwhile is not counted), and the first
    /// reason.
    pub unread: u32,
    pub why: Option<String>,
}

impl PinScan {
    fn failed(&mut self, path: &Path, e: &dyn std::fmt::Display) {
        self.unread += 1;
        self.why
            .get_or_insert_with(|| format!("{}: {e}", path.display()));
    }
}

pub fn scan(bpffs: &[PathBuf]) -> PinScan {
    let mut found = PinScan::default();
    let mut budget = MAX_ENTRIES;
    for root in bpffs {
        walk(root, 0, &mut budget, &mut found);
    }
    found
}

/// Removed meanwhile: no news.
fn gone(e: &std::io::Error) -> bool {
    e.kind() == std::io::ErrorKind::NotFound
}

fn walk(dir: &Path, depth: usize, budget: &mut usize, found: &mut PinScan) {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if gone(&e) => return,
        Err(e) => return found.failed(dir, &e),
    };
    for entry in entries.flatten() {
        if *budget == 0 {
            return;
        }
        *budget -= 1;
        let Ok(ft) = entry.file_type() else { continue };
        let path = entry.path();
        if ft.is_dir() {
            if depth < MAX_DEPTH {
                walk(&path, depth + 1, budget, found);
            }
        } else if ft.is_file() {
            match pinned_prog_id(&path) {
                Ok(Some(prog_id)) => found
                    .pins
                    .entry(prog_id)
                    .or_default()
                    .push(path.to_string_lossy().into_owned()),
                Ok(None) => {}
                Err(e) => found.failed(&path, &e),
            }
        }
    }
}

/// The program a pin holds (directly, or through a link); `None` for a pinned map, or a pin
/// removed meanwhile.
fn pinned_prog_id(path: &Path) -> Result<Option<u32>, SysError> {
    let Ok(c_path) = CString::new(path.as_os_str().as_bytes()) else {
        return Ok(None);
    };
    let fd = match sys::obj_get(&c_path) {
        Ok(fd) => fd,
        Err(e) if e.is_gone() => return Ok(None),
        Err(e) => return Err(e),
    };
    let Ok(target) = std::fs::read_link(format!("/proc/self/fd/{}", fd.as_raw_fd())) else {
        return Ok(None);
    };
    match classify(target.as_os_str().as_bytes()) {
        Some(BpfFd::Prog) => Ok(Some(sys::prog_info(fd.as_fd(), &mut Vec::new())?.id)),
        Some(BpfFd::Link) => Ok(Some(sys::link_info(fd.as_fd(), &mut [])?.info.prog_id)),
        // Maps are pinned too; perf events cannot be.
        Some(BpfFd::Map | BpfFd::Attach) | None => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_bpffs_and_cgroup2() {
        let text = "22 1 0:21 / /sys/fs/bpf rw,nosuid - bpf bpf rw,mode=700\n\
                    30 1 0:26 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw\n\
                    31 1 0:27 / /mnt/my\\040pins rw - bpf none rw\n\
                    32 1 0:28 / /proc rw - proc proc rw\n";
        let m = mounts(text);
        assert_eq!(
            m.bpffs,
            vec![PathBuf::from("/sys/fs/bpf"), PathBuf::from("/mnt/my pins")]
        );
        assert_eq!(m.cgroup2, Some(PathBuf::from("/sys/fs/cgroup/unified")));
    }
}
