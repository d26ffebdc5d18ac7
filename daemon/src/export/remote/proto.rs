//! Prometheus remote write 1.0's `WriteRequest`, encoded as the families are written: a
//! [`Sink`] that turns each run of samples with the same labels into one `TimeSeries`. Pure.
//!
//! Hand-encoded: the request is three small messages (`TimeSeries`, `Label`, `Sample`), a few
//! dozen lines of protobuf's wire format, where `prost` brings a derive and a build step.
//!
//! ```text
//! WriteRequest { repeated TimeSeries timeseries = 1; }
//! TimeSeries   { repeated Label labels = 1; repeated Sample samples = 2; }
//! Label        { string name = 1; string value = 2; }
//! Sample       { double value = 1; int64 timestamp = 2; }   // milliseconds since the epoch
//! ```

use ebpfstat_numbers::WallNs;

use crate::export::text::{Family, Sink, Value};

/// Field 1 or 2, length-delimited (wire type 2).
const LEN_1: u8 = (1 << 3) | 2;
const LEN_2: u8 = (2 << 3) | 2;
/// Field 1, 64-bit (a double), and field 2, a varint.
const FIXED64_1: u8 = (1 << 3) | 1;
const VARINT_2: u8 = 2 << 3;

/// A `WriteRequest` being written: whole series go to `out`, the series being written waits in
/// `labels` and `samples` until a sample with other labels (or [`Request::finish`]) ends it.
#[derive(Debug)]
pub struct Request<'a> {
    out: Vec<u8>,
    /// The device's labels, sorted by name, added to every series.
    device: &'a [(String, String)],
    /// The current series' encoded labels and samples.
    labels: Vec<u8>,
    samples: Vec<u8>,
    /// Time (ms) given to samples written without one (the live families).
    now_ms: i64,
    /// The current series' last sample time (ms): a sample not after it is left out, as a
    /// series' samples must go in time order and an engine refuses two at one time.
    last_ms: Option<i64>,
    /// Families not written (those sent from the stored history instead).
    skip: &'a [&'static str],
    skipping: bool,
    pub samples_written: u64,
}

impl<'a> Request<'a> {
    /// `device`: labels every series carries, sorted by name; `now_ms`: the time of samples
    /// written without one; families named in `skip` are left out.
    pub fn new(device: &'a [(String, String)], now_ms: i64, skip: &'a [&'static str]) -> Self {
        Self {
            out: Vec::new(),
            device,
            labels: Vec::new(),
            samples: Vec::new(),
            now_ms,
            last_ms: None,
            skip,
            skipping: false,
            samples_written: 0,
        }
    }

    /// The encoded request (not yet compressed).
    pub fn finish(mut self) -> Vec<u8> {
        self.end_series();
        self.out
    }

    fn end_series(&mut self) {
        if !self.samples.is_empty() {
            let len = self.labels.len() + self.samples.len();
            self.out.push(LEN_1);
            varint(&mut self.out, len as u64);
            self.out.append(&mut self.labels);
            self.out.append(&mut self.samples);
        }
        self.labels.clear();
        self.samples.clear();
        self.last_ms = None;
    }

    /// The labels of a sample, encoded, sorted by name as the protocol asks.
    fn encode_labels(&self, name: &str, labels: &[(&str, &str)]) -> Vec<u8> {
        let mut all: Vec<(&str, &str)> = Vec::with_capacity(1 + labels.len() + self.device.len());
        all.push(("__name__", name));
        all.extend(labels.iter().copied());
        all.extend(self.device.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        all.sort_unstable_by(|a, b| a.0.cmp(b.0));
        let mut out = Vec::new();
        for (k, v) in all {
            let len =
                2 + varint_len(k.len() as u64) + k.len() + varint_len(v.len() as u64) + v.len();
            out.push(LEN_1);
            varint(&mut out, len as u64);
            bytes(&mut out, LEN_1, k.as_bytes());
            bytes(&mut out, LEN_2, v.as_bytes());
        }
        out
    }
}

impl Sink for Request<'_> {
    fn family(&mut self, f: &Family) {
        self.skipping = self.skip.contains(&f.name);
    }

    fn sample(&mut self, f: &Family, labels: &[(&str, &str)], value: Value, at_ns: Option<i64>) {
        if self.skipping {
            return;
        }
        let name = format!("{}{}", f.name, f.suffix());
        let encoded = self.encode_labels(&name, labels);
        if encoded != self.labels {
            self.end_series();
            self.labels = encoded;
        }
        let ms = at_ns.map_or(self.now_ms, |ns| WallNs::from_ns(ns).millis());
        if self.last_ms.is_some_and(|last| ms <= last) {
            return;
        }
        self.last_ms = Some(ms);
        #[expect(clippy::cast_precision_loss, reason = "a sample's value is a double")]
        let v = match value {
            Value::Int(v) => v as f64,
            Value::Float(v) => v,
        };
        let mut sample = Vec::with_capacity(20);
        sample.push(FIXED64_1);
        sample.extend_from_slice(&v.to_le_bytes());
        sample.push(VARINT_2);
        // int64 is a varint of the two's complement (ten bytes when negative).
        varint(&mut sample, ms.cast_unsigned());
        self.samples.push(LEN_2);
        varint(&mut self.samples, sample.len() as u64);
        self.samples.extend_from_slice(&sample);
        self.samples_written += 1;
    }
}

fn varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        #[expect(clippy::cast_possible_truncation, reason = "the low 7 bits")]
        out.push((v as u8 & 0x7f) | 0x80);
        v >>= 7;
    }
    #[expect(clippy::cast_possible_truncation, reason = "below 0x80")]
    out.push(v as u8);
}

fn varint_len(v: u64) -> usize {
    let bits = 64 - (v | 1).leading_zeros() as usize;
    bits.div_ceil(7)
}

fn bytes(out: &mut Vec<u8>, key: u8, b: &[u8]) {
    out.push(key);
    varint(out, b.len() as u64);
    out.extend_from_slice(b);
}

#[cfg(test)]
mod tests {
    use super::*;

    const RUNS: Family = Family::counter("runs", "Runs.");
    const UP: Family = Family::gauge("up", "Up.");

    #[test]
    fn varints_as_protobuf_writes_them() {
        let enc = |v| {
            let mut out = Vec::new();
            varint(&mut out, v);
            out
        };
        assert_eq!(enc(0), [0]);
        assert_eq!(enc(1), [1]);
        assert_eq!(enc(300), [0xac, 0x02]);
        assert_eq!(enc(u64::MAX).len(), 10);
        for v in [0, 1, 127, 128, 300, 1 << 35, u64::MAX] {
            assert_eq!(varint_len(v), enc(v).len(), "{v}");
        }
    }

    type Series = (Vec<(String, String)>, Vec<(f64, i64)>);

    fn read_varint(b: &[u8], at: &mut usize) -> u64 {
        let mut v = 0;
        for shift in (0..64).step_by(7) {
            let byte = b[*at];
            *at += 1;
            v |= u64::from(byte & 0x7f) << shift;
            if byte < 0x80 {
                break;
            }
        }
        v
    }

    /// The fields of a message: (key, bytes of a length-delimited field or of the value).
    fn fields(b: &[u8]) -> Vec<(u8, &[u8])> {
        let (mut at, mut out) = (0, Vec::new());
        while at < b.len() {
            let key = b[at];
            at += 1;
            let len = match key & 7 {
                2 => usize::try_from(read_varint(b, &mut at)).expect("len"),
                1 => 8,
                _ => {
                    let start = at;
                    read_varint(b, &mut at);
                    let n = at - start;
                    at = start;
                    n
                }
            };
            out.push((key, &b[at..at + len]));
            at += len;
        }
        out
    }

    /// A request decoded as a receiver reads it.
    pub(crate) fn decode(b: &[u8]) -> Vec<Series> {
        let text = |b: &[u8]| String::from_utf8(b.to_vec()).expect("utf-8");
        fields(b)
            .into_iter()
            .map(|(_, ts)| {
                let (mut labels, mut samples) = (Vec::new(), Vec::new());
                for (key, f) in fields(ts) {
                    let inner = fields(f);
                    if key == LEN_1 {
                        labels.push((text(inner[0].1), text(inner[1].1)));
                    } else {
                        let v = f64::from_le_bytes(inner[0].1.try_into().expect("8 bytes"));
                        let ms = read_varint(inner[1].1, &mut 0).cast_signed();
                        samples.push((v, ms));
                    }
                }
                (labels, samples)
            })
            .collect()
    }

    fn labels(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn one_series_with_sorted_labels_and_samples_in_time_order() {
        let device = labels(&[("device", "e1")]);
        let mut r = Request::new(&device, 0, &[]);
        r.family(&RUNS);
        r.sample(&RUNS, &[("id", "7")], Value::Int(5), Some(1_000_000_000));
        r.sample(&RUNS, &[("id", "7")], Value::Int(6), Some(2_000_999_999));
        // Not after the last: left out.
        r.sample(&RUNS, &[("id", "7")], Value::Int(7), Some(2_000_000_000));
        r.sample(&RUNS, &[("id", "7")], Value::Int(7), Some(-1_500_000));
        assert_eq!(r.samples_written, 2);
        let got = decode(&r.finish());
        let want = labels(&[("__name__", "runs_total"), ("device", "e1"), ("id", "7")]);
        assert_eq!(got, vec![(want, vec![(5.0, 1000), (6.0, 2000)])]);
    }

    #[test]
    fn other_labels_start_another_series_and_skipped_families_are_left_out() {
        let mut r = Request::new(&[], 42_000, &["runs"]);
        r.family(&RUNS);
        r.sample(&RUNS, &[("id", "1")], Value::Int(1), None);
        r.family(&UP);
        r.sample(&UP, &[("id", "1")], Value::Int(1), None);
        r.sample(&UP, &[("id", "2")], Value::Float(0.5), Some(-2_000_000));
        assert_eq!(r.samples_written, 2);
        let got = decode(&r.finish());
        assert_eq!(
            got,
            vec![
                (
                    labels(&[("__name__", "up"), ("id", "1")]),
                    vec![(1.0, 42_000)]
                ),
                (labels(&[("__name__", "up"), ("id", "2")]), vec![(0.5, -2)]),
            ]
        );
    }
}
