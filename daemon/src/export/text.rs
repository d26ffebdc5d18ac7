//! The two text formats Prometheus-compatible engines read: the Prometheus text format 0.0.4
//! (node_exporter's textfile collector accepts only this one, and no time stamps) and
//! OpenMetrics 1.0 (scrapes that ask for it, and backfill: `promtool tsdb
//! create-blocks-from openmetrics`, VictoriaMetrics' import). Pure: text in a `String`.
//!
//! Hand-written rather than `prometheus-client`: that crate writes only OpenMetrics, puts time
//! stamps only on exemplars, and its families are registered objects, where exports here are a
//! stream of stored points.

use std::fmt::Write as _;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `text/plain; version=0.0.4`
    Prometheus,
    /// `application/openmetrics-text; version=1.0.0`
    OpenMetrics,
}

impl Format {
    pub fn content_type(self) -> &'static str {
        match self {
            Self::Prometheus => "text/plain; version=0.0.4; charset=utf-8",
            Self::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Samples end in `_total`.
    Counter,
    Gauge,
    /// Metadata: samples end in `_info` and are 1 (a gauge in the Prometheus format).
    Info,
}

/// A metric family: its name without the `_total`/`_info` suffix, its help and kind, and its
/// unit when the name ends in one (OpenMetrics names it on a `# UNIT` line).
#[derive(Debug, Clone, Copy)]
pub struct Family {
    pub name: &'static str,
    pub help: &'static str,
    pub kind: Kind,
    pub unit: Option<&'static str>,
}

impl Family {
    pub const fn counter(name: &'static str, help: &'static str) -> Self {
        Self {
            name,
            help,
            kind: Kind::Counter,
            unit: None,
        }
    }

    pub const fn gauge(name: &'static str, help: &'static str) -> Self {
        Self {
            name,
            help,
            kind: Kind::Gauge,
            unit: None,
        }
    }

    pub const fn info(name: &'static str, help: &'static str) -> Self {
        Self {
            name,
            help,
            kind: Kind::Info,
            unit: None,
        }
    }

    pub const fn in_unit(self, unit: &'static str) -> Self {
        Self {
            unit: Some(unit),
            ..self
        }
    }

    /// What the family's sample names end in.
    pub fn suffix(&self) -> &'static str {
        match self.kind {
            Kind::Counter => "_total",
            Kind::Gauge => "",
            Kind::Info => "_info",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Value {
    Int(u64),
    Float(f64),
}

/// Where families and their samples are written: text, or a remote-write request.
pub trait Sink {
    /// A family begins; every sample of it follows, before another family's.
    fn family(&mut self, f: &Family);
    /// One sample of `f`: its labels, value and time (ns since the epoch; `None`: now).
    fn sample(&mut self, f: &Family, labels: &[(&str, &str)], value: Value, at_ns: Option<i64>);
}

impl Sink for Encoder<'_> {
    fn family(&mut self, f: &Family) {
        Encoder::family(self, f);
    }
    fn sample(&mut self, f: &Family, labels: &[(&str, &str)], value: Value, at_ns: Option<i64>) {
        Encoder::sample(self, f, labels, value, at_ns);
    }
}

/// Writes families and samples in one format into `out`.
#[derive(Debug)]
pub struct Encoder<'a> {
    out: &'a mut String,
    format: Format,
}

impl<'a> Encoder<'a> {
    pub fn new(out: &'a mut String, format: Format) -> Self {
        Self { out, format }
    }

    /// The `# HELP`, `# TYPE` (and OpenMetrics `# UNIT`) lines; every sample of the family
    /// follows them, before another family's.
    pub fn family(&mut self, f: &Family) {
        // Formatting into a String cannot fail: the results of `write!` below are ignored.
        match self.format {
            Format::Prometheus => {
                let name = f.name;
                let suffix = f.suffix();
                let kind = match f.kind {
                    Kind::Counter => "counter",
                    Kind::Gauge | Kind::Info => "gauge",
                };
                let _ = write!(self.out, "# HELP {name}{suffix} ");
                escape(self.out, f.help, false);
                let _ = writeln!(self.out, "\n# TYPE {name}{suffix} {kind}");
            }
            Format::OpenMetrics => {
                let name = f.name;
                let kind = match f.kind {
                    Kind::Counter => "counter",
                    Kind::Gauge => "gauge",
                    Kind::Info => "info",
                };
                let _ = writeln!(self.out, "# TYPE {name} {kind}");
                if let Some(unit) = f.unit {
                    let _ = writeln!(self.out, "# UNIT {name} {unit}");
                }
                let _ = write!(self.out, "# HELP {name} ");
                escape(self.out, f.help, true);
                self.out.push('\n');
            }
        }
    }

    /// One sample of `f`: its labels, value and, for backfill, its time (ns since the epoch;
    /// OpenMetrics writes seconds, the Prometheus format milliseconds).
    pub fn sample(
        &mut self,
        f: &Family,
        labels: &[(&str, &str)],
        value: Value,
        at_ns: Option<i64>,
    ) {
        self.out.push_str(f.name);
        self.out.push_str(f.suffix());
        if !labels.is_empty() {
            self.out.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.out.push(',');
                }
                self.out.push_str(k);
                self.out.push_str("=\"");
                escape(self.out, v, true);
                self.out.push('"');
            }
            self.out.push('}');
        }
        self.out.push(' ');
        let _ = match value {
            Value::Int(v) => write!(self.out, "{v}"),
            Value::Float(v) if v.is_nan() => write!(self.out, "NaN"),
            Value::Float(v) if v.is_infinite() => {
                write!(self.out, "{}Inf", if v > 0.0 { '+' } else { '-' })
            }
            Value::Float(v) => write!(self.out, "{v}"),
        };
        if let Some(ns) = at_ns {
            let _ = match self.format {
                // Seconds with the milliseconds the engines keep.
                Format::OpenMetrics => {
                    let ms = ns.div_euclid(1_000_000);
                    let sign = if ms < 0 { "-" } else { "" };
                    let ms = ms.unsigned_abs();
                    write!(self.out, " {sign}{}.{:03}", ms / 1000, ms % 1000)
                }
                Format::Prometheus => write!(self.out, " {}", ns.div_euclid(1_000_000)),
            };
        }
        self.out.push('\n');
    }

    /// Ends the exposition (OpenMetrics requires `# EOF`).
    pub fn finish(self) {
        if self.format == Format::OpenMetrics {
            self.out.push_str("# EOF\n");
        }
    }
}

/// Label values escape `\`, `"` and newlines; help text escapes `\` and newlines (and `"` in
/// OpenMetrics).
fn escape(out: &mut String, s: &str, quotes: bool) {
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '"' if quotes => out.push_str("\\\""),
            c => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RUNS: Family = Family::counter("ebpfstat_program_runs", "Runs.");
    const TIME: Family =
        Family::counter("ebpfstat_program_run_time_seconds", "Time.").in_unit("seconds");
    const INFO: Family = Family::info("ebpfstat_program", "What a program is.");

    fn both(f: impl Fn(&mut Encoder<'_>)) -> (String, String) {
        let (mut p, mut o) = (String::new(), String::new());
        let mut e = Encoder::new(&mut p, Format::Prometheus);
        f(&mut e);
        e.finish();
        let mut e = Encoder::new(&mut o, Format::OpenMetrics);
        f(&mut e);
        e.finish();
        (p, o)
    }

    #[test]
    fn counters_in_both_formats() {
        let (p, o) = both(|e| {
            e.family(&TIME);
            e.sample(&TIME, &[("id", "7")], Value::Float(0.25), None);
        });
        assert_eq!(
            p,
            "# HELP ebpfstat_program_run_time_seconds_total Time.\n\
             # TYPE ebpfstat_program_run_time_seconds_total counter\n\
             ebpfstat_program_run_time_seconds_total{id=\"7\"} 0.25\n"
        );
        assert_eq!(
            o,
            "# TYPE ebpfstat_program_run_time_seconds counter\n\
             # UNIT ebpfstat_program_run_time_seconds seconds\n\
             # HELP ebpfstat_program_run_time_seconds Time.\n\
             ebpfstat_program_run_time_seconds_total{id=\"7\"} 0.25\n# EOF\n"
        );
    }

    #[test]
    fn info_is_a_gauge_in_the_prometheus_format() {
        let (p, o) = both(|e| {
            e.family(&INFO);
            e.sample(&INFO, &[("name", "x")], Value::Int(1), None);
        });
        assert!(
            p.contains("# TYPE ebpfstat_program_info gauge\nebpfstat_program_info{name=\"x\"} 1\n")
        );
        assert!(o.starts_with("# TYPE ebpfstat_program info\n"));
        assert!(o.contains("ebpfstat_program_info{name=\"x\"} 1\n# EOF\n"));
    }

    #[test]
    fn time_stamps_in_seconds_or_milliseconds() {
        let at = Some(1_700_000_000_123_456_789);
        let (p, o) = both(|e| e.sample(&RUNS, &[], Value::Int(5), at));
        assert_eq!(p, "ebpfstat_program_runs_total 5 1700000000123\n");
        assert_eq!(o, "ebpfstat_program_runs_total 5 1700000000.123\n# EOF\n");
        let (_, o) = both(|e| e.sample(&RUNS, &[], Value::Int(5), Some(-1_500_000)));
        assert_eq!(o, "ebpfstat_program_runs_total 5 -0.002\n# EOF\n");
    }

    #[test]
    fn escapes_labels_and_odd_values() {
        let (p, _) = both(|e| {
            e.sample(
                &RUNS,
                &[("name", "a\"b\\c\nd")],
                Value::Float(f64::NAN),
                None,
            );
            e.sample(&RUNS, &[], Value::Float(f64::NEG_INFINITY), None);
            e.sample(&RUNS, &[], Value::Float(1e-9), None);
        });
        assert_eq!(
            p,
            "ebpfstat_program_runs_total{name=\"a\\\"b\\\\c\\nd\"} NaN\n\
             ebpfstat_program_runs_total -Inf\n\
             ebpfstat_program_runs_total 0.000000001\n"
        );
    }
}
