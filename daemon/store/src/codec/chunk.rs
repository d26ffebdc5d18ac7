//! The chunk payloads built on the columns: raw segments (with the predictor their residuals
//! come from), tick windows, and rollup buckets.

use serde::{Deserialize, Serialize};

use super::{
    CodecError, Column, Packed, bits, delta_decode, delta_encode, dod_decode, dod_encode,
    signed_bits,
};

/// A float prediction rounded to an integer (`as` saturates, and NaN is 0: the encoder and the
/// decoder compute the same value either way).
#[expect(
    clippy::cast_possible_truncation,
    reason = "saturating by design, see above"
)]
fn round_i64(v: f64) -> i64 {
    v.round() as i64
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
    pub dcnt: Packed,
    pub drt: Packed,
}

/// Predicts a busy program's next deltas from smoothed history: its run rate, and its run
/// time as that many runs at its recent average cost. Only the residuals are stored; they are
/// about half the size of deltas-of-deltas because per-tick noise is not differenced twice.
/// Encoder and decoder run the same IEEE-754 arithmetic on the same integers, so they agree.
#[derive(Debug, Default)]
struct Predictor {
    cnt: Option<f64>,
    avg_ns: Option<f64>,
}

impl Predictor {
    const ALPHA: f64 = 0.25;

    /// Predicted (runs, run time) for a tick with `runs` runs (the run time is predicted once
    /// the runs are known).
    fn predict(&self, runs: u64) -> (i64, i64) {
        let c = self.cnt.map_or(0, round_i64);
        let r = self.avg_ns.map_or(0, |a| round_i64(a * runs as f64));
        (c, r)
    }

    fn learn(&mut self, d: Delta) {
        let smooth = |old: Option<f64>, x: f64| Some(old.map_or(x, |o| o + Self::ALPHA * (x - o)));
        self.cnt = smooth(self.cnt, d.cnt as f64);
        if d.cnt > 0 {
            self.avg_ns = smooth(self.avg_ns, d.rt as f64 / d.cnt as f64);
        }
    }
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
            // Runs are bounded by a flush window's ticks, far below u32::MAX.
            layout.push(u32::try_from(busy).unwrap_or(u32::MAX));
            if idle > 0 {
                layout.push(u32::try_from(idle).unwrap_or(u32::MAX));
            }
            sampled.extend_from_slice(&deltas[i..i + busy]);
            i += busy + idle;
        }
        Self {
            layout,
            dcnt: Packed(Vec::new()),
            drt: Packed(Vec::new()),
        }
        .with_residuals(&sampled)
    }

    fn with_residuals(mut self, sampled: &[Delta]) -> Self {
        let mut p = Predictor::default();
        for d in sampled {
            let (pc, pr) = p.predict(d.cnt);
            self.dcnt.0.push(signed_bits(d.cnt).wrapping_sub(pc));
            self.drt.0.push(signed_bits(d.rt).wrapping_sub(pr));
            p.learn(*d);
        }
        self
    }

    /// Per-tick deltas, zeros included.
    pub fn deltas(&self) -> Result<Vec<Delta>, CodecError> {
        if self.dcnt.0.len() != self.drt.0.len() {
            return Err(CodecError("column lengths differ".into()));
        }
        let mut p = Predictor::default();
        let (mut cnt, mut rt) = (Vec::new(), Vec::new());
        for (&rc, &rr) in self.dcnt.0.iter().zip(&self.drt.0) {
            let c = bits(p.predict(0).0.wrapping_add(rc));
            let r = bits(p.predict(c).1.wrapping_add(rr));
            p.learn(Delta { cnt: c, rt: r });
            cnt.push(c);
            rt.push(r);
        }
        let total: u64 = self.layout.iter().map(|&n| u64::from(n)).sum();
        if total > 1 << 24 {
            return Err(CodecError("layout too long".into()));
        }
        let total = usize::try_from(total).map_err(|_| CodecError("layout too long".into()))?;
        let mut out = Vec::with_capacity(total);
        let mut k = 0;
        for (i, &run) in self.layout.iter().enumerate() {
            if i % 2 == 0 {
                for _ in 0..run {
                    let (c, r) = cnt
                        .get(k)
                        .zip(rt.get(k))
                        .ok_or_else(|| CodecError("layout longer than columns".into()))?;
                    out.push(Delta { cnt: *c, rt: *r });
                    k += 1;
                }
            } else {
                let run = usize::try_from(run).map_err(|_| CodecError("run too long".into()))?;
                out.resize(out.len() + run, Delta::default());
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
    /// Per tick, the share of its interval with stats on, per mille, delta-encoded (a steady
    /// duty cycle costs nothing). Absent in files written before duty-cycling.
    #[serde(default)]
    pub coverage_pm: Column,
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
    /// Σ of the samples' coverage (per mille): stats were on for `covered / samples / 1000` of
    /// the bucket's time; the counts are what was observed in that time.
    pub covered: u64,
    /// Σ of the samples' measured intervals, µs: the time the counts cover. The bucket's width
    /// normally; more when a pass came late (its interval is the whole stall); 0 when unknown
    /// (rollups written before it was stored).
    pub span_us: u64,
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
        self.covered += other.covered;
        self.span_us += other.span_us;
    }

    /// Share of the bucket's time with stats on (1 when fully covered or empty).
    pub fn coverage(&self) -> f64 {
        if self.samples == 0 {
            1.0
        } else {
            (self.covered as f64 / (f64::from(self.samples) * 1000.0)).min(1.0)
        }
    }
}

/// Rollup spans are kept in tenths of a second: steady passes then give the same value in
/// every bucket (a delta of 0, folded away), where microseconds would cost a byte of jitter per
/// bucket and program.
const SPAN_UNIT_US: u64 = 100_000;

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
    pub covered: Column,
    /// [`Bucket::span_us`] in [`SPAN_UNIT_US`]; absent from chunks written before it was kept.
    pub span: Column,
}

/// A rollup chunk as written before spans were kept.
#[derive(Debug, Deserialize)]
struct RollupChunkV1 {
    index: Column,
    samples: Column,
    frozen: Column,
    cnt: Column,
    rt: Column,
    peak_cnt_rate: Column,
    peak_rt_rate: Column,
    covered: Column,
}

impl RollupChunk {
    pub fn from_buckets(buckets: &[Bucket]) -> Self {
        let col = |f: fn(&Bucket) -> i64| delta_encode(buckets.iter().map(f));
        Self {
            index: dod_encode(buckets.iter().map(|b| b.index)),
            samples: col(|b| i64::from(b.samples)),
            frozen: col(|b| i64::from(b.frozen)),
            cnt: col(|b| signed_bits(b.cnt)),
            rt: col(|b| signed_bits(b.rt)),
            peak_cnt_rate: col(|b| signed_bits(b.peak_cnt_rate)),
            peak_rt_rate: col(|b| signed_bits(b.peak_rt_rate)),
            covered: col(|b| signed_bits(b.covered)),
            span: col(|b| signed_bits(b.span_us.saturating_add(SPAN_UNIT_US / 2) / SPAN_UNIT_US)),
        }
    }

    /// Decodes a stored chunk, of this layout or the one before spans.
    pub fn decode(bytes: &[u8]) -> Result<Self, CodecError> {
        // postcard is positional: a chunk without spans ends where the span column would start.
        super::from_bytes::<Self>(bytes).or_else(|e| {
            let v1: RollupChunkV1 = super::from_bytes(bytes).map_err(|_| e)?;
            let buckets = dod_decode(&v1.index).len();
            Ok(Self {
                index: v1.index,
                samples: v1.samples,
                frozen: v1.frozen,
                cnt: v1.cnt,
                rt: v1.rt,
                peak_cnt_rate: v1.peak_cnt_rate,
                peak_rt_rate: v1.peak_rt_rate,
                covered: v1.covered,
                span: Column(vec![0; buckets]),
            })
        })
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
            delta_decode(&self.covered),
            delta_decode(&self.span),
        ];
        if cols.iter().any(|c| c.len() != index.len()) {
            return Err(CodecError("rollup columns differ in length".into()));
        }
        let count = |v: i64| {
            u32::try_from(v).map_err(|_| CodecError(format!("sample count {v} out of range")))
        };
        (0..index.len())
            .map(|i| {
                Ok(Bucket {
                    index: index[i],
                    samples: count(cols[0][i])?,
                    frozen: count(cols[1][i])?,
                    cnt: bits(cols[2][i]),
                    rt: bits(cols[3][i]),
                    peak_cnt_rate: bits(cols[4][i]),
                    peak_rt_rate: bits(cols[5][i]),
                    covered: bits(cols[6][i]),
                    span_us: bits(cols[7][i]).saturating_mul(SPAN_UNIT_US),
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::{from_bytes, to_bytes};

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
        let back: RawChunk = from_bytes(&to_bytes(&chunk).expect("encode")).expect("decode");
        assert_eq!(back.deltas().expect("deltas"), deltas);

        let idle = RawChunk::from_deltas(&[Delta::default(); 60]);
        assert!(to_bytes(&idle).expect("encode").len() <= 8);
    }

    #[test]
    fn rollup_round_trip() {
        let buckets: Vec<Bucket> = (0..60u64)
            .map(|i| Bucket {
                index: 1000 + i.cast_signed(),
                samples: 60,
                frozen: 0,
                cnt: if i % 7 == 0 { 0 } else { 6000 + i },
                rt: 123_456 * i,
                peak_cnt_rate: 120,
                peak_rt_rate: 99,
                covered: 60_000 - i,
                span_us: if i == 30 { 91_000_000 } else { 60_000_000 },
            })
            .collect();
        let chunk = RollupChunk::from_buckets(&buckets);
        let bytes = to_bytes(&chunk).expect("encode");
        let back = RollupChunk::decode(&bytes).expect("decode");
        assert_eq!(back.buckets().expect("buckets"), buckets);

        // Steady spans cost nothing; the stall costs its two changes.
        let spans = to_bytes(&chunk.span).expect("encode").len();
        assert!(spans <= 12, "{spans} bytes of spans");

        // A chunk written before spans: read with unknown spans.
        let old = RollupChunk {
            span: Column(Vec::new()),
            ..chunk
        };
        let mut bytes = to_bytes(&old).expect("encode");
        bytes.pop(); // the empty span column's length
        let back = RollupChunk::decode(&bytes).expect("decode an old chunk");
        let got = back.buckets().expect("buckets");
        assert!(got.iter().all(|b| b.span_us == 0));
        assert_eq!(got[5].cnt, buckets[5].cnt);
        assert!(RollupChunk::decode(&bytes[..bytes.len() - 3]).is_err());
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert!(from_bytes::<RawChunk>(&[0xff, 0xff, 0xff]).is_err());
        let bad = RawChunk {
            layout: vec![5],
            dcnt: Packed(vec![1]),
            drt: Packed(vec![1]),
        };
        assert!(bad.deltas().is_err());
    }
}
