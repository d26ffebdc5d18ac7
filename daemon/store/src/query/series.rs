//! Finding stored series: by id, by kernel id in this boot, by identity or name; series born
//! but not written yet are found as the rows they will be stored as.

use std::collections::HashMap;

use rusqlite::Row;

use super::Reader;
use crate::buffer::LiveState;
use crate::clock::signed;
use crate::error::QueryError;
use crate::fold::Life;
use crate::model::Counters;
use crate::read;

pub use super::types::{ProgramRef, SeriesRow};

const SERIES_COLUMNS: &str = "series_id, boot_seq, prog_id, name, full_name, type, tag, \
    first_tick, first_bt_ns, end_tick, end_bt_ns, base_cnt, base_rt, end_cnt, end_rt, map_mem, \
    map_mem_own, map_mem_shared, verified_insns, jited_size";

impl Reader<'_> {
    fn series_from_row(
        &self,
        lives: &HashMap<i64, LiveState>,
        ends: &HashMap<i64, (u64, u64, Counters)>,
        r: &Row<'_>,
    ) -> rusqlite::Result<SeriesRow> {
        let id: i64 = r.get(0)?;
        let boot: i64 = r.get(1)?;
        let base = read::counters(r, 11, 12)?;
        // Ended in memory, not yet written: the series ends there for queries too.
        let (end_tick, end_bt, end): (Option<u64>, Option<u64>, _) = match ends.get(&id) {
            Some(&(tick, bt, counters)) => (Some(tick), Some(bt), Some(counters)),
            None => (r.get(9)?, r.get(10)?, read::opt_counters(r, 13, 14)?),
        };
        let live = lives.get(&id);
        let first_bt_ns: u64 = r.get(8)?;
        let first_bt = i64::try_from(first_bt_ns).unwrap_or(i64::MAX);
        Ok(SeriesRow {
            series_id: id,
            boot_seq: boot,
            prog_id: r.get(2)?,
            name: r.get(3)?,
            full_name: r.get(4)?,
            prog_type: r.get(5)?,
            tag: r.get(6)?,
            verified_insns: r.get(18)?,
            jited_size: r.get(19)?,
            alive: live.is_some(),
            first_seen: self.boots.wall_of(boot, first_bt),
            last_seen: match live {
                Some(l) => self.boots.wall_of(boot, signed(l.last_bt_ns)),
                None => end_bt.and_then(|e| self.boots.wall_of(boot, signed(e))),
            },
            total: live.map(|l| l.last).or(end).unwrap_or(base),
            base,
            map_memory: match live {
                Some(l) => l.map_memory,
                None => read::map_memory(r, 15)?,
            },
            life: Life {
                first: r.get(7)?,
                end: if live.is_some() { None } else { end_tick },
            },
            first_bt_ns,
            end_bt_ns: if live.is_some() { None } else { end_bt },
        })
    }

    /// Stored series matching `where_sql` (which may end in `ORDER BY`/`LIMIT`), plus those
    /// born but not written yet that `pending` accepts. `pending` sees each such series as the
    /// row it will be stored as, so it can test the same columns `where_sql` does.
    pub(super) fn series_where(
        &self,
        where_sql: &str,
        args: &[&dyn rusqlite::ToSql],
        pending: impl Fn(&SeriesRow) -> bool,
    ) -> Result<Vec<SeriesRow>, QueryError> {
        let mut stmt = self.db.conn.prepare_cached(&format!(
            "SELECT {SERIES_COLUMNS} FROM series WHERE {where_sql}"
        ))?;
        let mut rows = stmt.query(args)?;
        let lives = self.buffer.live_by_series();
        let ends = self.buffer.pending_ends();
        let mut out = Vec::new();
        while let Some(r) = rows.next()? {
            out.push(self.series_from_row(&lives, &ends, r)?);
        }
        self.read_rows(out.len());
        for s in self.buffer.unwritten_series() {
            let m = s.meta;
            let live = lives.get(&s.series_id);
            // Ended before it was written: its end is pending too.
            let end = if live.is_none() { s.end } else { None };
            let row = SeriesRow {
                series_id: s.series_id,
                boot_seq: s.boot_seq,
                prog_id: m.id,
                name: m.name.clone(),
                full_name: m.full_name.clone(),
                prog_type: m.prog_type.to_string(),
                tag: m.tag.clone(),
                verified_insns: m.verified_insns,
                jited_size: m.jited_size,
                alive: live.is_some(),
                first_seen: self.boots.wall_of(s.boot_seq, signed(s.first_bt_ns)),
                last_seen: live.and_then(|l| self.boots.wall_of(s.boot_seq, signed(l.last_bt_ns))),
                total: live.map_or(s.base, |l| l.last),
                base: s.base,
                map_memory: live.map_or(s.map_memory, |l| l.map_memory),
                life: Life {
                    first: s.first_tick,
                    end: live
                        .is_none()
                        .then(|| end.map_or(s.first_tick, |(tick, _)| tick)),
                },
                first_bt_ns: s.first_bt_ns,
                end_bt_ns: end.map(|(_, bt)| bt),
            };
            if pending(&row) {
                out.push(row);
            }
        }
        Ok(out)
    }

    pub fn resolve(&self, target: &ProgramRef) -> Result<Vec<SeriesRow>, QueryError> {
        let found = match target {
            ProgramRef::Series(id) => {
                self.series_where("series_id = ?1", &[id], |s| s.series_id == *id)?
            }
            ProgramRef::ProgramId(id) => {
                let boot = self.boots.current_seq().unwrap_or(-1);
                let mut all =
                    self.series_where("boot_seq = ?1 AND prog_id = ?2", &[&boot, id], |s| {
                        s.boot_seq == boot && s.prog_id == *id
                    })?;
                let newest = all.iter().map(|s| s.series_id).max();
                all.retain(|s| Some(s.series_id) == newest);
                all
            }
            ProgramRef::Identity {
                name,
                prog_type,
                tag,
            } => self.series_where(
                "full_name = ?1 AND type = ?2 AND tag = ?3",
                &[name, prog_type, tag],
                |s| s.full_name == *name && s.prog_type == *prog_type && s.tag == *tag,
            )?,
            ProgramRef::Name { name, prog_type } => self.loads_named(name, prog_type)?,
        };
        if found.is_empty() {
            return Err(QueryError::NoSuchProgram(match target {
                ProgramRef::Series(id) => format!("no stored series {id}"),
                ProgramRef::ProgramId(id) => format!("no program with id {id} in this boot"),
                ProgramRef::Identity {
                    name,
                    prog_type,
                    tag,
                } => format!("no program named {name} of type {prog_type} with tag {tag}"),
                ProgramRef::Name { name, prog_type } => {
                    format!("no program named {name} of type {prog_type}")
                }
            }));
        }
        Ok(found)
    }

    /// The newest series whose full name is `name`, else the newest whose kernel name (cut to
    /// 15 bytes) is: what a caller naming a program most likely means.
    pub fn newest_named(&self, name: &str) -> Result<Option<SeriesRow>, QueryError> {
        // Pending series are newer than any stored one; the newest of both wins.
        let newest = |found: Vec<SeriesRow>| found.into_iter().max_by_key(|s| s.series_id);
        let by_full_name = self.series_where(
            "full_name = ?1 ORDER BY series_id DESC LIMIT 1",
            &[&name],
            |s| s.full_name == name,
        )?;
        if let Some(s) = newest(by_full_name) {
            return Ok(Some(s));
        }
        // No index on `name`: a scan, but only when no full name matched.
        let by_name =
            self.series_where("name = ?1 ORDER BY series_id DESC LIMIT 1", &[&name], |s| {
                s.name == name
            })?;
        Ok(newest(by_name))
    }

    /// Every (full name, kernel name) ever seen, stored or not yet: what a caller may name.
    pub fn known_names(&self) -> Result<Vec<(String, String)>, QueryError> {
        let mut stmt = self
            .db
            .conn
            .prepare_cached("SELECT DISTINCT full_name, name FROM series")?;
        let mut names: std::collections::BTreeSet<(String, String)> = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<Result<_, _>>()?;
        for s in self.buffer.unwritten_series() {
            names.insert((s.meta.full_name.clone(), s.meta.name.clone()));
        }
        Ok(names.into_iter().collect())
    }

    /// Every load under one full name and type, whatever its code, oldest first.
    fn loads_named(&self, full_name: &str, prog_type: &str) -> Result<Vec<SeriesRow>, QueryError> {
        let mut all = self.series_where(
            "full_name = ?1 AND type = ?2",
            &[&full_name, &prog_type],
            |s| s.full_name == full_name && s.prog_type == prog_type,
        )?;
        ebpfstat_numbers::order::sort_by_key(&mut all, SeriesRow::first_seen_key);
        Ok(all)
    }

    /// The versions of one program (its loads under one full name and type, grouped by tag),
    /// ordered by their newest load's first sample: the last is the version loaded last (code
    /// loaded again after a newer one counts as newer: a rollback is a new version too). Each
    /// version's loads oldest first.
    pub fn versions(
        &self,
        full_name: &str,
        prog_type: &str,
    ) -> Result<Vec<Vec<SeriesRow>>, QueryError> {
        let all = self.loads_named(full_name, prog_type)?;
        let mut versions: Vec<Vec<SeriesRow>> = Vec::new();
        for s in all {
            match versions.iter_mut().find(|v| v[0].tag == s.tag) {
                Some(v) => v.push(s),
                None => versions.push(vec![s]),
            }
        }
        ebpfstat_numbers::order::sort_by_key(&mut versions, |v| {
            v.last()
                .map_or((i64::MIN, i64::MIN), SeriesRow::first_seen_key)
        });
        Ok(versions)
    }

    /// At most `limit` series with ids at or above `first`, in id order (stored or not yet):
    /// what a reader going through every series a part at a time reads next.
    pub fn series_from(&self, first: i64, limit: u32) -> Result<Vec<SeriesRow>, QueryError> {
        let mut rows = self.series_where(
            "series_id >= ?1 ORDER BY series_id LIMIT ?2",
            &[&first, &limit],
            |s| s.series_id >= first,
        )?;
        ebpfstat_numbers::order::sort_by_key(&mut rows, |s| (s.series_id, 0));
        rows.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
        Ok(rows)
    }

    /// Every series known, newest first (for listing).
    pub fn all_series(&self) -> Result<Vec<SeriesRow>, QueryError> {
        let mut all = self.series_where("1", &[], |_| true)?;
        ebpfstat_numbers::order::sort_by_key(&mut all, |s| (!s.series_id, 0));
        Ok(all)
    }
}
