//! Just enough BTF to name a program's main function.
//!
//! The kernel keeps 15 bytes of a program's name; the full function name lives in the BTF the
//! program was loaded with (its first `func_info` record names a `BTF_KIND_FUNC`). bpftool
//! resolves truncated names the same way. aya-obj parses BTF but keeps its type lookup private,
//! and a name lookup needs only a walk over the type section.

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BtfError {
    #[error("BTF blob is truncated or has a bad header")]
    BadHeader,
    #[error("BTF type {0} not found")]
    NoSuchType(u32),
    #[error("BTF kind {0} is unknown to this parser")]
    UnknownKind(u32),
    #[error("BTF string at offset {0} is out of range or not UTF-8")]
    BadString(u32),
    #[error("BTF type {0} is not a function with a prototype")]
    NotAFunction(u32),
}

const MAGIC: u16 = 0xeb9f;
const HEADER_LEN: usize = 24;
const TYPE_LEN: usize = 12;

const KIND_INT: u32 = 1;
const KIND_PTR: u32 = 2;
const KIND_FUNC: u32 = 12;
const KIND_FUNC_PROTO: u32 = 13;

fn u32_at(data: &[u8], off: usize) -> Option<u32> {
    let bytes = data.get(off..off.checked_add(4)?)?;
    Some(u32::from_ne_bytes(bytes.try_into().ok()?))
}

/// Bytes that follow the common 12-byte header of a type of this kind.
pub(super) fn extra_len(kind: u32, vlen: usize) -> Result<usize, BtfError> {
    Ok(match kind {
        1 | 14 | 17 => 4,             // INT, VAR, DECL_TAG
        2 | 7..=12 | 16 | 18 => 0,    // PTR, FWD..FUNC, FLOAT, TYPE_TAG
        3 => 12,                      // ARRAY
        4 | 5 | 15 | 19 => 12 * vlen, // STRUCT, UNION, DATASEC, ENUM64
        6 | 13 => 8 * vlen,           // ENUM, FUNC_PROTO
        other => return Err(BtfError::UnknownKind(other)),
    })
}

/// Where type `type_id`'s record starts in the raw (native-endian) blob `data`, and the blob's
/// strings.
fn locate(data: &[u8], type_id: u32) -> Result<(usize, &[u8]), BtfError> {
    let magic = data
        .get(0..2)
        .map(|b| u16::from_ne_bytes([b[0], b[1]]))
        .ok_or(BtfError::BadHeader)?;
    if magic != MAGIC {
        return Err(BtfError::BadHeader);
    }
    let field = |i: usize| u32_at(data, 4 + 4 * i).ok_or(BtfError::BadHeader);
    let hdr_len = field(0)? as usize;
    let (type_off, type_len) = (field(1)? as usize, field(2)? as usize);
    let (str_off, str_len) = (field(3)? as usize, field(4)? as usize);
    let types_start = hdr_len + type_off;
    let types_end = types_start + type_len;
    let strings = data
        .get(hdr_len + str_off..hdr_len + str_off + str_len)
        .ok_or(BtfError::BadHeader)?;
    if types_end > data.len() {
        return Err(BtfError::BadHeader);
    }
    let mut off = types_start;
    let mut id = 1;
    while off + TYPE_LEN <= types_end {
        if id == type_id {
            return Ok((off, strings));
        }
        let info = u32_at(data, off + 4).ok_or(BtfError::BadHeader)?;
        let kind = (info >> 24) & 0x1f;
        off += TYPE_LEN + extra_len(kind, (info & 0xffff) as usize)?;
        id += 1;
    }
    Err(BtfError::NoSuchType(type_id))
}

/// The name of BTF type `type_id` in the raw (native-endian) blob `data`.
pub fn type_name(data: &[u8], type_id: u32) -> Result<String, BtfError> {
    let (off, strings) = locate(data, type_id)?;
    string_at(strings, u32_at(data, off).ok_or(BtfError::BadHeader)?)
}

/// How many parameters the function `func_id` (a `BTF_KIND_FUNC`) declares.
pub fn func_params(data: &[u8], func_id: u32) -> Result<u16, BtfError> {
    let (off, _) = locate(data, func_id)?;
    let info = u32_at(data, off + 4).ok_or(BtfError::BadHeader)?;
    if (info >> 24) & 0x1f != KIND_FUNC {
        return Err(BtfError::NotAFunction(func_id));
    }
    let proto = u32_at(data, off + 8).ok_or(BtfError::BadHeader)?;
    let (off, _) = locate(data, proto)?;
    let info = u32_at(data, off + 4).ok_or(BtfError::BadHeader)?;
    if (info >> 24) & 0x1f != KIND_FUNC_PROTO {
        return Err(BtfError::NotAFunction(func_id));
    }
    Ok((info & 0xffff) as u16)
}

fn string_at(strings: &[u8], off: u32) -> Result<String, BtfError> {
    let tail = strings
        .get(off as usize..)
        .ok_or(BtfError::BadString(off))?;
    let end = tail
        .iter()
        .position(|&b| b == 0)
        .ok_or(BtfError::BadString(off))?;
    std::str::from_utf8(&tail[..end])
        .map(str::to_owned)
        .map_err(|_| BtfError::BadString(off))
}

/// A minimal BTF blob describing `int <func_name>(void *ctx)`: type 1 is `int`, 2 the
/// prototype, 3 the function (global linkage), 4 `void *`. Lets a program be loaded with a full
/// function name without a compiler (tests, and the daemon's own calibration program). The
/// parameter matters to tracing: a trampoline keeps the arguments the prototype declares, and a
/// program's context is its first.
pub fn func_btf(func_name: &str) -> Vec<u8> {
    let mut strings = vec![0u8];
    // Offsets and sizes are u32 in BTF; a blob too large for them (it never is: one name) is
    // sent with saturated fields and refused by the kernel.
    let u32_of = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
    let mut add_str = |s: &str| {
        let off = u32_of(strings.len());
        strings.extend_from_slice(s.as_bytes());
        strings.push(0);
        off
    };
    let int_name = add_str("int");
    let func_name_off = add_str(func_name);
    let ctx_name = add_str("ctx");

    let mut types = Vec::new();
    let mut push = |words: &[u32]| words.iter().for_each(|w| types.extend(w.to_ne_bytes()));
    // [1] INT "int": size 4, encoding SIGNED, 32 bits.
    push(&[int_name, KIND_INT << 24, 4, (1 << 24) | 32]);
    // [2] FUNC_PROTO returning [1], one parameter: `ctx` of type [4].
    push(&[0, (KIND_FUNC_PROTO << 24) | 1, 1, ctx_name, 4]);
    // [3] FUNC named func_name, prototype [2], linkage global (vlen 1).
    push(&[func_name_off, (KIND_FUNC << 24) | 1, 2]);
    // [4] PTR to void (type 0).
    push(&[0, KIND_PTR << 24, 0]);

    let mut blob = Vec::with_capacity(HEADER_LEN + types.len() + strings.len());
    blob.extend(MAGIC.to_ne_bytes());
    blob.extend([1u8, 0]); // version 1, no flags
    for word in [
        u32_of(HEADER_LEN),
        0,
        u32_of(types.len()),
        u32_of(types.len()),
        u32_of(strings.len()),
    ] {
        blob.extend(word.to_ne_bytes());
    }
    blob.extend(types);
    blob.extend(strings);
    blob
}

/// Type id of the function in [`func_btf`].
pub const FUNC_BTF_FUNC_ID: u32 = 3;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_types_by_id() {
        let blob = func_btf("a_rather_long_function_name");
        assert_eq!(type_name(&blob, 1).as_deref(), Ok("int"));
        assert_eq!(type_name(&blob, 2).as_deref(), Ok(""));
        assert_eq!(
            type_name(&blob, FUNC_BTF_FUNC_ID).as_deref(),
            Ok("a_rather_long_function_name")
        );
        assert_eq!(type_name(&blob, 4).as_deref(), Ok(""));
        assert_eq!(type_name(&blob, 5), Err(BtfError::NoSuchType(5)));
    }

    #[test]
    fn a_function_has_its_prototypes_parameters() {
        let blob = func_btf("f");
        assert_eq!(func_params(&blob, FUNC_BTF_FUNC_ID), Ok(1));
        assert_eq!(func_params(&blob, 1), Err(BtfError::NotAFunction(1)));
        assert_eq!(func_params(&blob, 9), Err(BtfError::NoSuchType(9)));
    }

    #[test]
    fn rejects_garbage() {
        assert_eq!(type_name(&[], 1), Err(BtfError::BadHeader));
        assert_eq!(type_name(&[0u8; 40], 1), Err(BtfError::BadHeader));
        let mut blob = func_btf("f");
        blob.truncate(30);
        assert_eq!(type_name(&blob, 1), Err(BtfError::BadHeader));
    }
}
