//! Which loaded programs a caller's words name, for `Program()`; when none is loaded, why: its
//! history remains (with the command that shows it), or nothing by that id or name was seen.

use ebpfstat_dbus::Error;
use ebpfstat_store::{ProgramRef, SeriesRow};

use super::Stats1;
use super::args::{Spec, both_id_and_name, found_one, query_error};
use super::names::{self, quoted};
use super::queries::Query;
use crate::sampler::Pass;
use crate::sampler::model::ProgramSample;

/// Programs of `pass` with id `id` (one, or none).
fn with_id(pass: &Pass, id: u32) -> Vec<&ProgramSample> {
    pass.programs.iter().filter(|p| p.meta.id == id).collect()
}

/// Programs of `pass` whose full or kernel name is `name`, exactly.
fn named_exactly<'p>(pass: &'p Pass, name: &str) -> Vec<&'p ProgramSample> {
    pass.programs
        .iter()
        .filter(|p| p.meta.full_name == name || p.meta.name == name)
        .collect()
}

impl Stats1 {
    /// The one loaded program `spec` (the caller's words `program`) names; several is an
    /// error listing their ids.
    pub(super) async fn one_loaded<'p>(
        &self,
        pass: &'p Pass,
        spec: &Spec,
        program: &str,
    ) -> Result<&'p ProgramSample, Error> {
        match self.loaded(pass, spec).await?.as_slice() {
            [one] => Ok(*one),
            [] => Err(Error::NoSuchProgram(format!(
                "no loaded program matches {}",
                quoted(program)
            ))),
            many => {
                let ids: Vec<String> = many.iter().map(|p| p.meta.id.to_string()).collect();
                Err(Error::InvalidArgument(format!(
                    "{} names {} programs (ids {}): give an id",
                    quoted(program),
                    many.len(),
                    ids.join(", ")
                )))
            }
        }
    }

    /// The loaded programs `spec` names (one, or several for the caller to choose between).
    pub(super) async fn loaded<'p>(
        &self,
        pass: &'p Pass,
        spec: &Spec,
    ) -> Result<Vec<&'p ProgramSample>, Error> {
        match spec {
            Spec::Id(id) => match with_id(pass, *id) {
                found if found.is_empty() => Err(self.id_not_loaded(*id).await?),
                found => Ok(found),
            },
            Spec::Name(n) => self.loaded_named(pass, n).await,
            Spec::Digits(digits) => {
                let by_id = digits
                    .parse()
                    .map_or_else(|_| Vec::new(), |id| with_id(pass, id));
                let by_name = named_exactly(pass, digits);
                match (by_id.first(), by_name.first()) {
                    (Some(i), Some(n)) => Err(both_id_and_name(
                        digits,
                        &i.meta.full_name,
                        &format!("{} (id {})", n.meta.full_name, n.meta.id),
                    )),
                    (Some(_), None) => Ok(by_id),
                    (None, Some(_)) => Ok(by_name),
                    (None, None) => Err(self.digits_not_loaded(digits).await?),
                }
            }
            Spec::Series(series) => self.loaded_series(pass, *series).await,
        }
    }

    async fn loaded_named<'p>(
        &self,
        pass: &'p Pass,
        n: &str,
    ) -> Result<Vec<&'p ProgramSample>, Error> {
        let exact = named_exactly(pass, n);
        if !exact.is_empty() {
            return Ok(exact);
        }
        let loaded: Vec<(String, String)> = pass
            .programs
            .iter()
            .map(|p| (p.meta.full_name.clone(), p.meta.name.clone()))
            .collect();
        match names::find(n, &loaded) {
            names::Found::One(full) => Ok(pass
                .programs
                .iter()
                .filter(|p| p.meta.full_name == full)
                .collect()),
            found => Err(self.not_loaded(n, found).await),
        }
    }

    async fn loaded_series<'p>(
        &self,
        pass: &'p Pass,
        series: i64,
    ) -> Result<Vec<&'p ProgramSample>, Error> {
        let key = self
            .ask(|r| Query::Resolve(ProgramRef::Series(series), r))
            .await?
            .map_err(query_error)?;
        let Some(row) = key.first() else {
            return Err(Error::NoSuchProgram(format!("no series {series}")));
        };
        if !row.alive {
            return Err(Error::NoSuchProgram(format!(
                "series {series} ({}) is not loaded any more; its history remains",
                row.full_name
            )));
        }
        Ok(with_id(pass, row.prog_id))
    }

    /// The newest load with `id` in this boot, if one was seen.
    async fn stored_load(&self, id: u32) -> Result<Option<SeriesRow>, Error> {
        let rows = self
            .ask(|r| Query::Resolve(ProgramRef::ProgramId(id), r))
            .await?;
        found_one(rows)
    }

    /// Why no program with `id` is loaded: it was, in this boot, or it never was.
    async fn id_not_loaded(&self, id: u32) -> Result<Error, Error> {
        Ok(match self.stored_load(id).await? {
            Some(row) => history_of(id, &row),
            None => Error::NoSuchProgram(format!("no program with id {id} in this boot")),
        })
    }

    /// Why digits name no loaded program, as an id and as a name.
    async fn digits_not_loaded(&self, digits: &str) -> Result<Error, Error> {
        if let Ok(id) = digits.parse()
            && let Some(row) = self.stored_load(id).await?
        {
            return Ok(history_of(id, &row));
        }
        let owned = digits.to_owned();
        let found = self
            .ask(|r| Query::FindName(owned, r))
            .await?
            .map_err(query_error)?;
        Ok(match found {
            // Digits name exactly: `1` does not stand for `10_filter`.
            names::Found::One(full) if full == digits => Error::NoSuchProgram(format!(
                "{} is not loaded now; its history remains: ebpfstatctl history {full}",
                quoted(digits)
            )),
            _ => Error::NoSuchProgram(format!(
                "no program has id {digits} or the name {}, loaded now or seen before",
                quoted(digits)
            )),
        })
    }
}

/// An unloaded program's history, as `show NAME` points to it: this load, and every load of
/// its name.
fn history_of(id: u32, row: &SeriesRow) -> Error {
    Error::NoSuchProgram(format!(
        "program {id} ({name}) is not loaded now; its history remains: ebpfstatctl history \
         series:{series} (this load), ebpfstatctl history {name} (every load of the name)",
        name = row.full_name,
        series = row.series_id
    ))
}
