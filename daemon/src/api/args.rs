//! The arguments callers send, checked before anything reads them: program references,
//! option maps and sort keys. Errors quote a short prefix of what was sent, never all of it.

use ebpfstat_dbus::{self as wire, Error, Options};
use ebpfstat_store::{ProgramRef, QueryError, SortKey, Store};

use super::names::{self, quoted};

pub fn query_error(e: QueryError) -> Error {
    match e {
        QueryError::NoSuchProgram(m) => Error::NoSuchProgram(m),
        QueryError::InvalidArgument(m) => Error::InvalidArgument(m),
        QueryError::Store(e) => Error::Unavailable(format!("the history store failed: {e}")),
    }
}

/// A string argument longer than `max` bytes is refused before anything else looks at it.
pub fn bounded<'a>(what: &str, s: &'a str, max: usize) -> Result<&'a str, Error> {
    if s.len() > max {
        return Err(Error::InvalidArgument(format!(
            "{what} is {} bytes long; at most {max} are accepted",
            s.len()
        )));
    }
    Ok(s)
}

/// `max_points` of a paged answer: `default` when absent, else between 1 and
/// [`wire::MAX_HISTORY_POINTS`].
pub fn max_points(options: &Options, default: u32) -> Result<u32, Error> {
    let n = match options.get("max_points") {
        None => default,
        // `check_options` made sure it is a `u`.
        Some(v) => u32::try_from(v).unwrap_or(0),
    };
    if n == 0 || n > wire::MAX_HISTORY_POINTS {
        return Err(Error::InvalidArgument(format!(
            "max_points is {n}; it must be between 1 and {}",
            wire::MAX_HISTORY_POINTS
        )));
    }
    Ok(n)
}

/// A range `[from_ns, to_ns)` walked at `step_ns`: the step positive, the range not empty.
pub fn check_range(from_ns: i64, to_ns: i64, step_ns: u64) -> Result<(), Error> {
    if step_ns == 0 {
        return Err(Error::InvalidArgument("step_ns must be positive".into()));
    }
    if to_ns <= from_ns {
        return Err(Error::InvalidArgument(format!(
            "to_ns ({to_ns}) must be after from_ns ({from_ns})"
        )));
    }
    Ok(())
}

/// How a caller names a program.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Spec {
    Id(u32),
    Series(i64),
    Name(String),
}

pub fn parse_spec(s: &str) -> Result<Spec, Error> {
    if s.is_empty() {
        return Err(Error::InvalidArgument(
            "program is empty: give an id, series:<id> or a name".into(),
        ));
    }
    if s.len() > wire::MAX_PROGRAM_SPEC {
        return Err(Error::InvalidArgument(format!(
            "program is {} bytes long; at most {} are accepted",
            s.len(),
            wire::MAX_PROGRAM_SPEC
        )));
    }
    if let Some(id) = s.strip_prefix("series:") {
        return id.parse().map(Spec::Series).map_err(|_| {
            Error::InvalidArgument(format!("{}: series:<id> needs a number", quoted(s)))
        });
    }
    if s.bytes().all(|b| b.is_ascii_digit()) {
        return s
            .parse()
            .map(Spec::Id)
            .map_err(|_| Error::InvalidArgument(format!("{s}: program ids are 32-bit numbers")));
    }
    if s.chars().any(char::is_control) {
        return Err(Error::InvalidArgument(
            "program names have no control characters".into(),
        ));
    }
    Ok(Spec::Name(s.to_owned()))
}

/// Reads the options a method knows; anything else is an error naming what is allowed.
pub fn check_options(options: &Options, known: &[(&str, &str)]) -> Result<(), Error> {
    for (key, value) in options {
        let Some((_, sig)) = known.iter().find(|(k, _)| k == key) else {
            let names: Vec<&str> = known.iter().map(|(k, _)| *k).collect();
            return Err(Error::InvalidArgument(format!(
                "unknown option {} (known: {})",
                quoted(key),
                if names.is_empty() {
                    "none".to_owned()
                } else {
                    names.join(", ")
                }
            )));
        };
        let actual = value.value_signature().to_string();
        if actual != *sig {
            return Err(Error::InvalidArgument(format!(
                "option {} must have D-Bus type {sig}, not {actual}",
                quoted(key)
            )));
        }
    }
    Ok(())
}

pub fn sort_key(s: &str) -> Result<SortKey, Error> {
    bounded("the sort key", s, 16)?
        .parse()
        .map_err(|e: wire::UnknownSortKey| Error::InvalidArgument(e.to_string()))
}

/// Finds a stored series for `spec`: an id in this boot, a series, or a name (every load): a
/// full or kernel name, or the start of one naming a single program.
pub fn program_ref(store: &Store, spec: &Spec) -> Result<ProgramRef, Error> {
    Ok(match spec {
        Spec::Id(id) => ProgramRef::ProgramId(*id),
        Spec::Series(id) => ProgramRef::Series(*id),
        Spec::Name(name) => {
            let newest = match store.newest_named(name).map_err(query_error)? {
                Some(s) => s,
                None => {
                    let known = store.known_names().map_err(query_error)?;
                    let found = names::find(name, &known);
                    let names::Found::One(full) = &found else {
                        return Err(names::not_found(name, &found, "program was ever seen"));
                    };
                    store
                        .newest_named(full)
                        .map_err(query_error)?
                        .ok_or_else(|| names::not_found(name, &found, "program was ever seen"))?
                }
            };
            // Every load of the name, each version (tag) and reload: what a name means.
            ProgramRef::Name {
                name: newest.full_name,
                prog_type: newest.prog_type,
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_quote_a_short_prefix() {
        assert_eq!(quoted("cpu"), "\"cpu\"");
        let long = "é".repeat(10_000);
        let q = quoted(&long);
        assert!(q.len() < 120 && q.ends_with("(20000 bytes)"), "{q}");
        let e = sort_key(&"x".repeat(1 << 20)).expect_err("too long");
        assert_eq!(
            e,
            Error::InvalidArgument(
                "the sort key is 1048576 bytes long; at most 16 are accepted".into()
            )
        );
    }
}
