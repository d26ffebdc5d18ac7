//! The profile's histogram of run durations: log-linear, 16 buckets per power of two, so a
//! bucket is at most 1/16 (6.25 %) of its lower bound wide; below 32 ns every nanosecond has a
//! bucket. The fexit program files each run as [`bucket_of`] does (the two are kept equal by
//! the tests here and the guests' tests); this module reads the per-CPU copies back and
//! answers quantiles. Pure: plain values in, plain values out.

/// Sub-buckets per power of two, as a shift.
pub const SUB_BITS: u32 = 4;
const SUBS: u64 = 1 << SUB_BITS;
/// Durations are clamped below 2^40 ns (about 18 minutes).
pub const MAX_EXP: u32 = 39;
/// The largest duration filed as itself.
pub const MAX_NS: u64 = (1 << (MAX_EXP + 1)) - 1;
/// Buckets: 16 exact ones below 16 ns, then 16 for each power of two from 2^4 to 2^39.
pub const BUCKETS: usize = ((MAX_EXP - SUB_BITS + 2) as usize) << SUB_BITS;

/// The words of each CPU's value, before its buckets: the start of the run in flight, the
/// longest run, runs, their total ns.
pub const START: usize = 0;
pub const MAX: usize = 1;
pub const RUNS: usize = 2;
pub const SUM: usize = 3;
pub const HEADER_WORDS: usize = 4;
/// Bytes of one CPU's value.
pub const VALUE_BYTES: usize = 8 * (HEADER_WORDS + BUCKETS);

/// The bucket a run of `ns` is filed in: `ns` itself below 16; else, with `e` its highest bit,
/// `(e - 4) * 16 + (ns >> (e - 4))`, whose second term is between 16 and 31.
pub fn bucket_of(ns: u64) -> usize {
    let ns = ns.min(MAX_NS);
    if ns < SUBS {
        return usize::try_from(ns).unwrap_or(0);
    }
    let shift = 63 - ns.leading_zeros() - SUB_BITS;
    let index = (u64::from(shift) << SUB_BITS) + (ns >> shift);
    usize::try_from(index).unwrap_or(BUCKETS - 1)
}

/// The durations bucket `index` holds, both ends included.
pub fn bounds(index: usize) -> (u64, u64) {
    let i = index as u64;
    if i < SUBS {
        return (i, i);
    }
    let shift = (i >> SUB_BITS) - 1;
    let sub = (i & (SUBS - 1)) + SUBS;
    (sub << shift, ((sub + 1) << shift) - 1)
}

/// Every CPU's copy, added up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Histogram {
    pub runs: u64,
    pub sum_ns: u64,
    pub max_ns: u64,
    pub counts: Vec<u64>,
}

/// A per-CPU value that is not as the program writes it.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("the profile's map holds {got} bytes, not {want}")]
pub struct LayoutError {
    got: usize,
    want: usize,
}

impl Histogram {
    /// Adds up the copies of `cpus` CPUs laid out one after another (`VALUE_BYTES` each, as a
    /// per-CPU lookup returns them).
    pub fn from_per_cpu(bytes: &[u8], cpus: usize) -> Result<Self, LayoutError> {
        let want = VALUE_BYTES * cpus;
        if bytes.len() != want {
            return Err(LayoutError {
                got: bytes.len(),
                want,
            });
        }
        let mut h = Self {
            runs: 0,
            sum_ns: 0,
            max_ns: 0,
            counts: vec![0; BUCKETS],
        };
        for cpu in bytes.chunks_exact(VALUE_BYTES) {
            let words: Vec<u64> = cpu
                .chunks_exact(8)
                .map(|w| {
                    let mut b = [0u8; 8];
                    b.copy_from_slice(w);
                    u64::from_ne_bytes(b)
                })
                .collect();
            h.runs = h.runs.saturating_add(words[RUNS]);
            h.sum_ns = h.sum_ns.saturating_add(words[SUM]);
            h.max_ns = h.max_ns.max(words[MAX]);
            for (c, w) in h.counts.iter_mut().zip(&words[HEADER_WORDS..]) {
                *c = c.saturating_add(*w);
            }
        }
        Ok(h)
    }

    /// The duration at or below which a share `q` (0 to 1) of the runs fell: the upper end
    /// of the bucket holding that run, never beyond the longest run; 0 with no run.
    pub fn quantile(&self, q: f64) -> u64 {
        let total: u64 = self.counts.iter().sum();
        if total == 0 {
            return 0;
        }
        #[expect(
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss,
            clippy::cast_precision_loss,
            reason = "a rank between 1 and the runs, rounded up and clamped"
        )]
        let rank = ((q.clamp(0.0, 1.0) * total as f64).ceil() as u64).clamp(1, total);
        let mut seen = 0;
        for (i, c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return bounds(i).1.min(self.max_ns);
            }
        }
        self.max_ns
    }

    /// The buckets that hold runs: (upper end in ns, runs).
    pub fn buckets(&self) -> Vec<(u64, u64)> {
        self.counts
            .iter()
            .enumerate()
            .filter(|(_, c)| **c > 0)
            .map(|(i, c)| (bounds(i).1, *c))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_contiguous_and_at_most_a_sixteenth_wide() {
        let mut next = 0;
        for i in 0..BUCKETS {
            let (lo, hi) = bounds(i);
            assert_eq!(lo, next, "bucket {i}");
            assert!(hi >= lo);
            assert!((hi - lo) * 16 <= lo.max(1), "bucket {i}: {lo}..={hi}");
            assert_eq!((bucket_of(lo), bucket_of(hi)), (i, i));
            next = hi + 1;
        }
        assert_eq!(next, MAX_NS + 1);
        assert_eq!(bucket_of(u64::MAX), BUCKETS - 1);
        assert_eq!(BUCKETS, 592);
    }

    fn per_cpu(runs: &[(u64, u64)]) -> Vec<u8> {
        let mut words = vec![0u64; HEADER_WORDS + BUCKETS];
        for &(ns, n) in runs {
            words[HEADER_WORDS + bucket_of(ns)] += n;
            words[RUNS] += n;
            words[SUM] += ns * n;
            words[MAX] = words[MAX].max(ns);
        }
        words.iter().flat_map(|w| w.to_ne_bytes()).collect()
    }

    #[test]
    fn cpus_add_up_and_quantiles_fall_in_their_mode() {
        // 95 fast runs of 100 ns on one CPU and 5 slow ones of 3000 ns on another.
        let mut bytes = per_cpu(&[(100, 95)]);
        bytes.extend(per_cpu(&[(3000, 5)]));
        let h = Histogram::from_per_cpu(&bytes, 2).expect("layout");
        assert_eq!(
            (h.runs, h.sum_ns, h.max_ns),
            (100, 95 * 100 + 5 * 3000, 3000)
        );
        let (lo, hi) = bounds(bucket_of(100));
        assert!(lo <= 100 && 100 <= hi);
        assert_eq!(h.quantile(0.5), hi);
        assert_eq!(h.quantile(0.9), hi);
        assert_eq!(h.quantile(0.95), hi);
        assert_eq!(
            h.quantile(0.99),
            3000,
            "the slow bucket, clamped to the longest run"
        );
        assert_eq!(h.quantile(0.999), 3000);
        assert_eq!(h.buckets(), vec![(hi, 95), (bounds(bucket_of(3000)).1, 5)]);
        assert_eq!(
            Histogram::from_per_cpu(&bytes[1..], 2),
            Err(LayoutError {
                got: bytes.len() - 1,
                want: bytes.len()
            })
        );
        let empty = Histogram::from_per_cpu(&per_cpu(&[]), 1).expect("layout");
        assert_eq!((empty.quantile(0.5), empty.buckets().len()), (0, 0));
    }
}
