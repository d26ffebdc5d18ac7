//! Thin wrappers over the `bpf(2)` commands the sampler needs.
//!
//! aya keeps its syscall layer private and its public iterators re-open every fd once per
//! accessor (`map_ids()`, `memory_locked()`), which doubles the cost of a pass. These wrappers do
//! one `GET_INFO_BY_FD` per object, filling the map-id array in the same call. The info structs
//! come from aya-obj's kernel bindings.

use std::ffi::CStr;
use std::io;
use std::mem::size_of;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

use aya_obj::generated::{bpf_btf_info, bpf_cmd, bpf_link_info, bpf_map_info, bpf_prog_info};

use super::names::KERNEL_NAME_MAX;

/// A failed `bpf()` command, with the command's name kept for the message.
#[derive(Debug, thiserror::Error)]
#[error("{call}: {source}")]
pub struct SysError {
    pub call: &'static str,
    #[source]
    pub source: io::Error,
}

impl SysError {
    pub fn errno(&self) -> Option<i32> {
        self.source.raw_os_error()
    }

    /// The object vanished between two calls (freed program, map or link).
    pub fn is_gone(&self) -> bool {
        self.errno() == Some(libc::ENOENT)
    }

    pub fn is_permission(&self) -> bool {
        matches!(self.errno(), Some(libc::EPERM | libc::EACCES))
    }

    /// The process or the host ran out of something (descriptors, memory): every object
    /// fails alike until it is given back, so a pass that meets it saw nothing it can trust.
    pub fn is_exhaustion(&self) -> bool {
        matches!(
            self.errno(),
            Some(libc::EMFILE | libc::ENFILE | libc::ENOMEM | libc::ENOBUFS)
        )
    }
}

pub type SysResult<T> = Result<T, SysError>;

/// Runs one `bpf()` command with `attr` as its argument.
///
/// # Safety
/// `attr` must be the attribute layout the kernel expects for `cmd`, and every pointer it
/// carries must be valid for the reads or writes that command performs, for the whole call.
unsafe fn sys_bpf<T>(cmd: bpf_cmd, attr: &mut T, call: &'static str) -> SysResult<libc::c_long> {
    let size = len32(size_of::<T>(), call)?;
    // SAFETY: upheld by the caller (layout and pointers); the size passed is that of `T`,
    // which the kernel treats as the length of the attribute union it may read.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd as libc::c_int,
            std::ptr::from_mut(attr).cast::<libc::c_void>(),
            size,
        )
    };
    if ret < 0 {
        Err(SysError {
            call,
            source: io::Error::last_os_error(),
        })
    } else {
        Ok(ret)
    }
}

/// A length as the kernel's `u32` length fields take it; longer is an error, not a wrap.
fn len32(len: usize, call: &'static str) -> SysResult<u32> {
    u32::try_from(len).map_err(|_| SysError {
        call,
        source: io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{len} bytes or entries is more than the kernel takes"),
        ),
    })
}

/// An fd as the kernel's `u32` fd fields take it: an open descriptor is never negative.
fn fd32(fd: BorrowedFd<'_>) -> u32 {
    fd.as_raw_fd().cast_unsigned()
}

/// Runs a `bpf()` command that returns a new descriptor, and owns it.
///
/// # Safety
/// As for [`sys_bpf`].
unsafe fn sys_bpf_fd<T>(cmd: bpf_cmd, attr: &mut T, call: &'static str) -> SysResult<OwnedFd> {
    // SAFETY: upheld by the caller.
    let raw = unsafe { sys_bpf(cmd, attr, call) }?;
    let fd = RawFd::try_from(raw).map_err(|_| SysError {
        call,
        source: io::Error::other(format!("the kernel returned descriptor {raw}")),
    })?;
    // SAFETY: the kernel just returned this descriptor to us and nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

#[repr(C)]
#[derive(Default)]
struct IdAttr {
    id: u32,
    next_id: u32,
    open_flags: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ObjKind {
    Prog,
    Map,
    Link,
    Btf,
}

impl ObjKind {
    fn next_cmd(self) -> (bpf_cmd, &'static str) {
        match self {
            Self::Prog => (bpf_cmd::BPF_PROG_GET_NEXT_ID, "BPF_PROG_GET_NEXT_ID"),
            Self::Map => (bpf_cmd::BPF_MAP_GET_NEXT_ID, "BPF_MAP_GET_NEXT_ID"),
            Self::Link => (bpf_cmd::BPF_LINK_GET_NEXT_ID, "BPF_LINK_GET_NEXT_ID"),
            Self::Btf => (bpf_cmd::BPF_BTF_GET_NEXT_ID, "BPF_BTF_GET_NEXT_ID"),
        }
    }

    fn fd_cmd(self) -> (bpf_cmd, &'static str) {
        match self {
            Self::Prog => (bpf_cmd::BPF_PROG_GET_FD_BY_ID, "BPF_PROG_GET_FD_BY_ID"),
            Self::Map => (bpf_cmd::BPF_MAP_GET_FD_BY_ID, "BPF_MAP_GET_FD_BY_ID"),
            Self::Link => (bpf_cmd::BPF_LINK_GET_FD_BY_ID, "BPF_LINK_GET_FD_BY_ID"),
            Self::Btf => (bpf_cmd::BPF_BTF_GET_FD_BY_ID, "BPF_BTF_GET_FD_BY_ID"),
        }
    }
}

/// The id after `start` of the given kind, or `None` at the end of the list.
pub fn next_id(kind: ObjKind, start: u32) -> SysResult<Option<u32>> {
    let (cmd, call) = kind.next_cmd();
    let mut attr = IdAttr {
        id: start,
        ..IdAttr::default()
    };
    // SAFETY: GET_NEXT_ID reads `start_id` and writes `next_id` inside `attr`; no pointers.
    match unsafe { sys_bpf(cmd, &mut attr, call) } {
        Ok(_) => Ok(Some(attr.next_id)),
        Err(e) if e.is_gone() => Ok(None),
        Err(e) => Err(e),
    }
}

/// Opens an fd for the object with this id.
pub fn fd_by_id(kind: ObjKind, id: u32) -> SysResult<OwnedFd> {
    let (cmd, call) = kind.fd_cmd();
    let mut attr = IdAttr {
        id,
        ..IdAttr::default()
    };
    // SAFETY: GET_FD_BY_ID reads the id (and zero open flags) from `attr`; no pointers.
    unsafe { sys_bpf_fd(cmd, &mut attr, call) }
}

#[repr(C)]
struct InfoAttr {
    bpf_fd: u32,
    info_len: u32,
    info: u64,
}

/// Fills `info` from the object behind `fd`; how many bytes of it the kernel knows and wrote
/// (fewer than `T`'s on a kernel older than the layout: the fields past them are not its).
///
/// # Safety
/// `T` must be a kernel `bpf_*_info` layout, and any buffer pointers pre-set in `info` must be
/// valid for writes of the lengths pre-set next to them.
unsafe fn info_by_fd<T>(fd: BorrowedFd<'_>, info: &mut T) -> SysResult<u32> {
    let mut attr = InfoAttr {
        bpf_fd: fd32(fd),
        info_len: len32(size_of::<T>(), "BPF_OBJ_GET_INFO_BY_FD")?,
        info: std::ptr::from_mut(info) as u64,
    };
    // SAFETY: `attr.info` points at `info`, valid for `info_len` bytes; the caller vouches for
    // the buffers inside it.
    unsafe {
        sys_bpf(
            bpf_cmd::BPF_OBJ_GET_INFO_BY_FD,
            &mut attr,
            "BPF_OBJ_GET_INFO_BY_FD",
        )
    }?;
    Ok(attr.info_len)
}

fn zeroed<T>() -> T {
    // SAFETY: only used for the kernel's plain-integer info structs, for which all-zero bytes
    // are a valid value.
    unsafe { std::mem::zeroed() }
}

/// As [`prog_info`], into a buffer kept from call to call: `map_ids` is grown when a program
/// has more maps, never shrunk or zeroed (the kernel writes what it reports), and the number of
/// map ids is returned with the info.
pub fn prog_info_reusing(
    fd: BorrowedFd<'_>,
    map_ids: &mut Vec<u32>,
) -> SysResult<(bpf_prog_info, usize)> {
    loop {
        let mut info: bpf_prog_info = zeroed();
        info.nr_map_ids = len32(map_ids.len(), "BPF_OBJ_GET_INFO_BY_FD")?;
        info.map_ids = map_ids.as_mut_ptr() as u64;
        // SAFETY: `map_ids` points at a buffer of `nr_map_ids` u32 that outlives the call.
        unsafe { info_by_fd(fd, &mut info) }?;
        let needed = info.nr_map_ids as usize;
        if needed <= map_ids.len() {
            info.map_ids = 0;
            return Ok((info, needed));
        }
        // More maps than the buffer holds: grow and ask again (rare).
        map_ids.resize(needed, 0);
    }
}

/// Program info and its map ids (`map_ids` ends up holding exactly them), read in one call
/// when `map_ids` is large enough.
pub fn prog_info(fd: BorrowedFd<'_>, map_ids: &mut Vec<u32>) -> SysResult<bpf_prog_info> {
    let (info, n) = prog_info_reusing(fd, map_ids)?;
    map_ids.truncate(n);
    Ok(info)
}

/// The BTF type id of the program's main function (first `func_info` record), if it has BTF.
pub fn prog_main_func_type_id(fd: BorrowedFd<'_>) -> SysResult<Option<u32>> {
    #[repr(C)]
    #[derive(Clone, Copy, Default)]
    struct FuncInfo {
        insn_off: u32,
        type_id: u32,
    }
    let mut first = [FuncInfo::default(); 1];
    let mut info: bpf_prog_info = zeroed();
    info.nr_func_info = 1;
    info.func_info_rec_size = len32(size_of::<FuncInfo>(), "BPF_OBJ_GET_INFO_BY_FD")?;
    info.func_info = first.as_mut_ptr() as u64;
    // SAFETY: `func_info` points at one record of `func_info_rec_size` bytes, alive for the call.
    unsafe { info_by_fd(fd, &mut info) }?;
    Ok((info.nr_func_info > 0 && info.btf_id != 0).then_some(first[0].type_id))
}

pub fn map_info(fd: BorrowedFd<'_>) -> SysResult<bpf_map_info> {
    let mut info: bpf_map_info = zeroed();
    // SAFETY: a zeroed map info carries no buffer pointers.
    unsafe { info_by_fd(fd, &mut info) }?;
    Ok(info)
}

/// A buffer the kernel will write `need` bytes into, or an error naming the call.
fn fits(buf: &[u8], need: usize, call: &'static str) -> SysResult<()> {
    if buf.len() >= need {
        return Ok(());
    }
    Err(SysError {
        call,
        source: io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("a {}-byte buffer for {need} bytes", buf.len()),
        ),
    })
}

/// Writes the key after `key` (the first key when `None`) of the map into `next`
/// (`BPF_MAP_GET_NEXT_KEY`); `Ok(false)` when there is none. Buffers hold `key_size` bytes.
pub fn map_next_key(
    fd: BorrowedFd<'_>,
    key_size: usize,
    key: Option<&[u8]>,
    next: &mut [u8],
) -> SysResult<bool> {
    #[repr(C)]
    struct ElemAttr {
        map_fd: u32,
        _pad: u32,
        key: u64,
        next_key: u64,
        flags: u64,
    }
    const CALL: &str = "BPF_MAP_GET_NEXT_KEY";
    fits(next, key_size, CALL)?;
    if let Some(k) = key {
        fits(k, key_size, CALL)?;
    }
    let mut attr = ElemAttr {
        map_fd: fd32(fd),
        _pad: 0,
        key: key.map_or(0, |k| k.as_ptr() as u64),
        next_key: next.as_mut_ptr() as u64,
        flags: 0,
    };
    // SAFETY: `key` (or null) is readable and `next` writable for `key_size` bytes, checked
    // above; the caller passes the map's own key size.
    match unsafe { sys_bpf(bpf_cmd::BPF_MAP_GET_NEXT_KEY, &mut attr, CALL) } {
        Ok(_) => Ok(true),
        Err(e) if e.is_gone() => Ok(false),
        Err(e) => Err(e),
    }
}

/// Buffers for one `BPF_MAP_LOOKUP_BATCH`: `keys` and `values` hold `count` keys and values as
/// the map lays them out; `token` (at least the key size, and 8 bytes) carries the position.
#[derive(Debug)]
pub struct BatchBufs<'a> {
    pub key_size: usize,
    pub value_size: usize,
    pub count: u32,
    pub keys: &'a mut [u8],
    pub values: &'a mut [u8],
    pub token: &'a mut [u8],
}

/// What one batch read returned: how many elements, and whether the map has no more.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchRead {
    pub count: u32,
    pub last: bool,
}

/// Reads the next batch of elements (`BPF_MAP_LOOKUP_BATCH`, Linux 5.6), starting after the
/// position in `token` (from the start when `first`), and leaves the next position there.
pub fn map_lookup_batch(
    fd: BorrowedFd<'_>,
    bufs: &mut BatchBufs<'_>,
    first: bool,
) -> SysResult<BatchRead> {
    #[repr(C)]
    struct BatchAttr {
        in_batch: u64,
        out_batch: u64,
        keys: u64,
        values: u64,
        count: u32,
        map_fd: u32,
        elem_flags: u64,
        flags: u64,
    }
    const CALL: &str = "BPF_MAP_LOOKUP_BATCH";
    let n = usize::try_from(bufs.count).unwrap_or(usize::MAX);
    fits(bufs.keys, n.saturating_mul(bufs.key_size), CALL)?;
    fits(bufs.values, n.saturating_mul(bufs.value_size), CALL)?;
    fits(bufs.token, bufs.key_size.max(8), CALL)?;
    let token = bufs.token.as_mut_ptr() as u64;
    let mut attr = BatchAttr {
        in_batch: if first { 0 } else { token },
        out_batch: token,
        keys: bufs.keys.as_mut_ptr() as u64,
        values: bufs.values.as_mut_ptr() as u64,
        count: bufs.count,
        map_fd: fd32(fd),
        elem_flags: 0,
        flags: 0,
    };
    // SAFETY: `keys` and `values` are writable for `count` elements of the sizes the caller
    // took from the map, and `token` for a position (at most the key size, and a bucket index
    // of 4 bytes), all checked above; the kernel reads `in_batch` from the same token.
    match unsafe { sys_bpf(bpf_cmd::BPF_MAP_LOOKUP_BATCH, &mut attr, CALL) } {
        Ok(_) => Ok(BatchRead {
            count: attr.count,
            last: false,
        }),
        // ENOENT: the end; the kernel still says how many it copied before it.
        Err(e) if e.is_gone() => Ok(BatchRead {
            count: attr.count,
            last: true,
        }),
        Err(e) => Err(e),
    }
}

/// What the kernel says of a link.
pub type LinkInfo = bpf_link_info;

/// A link's info, and how many bytes of it the kernel wrote (its own layout's size, when
/// smaller: the fields past it are zeros, not its answer).
#[derive(Clone, Copy)]
pub struct LinkRead {
    pub info: bpf_link_info,
    pub len: u32,
}

impl std::fmt::Debug for LinkRead {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LinkRead")
            .field("id", &self.info.id)
            .field("type", &self.info.type_)
            .field("prog_id", &self.info.prog_id)
            .field("len", &self.len)
            .finish_non_exhaustive()
    }
}

impl LinkRead {
    /// The kprobes' missed hits, where the kernel reports them: a kprobe_multi link's and a
    /// perf-event kprobe link's (Linux 6.7, `missed` in both; a kernel that wrote less of the
    /// info did not report it). Hits a kprobe skipped because another was running on that CPU,
    /// or a kretprobe's for want of a free instance.
    pub fn kprobe_missed(&self) -> Option<u64> {
        use aya_obj::generated::{bpf_link_type as T, bpf_perf_event_type as P};
        use std::mem::offset_of;
        // Both `missed` came in 6.7, with the perf-event kprobe's the further: a kernel that
        // wrote less did not report either (6.1's info already reaches past kprobe_multi's).
        let end = offset_of!(
            bpf_link_info,
            __bindgen_anon_1.perf_event.__bindgen_anon_1.kprobe.missed
        ) + size_of::<u64>();
        if usize::try_from(self.len).is_ok_and(|l| l < end) {
            return None;
        }
        let t = self.info.type_;
        let u = &self.info.__bindgen_anon_1;
        if t == T::BPF_LINK_TYPE_KPROBE_MULTI as u32 {
            // SAFETY: a kprobe_multi link's info is that member, plain integers.
            return Some(unsafe { u.kprobe_multi.missed });
        }
        if t != T::BPF_LINK_TYPE_PERF_EVENT as u32 {
            return None;
        }
        // SAFETY: a perf-event link's info is that member, plain integers.
        let perf = unsafe { u.perf_event };
        let kinds = [
            P::BPF_PERF_EVENT_KPROBE as u32,
            P::BPF_PERF_EVENT_KRETPROBE as u32,
        ];
        if !kinds.contains(&perf.type_) {
            return None;
        }
        // SAFETY: a kprobe's perf event info is the `kprobe` member, plain integers.
        Some(unsafe { perf.__bindgen_anon_1.kprobe.missed })
    }
}

/// Link info; `name_buf` receives the name for link types that report one (raw tracepoint, iter,
/// and from Linux 6.6 perf event: a tracepoint, kprobe function or uprobe file).
pub fn link_info(fd: BorrowedFd<'_>, name_buf: &mut [u8]) -> SysResult<LinkRead> {
    // First pass without buffers to learn the type, then again with the name buffer where the
    // type has one: the union's buffer fields sit at different offsets per type.
    let mut info: bpf_link_info = zeroed();
    // SAFETY: a zeroed link info carries no buffer pointers.
    let written = unsafe { info_by_fd(fd, &mut info) }?;
    use aya_obj::generated::bpf_link_type as T;
    let ptr = name_buf.as_mut_ptr() as u64;
    let len = len32(name_buf.len(), "BPF_OBJ_GET_INFO_BY_FD")?;
    let wants_name = if info.type_ == T::BPF_LINK_TYPE_RAW_TRACEPOINT as u32 {
        let mut with: bpf_link_info = zeroed();
        with.__bindgen_anon_1.raw_tracepoint.tp_name = ptr;
        with.__bindgen_anon_1.raw_tracepoint.tp_name_len = len;
        Some(with)
    } else if info.type_ == T::BPF_LINK_TYPE_ITER as u32 {
        let mut with: bpf_link_info = zeroed();
        with.__bindgen_anon_1.iter.target_name = ptr;
        with.__bindgen_anon_1.iter.target_name_len = len;
        Some(with)
    } else if info.type_ == T::BPF_LINK_TYPE_PERF_EVENT as u32 {
        // From 6.6 (`bpf_perf_link_fill_link_info`) the kernel fills `perf_event` as the
        // program's type says, writing the tracepoint's, kprobe's function or uprobe's file name
        // to the buffer set in that kind's member; the three keep the buffer and its length at
        // the same offsets (asserted below), so one setting serves whichever it is. The first
        // call, without a buffer, is allowed (only a buffer without a length or the reverse is
        // refused), but the name needs this second one, whose `perf_event.type` is the one read
        // (the first version of that kernel code, 1b715e1b0ec5, left a kprobe's type unset
        // when given no buffer). Before 6.6 the kernel reads and fills nothing of `perf_event`.
        let mut kinds: PerfKinds = zeroed();
        kinds.tracepoint.tp_name = ptr;
        kinds.tracepoint.name_len = len;
        let mut with: bpf_link_info = zeroed();
        with.__bindgen_anon_1.perf_event.__bindgen_anon_1 = kinds;
        Some(with)
    } else {
        None
    };
    match wants_name {
        Some(mut with) if !name_buf.is_empty() => {
            // SAFETY: the name pointer and length describe `name_buf`, alive for the call.
            let written = unsafe { info_by_fd(fd, &mut with) }?;
            Ok(LinkRead {
                info: with,
                len: written,
            })
        }
        _ => Ok(LinkRead { info, len: written }),
    }
}

/// `bpf_link_info.perf_event`'s union of kinds (uprobe, kprobe, tracepoint, event).
type PerfKinds = aya_obj::generated::bpf_link_info__bindgen_ty_1__bindgen_ty_11__bindgen_ty_1;

// A perf-event link's name buffer is set through `tracepoint` for all three kinds that have one.
const _: () = {
    use std::mem::offset_of;
    let (name, len) = (
        offset_of!(PerfKinds, tracepoint.tp_name),
        offset_of!(PerfKinds, tracepoint.name_len),
    );
    assert!(name == offset_of!(PerfKinds, kprobe.func_name));
    assert!(name == offset_of!(PerfKinds, uprobe.file_name));
    assert!(len == offset_of!(PerfKinds, kprobe.name_len));
    assert!(len == offset_of!(PerfKinds, uprobe.name_len));
};

/// What `BPF_TASK_FD_QUERY` says of a process's perf-event (or raw tracepoint) fd.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FdQuery {
    pub prog_id: u32,
    /// `BPF_FD_TYPE_*`: raw tracepoint, tracepoint, k(ret)probe, u(ret)probe.
    pub fd_type: u32,
    /// Tracepoint or function name, or the probed file.
    pub name: String,
    pub probe_offset: u64,
    pub probe_addr: u64,
}

/// Asks the kernel which program fd `fd` of process `pid` runs, and where it is attached (as
/// `bpftool perf` does). `Ok(None)` when the fd carries no program (`ENOENT`) or the process or
/// fd went away (`ESRCH`, `EBADF`).
pub fn task_fd_query(pid: u32, fd: u32) -> SysResult<Option<FdQuery>> {
    let mut name = [0u8; 256];
    let mut attr = aya_obj::generated::bpf_attr__bindgen_ty_13 {
        pid,
        fd,
        flags: 0,
        buf_len: len32(name.len(), "BPF_TASK_FD_QUERY")?,
        buf: name.as_mut_ptr() as u64,
        prog_id: 0,
        fd_type: 0,
        probe_offset: 0,
        probe_addr: 0,
    };
    // SAFETY: the task_fd_query member of `bpf_attr`; `buf`/`buf_len` describe `name`, which
    // outlives the call, and the kernel writes at most `buf_len` bytes there.
    match unsafe { sys_bpf(bpf_cmd::BPF_TASK_FD_QUERY, &mut attr, "BPF_TASK_FD_QUERY") } {
        Ok(_) => {}
        Err(e) if matches!(e.errno(), Some(libc::ENOENT | libc::ESRCH | libc::EBADF)) => {
            return Ok(None);
        }
        Err(e) => return Err(e),
    }
    let end = name.iter().position(|&b| b == 0).unwrap_or(name.len());
    Ok(Some(FdQuery {
        prog_id: attr.prog_id,
        fd_type: attr.fd_type,
        name: String::from_utf8_lossy(&name[..end]).into_owned(),
        probe_offset: attr.probe_offset,
        probe_addr: attr.probe_addr,
    }))
}

/// The raw BTF blob of a BTF object.
pub fn btf_data(fd: BorrowedFd<'_>) -> SysResult<Vec<u8>> {
    let mut info: bpf_btf_info = zeroed();
    // SAFETY: a zeroed BTF info carries no buffer pointers; the kernel reports the size.
    unsafe { info_by_fd(fd, &mut info) }?;
    let mut data = vec![0u8; info.btf_size as usize];
    let mut with: bpf_btf_info = zeroed();
    with.btf = data.as_mut_ptr() as u64;
    with.btf_size = len32(data.len(), "BPF_OBJ_GET_INFO_BY_FD")?;
    // SAFETY: `btf` points at `data`, valid for `btf_size` bytes for the call.
    unsafe { info_by_fd(fd, &mut with) }?;
    data.truncate(with.btf_size as usize);
    Ok(data)
}

/// Opens a pinned object in bpffs.
pub fn obj_get(path: &CStr) -> SysResult<OwnedFd> {
    #[repr(C)]
    struct ObjGetAttr {
        pathname: u64,
        bpf_fd: u32,
        file_flags: u32,
    }
    let mut attr = ObjGetAttr {
        pathname: path.as_ptr() as u64,
        bpf_fd: 0,
        file_flags: libc::O_RDONLY as u32,
    };
    // SAFETY: `pathname` points at a NUL-terminated string alive for the call.
    unsafe { sys_bpf_fd(bpf_cmd::BPF_OBJ_GET, &mut attr, "BPF_OBJ_GET") }
}

fn obj_name(name: &str) -> [u8; KERNEL_NAME_MAX + 1] {
    // The kernel keeps 15 bytes and a NUL; longer names are cut, as libbpf does.
    let mut out = [0u8; KERNEL_NAME_MAX + 1];
    let bytes = name.as_bytes();
    let n = bytes.len().min(KERNEL_NAME_MAX);
    out[..n].copy_from_slice(&bytes[..n]);
    out
}

/// A program to load (`BPF_PROG_LOAD`), with optional BTF function info.
#[derive(Debug, Clone)]
pub struct ProgSpec<'a> {
    pub prog_type: u32,
    /// Raw 8-byte instructions.
    pub insns: &'a [u64],
    pub name: &'a str,
    /// BTF object fd and the type id of the main function's `BTF_KIND_FUNC`.
    pub btf: Option<(BorrowedFd<'a>, u32)>,
    /// For a tracing program: its expected attach type and the BTF id it attaches to (in
    /// vmlinux, or in `attach_prog`'s BTF).
    pub attach: Option<(u32, u32)>,
    /// For fentry/fexit on a BPF program: that program.
    pub attach_prog: Option<BorrowedFd<'a>>,
}

pub fn prog_load(spec: &ProgSpec<'_>) -> SysResult<OwnedFd> {
    #[repr(C)]
    struct ProgLoadAttr {
        prog_type: u32,
        insn_cnt: u32,
        insns: u64,
        license: u64,
        log_level: u32,
        log_size: u32,
        log_buf: u64,
        kern_version: u32,
        prog_flags: u32,
        prog_name: [u8; 16],
        prog_ifindex: u32,
        expected_attach_type: u32,
        prog_btf_fd: u32,
        func_info_rec_size: u32,
        func_info: u64,
        func_info_cnt: u32,
        line_info_rec_size: u32,
        line_info: u64,
        line_info_cnt: u32,
        attach_btf_id: u32,
        attach_btf_obj_fd: u32,
        core_relo_cnt: u32,
    }
    let license = c"GPL";
    let (expected_attach_type, attach_btf_id) = spec.attach.unwrap_or((0, 0));
    let func_info: [u32; 2] = [0, spec.btf.map_or(0, |(_, id)| id)];
    let mut attr = ProgLoadAttr {
        prog_type: spec.prog_type,
        insn_cnt: len32(spec.insns.len(), "BPF_PROG_LOAD")?,
        insns: spec.insns.as_ptr() as u64,
        license: license.as_ptr() as u64,
        log_level: 0,
        log_size: 0,
        log_buf: 0,
        kern_version: 0,
        prog_flags: 0,
        prog_name: obj_name(spec.name),
        prog_ifindex: 0,
        expected_attach_type,
        prog_btf_fd: spec.btf.map_or(0, |(fd, _)| fd32(fd)),
        func_info_rec_size: if spec.btf.is_some() { 8 } else { 0 },
        func_info: if spec.btf.is_some() {
            func_info.as_ptr() as u64
        } else {
            0
        },
        func_info_cnt: u32::from(spec.btf.is_some()),
        line_info_rec_size: 0,
        line_info: 0,
        line_info_cnt: 0,
        attach_btf_id,
        // The kernel's union of `attach_btf_obj_fd` and `attach_prog_fd`.
        attach_btf_obj_fd: spec.attach_prog.map_or(0, fd32),
        core_relo_cnt: 0,
    };
    // SAFETY: `insns`, `license` and `func_info` point at live buffers of the stated counts.
    unsafe { sys_bpf_fd(bpf_cmd::BPF_PROG_LOAD, &mut attr, "BPF_PROG_LOAD") }
}

/// Attaches an iterator program to its target (`BPF_LINK_CREATE` with `BPF_TRACE_ITER`), over
/// every object of its kind (no iterator parameters).
pub fn iter_link_create(prog: BorrowedFd<'_>) -> SysResult<OwnedFd> {
    #[repr(C)]
    struct LinkCreateAttr {
        prog_fd: u32,
        target_fd: u32,
        attach_type: u32,
        flags: u32,
        iter_info: u64,
        iter_info_len: u32,
        pad: u32,
    }
    const BPF_TRACE_ITER: u32 = 28;
    let mut attr = LinkCreateAttr {
        prog_fd: fd32(prog),
        target_fd: 0,
        attach_type: BPF_TRACE_ITER,
        flags: 0,
        iter_info: 0,
        iter_info_len: 0,
        pad: 0,
    };
    // SAFETY: plain integers; no iterator parameters are passed (null, length 0).
    unsafe { sys_bpf_fd(bpf_cmd::BPF_LINK_CREATE, &mut attr, "BPF_LINK_CREATE") }
}

/// A new pass of an iterator link (`BPF_ITER_CREATE`): a file whose reads run the program over
/// every object and return what it wrote.
pub fn iter_create(link: BorrowedFd<'_>) -> SysResult<OwnedFd> {
    #[repr(C)]
    struct IterCreateAttr {
        link_fd: u32,
        flags: u32,
    }
    let mut attr = IterCreateAttr {
        link_fd: fd32(link),
        flags: 0,
    };
    // SAFETY: plain integers.
    unsafe { sys_bpf_fd(bpf_cmd::BPF_ITER_CREATE, &mut attr, "BPF_ITER_CREATE") }
}

/// What one `BPF_PROG_TEST_RUN` measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TestRun {
    pub retval: u32,
    /// Mean nanoseconds per run, as the kernel timed them.
    pub duration_ns: u32,
}

/// Runs a program `repeat` times on `data` in the kernel (`BPF_PROG_TEST_RUN`).
pub fn prog_test_run(prog: BorrowedFd<'_>, data: &[u8], repeat: u32) -> SysResult<TestRun> {
    #[repr(C)]
    struct TestRunAttr {
        prog_fd: u32,
        retval: u32,
        data_size_in: u32,
        data_size_out: u32,
        data_in: u64,
        data_out: u64,
        repeat: u32,
        duration: u32,
        ctx_size_in: u32,
        ctx_size_out: u32,
        ctx_in: u64,
        ctx_out: u64,
    }
    let mut attr = TestRunAttr {
        prog_fd: fd32(prog),
        retval: 0,
        data_size_in: len32(data.len(), "BPF_PROG_TEST_RUN")?,
        data_size_out: 0,
        data_in: data.as_ptr() as u64,
        data_out: 0,
        repeat,
        duration: 0,
        ctx_size_in: 0,
        ctx_size_out: 0,
        ctx_in: 0,
        ctx_out: 0,
    };
    // SAFETY: `data_in` points at `data` (read-only for the kernel), no output buffers.
    unsafe { sys_bpf(bpf_cmd::BPF_PROG_TEST_RUN, &mut attr, "BPF_PROG_TEST_RUN") }?;
    Ok(TestRun {
        retval: attr.retval,
        duration_ns: attr.duration,
    })
}

/// A map (`BPF_MAP_CREATE`): its type, `(key_size, value_size, max_entries)`, flags
/// (`BPF_F_NO_PREALLOC`, 1) and, for a map of maps, its inner map.
pub fn map_create(
    map_type: u32,
    (key_size, value_size, max_entries): (u32, u32, u32),
    map_flags: u32,
    inner: Option<BorrowedFd<'_>>,
    name: &str,
) -> SysResult<OwnedFd> {
    #[repr(C)]
    struct Attr {
        map_type: u32,
        key_size: u32,
        value_size: u32,
        max_entries: u32,
        map_flags: u32,
        inner_map_fd: u32,
        numa_node: u32,
        map_name: [u8; KERNEL_NAME_MAX + 1],
    }
    let mut attr = Attr {
        map_type,
        key_size,
        value_size,
        max_entries,
        map_flags,
        inner_map_fd: inner.map_or(0, fd32),
        numa_node: 0,
        map_name: obj_name(name),
    };
    // SAFETY: MAP_CREATE reads plain integers and an inline name; no pointers.
    unsafe { sys_bpf_fd(bpf_cmd::BPF_MAP_CREATE, &mut attr, "BPF_MAP_CREATE") }
}

/// The attribute of the map element commands (lookup, update, delete, next key).
#[repr(C)]
#[derive(Debug)]
pub struct ElemAttr {
    pub map_fd: u32,
    pub _pad: u32,
    pub key: u64,
    pub value: u64,
    pub flags: u64,
}

/// Reads `key`'s value of a per-CPU map into `value` (`BPF_MAP_LOOKUP_ELEM`): one value per
/// possible CPU (`cpus` of them, `sampler::host::possible_cpus`), each 8-byte aligned.
pub fn map_lookup_per_cpu(
    fd: BorrowedFd<'_>,
    key: &[u8],
    value: &mut [u8],
    cpus: usize,
) -> SysResult<()> {
    const CALL: &str = "BPF_MAP_LOOKUP_ELEM";
    let info = map_info(fd)?;
    fits(key, info.key_size as usize, CALL)?;
    let one = (info.value_size as usize).next_multiple_of(8);
    fits(value, one.saturating_mul(cpus), CALL)?;
    let mut attr = ElemAttr {
        map_fd: fd32(fd),
        _pad: 0,
        key: key.as_ptr() as u64,
        value: value.as_mut_ptr() as u64,
        flags: 0,
    };
    // SAFETY: `key` holds the map's key size and `value` a value per possible CPU (checked
    // above against the map's info), both alive for the call.
    unsafe { sys_bpf(bpf_cmd::BPF_MAP_LOOKUP_ELEM, &mut attr, CALL) }.map(drop)
}

/// A BTF blob (`BPF_BTF_LOAD`).
pub fn btf_load(data: &[u8]) -> SysResult<OwnedFd> {
    #[repr(C)]
    struct Attr {
        btf: u64,
        btf_log_buf: u64,
        btf_size: u32,
        btf_log_size: u32,
        btf_log_level: u32,
        // Named so the struct has no padding: the kernel rejects non-zero unused bytes.
        btf_log_true_size: u32,
    }
    let mut attr = Attr {
        btf: data.as_ptr() as u64,
        btf_log_buf: 0,
        btf_size: len32(data.len(), "BPF_BTF_LOAD")?,
        btf_log_size: 0,
        btf_log_level: 0,
        btf_log_true_size: 0,
    };
    // SAFETY: `btf` points at `data`, valid for `btf_size` bytes for the call.
    unsafe { sys_bpf_fd(bpf_cmd::BPF_BTF_LOAD, &mut attr, "BPF_BTF_LOAD") }
}

/// Attaches a tracing program (fentry, fexit) where it was loaded to attach
/// (`BPF_RAW_TRACEPOINT_OPEN` without a name, Linux 5.5): the link detaches when closed.
pub fn tracing_attach(prog: BorrowedFd<'_>) -> SysResult<OwnedFd> {
    #[repr(C)]
    struct Attr {
        name: u64,
        prog_fd: u32,
        _pad: u32,
    }
    let mut attr = Attr {
        name: 0,
        prog_fd: fd32(prog),
        _pad: 0,
    };
    // SAFETY: no name (null): the program's own attach target is used; plain integers.
    unsafe {
        sys_bpf_fd(
            bpf_cmd::BPF_RAW_TRACEPOINT_OPEN,
            &mut attr,
            "BPF_RAW_TRACEPOINT_OPEN",
        )
    }
}
