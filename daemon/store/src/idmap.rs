//! Hash maps keyed by kernel ids (program and map ids, load times): the kernel hands these out
//! as small increasing integers, so a multiply-rotate hash (as rustc's FxHash) spreads them as
//! well as SipHash does, at a fraction of its cost on every program of every pass.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

#[derive(Debug, Default, Clone, Copy)]
pub struct IdHasher(u64);

const K: u64 = 0x517c_c1b7_2722_0a95;

impl IdHasher {
    fn add(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(K);
    }
}

impl Hasher for IdHasher {
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.add(u64::from_le_bytes(word));
        }
    }

    fn write_u32(&mut self, v: u32) {
        self.add(u64::from(v));
    }

    fn write_u64(&mut self, v: u64) {
        self.add(v);
    }

    fn write_i64(&mut self, v: i64) {
        self.add(v.cast_unsigned());
    }

    fn write_usize(&mut self, v: usize) {
        self.add(v as u64);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

/// A `HashMap` for kernel-id keys.
pub type IdMap<K, V> = HashMap<K, V, BuildHasherDefault<IdHasher>>;

/// Gives back the room of entries that left, once most have: after thousands of short-lived
/// programs, memory follows the programs loaded now, not the most ever loaded at once.
pub fn shrink_after_removals<K: Eq + std::hash::Hash, V>(map: &mut IdMap<K, V>) {
    if map.capacity() > 4 * map.len() + 64 {
        map.shrink_to(2 * map.len());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequential_ids_spread_over_buckets() {
        use std::hash::BuildHasher;
        let b = BuildHasherDefault::<IdHasher>::default();
        let mut low_bits = std::collections::HashSet::new();
        for id in 1000u32..1256 {
            low_bits.insert(b.hash_one(id) >> 56);
        }
        // 256 consecutive ids land in most of 256 top-byte buckets.
        assert!(low_bits.len() > 150, "{}", low_bits.len());
        let mut m: IdMap<(u32, u64), u32> = IdMap::default();
        m.insert((7, 42), 1);
        assert_eq!(m.get(&(7, 42)), Some(&1));
    }
}
