//! Alert rules as the configuration file writes them (`[[alert]]` tables): parsed, checked
//! (a rule that cannot mean anything is an error naming its line), and written back.

use std::time::Duration;

use serde::Deserialize;

use crate::bpf::names::prog_types;
use crate::glob::Glob;
use crate::sampler::owners::Owner;
use crate::shown::{SHOWN_CHARS, Shown};
use crate::units::parse_bytes;

/// Rules one file may hold: each is matched against every program after each pass.
pub const MAX_RULES: usize = 256;
/// The longest `for` a rule may hold before it raises.
pub const MAX_HOLD: Duration = Duration::from_secs(86_400);
const MAX_NAME: usize = 64;
const MAX_PATTERN: usize = 256;

/// What a rule watches: its words, units and which are host-wide are the API's.
pub use ebpfstat_dbus::AlertMetric as Metric;

/// A value as people read it, in its metric's unit, as `ebpfstatctl` writes it.
pub fn show(metric: Metric, v: f64) -> String {
    ebpfstat_numbers::text::quantity(metric.unit(), v)
}

/// One rule, checked.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(try_from = "RawRule")]
pub struct Rule {
    pub name: String,
    pub metric: Metric,
    /// Raised when the value is above this...
    pub threshold: f64,
    /// ...for this long (zero: on the first pass above it)...
    pub hold: Duration,
    /// ...and cleared when it is at or below this (at most `threshold`).
    pub clear: f64,
    /// A glob on the program's full or kernel name.
    pub program: Option<Glob>,
    /// A program type, in bpftool's spelling (`tracepoint`).
    pub prog_type: Option<String>,
    /// A glob on the systemd unit of a process holding the program (or the map).
    pub unit: Option<Glob>,
    /// A glob on the container of a process holding the program (or the map): its label
    /// (`docker:web`), name or id.
    pub container: Option<Glob>,
    /// For `map_fill_pct`: a glob on the map's name (`program` then chooses maps by the
    /// programs using them).
    pub map: Option<Glob>,
}

impl Rule {
    /// Whether the holders of a program (or a map) fit the rule's unit and container globs:
    /// one holder in the unit, one (maybe another) in the container.
    pub fn holders_fit(&self, owners: &[std::sync::Arc<Owner>]) -> bool {
        self.unit
            .as_ref()
            .is_none_or(|u| owners.iter().any(|o| o.in_unit(u)))
            && self
                .container
                .as_ref()
                .is_none_or(|c| owners.iter().any(|o| o.in_container(c)))
    }
}

/// A number, or for `map_memory` a size (`"64MiB"`).
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
enum Level {
    Number(f64),
    Text(String),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    name: String,
    metric: Metric,
    threshold: Level,
    clear: Option<Level>,
    #[serde(rename = "for")]
    hold: Option<String>,
    program: Option<String>,
    #[serde(rename = "type")]
    prog_type: Option<String>,
    unit: Option<String>,
    container: Option<String>,
    map: Option<String>,
}

fn level(metric: Metric, key: &str, v: &Level) -> Result<f64, String> {
    let n = match v {
        Level::Number(n) => *n,
        Level::Text(t) if metric == Metric::MapMemory => {
            {
                // parse_bytes quotes what it cannot read whole; no size is this long.
                if t.len() > SHOWN_CHARS {
                    return Err(format!("{key} {:?} is not a size", Shown(t)));
                }
                parse_bytes(t).map_err(|e| format!("{key}: {e}"))? as f64
            }
        }
        Level::Text(t) => {
            return Err(format!(
                "{key} {:?}: {} takes a number",
                Shown(t),
                metric.as_str()
            ));
        }
    };
    if !n.is_finite() {
        return Err(format!("{key} {n} is not a number"));
    }
    if n < 0.0 {
        return Err(format!("{key} {n} is negative: values are never below 0"));
    }
    Ok(n)
}

fn pattern(key: &str, p: Option<String>) -> Result<Option<String>, String> {
    let Some(p) = p else { return Ok(None) };
    if p.is_empty() {
        return Err(format!(
            "{key} is empty: leave it out to match every program"
        ));
    }
    if p.len() > MAX_PATTERN {
        return Err(format!("{key} is longer than {MAX_PATTERN} bytes"));
    }
    if let Some(c) = p
        .chars()
        .find(|c| matches!(c, '[' | ']' | '{' | '}' | '\\' | '"') || c.is_control())
    {
        return Err(format!(
            "{key} {:?}: {c:?} is not supported; a glob here has only * (any run of \
             characters) and ? (any one)",
            Shown(&p)
        ));
    }
    Ok(Some(p))
}

impl TryFrom<RawRule> for Rule {
    type Error = String;

    fn try_from(r: RawRule) -> Result<Self, String> {
        let name = r.name;
        let bad_name = name.is_empty()
            || name.len() > MAX_NAME
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | ':'));
        if bad_name {
            return Err(format!(
                "alert name {:?}: 1 to {MAX_NAME} letters, digits, _ - . or :",
                Shown(&name)
            ));
        }
        let at = |e: String| format!("alert {:?}: {e}", Shown(&name));
        let threshold = level(r.metric, "threshold", &r.threshold).map_err(at)?;
        let clear = match &r.clear {
            Some(c) => level(r.metric, "clear", c).map_err(at)?,
            None => threshold,
        };
        if clear > threshold {
            return Err(at(format!(
                "clear {clear} is above threshold {threshold}: an alert clears at or below a \
                 level no higher than the one that raises it"
            )));
        }
        let hold = match r.hold.as_deref() {
            None => Duration::ZERO,
            Some(s) => humantime::parse_duration(s).map_err(|e| {
                at(format!(
                    "for {:?} is not a duration ({e}); write e.g. \"30s\", \"5m\", \"0s\"",
                    Shown(s)
                ))
            })?,
        };
        if hold > MAX_HOLD {
            return Err(at(format!("for {} is longer than a day", span(hold))));
        }
        let program = pattern("program", r.program).map_err(at)?;
        let unit = pattern("unit", r.unit).map_err(at)?;
        let container = pattern("container", r.container).map_err(at)?;
        let map = pattern("map", r.map).map_err(at)?;
        let (program, unit, container, map) = (
            program.as_deref().map(Glob::new),
            unit.as_deref().map(Glob::new),
            container.as_deref().map(Glob::new),
            map.as_deref().map(Glob::new),
        );
        check_scope(r.metric, map.is_some(), r.prog_type.is_some()).map_err(at)?;
        if let Some(t) = &r.prog_type
            && !prog_types().contains(&t.as_str())
        {
            return Err(at(format!(
                "type {:?} is not a program type; one of {}",
                Shown(t),
                prog_types().join(", ")
            )));
        }
        if r.metric == Metric::StatsOverheadPct
            && (program.is_some() || r.prog_type.is_some() || unit.is_some() || container.is_some())
        {
            return Err(at(
                "stats_overhead_pct is the host's: program, type, unit and container do not \
                 apply"
                    .into(),
            ));
        }
        Ok(Self {
            name,
            metric: r.metric,
            threshold,
            hold,
            clear,
            program,
            prog_type: r.prog_type,
            unit,
            container,
            map,
        })
    }
}

/// `map` chooses maps, so it goes with `map_fill_pct` alone; `type` is a program's.
fn check_scope(metric: Metric, map: bool, prog_type: bool) -> Result<(), String> {
    if metric.per_map() && prog_type {
        return Err(
            "map_fill_pct watches maps: choose them by map, program or unit (type is a \
             program type)"
                .into(),
        );
    }
    if map && !metric.per_map() {
        return Err(format!(
            "map chooses maps, for map_fill_pct; {} watches programs",
            metric.as_str()
        ));
    }
    Ok(())
}

fn span(d: Duration) -> String {
    humantime::format_duration(d).to_string()
}

/// Rule names are unique: they name alerts in signals, logs and events. Returns the index of
/// the first repeated name.
pub fn first_repeat(rules: &[Rule]) -> Option<usize> {
    (1..rules.len()).find(|&i| rules[..i].iter().any(|r| r.name == rules[i].name))
}

impl std::fmt::Display for Rule {
    /// The rule as a `[[alert]]` table that parses back to it.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "[[alert]]")?;
        writeln!(f, "name = \"{}\"", self.name)?;
        writeln!(f, "metric = \"{}\"", self.metric.as_str())?;
        writeln!(f, "threshold = {:?}", self.threshold)?;
        writeln!(f, "clear = {:?}", self.clear)?;
        write!(f, "for = \"{}\"", span_or_zero(self.hold))?;
        for (key, v) in [
            ("program", self.program.as_ref().map(Glob::as_str)),
            ("type", self.prog_type.as_deref()),
            ("unit", self.unit.as_ref().map(Glob::as_str)),
            ("map", self.map.as_ref().map(Glob::as_str)),
        ] {
            if let Some(v) = v {
                write!(f, "\n{key} = \"{v}\"")?;
            }
        }
        Ok(())
    }
}

fn span_or_zero(d: Duration) -> String {
    if d.is_zero() { "0s".into() } else { span(d) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Vec<Rule>, String> {
        crate::config::Settings::parse(text, std::path::Path::new("t.toml"))
            .map(|s| s.alert.unwrap_or_default())
            .map_err(|e| e.to_string())
    }

    #[test]
    fn a_full_rule_and_its_defaults() {
        let rules = parse(
            "[[alert]]\nname = \"hot\"\nmetric = \"cpu_pct\"\nthreshold = 5\nclear = 4.5\n\
             for = \"30s\"\nprogram = \"sys_*\"\ntype = \"tracepoint\"\nunit = \"falco*\"\n\
             [[alert]]\nname = \"maps\"\nmetric = \"map_memory\"\nthreshold = \"64MiB\"\n\
             [[alert]]\nname = \"full\"\nmetric = \"map_fill_pct\"\nthreshold = 90\n\
             map = \"conn*\"\nunit = \"cilium*\"\n",
        )
        .expect("valid");
        assert_eq!(rules[0].threshold, 5.0);
        assert_eq!(rules[0].clear, 4.5);
        assert_eq!(rules[0].hold, Duration::from_secs(30));
        assert_eq!(rules[0].prog_type.as_deref(), Some("tracepoint"));
        assert_eq!(rules[1].threshold, 64.0 * 1024.0 * 1024.0);
        assert_eq!(rules[1].clear, rules[1].threshold);
        assert_eq!(rules[1].hold, Duration::ZERO);
        // Written back, each parses to itself.
        let text: Vec<String> = rules.iter().map(Rule::to_string).collect();
        assert_eq!(parse(&text.join("\n")).expect("parses back"), rules);
    }

    #[test]
    fn long_values_are_quoted_by_their_start_and_length() {
        let long = "x".repeat(100_000);
        for body in [
            format!("name = \"{long}\"\nmetric = \"cpu_pct\"\nthreshold = 1"),
            format!("name = \"r\"\nmetric = \"cpu_pct\"\nthreshold = 1\nfor = \"{long}\""),
            format!("name = \"r\"\nmetric = \"cpu_pct\"\nthreshold = 1\ntype = \"{long}\""),
            format!("name = \"r\"\nmetric = \"map_memory\"\nthreshold = \"{long}\""),
        ] {
            let e = parse(&format!("[[alert]]\n{body}\n")).expect_err("refused");
            assert!(
                e.len() < 1000 && e.contains("(100000 bytes)"),
                "{}",
                &e[..200]
            );
        }
    }

    #[test]
    fn bad_rules_say_what_is_wrong_and_where() {
        let rule = |body: &str| format!("\n[[alert]]\nname = \"r\"\n{body}\n");
        for (body, says) in [
            ("metric = \"cpu\"\nthreshold = 1", "unknown variant `cpu`"),
            ("metric = \"cpu_pct\"\nthreshold = -1", "negative"),
            (
                "metric = \"cpu_pct\"\nthreshold = 1\nclear = 2",
                "above threshold",
            ),
            (
                "metric = \"cpu_pct\"\nthreshold = 1\nprogram = \"a[b\"",
                "'['",
            ),
            (
                "metric = \"cpu_pct\"\nthreshold = 1\nprogram = \"\"",
                "empty",
            ),
            (
                "metric = \"cpu_pct\"\nthreshold = 1\ntype = \"tracepont\"",
                "tracepoint",
            ),
            (
                "metric = \"cpu_pct\"\nthreshold = 1\nfor = \"soon\"",
                "not a duration",
            ),
            (
                "metric = \"cpu_pct\"\nthreshold = 1\nfor = \"2d\"",
                "longer than a day",
            ),
            ("metric = \"cpu_pct\"\nthreshold = \"5%\"", "takes a number"),
            (
                "metric = \"cpu_pct\"\nthreshold = 1\nabove = 2",
                "unknown field `above`",
            ),
            ("metric = \"cpu_pct\"\nthreshold = nan", "not a number"),
            (
                "metric = \"stats_overhead_pct\"\nthreshold = 1\nprogram = \"x\"",
                "do not apply",
            ),
            (
                "metric = \"cpu_pct\"\nthreshold = 1\nmap = \"conn*\"",
                "map chooses maps, for map_fill_pct; cpu_pct watches programs",
            ),
            (
                "metric = \"map_fill_pct\"\nthreshold = 90\ntype = \"xdp\"",
                "type is a program type",
            ),
        ] {
            let e = parse(&rule(body)).expect_err(body);
            assert!(e.contains(says), "{body}: {e}");
            // The line of the bad key, or of the rule's `[[alert]]` when the rule as a whole is.
            let line = match says {
                s if s.starts_with("unknown variant") => 4,
                s if s.starts_with("unknown field") => 6,
                _ => 2,
            };
            assert!(
                e.contains(&format!("line {line}: alert \"r\": ")),
                "{body}: {e}"
            );
        }
        let e = parse("[[alert]]\nname = \"a b\"\nmetric = \"avg_ns\"\nthreshold = 1\n")
            .expect_err("bad name");
        assert!(e.contains("letters, digits"), "{e}");
    }

    #[test]
    fn repeated_names_are_found() {
        let mut rules = parse(
            "[[alert]]\nname = \"a\"\nmetric = \"avg_ns\"\nthreshold = 1\n\
             [[alert]]\nname = \"b\"\nmetric = \"avg_ns\"\nthreshold = 1\n",
        )
        .expect("valid");
        assert_eq!(first_repeat(&rules), None);
        rules.push(rules[0].clone());
        assert_eq!(first_repeat(&rules), Some(2));
    }
}
