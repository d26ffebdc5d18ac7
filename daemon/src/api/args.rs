//! The arguments callers send, checked before anything reads them: program references,
//! option maps and sort keys. Errors quote a short prefix of what was sent, never all of it.

use ebpfstat_dbus::{self as wire, Error, Options};
use ebpfstat_store::{MapTarget, ProgramRef, QueryError, SeriesRow, SortKey, Store};

use super::names::{self, quoted};

pub fn query_error(e: QueryError) -> Error {
    match e {
        QueryError::NoSuchProgram(m) => Error::NoSuchProgram(m),
        e @ QueryError::NoSuchMap(_) => Error::NoSuchMap(e.to_string()),
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

/// How a caller names a map: its id (digits), or its name (every map of that name).
pub fn map_target(s: &str) -> Result<MapTarget, Error> {
    let s = bounded("the map", s, 64)?;
    if s.is_empty() {
        return Err(Error::InvalidArgument(
            "no map named: give its id or its name".into(),
        ));
    }
    if !s.bytes().all(|b| b.is_ascii_digit()) {
        return Ok(MapTarget::Name(s.to_owned()));
    }
    s.parse()
        .map(MapTarget::Id)
        .map_err(|_| Error::InvalidArgument(format!("map id {} is beyond any id", quoted(s))))
}

/// How a caller names a program.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Spec {
    /// `id:57`.
    Id(u32),
    /// `series:12`.
    Series(i64),
    /// A name (`name:1` for one made of digits).
    Name(String),
    /// Bare digits: a program id, or a name made of digits (bpftrace names an interval probe
    /// `1`): whichever exists; when both do, the caller is asked to say which.
    Digits(String),
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
    if let Some(id) = s.strip_prefix("id:") {
        return id.parse().map(Spec::Id).map_err(|_| {
            Error::InvalidArgument(format!(
                "{}: id:<id> needs a program id (a 32-bit number)",
                quoted(s)
            ))
        });
    }
    let (name, named) = match s.strip_prefix("name:") {
        Some(n) => (n, true),
        None => (s, false),
    };
    if name.is_empty() || name.chars().any(char::is_control) {
        return Err(Error::InvalidArgument(
            "a program name is not empty and has no control characters".into(),
        ));
    }
    if !named && name.bytes().all(|b| b.is_ascii_digit()) {
        if name.parse::<u32>().is_err() {
            return Err(Error::InvalidArgument(format!(
                "{}: program ids are 32-bit numbers (a name made of digits: name:{name})",
                quoted(name)
            )));
        }
        return Ok(Spec::Digits(name.to_owned()));
    }
    Ok(Spec::Name(name.to_owned()))
}

/// What to write instead of `digits` when they are both a program's id and another's name.
pub fn both_id_and_name(digits: &str, id_of: &str, name_of: &str) -> Error {
    Error::InvalidArgument(format!(
        "{digits} is both the id of program {id_of} and the name of program {name_of}: write \
         id:{digits} or name:{digits}"
    ))
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
/// full or kernel name, a name the kernel cut to its 15 bytes, or the start of one naming a
/// single program; digits are an id or a name, whichever was seen.
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
            named(newest)
        }
        Spec::Digits(digits) => {
            let by_id = match digits.parse() {
                Ok(id) => stored_id(store, id)?,
                Err(_) => None,
            };
            let by_name = store.newest_named(digits).map_err(query_error)?;
            match (by_id, by_name) {
                (Some(i), Some(n)) => {
                    return Err(both_id_and_name(digits, &i.full_name, &n.full_name));
                }
                (Some(i), None) => ProgramRef::ProgramId(i.prog_id),
                (None, Some(n)) => named(n),
                (None, None) => {
                    return Err(Error::NoSuchProgram(format!(
                        "no program with id {digits} in this boot, and no program was ever \
                         seen named {}",
                        quoted(digits)
                    )));
                }
            }
        }
    })
}

/// Every load of the name, each version (tag) and reload: what a name means.
fn named(newest: SeriesRow) -> ProgramRef {
    ProgramRef::Name {
        name: newest.full_name,
        prog_type: newest.prog_type,
    }
}

/// The newest series of program `id` in this boot, if it was seen.
fn stored_id(store: &Store, id: u32) -> Result<Option<SeriesRow>, Error> {
    found_one(store.resolve(&ProgramRef::ProgramId(id)))
}

/// What resolving an id found: its series, or none (not an error: the caller tries a name).
pub fn found_one(rows: Result<Vec<SeriesRow>, QueryError>) -> Result<Option<SeriesRow>, Error> {
    match rows {
        Ok(rows) => Ok(rows.into_iter().next()),
        Err(QueryError::NoSuchProgram(_)) => Ok(None),
        Err(e) => Err(query_error(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digits_are_an_id_or_a_name_and_prefixes_say_which() {
        assert_eq!(parse_spec("1"), Ok(Spec::Digits("1".into())));
        assert_eq!(parse_spec("id:57"), Ok(Spec::Id(57)));
        assert_eq!(parse_spec("name:57"), Ok(Spec::Name("57".into())));
        assert_eq!(parse_spec("series:3"), Ok(Spec::Series(3)));
        assert_eq!(parse_spec("x1"), Ok(Spec::Name("x1".into())));
        assert!(parse_spec("99999999999").is_err());
        assert_eq!(
            parse_spec("name:99999999999"),
            Ok(Spec::Name("99999999999".into()))
        );
        assert!(parse_spec("id:x").is_err());
        assert!(parse_spec("name:").is_err());
    }

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
