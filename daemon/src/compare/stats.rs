//! Did a program's cost per run change between two versions? The Hodges–Lehmann estimate of the
//! ratio, with its distribution-free 95 % interval (Moses' method from the Mann–Whitney rank
//! test), on the logarithms of per-step average costs.
//!
//! Why this test: the kernel gives only sums, so the samples are per-step averages; those are
//! skewed and have outliers (a cold cache, an interrupt in a step), which a mean and a t
//! interval would follow. A rank method needs no distribution; on logarithms its shift is a
//! ratio ("35 % slower"), and the interval comes with it. The interval sees only the noise
//! within each version's steps, which follow one another and are not independent; two loads
//! of the same code also differ by a few ns per run (up to 7 ns measured on a 40 ns filter, with
//! intervals reaching 11 ns:
//! the JIT image's placement, the timer around each run). So a change is called significant
//! only when its whole interval lies beyond [`MIN_EFFECT`] and [`MIN_EFFECT_NS`].

/// The fewest steps on each side to judge.
pub const MIN_STEPS: usize = 8;
/// Samples kept per side (the newest): the pairwise differences grow as their product.
pub const MAX_STEPS: usize = 400;
/// A change must be at least this (5 %) beyond its interval's reach to be called significant,
/// and at least this many ns per run (the API's, so a client can say it).
pub use ebpfstat_dbus::{COMPARE_MIN_EFFECT as MIN_EFFECT, COMPARE_MIN_EFFECT_NS as MIN_EFFECT_NS};
/// The normal quantile of a two-sided 95 % interval.
const Z95: f64 = 1.959_964;

/// `after / before` of cost per run, with its 95 % interval.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Shift {
    pub ratio: f64,
    pub low: f64,
    pub high: f64,
    /// The interval lies wholly beyond the smallest effect that counts (see [`min_effect`]).
    pub significant: bool,
}

/// The smallest relative change that counts for a program costing `before_ns` per run.
pub fn min_effect(before_ns: f64) -> f64 {
    if before_ns > 0.0 {
        MIN_EFFECT.max(MIN_EFFECT_NS / before_ns)
    } else {
        MIN_EFFECT
    }
}

/// The shift from `before` to `after` (positive, finite values; others are ignored), called
/// significant beyond `effect` (relative, see [`min_effect`]), or `None` with fewer than
/// [`MIN_STEPS`] on a side.
pub fn shift(before: &[f64], after: &[f64], effect: f64) -> Option<Shift> {
    let logs = |v: &[f64]| -> Vec<f64> {
        let kept: Vec<f64> = v
            .iter()
            .filter(|x| x.is_finite() && **x > 0.0)
            .map(|x| x.ln())
            .collect();
        let skip = kept.len().saturating_sub(MAX_STEPS);
        kept[skip..].to_vec()
    };
    let (b, a) = (logs(before), logs(after));
    if b.len() < MIN_STEPS || a.len() < MIN_STEPS {
        return None;
    }
    let mut diffs: Vec<f64> = Vec::with_capacity(a.len() * b.len());
    for y in &a {
        diffs.extend(b.iter().map(|x| y - x));
    }
    ebpfstat_numbers::order::sort_by_key(&mut diffs, |x| {
        (ebpfstat_numbers::order::float_key(*x), 0)
    });
    let n = diffs.len();
    let median = if n % 2 == 1 {
        diffs[n / 2]
    } else {
        (diffs[n / 2 - 1] + diffs[n / 2]) / 2.0
    };
    let (n1, n2) = (b.len() as f64, a.len() as f64);
    let reach = Z95 * (n1 * n2 * (n1 + n2 + 1.0) / 12.0).sqrt();
    #[expect(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        reason = "a rank between 0 and n1·n2/2, floored; clamped to the differences' range"
    )]
    // Moses: the interval runs from the K-th to the (n1·n2 − K + 1)-th difference (1-based),
    // K = n1·n2/2 − z·sd rounded; 0-based, from K − 1.
    let k = ((n1 * n2 / 2.0 - reach - 0.5).floor().max(0.0) as usize).min(n - 1);
    let (low, high) = (diffs[k].exp(), diffs[n - 1 - k].exp());
    // Symmetric in percent: +5 % slower or 5 % faster.
    let significant = low > 1.0 + effect || high < 1.0 - effect;
    Some(Shift {
        ratio: median.exp(),
        low,
        high,
        significant,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Deterministic noise in [0.9, 1.1), with a rare outlier.
    fn noisy(base: f64, n: usize, seed: u64) -> Vec<f64> {
        let mut x = seed;
        (0..n)
            .map(|i| {
                x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
                let u = (x >> 11) as f64 / (1u64 << 53) as f64;
                let outlier = if i % 37 == 0 { 5.0 } else { 1.0 };
                base * (0.9 + 0.2 * u) * outlier
            })
            .collect()
    }

    #[test]
    fn a_35_percent_slowdown_is_found_inside_its_interval_despite_outliers() {
        let s = shift(&noisy(100.0, 200, 1), &noisy(135.0, 200, 2), MIN_EFFECT).expect("enough");
        assert!((s.ratio - 1.35).abs() < 0.03, "{s:?}");
        assert!(s.low < 1.35 && 1.35 < s.high, "{s:?}");
        assert!(s.significant);
        let faster =
            shift(&noisy(135.0, 200, 3), &noisy(100.0, 200, 4), MIN_EFFECT).expect("enough");
        assert!(faster.significant && faster.high < 1.0, "{faster:?}");
    }

    #[test]
    fn the_same_cost_is_no_significant_change() {
        let s = shift(&noisy(80.0, 150, 5), &noisy(80.0, 150, 6), MIN_EFFECT).expect("enough");
        assert!(s.low < 1.0 && 1.0 < s.high, "{s:?}");
        assert!(!s.significant);
        // 2 % is measurable with this many steps, but below the effect that counts.
        let small = shift(&noisy(80.0, 400, 7), &noisy(81.6, 400, 8), MIN_EFFECT).expect("enough");
        assert!(!small.significant, "{small:?}");
    }

    #[test]
    fn a_few_ns_on_a_tiny_program_do_not_count() {
        // 40 → 46 ns: 15 %, but 6 ns, which two loads of the same code can differ by.
        let s = shift(
            &noisy(40.0, 200, 9),
            &noisy(46.0, 200, 10),
            min_effect(40.0),
        )
        .expect("enough");
        assert!(s.low > 1.05 && !s.significant, "{s:?}");
        // 40 → 80 ns counts.
        let s = shift(
            &noisy(40.0, 200, 11),
            &noisy(80.0, 200, 12),
            min_effect(40.0),
        )
        .expect("enough");
        assert!(s.significant, "{s:?}");
        assert_eq!(min_effect(1000.0), MIN_EFFECT);
        assert_eq!(min_effect(0.0), MIN_EFFECT);
    }

    #[test]
    fn too_few_steps_or_bad_values_give_no_verdict() {
        assert_eq!(shift(&[1.0; 7], &[2.0; 50], MIN_EFFECT), None);
        let with_junk: Vec<f64> = [f64::NAN, -1.0, 0.0].into_iter().chain([10.0; 8]).collect();
        let s = shift(&with_junk, &[20.0; 8], MIN_EFFECT).expect("eight good values a side");
        for v in [s.ratio, s.low, s.high] {
            assert!((v - 2.0).abs() < 1e-12, "{s:?}");
        }
    }
}
