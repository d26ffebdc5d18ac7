//! Programs named by people: the full (BTF) name, the kernel's 15-byte name, or any prefix of
//! either that names one program; a name that matches nothing gets the closest known ones.

use ebpfstat_dbus::Error;

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
    let mut prefixed: Vec<&String> = known
        .iter()
        .filter(|(f, k)| f.starts_with(name) || k.starts_with(name))
        .map(|(f, _)| f)
        .collect();
    prefixed.sort();
    prefixed.dedup();
    match prefixed.as_slice() {
        [one] => return Found::One((*one).clone()),
        [] => {}
        many => return Found::Several(many.iter().map(|s| (*s).clone()).collect()),
    }
    // Typos: the nearest few by edit distance, if near enough to be what was meant.
    let most = (name.chars().count() / 3).max(2);
    let mut near: Vec<(usize, &String)> = known
        .iter()
        .map(|(f, _)| (strsim::levenshtein(name, f), f))
        .filter(|(d, _)| *d <= most)
        .collect();
    near.sort();
    near.dedup_by(|a, b| a.1 == b.1);
    Found::Nothing(near.into_iter().take(3).map(|(_, f)| f.clone()).collect())
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

    fn known() -> Vec<(String, String)> {
        [
            ("sys_enter_openat", "sys_enter_opena"),
            ("sys_enter_openat2", "sys_enter_opena"),
            ("sys_exit_read", "sys_exit_read"),
            ("cil_from_container", "cil_from_contai"),
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
    fn typos_suggest_the_closest() {
        let k = known();
        match find("sys_exit_raed", &k) {
            Found::Nothing(near) => {
                assert_eq!(near.first().map(String::as_str), Some("sys_exit_read"))
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(find("nginx", &k), Found::Nothing(Vec::new()));
        let e = not_found("sys_enter_open", &find("sys_enter_open", &k), "program");
        assert!(e.to_string().contains("give more of the name"), "{e}");
    }
}
