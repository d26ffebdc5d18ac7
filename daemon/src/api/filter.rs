//! Which programs a view shows: the option keys `name` (a glob on the full or kernel name),
//! `type`, `owner` (a pid or a command name), `unit` (a systemd unit) and `all` (the daemon's
//! own probe too), combined with *and*. Without `all`, the daemon's own calibration probe is
//! left out: it is not a workload.

use ebpfstat_dbus::{Error, Options};

use super::args::bounded;
use super::names::quoted;
use crate::glob::Glob;
use crate::observer;
use crate::sampler::owners::Owner;

/// The option keys and their D-Bus types, for `check_options`.
pub const KEYS: [(&str, &str); 5] = [
    ("all", "b"),
    ("name", "s"),
    ("type", "s"),
    ("owner", "s"),
    ("unit", "s"),
];

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Filter {
    all: bool,
    name: Option<Glob>,
    prog_type: Option<String>,
    owner: Option<OwnerSel>,
    unit: Option<Glob>,
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

impl Filter {
    pub fn from_options(options: &Options) -> Result<Self, Error> {
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
            owner,
            unit: text(options, "unit")?.as_deref().map(Glob::new),
        })
    }

    /// Whether the filter needs the program's holders (only loaded programs have them).
    pub fn needs_owners(&self) -> bool {
        self.owner.is_some() || self.unit.is_some()
    }

    /// Whether a program is shown. `owners` is `None` for a program no longer loaded.
    pub fn keeps(
        &self,
        name: &str,
        full_name: &str,
        prog_type: &str,
        owners: Option<&[std::sync::Arc<Owner>]>,
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
        if !self.needs_owners() {
            return true;
        }
        let Some(owners) = owners else {
            return false;
        };
        let owner_ok = self.owner.as_ref().is_none_or(|sel| {
            owners.iter().any(|o| match sel {
                OwnerSel::Pid(pid) => o.pid == *pid,
                OwnerSel::Comm(c) => o.comm == *c,
            })
        });
        let unit_ok = self.unit.as_ref().is_none_or(|u| {
            owners.iter().any(|o| {
                o.unit
                    .as_deref()
                    .is_some_and(|ou| ou == u.as_str() || u.matches(ou))
            })
        });
        owner_ok && unit_ok
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
        let holder = std::sync::Arc::new(Owner {
            pid: 42,
            comm: "bpftrace".into(),
            unit: Some("session-3.scope".into()),
            cgroup: None,
        });
        let owners = [holder];
        assert!(by_comm.keeps("p", "p", "tracepoint", Some(&owners)));
        assert!(!by_comm.keeps("p", "p", "tracepoint", None));
        let by_unit = Filter {
            unit: Some(Glob::new("session-*")),
            ..Filter::default()
        };
        assert!(by_unit.keeps("p", "p", "tracepoint", Some(&owners)));
        let by_pid = Filter {
            owner: Some(OwnerSel::Pid(7)),
            ..Filter::default()
        };
        assert!(!by_pid.keeps("p", "p", "tracepoint", Some(&owners)));
    }
}
