//! Which programs a view shows: the option keys `name` (a glob on the full or kernel name),
//! `type`, `attach` (how it is attached), `owner` (a pid or a command name), `unit` (a systemd
//! unit), `container` and `all` (the daemon's own probe too), combined with *and*. Without `all`, the
//! daemon's own calibration probe is left out: it is not a workload. A type or attach kind
//! that does not exist is refused, naming those that do: a typo must not read as "none".

use std::collections::HashMap;
use std::sync::Arc;

use ebpfstat_dbus::{Error, Options};

use super::args::bounded;
use super::names::quoted;
use crate::bpf::names::{attach_kinds, map_types, prog_types};
use crate::glob::Glob;
use crate::observer;
use crate::sampler::Pass;
use crate::sampler::links::AttachPoint;
use crate::sampler::model::ProgramContext;
use crate::sampler::owners::Owner;

/// The option keys and their D-Bus types, for `check_options`.
pub const KEYS: [(&str, &str); 7] = [
    ("all", "b"),
    ("name", "s"),
    ("type", "s"),
    ("attach", "s"),
    ("owner", "s"),
    ("unit", "s"),
    ("container", "s"),
];

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Filter {
    all: bool,
    name: Option<Glob>,
    prog_type: Option<String>,
    attach: Option<String>,
    owner: Option<OwnerSel>,
    unit: Option<Glob>,
    container: Option<Glob>,
}

/// What a loaded program or map has now, for the filters that ask: its holders and (programs
/// only) its attach points.
#[derive(Debug, Clone, Copy)]
pub struct Held<'a> {
    pub owners: &'a [Arc<Owner>],
    pub attach: &'a [AttachPoint],
}

impl<'a> Held<'a> {
    pub fn of(ctx: &'a ProgramContext) -> Self {
        Self {
            owners: &ctx.owners,
            attach: &ctx.attach,
        }
    }

    /// A map's: holders, and nothing attached.
    pub fn map(owners: &'a [Arc<Owner>]) -> Self {
        Self {
            owners,
            attach: &[],
        }
    }
}

/// The context of the programs loaded now, by id: what [`Held`] is made of for a stored row.
pub type HeldNow = HashMap<u32, Arc<ProgramContext>>;

/// What the programs of `pass` have now, by id.
pub fn held_now(pass: Option<&Pass>) -> HeldNow {
    pass.map(|p| {
        p.programs
            .iter()
            .map(|s| (s.meta.id, Arc::clone(&s.context)))
            .collect()
    })
    .unwrap_or_default()
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum OwnerSel {
    Pid(u32),
    Comm(String),
}

/// A string option, bounded (checked to be a string by `check_options` before).
fn text(options: &Options, key: &str) -> Result<Option<String>, Error> {
    match options.get(key) {
        None => Ok(None),
        Some(v) => {
            let s = <&str>::try_from(v).unwrap_or("");
            Ok(Some(bounded(key, s, 256)?.to_owned()))
        }
    }
}

/// A `type` filter that names a type of `known` (program or map types).
fn checked_type(t: Option<String>, what: &str, known: &[&str]) -> Result<Option<String>, Error> {
    let Some(t) = t else { return Ok(None) };
    if known.contains(&t.as_str()) {
        return Ok(Some(t));
    }
    // Uprobes, kretprobes... are how a program is attached, not a type: say where they are.
    let attach_hint = if attach_kinds().contains(&t.as_str()) {
        format!(
            " ({t} is how a program is attached, not a type: filter with attach {t}, as \
             in `ebpfstatctl list --attach {t}`)"
        )
    } else {
        String::new()
    };
    Err(Error::InvalidArgument(format!(
        "type {} is not a {what} type{attach_hint}; one of {}",
        quoted(&t),
        known.join(", ")
    )))
}

impl Filter {
    /// A filter on programs.
    pub fn from_options(options: &Options) -> Result<Self, Error> {
        let mut f = Self::parse(options)?;
        f.prog_type = checked_type(f.prog_type, "program", &prog_types())?;
        if let Some(a) = &f.attach
            && !attach_kinds().contains(&a.as_str())
        {
            return Err(Error::InvalidArgument(format!(
                "attach {} is not a way programs are attached; one of {}",
                quoted(a),
                attach_kinds().join(", ")
            )));
        }
        Ok(f)
    }

    /// A filter on maps: their types are map types, and nothing is attached to a map.
    pub fn for_maps(options: &Options) -> Result<Self, Error> {
        let mut f = Self::parse(options)?;
        f.prog_type = checked_type(f.prog_type, "map", &map_types())?;
        if f.attach.is_some() {
            return Err(Error::InvalidArgument(
                "attach filters programs: maps are not attached".into(),
            ));
        }
        Ok(f)
    }

    fn parse(options: &Options) -> Result<Self, Error> {
        let owner = text(options, "owner")?.map(|o| match o.parse() {
            Ok(pid) => OwnerSel::Pid(pid),
            Err(_) => OwnerSel::Comm(o),
        });
        if let Some(OwnerSel::Comm(c)) = &owner
            && c.is_empty()
        {
            return Err(Error::InvalidArgument(format!(
                "owner {}: give a pid or a command name",
                quoted(c)
            )));
        }
        Ok(Self {
            all: options.get("all").and_then(|v| bool::try_from(v).ok()) == Some(true),
            name: text(options, "name")?.as_deref().map(Glob::new),
            prog_type: text(options, "type")?,
            attach: text(options, "attach")?,
            owner,
            unit: text(options, "unit")?.as_deref().map(Glob::new),
            container: text(options, "container")?.as_deref().map(Glob::new),
        })
    }

    /// Whether the filter needs what a program has now (holders, attach points): only loaded
    /// programs have any.
    pub fn needs_held(&self) -> bool {
        self.owner.is_some()
            || self.unit.is_some()
            || self.container.is_some()
            || self.attach.is_some()
    }

    /// What the programs of `pass` have now, by id, when this filter asks about it.
    pub fn held_now(&self, pass: Option<&Pass>) -> HeldNow {
        if self.needs_held() {
            held_now(pass)
        } else {
            HashMap::new()
        }
    }

    /// Whether a program is shown. `held` is `None` for a program no longer loaded.
    pub fn keeps(
        &self,
        name: &str,
        full_name: &str,
        prog_type: &str,
        held: Option<Held<'_>>,
    ) -> bool {
        if !self.all && observer::is_own(name, prog_type) {
            return false;
        }
        if let Some(p) = &self.name
            && !p.matches(full_name)
            && !p.matches(name)
        {
            return false;
        }
        if self.prog_type.as_deref().is_some_and(|t| t != prog_type) {
            return false;
        }
        if !self.needs_held() {
            return true;
        }
        let Some(Held { owners, attach }) = held else {
            return false;
        };
        let attach_ok = self.attach.as_deref().is_none_or(|kind| {
            attach
                .iter()
                .any(|a| a.link_type == kind || a.attach_type == Some(kind))
        });
        let owner_ok = self.owner.as_ref().is_none_or(|sel| {
            owners.iter().any(|o| match sel {
                OwnerSel::Pid(pid) => o.pid == *pid,
                OwnerSel::Comm(c) => o.comm == *c,
            })
        });
        let unit_ok = self
            .unit
            .as_ref()
            .is_none_or(|u| owners.iter().any(|o| o.in_unit(u)));
        let container_ok = self
            .container
            .as_ref()
            .is_none_or(|c| owners.iter().any(|o| o.in_container(c)));
        attach_ok && owner_ok && unit_ok && container_ok
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_probe_is_left_out_unless_all() {
        let none = Filter::default();
        assert!(!none.keeps("ebpfstat_probe", "ebpfstat_probe", "socket_filter", None));
        assert!(none.keeps("sys_enter_opena", "sys_enter_openat", "tracepoint", None));
        let all = Filter {
            all: true,
            ..Filter::default()
        };
        assert!(all.keeps("ebpfstat_probe", "ebpfstat_probe", "socket_filter", None));
    }

    #[test]
    fn owners_and_units_need_a_loaded_program() {
        let by_comm = Filter {
            owner: Some(OwnerSel::Comm("bpftrace".into())),
            ..Filter::default()
        };
        let holder = Arc::new(Owner {
            pid: 42,
            comm: "bpftrace".into(),
            unit: Some("session-3.scope".into()),
            cgroup: None,
            container: None,
        });
        let owners = [holder];
        let held = Some(Held::map(&owners));
        assert!(by_comm.keeps("p", "p", "tracepoint", held));
        assert!(!by_comm.keeps("p", "p", "tracepoint", None));
        let by_unit = Filter {
            unit: Some(Glob::new("session-*")),
            ..Filter::default()
        };
        assert!(by_unit.keeps("p", "p", "tracepoint", held));
        let by_pid = Filter {
            owner: Some(OwnerSel::Pid(7)),
            ..Filter::default()
        };
        assert!(!by_pid.keeps("p", "p", "tracepoint", held));
    }

    #[test]
    fn unknown_types_are_refused_and_attach_kinds_found() {
        let opts = |key: &str, v: &str| {
            let mut o = Options::new();
            o.insert(
                key.into(),
                zbus::OwnedVariant::from(zbus::Str::from(v.to_owned())),
            );
            o
        };
        let e = Filter::from_options(&opts("type", "tracepint")).expect_err("a typo");
        assert!(e.to_string().contains("tracepoint, "), "{e}");
        let e = Filter::from_options(&opts("type", "uprobe")).expect_err("not a type");
        assert!(e.to_string().contains("attach uprobe"), "{e}");
        assert!(Filter::for_maps(&opts("type", "hash")).is_ok());
        assert!(Filter::from_options(&opts("type", "hash")).is_err());
        let by_attach = Filter::from_options(&opts("attach", "uprobe")).expect("a kind");
        let uprobe = [AttachPoint {
            link_id: 0,
            link_type: "perf_event",
            attach_type: Some("uprobe"),
            target: "/bin/bash+0xc6c20".into(),
            missed: None,
        }];
        let held = Held {
            owners: &[],
            attach: &uprobe,
        };
        assert!(by_attach.keeps("readline", "readline", "kprobe", Some(held)));
        assert!(!by_attach.keeps("readline", "readline", "kprobe", None));
        let held = Held {
            owners: &[],
            attach: &uprobe[..0],
        };
        assert!(!by_attach.keeps("readline", "readline", "kprobe", Some(held)));
    }
}
