//! Which processes hold which programs and maps, by scanning `/proc/*/fd`.
//!
//! bpftool and bpftop find owners with a BPF pid iterator that needs `bpf_prog_fops` in
//! kallsyms; kernels without CONFIG_KALLSYMS_ALL cannot run it. Every bpf fd's fdinfo names its
//! object (`prog_id:` for program and link fds, `map_id:` for map fds), which works everywhere.

use std::collections::HashMap;
use std::ffi::{CStr, CString};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::Path;
use std::sync::Arc;

use serde::Serialize;

use ebpfstat_dbus::Container;

use super::containers;
use super::links::{self, AttachPoint};
use super::procfs::{self, fdinfo_value};
use crate::bpf::sys;
use crate::glob::Glob;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Owner {
    pub pid: u32,
    pub comm: String,
    /// The systemd unit the process runs in, when its cgroup names one.
    pub unit: Option<String>,
    pub cgroup: Option<String>,
    /// The container its cgroup is in.
    pub container: Option<Arc<Container>>,
}

impl Owner {
    /// Whether its systemd unit fits the glob.
    pub fn in_unit(&self, unit: &Glob) -> bool {
        self.unit
            .as_deref()
            .is_some_and(|u| u == unit.as_str() || unit.matches(u))
    }

    /// Whether its container fits the glob: the container's label (`docker:web`), its name
    /// or its full id.
    pub fn in_container(&self, container: &Glob) -> bool {
        self.container.as_deref().is_some_and(|c| {
            c.label().is_some_and(|l| container.matches(&l))
                || (!c.name.is_empty() && container.matches(&c.name))
                || container.matches(&c.id)
        })
    }
}

/// What one scan of `/proc` found.
#[derive(Debug, Default)]
pub struct FdScan {
    pub processes: HashMap<u32, Arc<Owner>>,
    /// Program ids and the pids holding them through a program, link or perf-event fd.
    pub progs: Holdings,
    /// Map ids and the pids holding a map fd.
    pub maps: Holdings,
    /// Program id → where perf-event fds (tracepoints, k/uprobes) and legacy raw tracepoint
    /// fds attach it: these are not links, so only their holders' fds tell.
    pub perf: HashMap<u32, Vec<AttachPoint>>,
    /// The processes there were, as [`Processes`] sums them.
    pub seen: Processes,
    /// False when a fd table could not be read for another reason than its process ending
    /// (out of descriptors, say): the scan is not to be trusted until the next one.
    pub complete: bool,
    /// Why it is not complete: the first failure.
    pub why: Option<String>,
}

impl FdScan {
    /// Marks the scan incomplete, keeping the first reason.
    fn incomplete(&mut self, why: impl FnOnce() -> String) {
        self.complete = false;
        self.why.get_or_insert_with(why);
    }
}

/// A process ended while it was being read: no news.
fn gone(e: &std::io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::ENOENT | libc::ESRCH))
}

/// The set of processes under `/proc`, summed so that two listings compare in one step: a
/// count and an order-independent sum of mixed pids. Holders rarely change unless processes
/// come or go, and the fd tables are most of a rescan: comparing this first spares them.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Processes {
    count: u32,
    sum: u64,
}

impl Processes {
    fn add(&mut self, pid: u32) {
        // splitmix64's finaliser: neighbouring pids spread over all bits.
        let mut z = u64::from(pid).wrapping_add(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        self.sum = self.sum.wrapping_add(z ^ (z >> 31));
        self.count = self.count.wrapping_add(1);
    }

    /// The processes under `proc_root` now; `None` if it cannot be listed.
    pub fn now(proc_root: &Path) -> Option<Self> {
        let dir = open_root(proc_root).ok()?;
        let mut seen = Self::default();
        let mut buf = Vec::new();
        each_process(dir.as_fd(), &mut buf, |pid, user| {
            if user {
                seen.add(pid);
            }
        })
        .ok()?;
        Some(seen)
    }
}

fn open_root(proc_root: &Path) -> std::io::Result<OwnedFd> {
    use std::os::unix::ffi::OsStrExt;
    let root = CString::new(proc_root.as_os_str().as_bytes())
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    procfs::open_dir(None, &root)
}

/// Calls `each(pid, user)` for every process listed in the open `/proc` directory; `user` is
/// false for kernel threads, which hold no fds and come and go with the kernel's work
/// (their `exe` link does not resolve).
fn each_process(
    proc_dir: BorrowedFd<'_>,
    buf: &mut Vec<u8>,
    mut each: impl FnMut(u32, bool),
) -> std::io::Result<()> {
    procfs::each_entry(proc_dir, buf, |name| {
        let Some(pid) = name.to_str().ok().and_then(|s| s.parse::<u32>().ok()) else {
            return;
        };
        let mut path = [0u8; 32];
        let mut link = [0u8; 8];
        let user = pid_path(pid, "exe", &mut path)
            .and_then(|exe| link_at(proc_dir, exe, &mut link))
            .is_some();
        each(pid, user);
    })
}

/// What a bpf fd's `/proc/*/fd` link says it is.
#[derive(Clone, Copy)]
pub(super) enum BpfFd {
    Prog,
    Link,
    Map,
    /// A perf event, or a raw tracepoint fd of kernels before links: may run a program.
    Attach,
}

pub(super) fn classify(link_target: &[u8]) -> Option<BpfFd> {
    let rest = link_target.strip_prefix(b"anon_inode:")?;
    if rest.starts_with(b"bpf-prog") {
        Some(BpfFd::Prog)
    } else if rest.starts_with(b"bpf_link") || rest.starts_with(b"bpf-link") {
        Some(BpfFd::Link)
    } else if rest.starts_with(b"bpf-map") {
        Some(BpfFd::Map)
    } else if rest.starts_with(b"[perf_event]") || rest.starts_with(b"bpf-raw-tracepoint") {
        Some(BpfFd::Attach)
    } else {
        None
    }
}

/// Which processes hold which ids: (id, pid) pairs, sorted and unique. Eight bytes a holding,
/// kept between rescans, where a map of pid lists cost an allocation per program.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Holdings(Vec<(u32, u32)>);

impl Holdings {
    pub fn push(&mut self, id: u32, pid: u32) {
        self.0.push((id, pid));
    }

    /// Sorts and dedups what was pushed; lookups need it.
    pub fn settle(&mut self) {
        self.0.sort_unstable();
        self.0.dedup();
        self.0.shrink_to_fit();
    }

    /// The pids holding `id`, in order.
    pub fn of(&self, id: u32) -> impl Iterator<Item = u32> + '_ {
        let start = self.0.partition_point(|&(i, _)| i < id);
        self.0[start..]
            .iter()
            .take_while(move |&&(i, _)| i == id)
            .map(|&(_, pid)| pid)
    }

    /// Every (id, pid), by id.
    pub fn pairs(&self) -> &[(u32, u32)] {
        &self.0
    }
}

/// Fd-table entries one pass reads at most ([`Scanner::step`]): a few tens of milliseconds.
/// Anyone can open many descriptors (40 processes of `nobody` with 20 000 each made passes of
/// 5 s); past this a scan goes on at the next pass, where it stopped, and the holders known
/// until it ends are those of the scan before.
pub const FDS_PER_PASS: usize = 20_000;

/// A scan of every process's fd table under a `/proc`, read a bounded piece at a time.
#[derive(Debug, Default)]
pub struct Scanner {
    proc_root: std::path::PathBuf,
    /// The processes listed when it began, and the one to read next.
    pids: Vec<u32>,
    at: usize,
    /// Within `pids[at]`, the fds below this were read.
    from_fd: u32,
    found: FdScan,
    bufs: Buffers,
}

impl Scanner {
    /// Lists the processes under `proc_root` (normally `/proc`); reads no fd table yet.
    pub fn start(proc_root: &Path) -> Self {
        let mut s = Self {
            proc_root: proc_root.to_owned(),
            found: FdScan {
                complete: true,
                ..FdScan::default()
            },
            ..Self::default()
        };
        let dir = match open_root(proc_root) {
            Ok(d) => d,
            Err(e) => {
                s.found
                    .incomplete(|| format!("cannot open {}: {e}", proc_root.display()));
                return s;
            }
        };
        let (mut pids, mut seen) = (Vec::new(), Processes::default());
        // A listing cut short keeps what it found: the next rescan looks again.
        let listed = each_process(dir.as_fd(), &mut s.bufs.fds, |pid, user| {
            if user {
                seen.add(pid);
                pids.push(pid);
            }
        });
        if let Err(e) = listed {
            s.found
                .incomplete(|| format!("listing {} stopped: {e}", proc_root.display()));
        }
        s.found.seen = seen;
        s.pids = pids;
        s
    }

    /// Reads up to `budget` fd-table entries; whether the scan is done.
    pub fn step(&mut self, mut budget: usize, containers: &mut containers::Cache) -> bool {
        let Ok(dir) = open_root(&self.proc_root) else {
            // Checked at the start: it went since. What was read stands, marked incomplete.
            self.found.incomplete(|| "/proc went away".to_owned());
            self.at = self.pids.len();
            return true;
        };
        while let Some(&pid) = self.pids.get(self.at) {
            // Opening a process's directory costs an entry too, on its first visit: many
            // processes with few fds are bounded as one with many.
            if self.from_fd == 0 {
                if budget == 0 {
                    return false;
                }
                budget -= 1;
            }
            let read = Reading {
                pid,
                from_fd: self.from_fd,
                budget: &mut budget,
            };
            let (holds, resume) = scan_process(dir.as_fd(), read, &mut self.bufs, &mut self.found);
            // Described when found: by the scan's end the pid may be another process's.
            if holds && !self.found.processes.contains_key(&pid) {
                let owner = describe(&self.proc_root.join(pid.to_string()), pid, containers);
                self.found.processes.insert(pid, Arc::new(owner));
            }
            if let Some(fd) = resume {
                self.from_fd = fd;
                return false;
            }
            self.at += 1;
            self.from_fd = 0;
        }
        true
    }

    /// What the scan found, once [`Self::step`] said it is done.
    pub fn finish(mut self) -> FdScan {
        self.found.progs.settle();
        self.found.maps.settle();
        self.found
    }
}

/// Scans every process's fd table under `proc_root` (normally `/proc`) at once. Processes that
/// exit mid-scan or whose fds we may not read are skipped.
pub fn scan(proc_root: &Path) -> FdScan {
    let mut scanner = Scanner::start(proc_root);
    let mut containers = containers::Cache::default();
    while !scanner.step(usize::MAX, &mut containers) {}
    scanner.finish()
}

/// Where to read one process's fd table from, and how many entries are left to read.
struct Reading<'b> {
    pid: u32,
    from_fd: u32,
    budget: &'b mut usize,
}

/// Buffers one scan reuses for every process.
#[derive(Debug, Default)]
struct Buffers {
    fds: Vec<u8>,
    fdinfo: Vec<u8>,
}

/// Moves the listing of an fd directory to fd `from`: `/proc/<pid>/fd` takes an offset of
/// fd + 2 (0 and 1 are `.` and `..`). Where it cannot, the listing starts over and the fds
/// before `from` are skipped one by one.
fn skip_to(fd_dir: BorrowedFd<'_>, from: u32) {
    // off_t is 32 bits on armhf: an offset that does not fit is not sought.
    let Some(offset) = (from > 0)
        .then(|| libc::off_t::try_from(u64::from(from) + 2).ok())
        .flatten()
    else {
        return;
    };
    // SAFETY: lseek on an open directory fd borrowed for the call; it moves only that
    // directory's offset.
    let _moved = unsafe { libc::lseek(fd_dir.as_raw_fd(), offset, libc::SEEK_SET) };
}

/// The fd directory of `pid`; `None` when it is gone (no news) or cannot be read (the scan is
/// then incomplete).
fn open_fds(proc_dir: BorrowedFd<'_>, pid: u32, found: &mut FdScan) -> Option<OwnedFd> {
    let mut path = [0u8; 32];
    match procfs::open_dir(Some(proc_dir), pid_path(pid, "fd", &mut path)?) {
        Ok(d) => Some(d),
        Err(e) if gone(&e) => None,
        Err(e) => {
            found.incomplete(|| format!("cannot read the fds of process {pid}: {e}"));
            None
        }
    }
}

/// Records the bpf objects process `pid` holds, from fd `from_fd` on and within the budget;
/// says whether it holds any, and the fd to resume at when the budget ran out first. Every
/// open is relative to an open directory: a path walk through `/proc` per fd was most of a
/// rescan's kernel time.
fn scan_process(
    proc_dir: BorrowedFd<'_>,
    read: Reading<'_>,
    bufs: &mut Buffers,
    found: &mut FdScan,
) -> (bool, Option<u32>) {
    let Reading {
        pid,
        from_fd,
        budget,
    } = read;
    let Some(fd_dir) = open_fds(proc_dir, pid, found) else {
        return (false, None);
    };
    // Opened at the first bpf fd that needs its fdinfo.
    let mut info_dir: Option<OwnedFd> = None;
    let mut holds_any = false;
    let mut resume = None;
    let Buffers { fds, fdinfo } = bufs;
    // The kernel lists fds in ascending order, a directory offset of fd + 2: those before
    // `from_fd` were read by a pass before, and are not listed again.
    skip_to(fd_dir.as_fd(), from_fd);
    // A process that exits meanwhile ends its listing early: what it held is gone too.
    let _exited = procfs::each_entry_while(fd_dir.as_fd(), fds, |name| {
        let fd = name.to_str().ok().and_then(|f| f.parse::<u32>().ok());
        if fd.is_some_and(|fd| fd < from_fd) {
            return true;
        }
        if *budget == 0 {
            resume = fd;
            return false;
        }
        *budget -= 1;
        let mut link = [0u8; 64];
        let Some(kind) = link_at(fd_dir.as_fd(), name, &mut link).and_then(classify) else {
            return true;
        };
        if let BpfFd::Attach = kind {
            let Some(fd_no) = name.to_str().ok().and_then(|f| f.parse().ok()) else {
                return true;
            };
            // A perf event without a program (a profiler's counter) answers nothing.
            if let Ok(Some(q)) = sys::task_fd_query(pid, fd_no) {
                found.progs.push(q.prog_id, pid);
                let points = found.perf.entry(q.prog_id).or_default();
                let point = links::perf_attach(&q);
                if !points.contains(&point) {
                    points.push(point);
                }
                holds_any = true;
            }
            return true;
        }
        if info_dir.is_none() {
            let mut path = [0u8; 32];
            info_dir = match pid_path(pid, "fdinfo", &mut path)
                .map(|p| procfs::open_dir(Some(proc_dir), p))
            {
                Some(Ok(d)) => Some(d),
                Some(Err(e)) if !gone(&e) => {
                    found.incomplete(|| format!("cannot read the fdinfo of process {pid}: {e}"));
                    None
                }
                _ => None,
            };
        }
        let Some(dir) = &info_dir else {
            return true;
        };
        let Ok(info) =
            procfs::open_at(dir.as_fd(), name).and_then(|f| procfs::read_text(f, fdinfo))
        else {
            return true;
        };
        let (key, table) = match kind {
            BpfFd::Prog | BpfFd::Link | BpfFd::Attach => ("prog_id:", &mut found.progs),
            BpfFd::Map => ("map_id:", &mut found.maps),
        };
        if let Some(id) = fdinfo_value(info, key).and_then(|v| u32::try_from(v).ok()) {
            table.push(id, pid);
            holds_any = true;
        }
        true
    });
    (holds_any, resume)
}

/// `"<pid>/<leaf>"`, NUL-terminated in `buf`.
fn pid_path<'b>(pid: u32, leaf: &str, buf: &'b mut [u8; 32]) -> Option<&'b CStr> {
    use std::io::Write as _;
    let mut cursor = std::io::Cursor::new(&mut buf[..]);
    write!(cursor, "{pid}/{leaf}\0").ok()?;
    let end = usize::try_from(cursor.position()).ok()?;
    CStr::from_bytes_with_nul(buf.get(..end)?).ok()
}

/// The start of what the symlink `name` in directory `dir` points to (as much as fits in
/// `buf`: enough to tell a bpf fd); `None` if it cannot be read (the fd closed meanwhile).
fn link_at<'b>(dir: BorrowedFd<'_>, name: &CStr, buf: &'b mut [u8]) -> Option<&'b [u8]> {
    // SAFETY: `dir` is an open directory fd for the call's duration; `name` is NUL-terminated;
    // `buf` is writable for `buf.len()` bytes and readlinkat writes at most that many.
    let n = unsafe {
        libc::readlinkat(
            dir.as_raw_fd(),
            name.as_ptr(),
            buf.as_mut_ptr().cast(),
            buf.len(),
        )
    };
    let n = usize::try_from(n).ok()?;
    buf.get(..n)
}

fn describe(pid_dir: &Path, pid: u32, containers: &mut containers::Cache) -> Owner {
    // Read as bytes: a comm or cgroup path that is not UTF-8 (any byte but NUL goes) is shown
    // with U+FFFD in place of the stray bytes, not read as an error and dropped.
    let comm = std::fs::read(pid_dir.join("comm"))
        .map(|b| {
            let text = String::from_utf8_lossy(&b);
            text.strip_suffix('\n').unwrap_or(&text).to_owned()
        })
        .unwrap_or_default();
    let cgroup = std::fs::read(pid_dir.join("cgroup"))
        .ok()
        .and_then(|b| cgroup_path(&String::from_utf8_lossy(&b)).map(str::to_owned));
    Owner {
        pid,
        comm,
        unit: cgroup
            .as_deref()
            .and_then(unit_of_cgroup)
            .map(str::to_owned),
        container: cgroup.as_deref().and_then(|c| containers.of(c)),
        cgroup,
    }
}

/// The unified (v2) cgroup path of `/proc/<pid>/cgroup`, or systemd's v1 hierarchy on
/// hybrid hosts.
pub fn cgroup_path(text: &str) -> Option<&str> {
    let v2 = text.lines().find_map(|l| l.strip_prefix("0::"));
    let named = || {
        text.lines()
            .find_map(|l| l.split_once(":name=systemd:").map(|(_, p)| p))
    };
    v2.filter(|p| *p != "/").or_else(named).or(v2)
}

/// The deepest systemd unit named in a cgroup path: `/system.slice/foo.service/sub` →
/// `foo.service`, `/user.slice/user-0.slice/session-3.scope` → `session-3.scope`.
pub fn unit_of_cgroup(path: &str) -> Option<&str> {
    const UNIT_SUFFIXES: [&str; 5] = [".service", ".scope", ".socket", ".mount", ".swap"];
    path.split('/').rev().find(|c| {
        UNIT_SUFFIXES
            .iter()
            .any(|s| c.ends_with(s) && c.len() > s.len())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_from_cgroup_paths() {
        assert_eq!(
            unit_of_cgroup("/system.slice/cilium.service"),
            Some("cilium.service")
        );
        assert_eq!(
            unit_of_cgroup("/system.slice/falco.service/payload"),
            Some("falco.service")
        );
        assert_eq!(
            unit_of_cgroup("/user.slice/user-0.slice/session-3.scope"),
            Some("session-3.scope")
        );
        assert_eq!(unit_of_cgroup("/"), None);
        assert_eq!(unit_of_cgroup("/process_api/ffb91"), None);
    }

    #[test]
    fn picks_the_unified_or_systemd_hierarchy() {
        assert_eq!(
            cgroup_path("0::/system.slice/a.service\n"),
            Some("/system.slice/a.service")
        );
        let hybrid = "9:name=systemd:/system.slice/b.service\n4:memory:/x\n0::/\n";
        assert_eq!(cgroup_path(hybrid), Some("/system.slice/b.service"));
        assert_eq!(cgroup_path("9:name=systemd:/\n0::/\n"), Some("/"));
        assert_eq!(cgroup_path("4:memory:/x\n"), None);
    }

    #[test]
    fn process_sets_compare_regardless_of_order() {
        let set = |pids: &[u32]| {
            let mut p = Processes::default();
            pids.iter().for_each(|&pid| p.add(pid));
            p
        };
        assert_eq!(set(&[1, 2, 300]), set(&[300, 1, 2]));
        assert_ne!(set(&[1, 2, 300]), set(&[1, 2, 301]));
        assert_ne!(set(&[1, 2]), set(&[1, 2, 3]));
        let here = Processes::now(Path::new("/proc")).expect("list /proc");
        assert!(here.count > 0);
        assert!(scan(Path::new("/proc")).seen.count > 0);
    }

    #[test]
    fn a_scan_in_small_pieces_ends_and_sees_every_process() {
        let mut pieces = Scanner::start(Path::new("/proc"));
        let listed = pieces.pids.len();
        let mut steps = 0;
        while !pieces.step(3, &mut containers::Cache::default()) {
            steps += 1;
            assert!(steps < 1_000_000, "the scan goes on");
        }
        assert!(steps > 0, "three entries a step take more than one step");
        let found = pieces.finish();
        assert_eq!(found.seen.count as usize, listed);
    }

    #[test]
    fn pid_paths() {
        let mut buf = [0u8; 32];
        assert_eq!(
            pid_path(4_294_967_295, "fdinfo", &mut buf),
            Some(c"4294967295/fdinfo")
        );
    }

    #[test]
    fn classifies_anon_inodes() {
        assert!(matches!(
            classify(b"anon_inode:bpf-prog"),
            Some(BpfFd::Prog)
        ));
        assert!(matches!(
            classify(b"anon_inode:bpf_link"),
            Some(BpfFd::Link)
        ));
        assert!(matches!(classify(b"anon_inode:bpf-map"), Some(BpfFd::Map)));
        assert!(matches!(
            classify(b"anon_inode:[perf_event]"),
            Some(BpfFd::Attach)
        ));
        assert!(classify(b"anon_inode:[eventfd]").is_none());
        assert!(classify(b"/dev/null").is_none());
    }
}
