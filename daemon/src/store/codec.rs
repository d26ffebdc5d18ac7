//! Chunk payloads: column-wise, delta-of-delta, zero-run folded, varint-encoded by postcard.
//!
//! Every chunk is a struct of columns serialised with serde + postcard (varint integers,
//! zigzag for signed). A [`Column`] folds runs of zeros into `0, extra_run_length`, so an idle
//! program's columns cost a few bytes whatever their length, while busy data pays nothing extra.

use serde::{Deserialize, Deserializer, Serialize, Serializer};

#[derive(Debug, thiserror::Error)]
#[error("corrupt chunk payload: {0}")]
pub struct CodecError(String);

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
                folded.push(run as i64 - 1);
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

pub fn to_bytes<T: Serialize>(value: &T) -> Vec<u8> {
    // Serialising plain integer columns into a Vec cannot fail.
    postcard::to_allocvec(value).unwrap_or_default()
}

pub fn from_bytes<'a, T: Deserialize<'a>>(bytes: &'a [u8]) -> Result<T, CodecError> {
    postcard::from_bytes(bytes).map_err(|e| CodecError(e.to_string()))
}

/// One program's samples over consecutive ticks of a flush window.
///
/// Ticks are numbered by the store; a segment covers `start_tick ..` for `layout`'s total.
/// `layout` alternates runs of ticks with a sample and runs of ticks with zero deltas, starting
/// with a sampled run. The counter deltas of sampled ticks are delta-of-delta encoded; a run of
/// identical rates costs one byte per tick per counter, an idle run costs nothing per tick.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RawChunk {
    pub layout: Vec<u32>,
    pub dcnt: Column,
    pub drt: Column,
}

/// A per-tick sample of one program: its counter deltas since the previous tick.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Delta {
    pub cnt: u64,
    pub rt: u64,
}

impl RawChunk {
    /// Builds a chunk from per-tick deltas (index = tick offset).
    pub fn from_deltas(deltas: &[Delta]) -> Self {
        let mut layout = Vec::new();
        let mut sampled = Vec::new();
        let mut i = 0;
        while i < deltas.len() {
            let busy = deltas[i..]
                .iter()
                .take_while(|d| **d != Delta::default())
                .count();
            let idle = deltas[i + busy..]
                .iter()
                .take_while(|d| **d == Delta::default())
                .count();
            layout.push(busy as u32);
            if idle > 0 {
                layout.push(idle as u32);
            }
            sampled.extend_from_slice(&deltas[i..i + busy]);
            i += busy + idle;
        }
        Self {
            layout,
            dcnt: dod_encode(sampled.iter().map(|d| d.cnt as i64)),
            drt: dod_encode(sampled.iter().map(|d| d.rt as i64)),
        }
    }

    /// Per-tick deltas, zeros included.
    pub fn deltas(&self) -> Result<Vec<Delta>, CodecError> {
        let cnt = dod_decode(&self.dcnt);
        let rt = dod_decode(&self.drt);
        if cnt.len() != rt.len() {
            return Err(CodecError("column lengths differ".into()));
        }
        let total: u64 = self.layout.iter().map(|&n| u64::from(n)).sum();
        if total > 1 << 24 {
            return Err(CodecError("layout too long".into()));
        }
        let mut out = Vec::with_capacity(total as usize);
        let mut k = 0;
        for (i, &run) in self.layout.iter().enumerate() {
            if i % 2 == 0 {
                for _ in 0..run {
                    let (c, r) = cnt
                        .get(k)
                        .zip(rt.get(k))
                        .ok_or_else(|| CodecError("layout longer than columns".into()))?;
                    out.push(Delta {
                        cnt: *c as u64,
                        rt: *r as u64,
                    });
                    k += 1;
                }
            } else {
                out.resize(out.len() + run as usize, Delta::default());
            }
        }
        Ok(out)
    }
}

/// Tick time stamps (`CLOCK_BOOTTIME`, µs) and the stats state of each tick of a flush window.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TickChunk {
    pub boottime_us: Column,
    /// (tick offset, state code) where the state changes; the first entry is at offset 0.
    pub states: Vec<(u32, u8)>,
}

/// One rollup bucket of one program: sums, peaks and sample counts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Bucket {
    /// Bucket index on the boot's time line (boottime / bucket width).
    pub index: i64,
    /// Samples (ticks) of the program in the bucket.
    pub samples: u32,
    /// Samples taken while stats were unavailable: their zeros may be frozen counters.
    pub frozen: u32,
    pub cnt: u64,
    pub rt: u64,
    /// Highest per-sample rates in the bucket: runs/s and run-time ns/s.
    pub peak_cnt_rate: u64,
    pub peak_rt_rate: u64,
}

impl Bucket {
    /// Folds `other` (a finer bucket or sample inside this one) into this bucket.
    pub fn absorb(&mut self, other: &Bucket) {
        self.samples += other.samples;
        self.frozen += other.frozen;
        self.cnt += other.cnt;
        self.rt += other.rt;
        self.peak_cnt_rate = self.peak_cnt_rate.max(other.peak_cnt_rate);
        self.peak_rt_rate = self.peak_rt_rate.max(other.peak_rt_rate);
    }
}

/// A rollup chunk: a program's buckets in one chunk period (an hour of minutes, a day of hours).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RollupChunk {
    pub index: Column,
    pub samples: Column,
    pub frozen: Column,
    pub cnt: Column,
    pub rt: Column,
    pub peak_cnt_rate: Column,
    pub peak_rt_rate: Column,
}

impl RollupChunk {
    pub fn from_buckets(buckets: &[Bucket]) -> Self {
        let col = |f: fn(&Bucket) -> i64| delta_encode(buckets.iter().map(f));
        Self {
            index: dod_encode(buckets.iter().map(|b| b.index)),
            samples: col(|b| i64::from(b.samples)),
            frozen: col(|b| i64::from(b.frozen)),
            cnt: col(|b| b.cnt as i64),
            rt: col(|b| b.rt as i64),
            peak_cnt_rate: col(|b| b.peak_cnt_rate as i64),
            peak_rt_rate: col(|b| b.peak_rt_rate as i64),
        }
    }

    pub fn buckets(&self) -> Result<Vec<Bucket>, CodecError> {
        let index = dod_decode(&self.index);
        let cols = [
            delta_decode(&self.samples),
            delta_decode(&self.frozen),
            delta_decode(&self.cnt),
            delta_decode(&self.rt),
            delta_decode(&self.peak_cnt_rate),
            delta_decode(&self.peak_rt_rate),
        ];
        if cols.iter().any(|c| c.len() != index.len()) {
            return Err(CodecError("rollup columns differ in length".into()));
        }
        Ok((0..index.len())
            .map(|i| Bucket {
                index: index[i],
                samples: cols[0][i] as u32,
                frozen: cols[1][i] as u32,
                cnt: cols[2][i] as u64,
                rt: cols[3][i] as u64,
                peak_cnt_rate: cols[4][i] as u64,
                peak_rt_rate: cols[5][i] as u64,
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_runs_fold() {
        let c = Column(vec![0; 3600]);
        let bytes = to_bytes(&c);
        assert!(bytes.len() <= 4, "{} bytes", bytes.len());
        assert_eq!(from_bytes::<Column>(&bytes).expect("decode"), c);

        let mixed = Column(vec![5, 0, 0, -3, 0, 7, 0]);
        assert_eq!(
            from_bytes::<Column>(&to_bytes(&mixed)).expect("decode"),
            mixed
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

    #[test]
    fn raw_chunk_round_trip_and_size() {
        let d = |cnt, rt| Delta { cnt, rt };
        let deltas = vec![
            d(0, 0),
            d(10, 500),
            d(11, 520),
            d(0, 0),
            d(0, 0),
            d(9, 480),
            d(0, 0),
        ];
        let chunk = RawChunk::from_deltas(&deltas);
        assert_eq!(chunk.layout, vec![0, 1, 2, 2, 1, 1]);
        let back: RawChunk = from_bytes(&to_bytes(&chunk)).expect("decode");
        assert_eq!(back.deltas().expect("deltas"), deltas);

        let idle = RawChunk::from_deltas(&[Delta::default(); 60]);
        assert!(to_bytes(&idle).len() <= 6);
    }

    #[test]
    fn rollup_round_trip() {
        let buckets: Vec<Bucket> = (0..60)
            .map(|i| Bucket {
                index: 1000 + i,
                samples: 60,
                frozen: 0,
                cnt: if i % 7 == 0 { 0 } else { 6000 + i as u64 },
                rt: 123_456 * i as u64,
                peak_cnt_rate: 120,
                peak_rt_rate: 99,
            })
            .collect();
        let chunk = RollupChunk::from_buckets(&buckets);
        let back: RollupChunk = from_bytes(&to_bytes(&chunk)).expect("decode");
        assert_eq!(back.buckets().expect("buckets"), buckets);
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert!(from_bytes::<RawChunk>(&[0xff, 0xff, 0xff]).is_err());
        let bad = RawChunk {
            layout: vec![5],
            dcnt: Column(vec![1]),
            drt: Column(vec![1]),
        };
        assert!(bad.deltas().is_err());
    }
}
