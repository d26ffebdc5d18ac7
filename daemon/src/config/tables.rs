//! The arrays of tables of the configuration file (`[[alert]]`, `[[remote_write]]`), read one
//! table at a time from their own lines, so an error names the line of the bad key (or of its
//! table). Read with the other keys, an error inside any element of an array of tables is
//! reported at the first one.

use serde::Deserialize;
use serde::de::DeserializeOwned;

use super::remote_write::{MAX_TARGETS, Target};
use super::{Shown, toml_error};
use crate::alerts::Rule;
use crate::alerts::rules::MAX_RULES;

type Spans = Option<Vec<toml::Spanned<serde::de::IgnoredAny>>>;

#[derive(Deserialize)]
struct AlertSpans {
    alert: Spans,
}

#[derive(Deserialize)]
struct Alerts {
    alert: Vec<Rule>,
}

#[derive(Deserialize)]
struct TargetSpans {
    remote_write: Spans,
}

#[derive(Deserialize)]
struct Targets {
    remote_write: Vec<Target>,
}

/// An array of tables: its key, the key naming each table in errors, at most how many, and
/// how to read where its tables are and the tables themselves.
struct Array<T> {
    key: &'static str,
    named_by: &'static str,
    max: usize,
    why_max: &'static str,
    spans: fn(&str) -> Result<Spans, toml::de::Error>,
    all: fn(&str) -> Result<Vec<T>, toml::de::Error>,
}

/// The alert rules in `text` (a whole configuration file); `None` without any. The error is
/// the message to show, with its line.
pub(super) fn alerts(text: &str) -> Result<Option<Vec<Rule>>, String> {
    read(
        text,
        &Array {
            key: "alert",
            named_by: "name",
            max: MAX_RULES,
            why_max: "each is judged against every program after each pass",
            spans: |t| toml::from_str::<AlertSpans>(t).map(|s| s.alert),
            all: |t| toml::from_str::<Alerts>(t).map(|a| a.alert),
        },
    )
}

/// The remote-write targets in `text`; `None` without any.
pub(super) fn remote_write(text: &str) -> Result<Option<Vec<Target>>, String> {
    read(
        text,
        &Array {
            key: "remote_write",
            named_by: "url",
            max: MAX_TARGETS,
            why_max: "each is a thread and a connection",
            spans: |t| toml::from_str::<TargetSpans>(t).map(|s| s.remote_write),
            all: |t| toml::from_str::<Targets>(t).map(|a| a.remote_write),
        },
    )
}

fn read<T>(text: &str, array: &Array<T>) -> Result<Option<Vec<T>>, String>
where
    T: DeserializeOwned,
{
    let Some(tables) = (array.spans)(text).map_err(|e| toml_error(&e, text))? else {
        return Ok(None);
    };
    if tables.len() > array.max {
        return Err(format!(
            "{} {} tables: at most {} ({})",
            tables.len(),
            array.key,
            array.max,
            array.why_max
        ));
    }
    let newlines: Vec<usize> = text.match_indices('\n').map(|(n, _)| n).collect();
    let line_of = |offset: usize| newlines.partition_point(|&n| n < offset) + 1;
    let line_start = |offset: usize| {
        let before = newlines.partition_point(|&n| n < offset);
        before.checked_sub(1).map_or(0, |i| newlines[i] + 1)
    };
    let mut read = Vec::with_capacity(tables.len());
    for t in &tables {
        let from = line_start(t.span().start);
        let rest = text.get(from..).unwrap_or_default();
        if !rest.trim_start().starts_with("[[") {
            // Not `[[...]]` tables: read them all at once, where the parser places errors.
            return (array.all)(text)
                .map(Some)
                .map_err(|e| toml_error(&e, text));
        }
        // Up to the next table's header (the span covers only this one's).
        let len = rest
            .match_indices('\n')
            .map(|(n, _)| n + 1)
            .find(|&n| rest[n..].trim_start().starts_with('['))
            .unwrap_or(rest.len());
        let table = &rest[..len];
        let mut one = (array.all)(table).map_err(|e| {
            let line = line_of(from + e.span().map_or(0, |s| s.start));
            let message = e.message().trim_end();
            // The table's own checks name it already.
            if message.starts_with(&format!("{} ", array.key)) {
                return format!("line {line}: {message}");
            }
            let named = table
                .lines()
                .find_map(|l| {
                    let (k, v) = l.split_once('=')?;
                    (k.trim() == array.named_by).then(|| v.trim().trim_matches('"'))
                })
                .map_or(format!("[[{}]]", array.key), |n| {
                    format!("{} {:?}", array.key, Shown(n))
                });
            format!("line {line}: {named}: {message}")
        })?;
        let last = one
            .pop()
            .ok_or_else(|| format!("an empty [[{}]] table", array.key))?;
        read.push(last);
    }
    Ok(Some(read))
}
