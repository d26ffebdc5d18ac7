//! Human units and small text graphics: pure functions, but for one switch: `--exact` prints
//! whole numbers as they are (as bpftool does) instead of rounded with a suffix.

use std::sync::atomic::{AtomicBool, Ordering};

use ebpfstat_numbers::text as units;

static EXACT: AtomicBool = AtomicBool::new(false);

/// Exact numbers from now on (`--exact`, and `show`).
pub fn set_exact(on: bool) {
    EXACT.store(on, Ordering::Relaxed);
}

fn exact() -> bool {
    EXACT.load(Ordering::Relaxed)
}

/// `850ns`, `12.3µs`, `4.56ms`, `1.20s`, `3m05s`; whole ns with `--exact`.
pub fn ns(v: f64) -> String {
    if exact() && v.is_finite() && v >= 0.0 {
        return format!("{}ns", units::round_u64(v));
    }
    units::ns(v)
}

/// `512B`, `4.0KiB`, `12.5MiB`, `1.20GiB`; whole bytes with `--exact`.
pub fn bytes(v: u64) -> String {
    if exact() {
        return format!("{v}B");
    }
    units::bytes(v as f64)
}

/// Counts with SI suffixes: `950`, `12.3k`, `4.56M`, `1.23G`; as they are with `--exact`.
pub fn count(v: f64) -> String {
    match v {
        v if exact() && v.is_finite() && v.fract() == 0.0 => format!("{}", units::round_u64(v)),
        v if exact() && v.is_finite() => format!("{v:.3}"),
        v => units::count(v),
    }
}

pub use units::pct;

/// A one-line chart of `values` (scaled to their maximum), one block per value.
pub fn sparkline(values: &[f64]) -> String {
    sparkline_to(values, values.iter().copied().fold(0.0_f64, f64::max))
}

/// A one-line chart of `values` scaled to `max` (a full block), one block per value.
pub fn sparkline_to(values: &[f64], max: f64) -> String {
    const BLOCKS: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];
    values
        .iter()
        .map(|&v| {
            if max <= 0.0 || !v.is_finite() || v <= 0.0 {
                ' '
            } else {
                let i = usize::try_from(units::round_u64((v / max) * 7.0)).unwrap_or(7);
                BLOCKS[i.min(7)]
            }
        })
        .collect()
}

/// A step series (each `(time_ns, value)` holds until the next; negative: not known) as
/// `width` columns across `[from, to]`: each column the value held at its end (0 before the
/// first point, and where not known).
pub fn step_columns(points: &[(i64, i64)], (from, to): (i64, i64), width: usize) -> Vec<f64> {
    let span = i128::from((to - from).max(1));
    let columns = i128::try_from(width).unwrap_or(i128::MAX).max(1);
    (1..=columns)
        .map(|col| {
            // The column's end: at most `to`, so it fits.
            let at = i64::try_from(i128::from(from) + span * col / columns).unwrap_or(to);
            points
                .iter()
                .take_while(|p| p.0 <= at)
                .last()
                .map_or(0.0, |p| p.1.max(0) as f64)
        })
        .collect()
}

/// Averages `values` into at most `width` buckets, for a chart that fits the terminal.
pub fn downsample(values: &[f64], width: usize) -> Vec<f64> {
    if values.len() <= width || width == 0 {
        return values.to_vec();
    }
    (0..width)
        .map(|i| {
            let lo = i * values.len() / width;
            let hi = ((i + 1) * values.len() / width).max(lo + 1);
            values[lo..hi].iter().sum::<f64>() / (hi - lo) as f64
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_step_series_fills_columns_with_what_was_held() {
        // 5 from 10 s, 9 from 30 s, unknown from 35 s; four columns over 0..40 s.
        let s = 1_000_000_000;
        let points = [(10 * s, 5), (30 * s, 9), (35 * s, -1)];
        assert_eq!(step_columns(&points, (0, 40 * s), 4), [5.0, 5.0, 9.0, 0.0]);
        assert_eq!(sparkline_to(&[0.0, 50.0, 100.0], 100.0), " ▅█");
    }

    #[test]
    fn durations() {
        assert_eq!(ns(850.0), "850ns");
        assert_eq!(ns(12_345.0), "12.3µs");
        assert_eq!(ns(4_560_000.0), "4.56ms");
        assert_eq!(ns(1.2e9), "1.20s");
        assert_eq!(ns(185e9), "3m05s");
        assert_eq!(ns(-1.0), "-");
    }

    #[test]
    fn sizes_counts_percent() {
        assert_eq!(bytes(512), "512B");
        assert_eq!(bytes(4096), "4.0KiB");
        assert_eq!(bytes(13_107_200), "12.5MiB");
        assert_eq!(count(950.0), "950");
        assert_eq!(count(12_300.0), "12.3k");
        assert_eq!(pct(0.0), "0%");
        assert_eq!(pct(0.004), "0.0040%");
        assert_eq!(pct(1.25), "1.25%");
        assert_eq!(pct(87.4), "87%");
    }

    #[test]
    fn charts() {
        assert_eq!(sparkline(&[0.0, 1.0, 2.0, 4.0, 8.0]), " ▂▃▅█");
        assert_eq!(sparkline(&[0.0, 0.0]), "  ");
        assert_eq!(downsample(&[1.0, 3.0, 5.0, 7.0], 2), vec![2.0, 6.0]);
        assert_eq!(downsample(&[1.0], 5), vec![1.0]);
    }
}
