//! Programs named by people: the full (BTF) name, the kernel's 15-byte name, a longer name the
//! kernel cut to those 15 bytes, or any prefix of either that names one program; a name that
//! matches nothing gets the closest known ones.

use ebpfstat_dbus::Error;

use crate::bpf::names::KERNEL_NAME_MAX;

/// A caller's string as an error quotes it: whole when short, else its start and its length,
/// so a reply never echoes what a caller sent at length.
pub fn quoted(s: &str) -> String {
    const SHOWN: usize = 40;
    match s.char_indices().nth(SHOWN) {
        None => format!("{s:?}"),
        Some((cut, _)) => format!("{:?}… ({} bytes)", &s[..cut], s.len()),
    }
}

/// What a name finds among (full name, kernel name) pairs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Found {
    /// One program's full name.
    One(String),
    /// Several full names start so.
    Several(Vec<String>),
    /// Nothing; the closest known full names.
    Nothing(Vec<String>),
}

pub fn find(name: &str, known: &[(String, String)]) -> Found {
    if let Some((full, _)) = known.iter().find(|(f, k)| f == name || k == name) {
        return Found::One(full.clone());
    }
    if let Some((full, _)) = known.iter().find(|(f, k)| cut_from(name, f, k)) {
        return Found::One(full.clone());
    }
    let mut prefixed: Vec<&String> = known
        .iter()
        .filter(|(f, k)| f.starts_with(name) || k.starts_with(name))
        .map(|(f, _)| f)
        .collect();
    prefixed.sort_unstable();
    prefixed.dedup();
    match prefixed.as_slice() {
        [one] => return Found::One((*one).clone()),
        [] => {}
        many => return Found::Several(many.iter().map(|s| (*s).clone()).collect()),
    }
    Found::Nothing(typos(name, known))
}

/// Whether the kernel's name `kernel` is `name` cut to the 15 bytes it keeps
/// (`sys_enter_openat` loaded by bpftrace is `sys_enter_opena`), with no longer full name known
/// that would say otherwise.
pub fn cut_from(name: &str, full: &str, kernel: &str) -> bool {
    kernel.len() == KERNEL_NAME_MAX
        && full == kernel
        && name.len() > KERNEL_NAME_MAX
        && name.as_bytes().starts_with(kernel.as_bytes())
}

/// Names longer than this get no typo suggestions: nobody mistypes 65 characters, and edit
/// distance costs the product of the two lengths.
pub const MAX_TYPO_LEN: usize = 64;

/// Edit-distance cells one suggestion may compute (name length × candidate length, summed):
/// a few milliseconds, however many names are stored.
pub const TYPO_BUDGET: usize = 1 << 21;

/// The nearest few known full names by edit distance, if near enough to be what was meant.
/// Bounded: only names of about the same length are compared, and at most [`TYPO_BUDGET`]
/// cells; past it, the nearest among those compared.
fn typos(name: &str, known: &[(String, String)]) -> Vec<String> {
    let len = name.chars().count();
    if len > MAX_TYPO_LEN {
        return Vec::new();
    }
    let most = (len / 3).max(2);
    let mut spent = 0usize;
    let mut near: Vec<(usize, &String)> = Vec::new();
    for (f, _) in known {
        // Each of a name's chars is at least one byte and at most four: a cheap length window
        // before counting chars.
        if f.len() > 4 * (len + most) || f.len() + most < len {
            continue;
        }
        let flen = f.chars().count();
        if flen.abs_diff(len) > most {
            continue;
        }
        spent += len.max(1) * flen.max(1);
        if spent > TYPO_BUDGET {
            break;
        }
        let d = strsim::levenshtein(name, f);
        if d <= most {
            near.push((d, f));
        }
    }
    near.sort_unstable();
    near.dedup_by(|a, b| a.1 == b.1);
    near.into_iter().take(3).map(|(_, f)| f.clone()).collect()
}

/// The error for a name that found several programs or none.
pub fn not_found(name: &str, found: &Found, what: &str) -> Error {
    match found {
        Found::One(_) => Error::NoSuchProgram(format!("no {what} named {}", quoted(name))),
        Found::Several(names) => {
            let shown: Vec<&str> = names.iter().take(8).map(String::as_str).collect();
            Error::InvalidArgument(format!(
                "{} is the start of {} program names ({}{}): give more of the name",
                quoted(name),
                names.len(),
                shown.join(", "),
                if names.len() > shown.len() {
                    ", …"
                } else {
                    ""
                }
            ))
        }
        Found::Nothing(near) if near.is_empty() => {
            Error::NoSuchProgram(format!("no {what} named {}", quoted(name)))
        }
        Found::Nothing(near) => Error::NoSuchProgram(format!(
            "no {what} named {}; did you mean {}?",
            quoted(name),
            near.join(", ")
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_typo_search_is_bounded_whatever_is_stored() {
        // 16 k stored names of 480 bytes, and the adversary's 512-byte name: no distance is
        // computed for a name that long; a short one compares at most the budget.
        let long: Vec<(String, String)> = (0..16_000)
            .map(|i| (format!("{i:05}{}", "a".repeat(475)), "k".into()))
            .collect();
        let hostile = format!("{}{}b", "a".repeat(300), "Z".repeat(211));
        assert_eq!(find(&hostile, &long), Found::Nothing(Vec::new()));
        let same_len: Vec<(String, String)> = (0..100_000)
            .map(|i| (format!("prog_{i:06}_x"), "k".into()))
            .collect();
        let cells_each = 13 * 13;
        assert!(
            same_len.len() * cells_each > TYPO_BUDGET,
            "the budget is reached"
        );
        match find("prog_000001_y", &same_len) {
            Found::Nothing(near) => {
                assert_eq!(near.first().map(String::as_str), Some("prog_000001_x"))
            }
            other => panic!("{other:?}"),
        }
    }

    fn known() -> Vec<(String, String)> {
        [
            ("sys_enter_openat", "sys_enter_opena"),
            ("sys_enter_openat2", "sys_enter_opena"),
            ("sys_exit_read", "sys_exit_read"),
            ("cil_from_container", "cil_from_contai"),
            // bpftrace's programs carry no full name: only the kernel's cut one.
            ("sys_enter_getpi", "sys_enter_getpi"),
        ]
        .iter()
        .map(|(f, k)| ((*f).to_owned(), (*k).to_owned()))
        .collect()
    }

    #[test]
    fn full_names_kernel_names_and_prefixes() {
        let k = known();
        assert_eq!(
            find("sys_exit_read", &k),
            Found::One("sys_exit_read".into())
        );
        assert_eq!(
            find("cil_from_contai", &k),
            Found::One("cil_from_container".into())
        );
        assert_eq!(find("cil_", &k), Found::One("cil_from_container".into()));
        assert_eq!(
            find("sys_enter_open", &k),
            Found::Several(vec!["sys_enter_openat".into(), "sys_enter_openat2".into()])
        );
        // The exact full name wins over being the prefix of another.
        assert_eq!(
            find("sys_enter_openat", &k),
            Found::One("sys_enter_openat".into())
        );
    }

    #[test]
    fn a_name_the_kernel_cut_finds_its_program() {
        let k = known();
        assert_eq!(
            find("sys_enter_getpid", &k),
            Found::One("sys_enter_getpi".into())
        );
        // A full name is known for these: the cut name alone does not stand for another.
        assert!(matches!(find("sys_enter_openat3", &k), Found::Nothing(_)));
    }

    #[test]
    fn typos_suggest_the_closest() {
        let k = known();
        match find("sys_exit_raed", &k) {
            Found::Nothing(near) => {
                assert_eq!(near.first().map(String::as_str), Some("sys_exit_read"))
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(find("nginx", &k), Found::Nothing(Vec::new()));
        // Near in length only: a 3-letter name is never compared with a 17-letter one.
        assert_eq!(find("cix", &k), Found::Nothing(Vec::new()));
        let e = not_found("sys_enter_open", &find("sys_enter_open", &k), "program");
        assert!(e.to_string().contains("give more of the name"), "{e}");
    }
}
