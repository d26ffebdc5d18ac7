//! Chunk payloads: column-wise, delta-of-delta, zero-run folded, varint-encoded by postcard.
//!
//! Every chunk is a struct of columns serialised with serde + postcard (varint integers,
//! zigzag for signed). A [`Column`] folds runs of zeros into `0, extra_run_length`, so an idle
//! program's columns cost a few bytes whatever their length, while busy data pays nothing extra.

mod chunk;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

pub use chunk::{Bucket, Delta, RawChunk, RollupChunk, TickChunk};

/// A counter stored in a signed column: its two's-complement bits, so every `u64` round-trips
/// exactly (counters never come near `i64::MAX` in practice; the encoding does not care).
pub(crate) const fn signed_bits(v: u64) -> i64 {
    v.cast_signed()
}

/// The counter whose bits `signed_bits` stored.
pub(crate) const fn bits(v: i64) -> u64 {
    v.cast_unsigned()
}

#[derive(Debug, thiserror::Error)]
#[error("corrupt chunk payload: {0}")]
pub struct CodecError(String);

impl CodecError {
    pub(crate) fn new(why: impl Into<String>) -> Self {
        Self(why.into())
    }
}

/// A column of signed integers with runs of zeros folded.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Column(pub Vec<i64>);

impl Serialize for Column {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut folded = Vec::with_capacity(self.0.len());
        let mut i = 0;
        while i < self.0.len() {
            let v = self.0[i];
            if v == 0 {
                let run = self.0[i..].iter().take_while(|&&x| x == 0).count();
                folded.push(0);
                folded.push(i64::try_from(run - 1).unwrap_or(i64::MAX));
                i += run;
            } else {
                folded.push(v);
                i += 1;
            }
        }
        folded.serialize(s)
    }
}

impl<'de> Deserialize<'de> for Column {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let folded = Vec::<i64>::deserialize(d)?;
        let mut out = Vec::with_capacity(folded.len());
        let mut it = folded.into_iter();
        while let Some(v) = it.next() {
            if v == 0 {
                let extra = it
                    .next()
                    .ok_or_else(|| serde::de::Error::custom("zero run without length"))?;
                let extra = usize::try_from(extra)
                    .ok()
                    .filter(|&n| n < 1 << 24)
                    .ok_or_else(|| serde::de::Error::custom("bad zero run length"))?;
                out.resize(out.len() + extra + 1, 0);
            } else {
                out.push(v);
            }
        }
        Ok(Self(out))
    }
}

/// Signed integers bit-packed in blocks of 16, each block as wide as its largest zigzag value.
///
/// For the counter columns of busy programs, whose deltas-of-deltas are noisy, this takes the
/// bits the values need rather than whole varint bytes (measured: 4.2 against 6.6 bytes per busy
/// program-tick on the `store` benchmark's workload). A block of zeros costs one byte.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Packed(pub Vec<i64>);

const BLOCK: usize = 16;

/// The low 64 bits of a bit accumulator.
#[expect(
    clippy::cast_possible_truncation,
    reason = "keeping the low bits is the point"
)]
const fn low_u64(acc: u128) -> u64 {
    acc as u64
}

fn zigzag(v: i64) -> u64 {
    bits((v << 1) ^ (v >> 63))
}

fn unzigzag(u: u64) -> i64 {
    signed_bits(u >> 1) ^ -signed_bits(u & 1)
}

impl Serialize for Packed {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut bytes = Vec::new();
        for block in self.0.chunks(BLOCK) {
            let zz: Vec<u64> = block.iter().map(|&v| zigzag(v)).collect();
            let width = zz
                .iter()
                .map(|&u| 64 - u.leading_zeros())
                .max()
                .unwrap_or(0);
            // At most 64.
            bytes.push(u8::try_from(width).unwrap_or(u8::MAX));
            let (mut acc, mut bits) = (0u128, 0u32);
            for u in zz {
                acc |= u128::from(u) << bits;
                bits += width;
                while bits >= 8 {
                    bytes.push(acc.to_le_bytes()[0]);
                    acc >>= 8;
                    bits -= 8;
                }
            }
            if bits > 0 {
                bytes.push(acc.to_le_bytes()[0]);
            }
        }
        let n = u32::try_from(self.0.len())
            .map_err(|_| serde::ser::Error::custom("packed column too long"))?;
        (n, bytes).serialize(s)
    }
}

impl<'de> Deserialize<'de> for Packed {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let (n, bytes) = <(u32, Vec<u8>)>::deserialize(d)?;
        let n = usize::try_from(n).map_err(|_| D::Error::custom("packed column too long"))?;
        if n > 1 << 24 {
            return Err(D::Error::custom("packed column too long"));
        }
        let mut out = Vec::with_capacity(n);
        let mut pos = 0;
        while out.len() < n {
            let width = u32::from(
                *bytes
                    .get(pos)
                    .ok_or_else(|| D::Error::custom("truncated"))?,
            );
            pos += 1;
            if width > 64 {
                return Err(D::Error::custom("bad bit width"));
            }
            let count = (n - out.len()).min(BLOCK);
            let (mut acc, mut bits) = (0u128, 0u32);
            for _ in 0..count {
                while bits < width {
                    let b = *bytes
                        .get(pos)
                        .ok_or_else(|| D::Error::custom("truncated"))?;
                    acc |= u128::from(b) << bits;
                    bits += 8;
                    pos += 1;
                }
                let mask = if width == 64 {
                    u64::MAX
                } else {
                    (1u64 << width) - 1
                };
                out.push(unzigzag(low_u64(acc) & mask));
                acc >>= width;
                bits -= width;
            }
        }
        Ok(Self(out))
    }
}

/// Delta-of-delta encoding of a sequence (first value against 0, then deltas of deltas).
pub fn dod_encode(values: impl IntoIterator<Item = i64>) -> Column {
    let (mut prev, mut prev_delta) = (0i64, 0i64);
    Column(
        values
            .into_iter()
            .map(|v| {
                let delta = v.wrapping_sub(prev);
                let dod = delta.wrapping_sub(prev_delta);
                prev = v;
                prev_delta = delta;
                dod
            })
            .collect(),
    )
}

pub fn dod_decode(column: &Column) -> Vec<i64> {
    let (mut prev, mut prev_delta) = (0i64, 0i64);
    column
        .0
        .iter()
        .map(|&dod| {
            prev_delta = prev_delta.wrapping_add(dod);
            prev = prev.wrapping_add(prev_delta);
            prev
        })
        .collect()
}

/// Delta encoding: each value against the previous one.
pub fn delta_encode(values: impl IntoIterator<Item = i64>) -> Column {
    let mut prev = 0i64;
    Column(
        values
            .into_iter()
            .map(|v| {
                let d = v.wrapping_sub(prev);
                prev = v;
                d
            })
            .collect(),
    )
}

pub fn delta_decode(column: &Column) -> Vec<i64> {
    let mut prev = 0i64;
    column
        .0
        .iter()
        .map(|&d| {
            prev = prev.wrapping_add(d);
            prev
        })
        .collect()
}

/// A chunk as stored. Fails only for a column longer than a chunk can hold (`u32::MAX`).
pub fn to_bytes<T: Serialize>(value: &T) -> Result<Vec<u8>, CodecError> {
    postcard::to_allocvec(value).map_err(|e| CodecError(e.to_string()))
}

pub fn from_bytes<'a, T: Deserialize<'a>>(bytes: &'a [u8]) -> Result<T, CodecError> {
    postcard::from_bytes(bytes).map_err(|e| CodecError(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_runs_fold() {
        let c = Column(vec![0; 3600]);
        let bytes = to_bytes(&c).expect("encode");
        assert!(bytes.len() <= 4, "{} bytes", bytes.len());
        assert_eq!(from_bytes::<Column>(&bytes).expect("decode"), c);

        let mixed = Column(vec![5, 0, 0, -3, 0, 7, 0]);
        assert_eq!(
            from_bytes::<Column>(&to_bytes(&mixed).expect("encode")).expect("decode"),
            mixed
        );
    }

    #[test]
    fn packed_round_trip_and_width() {
        let values: Vec<i64> = (0..100)
            .map(|i| {
                if i % 17 == 0 {
                    -1_000_000
                } else {
                    (i * 37) % 200 - 100
                }
            })
            .chain([i64::MAX, i64::MIN, 0])
            .collect();
        let p = Packed(values.clone());
        assert_eq!(
            from_bytes::<Packed>(&to_bytes(&p).expect("encode"))
                .expect("decode")
                .0,
            values
        );
        // 16 values within ±100 take 8 bits each, plus the width byte.
        let small = Packed((0..16).map(|i| i * 6 - 48).collect());
        assert!(
            to_bytes(&small).expect("encode").len() <= 2 + 1 + 16,
            "{}",
            to_bytes(&small).expect("encode").len()
        );
        assert!(
            from_bytes::<Packed>(&[3, 1, 64]).is_err(),
            "truncated input"
        );
    }

    #[test]
    fn dod_round_trip() {
        let values = vec![
            1_000_000_000,
            2_000_000_100,
            3_000_000_150,
            3_999_999_990,
            0,
            -5,
        ];
        assert_eq!(dod_decode(&dod_encode(values.clone())), values);
        // A steady rate costs zeros.
        let steady: Vec<i64> = (0..100).map(|i| i * 1000).collect();
        assert!(dod_encode(steady).0[2..].iter().all(|&d| d == 0));
    }
}
