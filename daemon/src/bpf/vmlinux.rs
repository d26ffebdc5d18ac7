//! What the map iterator needs of the kernel's own BTF (`/sys/kernel/btf/vmlinux`): the ids of
//! the iterator's target function and of the `bpf_map_sum_elem_count` kfunc (Linux 6.6: its
//! absence says the kernel keeps no element counters), and where `struct bpf_map` keeps `id`.
//!
//! The file is 5 MB or more: it is read as a stream through a small buffer, strings first (to
//! learn the offsets of the four names), then types, and never held whole (a device with
//! 128 MiB would notice).

use std::fs::File;
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom};
use std::path::Path;

use super::btf::{BtfError, extra_len};

const KIND_STRUCT: u32 = 4;
const KIND_FUNC: u32 = 12;

/// The names looked for, in the order of [`Names`]' offsets.
const NAMES: [&[u8]; 4] = [
    b"bpf_iter_bpf_map",
    b"bpf_map_sum_elem_count",
    b"bpf_map",
    b"id",
];

#[derive(Debug, thiserror::Error)]
pub enum VmlinuxError {
    #[error("reading {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{0}")]
    Btf(#[from] BtfError),
    #[error("struct bpf_map's id is not a byte-aligned field")]
    OddField,
}

/// The ids and the offset the map iterator is built with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MapIterBtf {
    /// `BTF_KIND_FUNC bpf_iter_bpf_map`: what an iterator over maps attaches to.
    pub iter_func: u32,
    /// `BTF_KIND_FUNC bpf_map_sum_elem_count`.
    pub sum_kfunc: u32,
    /// Bytes from the start of `struct bpf_map` to its `u32 id`.
    pub map_id_offset: i16,
}

/// Finds them in the BTF file at `path`; `None` when the kernel lacks one (before 6.6).
pub fn map_iter_btf(path: &Path) -> Result<Option<MapIterBtf>, VmlinuxError> {
    let read = |source| VmlinuxError::Read {
        path: path.display().to_string(),
        source,
    };
    let mut file = File::open(path).map_err(read)?;
    let mut header = [0u8; 24];
    file.read_exact(&mut header).map_err(read)?;
    let word = |i: usize| {
        u64::from(u32::from_ne_bytes([
            header[i],
            header[i + 1],
            header[i + 2],
            header[i + 3],
        ]))
    };
    if u16::from_ne_bytes([header[0], header[1]]) != 0xeb9f {
        return Err(BtfError::BadHeader.into());
    }
    let (hdr_len, type_off, type_len, str_off, str_len) =
        (word(4), word(8), word(12), word(16), word(20));
    file.seek(SeekFrom::Start(hdr_len + str_off))
        .map_err(read)?;
    let Some(names) = name_offsets(BufReader::new((&mut file).take(str_len))).map_err(read)? else {
        return Ok(None);
    };
    file.seek(SeekFrom::Start(hdr_len + type_off))
        .map_err(read)?;
    scan_types(&mut BufReader::new(file.take(type_len)), &names).map_err(|e| match e {
        Scan::Io(e) => read(e),
        Scan::Other(e) => e,
    })
}

/// Offsets of [`NAMES`] in the string section; `None` if one is missing.
fn name_offsets(mut strings: impl BufRead) -> std::io::Result<Option<[u32; 4]>> {
    let mut found = [None; 4];
    let mut off = 0u32;
    let mut s = Vec::with_capacity(64);
    loop {
        s.clear();
        let n = strings.read_until(0, &mut s)?;
        if n == 0 {
            break;
        }
        let name = s.strip_suffix(&[0]).unwrap_or(&s);
        if let Some(i) = NAMES.iter().position(|w| *w == name) {
            found[i].get_or_insert(off);
        }
        off = off.saturating_add(u32::try_from(n).unwrap_or(u32::MAX));
    }
    Ok(match found {
        [Some(a), Some(b), Some(c), Some(d)] => Some([a, b, c, d]),
        _ => None,
    })
}

enum Scan {
    Io(std::io::Error),
    Other(VmlinuxError),
}

impl From<std::io::Error> for Scan {
    fn from(e: std::io::Error) -> Self {
        Self::Io(e)
    }
}

/// Walks the type section for the two functions and `struct bpf_map`'s `id`.
fn scan_types(types: &mut impl BufRead, names: &[u32; 4]) -> Result<Option<MapIterBtf>, Scan> {
    let (mut iter_func, mut sum_kfunc, mut id_offset) = (None, None, None);
    let mut id = 0u32;
    let mut t = [0u8; 12];
    let u32_of = |b: &[u8]| u32::from_ne_bytes([b[0], b[1], b[2], b[3]]);
    while fill(types, &mut t)? {
        id += 1;
        let (name_off, info) = (u32_of(&t[0..4]), u32_of(&t[4..8]));
        let (kind, vlen) = ((info >> 24) & 0x1f, (info & 0xffff) as usize);
        match (kind, name_off) {
            (KIND_FUNC, n) if n == names[0] => iter_func = Some(id),
            (KIND_FUNC, n) if n == names[1] => sum_kfunc = Some(id),
            (KIND_STRUCT, n) if n == names[2] => {
                let bitfields = info >> 31 == 1;
                id_offset = member_offset(types, vlen, names[3], bitfields)?;
                continue;
            }
            _ => {}
        }
        let skip = extra_len(kind, vlen).map_err(|e| Scan::Other(e.into()))?;
        std::io::copy(&mut types.take(skip as u64), &mut std::io::sink())?;
    }
    Ok(match (iter_func, sum_kfunc, id_offset) {
        (Some(iter_func), Some(sum_kfunc), Some(map_id_offset)) => Some(MapIterBtf {
            iter_func,
            sum_kfunc,
            map_id_offset,
        }),
        _ => None,
    })
}

/// Reads a struct's `vlen` members; the byte offset of the one named `name_off`.
fn member_offset(
    types: &mut impl BufRead,
    vlen: usize,
    name_off: u32,
    bitfields: bool,
) -> Result<Option<i16>, Scan> {
    let mut found = None;
    let mut m = [0u8; 12];
    for _ in 0..vlen {
        if !fill(types, &mut m)? {
            return Err(Scan::Other(BtfError::BadHeader.into()));
        }
        if u32::from_ne_bytes([m[0], m[1], m[2], m[3]]) == name_off {
            let raw = u32::from_ne_bytes([m[8], m[9], m[10], m[11]]);
            let bits = if bitfields { raw & 0x00ff_ffff } else { raw };
            if bits % 8 != 0 {
                return Err(Scan::Other(VmlinuxError::OddField));
            }
            found = Some(i16::try_from(bits / 8).map_err(|_| Scan::Other(VmlinuxError::OddField))?);
        }
    }
    Ok(found)
}

/// Fills `buf` whole; false at the end of the section (a partial record is an error).
fn fill(r: &mut impl BufRead, buf: &mut [u8]) -> Result<bool, Scan> {
    let mut got = 0;
    while got < buf.len() {
        match r.read(&mut buf[got..])? {
            0 if got == 0 => return Ok(false),
            0 => return Err(Scan::Other(BtfError::BadHeader.into())),
            n => got += n,
        }
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A blob with the two functions and `struct bpf_map { u64 ops; u32 id; }`, among others.
    fn blob() -> Vec<u8> {
        let mut strings = vec![0u8];
        let mut add = |s: &str| {
            let off = u32::try_from(strings.len()).unwrap_or(0);
            strings.extend_from_slice(s.as_bytes());
            strings.push(0);
            off
        };
        let (int, ops, map, id, iter, sum) = (
            add("int"),
            add("ops"),
            add("bpf_map"),
            add("id"),
            add("bpf_iter_bpf_map"),
            add("bpf_map_sum_elem_count"),
        );
        let mut types = Vec::new();
        let mut push = |words: &[u32]| words.iter().for_each(|w| types.extend(w.to_ne_bytes()));
        push(&[int, 1 << 24, 4, 32]); // [1] int
        push(&[map, (KIND_STRUCT << 24) | 2, 16, ops, 1, 0, id, 1, 64]); // [2] bpf_map
        push(&[0, 13 << 24, 1]); // [3] proto
        push(&[iter, KIND_FUNC << 24, 3]); // [4]
        push(&[sum, KIND_FUNC << 24, 3]); // [5]
        let mut b = Vec::new();
        b.extend(0xeb9fu16.to_ne_bytes());
        b.extend([1u8, 0]);
        let len = |n: usize| u32::try_from(n).unwrap_or(0);
        for w in [
            24,
            0,
            len(types.len()),
            len(types.len()),
            len(strings.len()),
        ] {
            b.extend(w.to_ne_bytes());
        }
        b.extend(types);
        b.extend(strings);
        b
    }

    #[test]
    fn finds_the_functions_and_the_field() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let path = dir.path().join("vmlinux");
        std::fs::write(&path, blob()).unwrap_or_else(|e| panic!("{e}"));
        let found = map_iter_btf(&path).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            found,
            Some(MapIterBtf {
                iter_func: 4,
                sum_kfunc: 5,
                map_id_offset: 8
            })
        );
    }

    #[test]
    fn a_kernel_without_the_kfunc_has_none() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let path = dir.path().join("vmlinux");
        let mut b = blob();
        let name = b"elem_count";
        let at = b
            .windows(name.len())
            .position(|w| w == name)
            .unwrap_or_else(|| panic!("name"));
        b[at] = b'x';
        std::fs::write(&path, &b).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(map_iter_btf(&path).unwrap_or_else(|e| panic!("{e}")), None);
    }

    #[test]
    fn this_kernels_btf_reads_whole() {
        let path = Path::new("/sys/kernel/btf/vmlinux");
        if path.exists() {
            // Whether it has the kfunc depends on the kernel; it must read without error.
            let r = map_iter_btf(path);
            assert!(r.is_ok(), "{r:?}");
        }
    }
}
