//! Filesystems and cgroups made for a test and removed after it: bpffs, tmpfs (disk full,
//! read-only), a cgroup under the cgroup2 mount, a memory cgroup with a limit.

use std::ffi::CString;
use std::io;
use std::os::fd::BorrowedFd;
use std::path::{Path, PathBuf};

/// A bpffs mounted on a temporary directory, unmounted (lazily) on drop.
#[derive(Debug)]
pub struct Bpffs {
    pub dir: tempfile::TempDir,
}

impl Bpffs {
    pub fn mount() -> io::Result<Self> {
        let dir = tempfile::tempdir()?;
        let target = c_path(dir.path());
        // SAFETY: all pointers are NUL-terminated strings alive for the call; data is null.
        let rc = unsafe {
            libc::mount(
                c"bpf".as_ptr(),
                target.as_ptr(),
                c"bpf".as_ptr(),
                0,
                std::ptr::null(),
            )
        };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(Self { dir })
    }

    pub fn pin(&self, fd: BorrowedFd<'_>, name: &str) -> PathBuf {
        let path = self.dir.path().join(name);
        crate::kernel::obj_pin(fd, &c_path(&path)).expect("BPF_OBJ_PIN");
        path
    }
}

impl Drop for Bpffs {
    fn drop(&mut self) {
        let target = c_path(self.dir.path());
        // SAFETY: `target` is a NUL-terminated path alive for the call.
        unsafe { libc::umount2(target.as_ptr(), libc::MNT_DETACH) };
    }
}

/// A tmpfs of a given size on a temporary directory, for disk-full and read-only tests.
#[derive(Debug)]
pub struct Tmpfs {
    pub dir: tempfile::TempDir,
}

impl Tmpfs {
    /// `options` as for `mount -o`, e.g. `"size=256k"` or `"ro"`.
    pub fn mount(options: &str) -> io::Result<Self> {
        let dir = tempfile::tempdir()?;
        let target = c_path(dir.path());
        let data = CString::new(options).map_err(io::Error::other)?;
        let flags = if options.split(',').any(|o| o == "ro") {
            libc::MS_RDONLY
        } else {
            0
        };
        // SAFETY: all pointers are NUL-terminated strings alive for the call.
        let rc = unsafe {
            libc::mount(
                c"tmpfs".as_ptr(),
                target.as_ptr(),
                c"tmpfs".as_ptr(),
                flags,
                data.as_ptr().cast(),
            )
        };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(Self { dir })
    }

    /// Changes the size in place (`mount -o remount,size=…`).
    pub fn resize(&self, size: &str) -> io::Result<()> {
        let target = c_path(self.dir.path());
        let data = CString::new(format!("size={size}")).map_err(io::Error::other)?;
        // SAFETY: all pointers are NUL-terminated strings alive for the call.
        let rc = unsafe {
            libc::mount(
                c"tmpfs".as_ptr(),
                target.as_ptr(),
                c"tmpfs".as_ptr(),
                libc::MS_REMOUNT,
                data.as_ptr().cast(),
            )
        };
        if rc == 0 {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let target = c_path(self.dir.path());
        // SAFETY: `target` is a NUL-terminated path alive for the call.
        unsafe { libc::umount2(target.as_ptr(), libc::MNT_DETACH) };
    }
}

/// Skips (or under CI fails) a test that needs root for mounts.
#[macro_export]
macro_rules! require_root {
    () => {
        if !$crate::is_root() {
            $crate::skip_or_fail(module_path!(), "needs root (mount)");
            return;
        }
    };
}

fn c_path(p: &Path) -> CString {
    use std::os::unix::ffi::OsStrExt;
    CString::new(p.as_os_str().as_bytes()).expect("path without NUL")
}

/// Where cgroup2 is mounted (`/sys/fs/cgroup`, or `/sys/fs/cgroup/unified` on a hybrid host),
/// found as the sampler finds it.
pub fn cgroup2_root() -> io::Result<PathBuf> {
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo")?;
    ebpfstatd::sampler::pins::mounts(&mountinfo)
        .cgroup2
        .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "no cgroup2 mount"))
}

/// A cgroup made for the test under the cgroup2 mount, removed on drop.
#[derive(Debug)]
pub struct TestCgroup {
    pub path: PathBuf,
    /// Path relative to the cgroup2 root, as the sampler reports it.
    pub relative: String,
    pub dir: std::fs::File,
}

impl TestCgroup {
    pub fn create(name: &str) -> io::Result<Self> {
        let path = cgroup2_root()?.join(name);
        std::fs::create_dir_all(&path)?;
        let dir = std::fs::File::open(&path)?;
        Ok(Self {
            path,
            relative: format!("/{name}"),
            dir,
        })
    }
}

impl Drop for TestCgroup {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir(&self.path);
    }
}

/// A memory cgroup with a hard limit, for one process tree (a shell writes its pid into
/// [`MemoryCage::procs`] and execs), removed on drop. cgroup v1's memory controller where it
/// is mounted (as on this VM), else cgroup2's, under this process's own cgroup.
#[derive(Debug)]
pub struct MemoryCage {
    pub path: PathBuf,
    v1: bool,
}

impl MemoryCage {
    pub fn create(name: &str, limit_bytes: u64) -> io::Result<Self> {
        let own = std::fs::read_to_string("/proc/self/cgroup")?;
        let v1 = own.lines().find_map(|l| {
            let mut f = l.splitn(3, ':');
            let (_, controllers, path) = (f.next()?, f.next()?, f.next()?);
            controllers
                .split(',')
                .any(|c| c == "memory")
                .then(|| PathBuf::from("/sys/fs/cgroup/memory").join(path.trim_start_matches('/')))
        });
        let (base, is_v1) = match v1 {
            Some(p) if p.exists() => (p, true),
            _ => {
                let path = own
                    .lines()
                    .find_map(|l| l.strip_prefix("0::"))
                    .ok_or_else(|| io::Error::other("no cgroup2 path in /proc/self/cgroup"))?;
                (cgroup2_root()?.join(path.trim_start_matches('/')), false)
            }
        };
        let path = base.join(name);
        std::fs::create_dir(&path)?;
        let cage = Self { path, v1: is_v1 };
        let limit = if is_v1 {
            "memory.limit_in_bytes"
        } else {
            "memory.max"
        };
        std::fs::write(cage.path.join(limit), limit_bytes.to_string())?;
        Ok(cage)
    }

    /// The file a process writes its pid into to enter.
    pub fn procs(&self) -> PathBuf {
        self.path.join("cgroup.procs")
    }

    /// Times the kernel's OOM killer acted in the cgroup.
    pub fn oom_kills(&self) -> io::Result<u64> {
        let file = if self.v1 {
            "memory.oom_control"
        } else {
            "memory.events"
        };
        let text = std::fs::read_to_string(self.path.join(file))?;
        Ok(text
            .lines()
            .find_map(|l| l.strip_prefix("oom_kill "))
            .and_then(|n| n.trim().parse().ok())
            .unwrap_or(0))
    }

    /// The most memory the cgroup has held (page cache included).
    pub fn peak_bytes(&self) -> io::Result<u64> {
        let file = if self.v1 {
            "memory.max_usage_in_bytes"
        } else {
            "memory.peak"
        };
        std::fs::read_to_string(self.path.join(file))?
            .trim()
            .parse()
            .map_err(io::Error::other)
    }
}

impl Drop for MemoryCage {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir(&self.path);
    }
}
