//! How numbers are written for people: the client's tables and the daemon's own sentences
//! (alerts, its log) use these, so a number reads the same wherever it is shown. Machines get
//! the numbers themselves (JSON, D-Bus, metrics), never these texts.

/// A non-negative float rounded to a whole number for display.
#[expect(
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss,
    reason = "float to integer `as` saturates (NaN is 0): right for a display"
)]
pub fn round_u64(v: f64) -> u64 {
    v.round() as u64
}

/// `850ns`, `12.3µs`, `4.56ms`, `1.20s`, `3m05s`.
pub fn ns(v: f64) -> String {
    if !v.is_finite() || v < 0.0 {
        return "-".into();
    }
    match v {
        v if v < 1e3 => format!("{v:.0}ns"),
        v if v < 1e6 => format!("{:.1}µs", v / 1e3),
        v if v < 1e9 => format!("{:.2}ms", v / 1e6),
        v if v < 60e9 => format!("{:.2}s", v / 1e9),
        v => {
            let s = round_u64(v / 1e9);
            if s < 3600 {
                format!("{}m{:02}s", s / 60, s % 60)
            } else {
                format!("{}h{:02}m", s / 3600, (s % 3600) / 60)
            }
        }
    }
}

/// `512B`, `4.0KiB`, `12.5MiB`, `1.20GiB`.
pub fn bytes(f: f64) -> String {
    match f {
        f if !f.is_finite() || f < 0.0 => "-".into(),
        f if f < 1024.0 => format!("{f:.0}B"),
        f if f < 1048576.0 => format!("{:.1}KiB", f / 1024.0),
        f if f < 1073741824.0 => format!("{:.1}MiB", f / 1048576.0),
        _ => format!("{:.2}GiB", f / 1073741824.0),
    }
}

/// Counts with SI suffixes: `950`, `12.3k`, `4.56M`, `1.23G`.
pub fn count(v: f64) -> String {
    match v {
        v if !v.is_finite() => "-".into(),
        v if v < 1e3 => format!("{}", (v * 10.0).round() / 10.0),
        v if v < 1e6 => format!("{:.1}k", v / 1e3),
        v if v < 1e9 => format!("{:.2}M", v / 1e6),
        v => format!("{:.2}G", v / 1e9),
    }
}

/// Percent with a precision that keeps small values visible: `0.004%`, `1.25%`, `87%`.
pub fn pct(v: f64) -> String {
    match v {
        v if !v.is_finite() => "-".into(),
        0.0 => "0%".into(),
        v if v < 0.01 => format!("{v:.4}%"),
        v if v < 10.0 => format!("{v:.2}%"),
        v => format!("{v:.0}%"),
    }
}

/// What a value measures, for writing it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    /// Percent (of one core).
    Percent,
    Nanos,
    PerSecond,
    Bytes,
}

/// A value in its unit, as people read it: `7.25%`, `1.2µs`, `350/s`, `64.0MiB`.
pub fn quantity(unit: Unit, v: f64) -> String {
    match unit {
        Unit::Percent => pct(v),
        Unit::Nanos => ns(v),
        Unit::PerSecond => format!("{}/s", count(v)),
        Unit::Bytes => bytes(v),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_in_their_units() {
        assert_eq!(quantity(Unit::Percent, 7.25), "7.25%");
        assert_eq!(quantity(Unit::Nanos, 1234.0), "1.2µs");
        assert_eq!(quantity(Unit::PerSecond, 350.0), "350/s");
        assert_eq!(quantity(Unit::Bytes, 64.0 * 1048576.0), "64.0MiB");
        assert_eq!(ns(185e9), "3m05s");
        assert_eq!(pct(0.004), "0.0040%");
    }
}
