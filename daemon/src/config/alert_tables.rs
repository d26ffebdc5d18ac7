//! The `[[alert]]` tables of the configuration file, read one at a time from their own lines,
//! so an error names the line of the bad key (or of its rule). Read with the other keys, an
//! error inside any element of an array of tables is reported at the first one.

use serde::Deserialize;

use super::{Shown, toml_error};
use crate::alerts::Rule;
use crate::alerts::rules::MAX_RULES;

/// Where each table starts.
#[derive(Deserialize)]
struct Tables {
    alert: Option<Vec<toml::Spanned<serde::de::IgnoredAny>>>,
}

/// One table, or every rule at once (the inline form `alert = [{ ... }]`).
#[derive(Deserialize)]
struct Rules {
    alert: Vec<Rule>,
}

/// The rules in `text` (a whole configuration file); `None` without any. The error is the
/// message to show, with its line.
pub(super) fn read(text: &str) -> Result<Option<Vec<Rule>>, String> {
    let tables: Tables = toml::from_str(text).map_err(|e| toml_error(&e, text))?;
    let Some(tables) = tables.alert else {
        return Ok(None);
    };
    if tables.len() > MAX_RULES {
        return Err(format!(
            "{} alert rules: at most {MAX_RULES} (each is judged against every program after \
             each pass)",
            tables.len()
        ));
    }
    let newlines: Vec<usize> = text.match_indices('\n').map(|(n, _)| n).collect();
    let line_of = |offset: usize| newlines.partition_point(|&n| n < offset) + 1;
    let line_start = |offset: usize| {
        let before = newlines.partition_point(|&n| n < offset);
        before.checked_sub(1).map_or(0, |i| newlines[i] + 1)
    };
    let mut rules = Vec::with_capacity(tables.len());
    for t in &tables {
        let from = line_start(t.span().start);
        let rest = text.get(from..).unwrap_or_default();
        if !rest.trim_start().starts_with("[[") {
            // Not `[[alert]]` tables: read them all at once, where the parser places errors.
            let all: Rules = toml::from_str(text).map_err(|e| toml_error(&e, text))?;
            return Ok(Some(all.alert));
        }
        // Up to the next table's header (the span covers only this one's).
        let len = rest
            .match_indices('\n')
            .map(|(n, _)| n + 1)
            .find(|&n| rest[n..].trim_start().starts_with('['))
            .unwrap_or(rest.len());
        let table = &rest[..len];
        let mut one: Rules = toml::from_str(table).map_err(|e| {
            let line = line_of(from + e.span().map_or(0, |s| s.start));
            let message = e.message().trim_end();
            // The rule's own checks name it already.
            if message.starts_with("alert ") {
                return format!("line {line}: {message}");
            }
            let named = table
                .lines()
                .find_map(|l| {
                    let (k, v) = l.split_once('=')?;
                    (k.trim() == "name").then(|| v.trim().trim_matches('"'))
                })
                .map_or("[[alert]]".to_owned(), |n| format!("alert {:?}", Shown(n)));
            format!("line {line}: {named}: {message}")
        })?;
        rules.push(one.alert.pop().ok_or("an empty [[alert]] table")?);
    }
    Ok(Some(rules))
}
