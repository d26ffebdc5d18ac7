//! The kernel writes only tests make: updating and deleting map elements, pinning objects,
//! creating links. The daemon makes only what its own programs need (maps, BTF, its probes,
//! in `ebpfstatd::bpf::sys`, which these reuse); the rest lives here so it does not ship inside
//! it. Command numbers and attribute layouts are the kernel's ABI (`include/uapi/linux/bpf.h`).

use std::ffi::CStr;
use std::io;
use std::mem::size_of;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

const BPF_MAP_UPDATE_ELEM: libc::c_int = 2;
const BPF_MAP_DELETE_ELEM: libc::c_int = 3;
const BPF_MAP_GET_NEXT_KEY: libc::c_int = 4;
const BPF_OBJ_PIN: libc::c_int = 6;
const BPF_LINK_CREATE: libc::c_int = 28;

/// Runs one `bpf()` command with `attr` as its argument.
///
/// # Safety
/// `attr` must be the layout the kernel expects for `cmd`, and every pointer in it valid for
/// what the command reads, for the whole call.
unsafe fn bpf<T>(cmd: libc::c_int, attr: &mut T) -> io::Result<libc::c_long> {
    // SAFETY: upheld by the caller; the size passed is that of `T`.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd,
            std::ptr::from_mut(attr).cast::<libc::c_void>(),
            size_of::<T>(),
        )
    };
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

/// A command that returns a new descriptor, owned.
///
/// # Safety
/// As for [`bpf`].
unsafe fn bpf_fd<T>(cmd: libc::c_int, attr: &mut T) -> io::Result<OwnedFd> {
    // SAFETY: upheld by the caller.
    let raw = unsafe { bpf(cmd, attr) }?;
    let fd = i32::try_from(raw).map_err(|_| io::Error::other("a descriptor out of range"))?;
    // SAFETY: the kernel just returned this descriptor and nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn fd32(fd: BorrowedFd<'_>) -> u32 {
    fd.as_raw_fd().cast_unsigned()
}

/// A map (`BPF_MAP_CREATE`).
pub fn map_create(map_type: u32, sizes: (u32, u32, u32), name: &str) -> io::Result<OwnedFd> {
    map_create_with(map_type, sizes, 0, None, name)
}

/// A map with flags (`BPF_F_NO_PREALLOC`, 1) and, for a map of maps, its inner map.
pub fn map_create_with(
    map_type: u32,
    sizes: (u32, u32, u32),
    map_flags: u32,
    inner: Option<BorrowedFd<'_>>,
    name: &str,
) -> io::Result<OwnedFd> {
    ebpfstatd::bpf::sys::map_create(map_type, sizes, map_flags, inner, name).map_err(|e| e.source)
}

use ebpfstatd::bpf::sys::ElemAttr;

/// Sets `key` to `value` (`BPF_MAP_UPDATE_ELEM`); both as the map lays them out.
pub fn map_update(map: BorrowedFd<'_>, key: &[u8], value: &[u8]) -> io::Result<()> {
    let mut attr = ElemAttr {
        map_fd: fd32(map),
        _pad: 0,
        key: key.as_ptr() as u64,
        value: value.as_ptr() as u64,
        flags: 0,
    };
    // SAFETY: `key` and `value` are live for the call; the caller sizes them as the map's
    // key and value (per-CPU maps: one 8-byte-aligned value per possible CPU).
    unsafe { bpf(BPF_MAP_UPDATE_ELEM, &mut attr) }.map(drop)
}

/// Deletes `key` (`BPF_MAP_DELETE_ELEM`).
pub fn map_delete(map: BorrowedFd<'_>, key: &[u8]) -> io::Result<()> {
    let mut attr = ElemAttr {
        map_fd: fd32(map),
        _pad: 0,
        key: key.as_ptr() as u64,
        value: 0,
        flags: 0,
    };
    // SAFETY: `key` is live for the call and sized as the map's key.
    unsafe { bpf(BPF_MAP_DELETE_ELEM, &mut attr) }.map(drop)
}

/// The map's keys, counted here key by key (`BPF_MAP_GET_NEXT_KEY`): what the kernel holds,
/// as the test knows it without the daemon.
pub fn map_key_count(map: BorrowedFd<'_>, key_size: usize) -> io::Result<u64> {
    let mut key = vec![0u8; key_size];
    let mut next = vec![0u8; key_size];
    let mut n = 0;
    let mut first = true;
    loop {
        let mut attr = ElemAttr {
            map_fd: fd32(map),
            _pad: 0,
            key: if first { 0 } else { key.as_ptr() as u64 },
            value: next.as_mut_ptr() as u64,
            flags: 0,
        };
        // SAFETY: `key` and `next` hold `key_size` bytes, the map's key size.
        match unsafe { bpf(BPF_MAP_GET_NEXT_KEY, &mut attr) } {
            Ok(_) => n += 1,
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => return Ok(n),
            Err(e) => return Err(e),
        }
        std::mem::swap(&mut key, &mut next);
        first = false;
    }
}

/// A BTF blob (`BPF_BTF_LOAD`).
pub fn btf_load(data: &[u8]) -> io::Result<OwnedFd> {
    ebpfstatd::bpf::sys::btf_load(data).map_err(|e| e.source)
}

/// Pins an object in bpffs (`BPF_OBJ_PIN`).
pub fn obj_pin(fd: BorrowedFd<'_>, path: &CStr) -> io::Result<()> {
    #[repr(C)]
    struct Attr {
        pathname: u64,
        bpf_fd: u32,
        file_flags: u32,
    }
    let mut attr = Attr {
        pathname: path.as_ptr() as u64,
        bpf_fd: fd32(fd),
        file_flags: 0,
    };
    // SAFETY: `pathname` points at a NUL-terminated string alive for the call.
    unsafe { bpf(BPF_OBJ_PIN, &mut attr) }.map(drop)
}

/// Attaches a program through a link (`BPF_LINK_CREATE`) to `target` (a cgroup dir fd, an
/// ifindex as fd-less targets take it, ...).
pub fn link_create(prog: BorrowedFd<'_>, target: u32, attach_type: u32) -> io::Result<OwnedFd> {
    #[repr(C)]
    struct Attr {
        prog_fd: u32,
        target_fd: u32,
        attach_type: u32,
        flags: u32,
    }
    let mut attr = Attr {
        prog_fd: fd32(prog),
        target_fd: target,
        attach_type,
        flags: 0,
    };
    // SAFETY: LINK_CREATE reads plain integers; no pointers.
    unsafe { bpf_fd(BPF_LINK_CREATE, &mut attr) }
}
