//! Reading `/proc` text: fdinfo files of bpf objects, for map memory and for who holds what.

use std::ffi::CStr;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::path::Path;

/// Reads a small `/proc` text file into `buf`, reused between calls: an open, reads until the
/// end, a close. (`fs::read_to_string` first asks for the size, a `statx` per file that `/proc`
/// answers with 0 anyway, and allocates; a rescan reads an fdinfo file per bpf fd on the host.)
pub fn read_proc_text<'b>(path: &Path, buf: &'b mut Vec<u8>) -> std::io::Result<&'b str> {
    read_text(std::fs::File::open(path)?, buf)
}

/// Opens the directory `path` (relative to `dir`, or absolute) for reading its entries and for
/// `*at` calls relative to it.
pub fn open_dir(dir: Option<BorrowedFd<'_>>, path: &CStr) -> std::io::Result<OwnedFd> {
    let at = dir.map_or(libc::AT_FDCWD, |d| d.as_raw_fd());
    // SAFETY: `path` is NUL-terminated; `at` is an open fd borrowed for the call or AT_FDCWD.
    let fd = unsafe {
        libc::openat(
            at,
            path.as_ptr(),
            libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC,
        )
    };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: openat just returned this fd and nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Opens the file `name` in directory `dir` read-only.
pub fn open_at(dir: BorrowedFd<'_>, name: &CStr) -> std::io::Result<std::fs::File> {
    // SAFETY: `name` is NUL-terminated; `dir` is an open fd borrowed for the call.
    let fd = unsafe {
        libc::openat(
            dir.as_raw_fd(),
            name.as_ptr(),
            libc::O_RDONLY | libc::O_CLOEXEC,
        )
    };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: openat just returned this fd and nothing else owns it.
    Ok(std::fs::File::from(unsafe { OwnedFd::from_raw_fd(fd) }))
}

/// Reads the small `/proc` text file open as `file` to its end into `buf`.
pub fn read_text(mut file: std::fs::File, buf: &mut Vec<u8>) -> std::io::Result<&str> {
    use std::io::Read;
    buf.clear();
    let mut chunk = [0u8; 1024];
    loop {
        match file.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => buf.extend_from_slice(chunk.get(..n).unwrap_or_default()),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    std::str::from_utf8(buf).map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
}

/// Calls `each` with every entry name of the open directory `dir` but `.` and `..`, as
/// `getdents64` returns them into `buf` (reused; its capacity is the batch size). `std::fs::read_dir`
/// opens by path and allocates per entry; a rescan lists every process's fds.
pub fn each_entry(
    dir: BorrowedFd<'_>,
    buf: &mut Vec<u8>,
    mut each: impl FnMut(&CStr),
) -> std::io::Result<()> {
    each_entry_while(dir, buf, |name| {
        each(name);
        true
    })
}

/// [`each_entry`], until `each` says to stop (returns false).
pub fn each_entry_while(
    dir: BorrowedFd<'_>,
    buf: &mut Vec<u8>,
    mut each: impl FnMut(&CStr) -> bool,
) -> std::io::Result<()> {
    buf.clear();
    buf.reserve(DIR_BATCH);
    buf.resize(buf.capacity(), 0);
    loop {
        // SAFETY: `buf` is writable for `buf.len()` bytes and getdents64 writes at most that
        // many; `dir` is an open directory fd borrowed for the call.
        let n = unsafe {
            libc::syscall(
                libc::SYS_getdents64,
                dir.as_raw_fd(),
                buf.as_mut_ptr(),
                buf.len(),
            )
        };
        if n < 0 {
            return Err(std::io::Error::last_os_error());
        }
        let n = usize::try_from(n).map_err(|_| std::io::ErrorKind::InvalidData)?;
        if n == 0 {
            return Ok(());
        }
        for name in dirents(buf.get(..n).unwrap_or_default()) {
            if name.to_bytes() != b"." && name.to_bytes() != b".." && !each(name) {
                return Ok(());
            }
        }
    }
}

const DIR_BATCH: usize = 8192;

/// The names in a `getdents64` batch: records of d_ino (8 bytes), d_off (8), d_reclen (2),
/// d_type (1) and a NUL-terminated name, padded to d_reclen. A malformed record ends the batch.
fn dirents(batch: &[u8]) -> impl Iterator<Item = &CStr> {
    let mut rest = batch;
    std::iter::from_fn(move || {
        let reclen = usize::from(u16::from_ne_bytes(rest.get(16..18)?.try_into().ok()?));
        let record = rest.get(..reclen)?;
        rest = rest.get(reclen..)?;
        CStr::from_bytes_until_nul(record.get(19..)?).ok()
    })
}

/// The number after `key` in fdinfo text (`"memlock:\t4096"`).
pub fn fdinfo_value(text: &str, key: &str) -> Option<u64> {
    text.lines()
        .find_map(|line| line.strip_prefix(key))
        .and_then(|v| v.trim().parse().ok())
}

/// Bytes of the perf ring buffers process `pid` has mapped (its `anon_inode:[perf_event]`
/// mappings); 0 for a process that has ended.
pub fn perf_mapped_bytes(pid: u32) -> std::io::Result<u64> {
    let mut buf = Vec::new();
    match read_proc_text(Path::new(&format!("/proc/{pid}/maps")), &mut buf) {
        Ok(text) => Ok(perf_mapped(text)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(0),
        Err(e) => Err(e),
    }
}

/// The sizes of the perf-event mappings in a `/proc/PID/maps` text, summed (a line is
/// `start-end perms offset dev inode path`, addresses in hex).
pub fn perf_mapped(maps: &str) -> u64 {
    maps.lines()
        .filter(|l| l.ends_with("anon_inode:[perf_event]"))
        .filter_map(|l| {
            let (start, end) = l.split_whitespace().next()?.split_once('-')?;
            let start = u64::from_str_radix(start, 16).ok()?;
            u64::from_str_radix(end, 16).ok()?.checked_sub(start)
        })
        .sum()
}

/// This process's CPU time (user + system) and resident memory, now and at its peak.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OwnUsage {
    pub cpu_ns: u64,
    pub rss_bytes: u64,
    pub peak_rss_bytes: u64,
}

/// Reads [`OwnUsage`] from `/proc/self`; an error rather than zeros when it cannot (out of
/// descriptors, say): a CPU counter that drops to 0 reads as a restart to an engine.
pub fn own_usage() -> std::io::Result<OwnUsage> {
    let bad = |what: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, what.to_owned());
    let mut buf = Vec::new();
    let stat = read_proc_text(Path::new("/proc/self/stat"), &mut buf)?;
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .ok_or_else(|| bad("/proc/self/stat without a command"))?;
    let tick = |i: usize| -> std::io::Result<u64> {
        fields
            .get(i)
            .and_then(|f| f.parse().ok())
            .ok_or_else(|| bad("/proc/self/stat without CPU times"))
    };
    let ticks = tick(11)?.saturating_add(tick(12)?);
    // SAFETY: sysconf has no memory-safety preconditions.
    let hz = u64::try_from(unsafe { libc::sysconf(libc::_SC_CLK_TCK) })
        .unwrap_or(100)
        .max(1);
    let mut buf = Vec::new();
    let status = read_proc_text(Path::new("/proc/self/status"), &mut buf)?;
    let bytes = |key: &str| -> std::io::Result<u64> {
        status
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
            .map(|kib| kib.saturating_mul(1024))
            .ok_or_else(|| bad("/proc/self/status without memory sizes"))
    };
    Ok(OwnUsage {
        cpu_ns: ticks.saturating_mul(1_000_000_000) / hz,
        rss_bytes: bytes("VmRSS:")?,
        peak_rss_bytes: bytes("VmHWM:")?,
    })
}

#[cfg(test)]
mod tests {
    use std::os::fd::AsFd;

    use super::*;

    #[test]
    fn perf_event_mappings_are_summed() {
        let maps = "55d0c0000000-55d0c0001000 r--p 00000000 fe:01 123 /usr/bin/bpftrace\n\
                    7f0000000000-7f0000009000 rw-s 00000000 00:0f 1049 anon_inode:[perf_event]\n\
                    7f0000010000-7f0000019000 rw-s 00000000 00:0f 1049 anon_inode:[perf_event]\n\
                    7f0000020000-7f0000021000 rw-s 00000000 00:0f 1049 anon_inode:bpf-map\n";
        assert_eq!(perf_mapped(maps), 2 * 0x9000);
        assert_eq!(perf_mapped(""), 0);
    }

    #[test]
    fn parses_fdinfo() {
        let text = "pos:\t0\nflags:\t02000002\nmnt_id:\t15\nino:\t1057\nmap_type:\t2\n\
                    memlock:\t4096\nmap_id:\t17\n";
        assert_eq!(fdinfo_value(text, "memlock:"), Some(4096));
        assert_eq!(fdinfo_value(text, "map_id:"), Some(17));
        assert_eq!(fdinfo_value(text, "prog_id:"), None);
    }

    #[test]
    fn lists_a_directory_like_read_dir() {
        let dir = open_dir(None, c"/proc/self/fd").expect("fd dir");
        let mut names = Vec::new();
        let mut buf = Vec::new();
        each_entry(dir.as_fd(), &mut buf, |n| {
            names.push(n.to_str().expect("utf-8").to_owned())
        })
        .expect("list");
        assert!(names.contains(&dir.as_raw_fd().to_string()), "{names:?}");
        assert!(names.contains(&"0".to_owned()) || names.contains(&"1".to_owned()));
        assert!(!names.iter().any(|n| n == "." || n == ".."));
    }

    #[test]
    fn a_malformed_batch_ends_without_panic() {
        let mut rec = vec![0u8; 24];
        rec[16..18].copy_from_slice(&24u16.to_ne_bytes());
        rec[19..22].copy_from_slice(b"abc");
        let names: Vec<_> = dirents(&rec).collect();
        assert_eq!(names, [c"abc"]);
        // A length past the end, a zero length, a name without its NUL.
        rec[16..18].copy_from_slice(&200u16.to_ne_bytes());
        assert_eq!(dirents(&rec).count(), 0);
        rec[16..18].copy_from_slice(&0u16.to_ne_bytes());
        assert_eq!(dirents(&rec).count(), 0);
        let mut unterminated = vec![b'x'; 24];
        unterminated[16..18].copy_from_slice(&24u16.to_ne_bytes());
        assert_eq!(dirents(&unterminated).count(), 0);
    }

    #[test]
    fn own_usage_is_read() {
        let u = own_usage().expect("usage");
        assert!(u.rss_bytes > 0 && u.peak_rss_bytes >= u.rss_bytes, "{u:?}");
    }

    #[test]
    fn reads_proc_text_whole() {
        let mut buf = Vec::new();
        let text = read_proc_text(Path::new("/proc/self/status"), &mut buf).expect("status");
        assert!(
            text.starts_with("Name:") && text.contains("\nVmRSS:"),
            "{text}"
        );
    }
}
