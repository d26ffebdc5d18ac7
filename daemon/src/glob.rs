//! Shell-style globs on program names and units, as the API's filters and alert rules take them.

/// Shell-style glob: `*` any run of characters, `?` any one; everything else itself.
pub fn glob(pattern: &str, text: &str) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
    // Iterative matching with one backtrack point: linear in practice, never exponential.
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        match p.get(pi) {
            Some('*') => {
                star = Some((pi, ti));
                pi += 1;
            }
            Some(&c) if c == '?' || c == t[ti] => {
                pi += 1;
                ti += 1;
            }
            _ => match star {
                Some((sp, st)) => {
                    pi = sp + 1;
                    ti = st + 1;
                    star = Some((sp, st + 1));
                }
                None => return false,
            },
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_match_as_a_shell_does() {
        assert!(glob("sys_enter_*", "sys_enter_openat"));
        assert!(glob("*openat", "sys_enter_openat"));
        assert!(glob("sys_?nter*", "sys_enter_openat"));
        assert!(glob("*", ""));
        assert!(glob("cil*_from_*", "cil_from_container"));
        assert!(!glob("sys_exit_*", "sys_enter_openat"));
        assert!(!glob("openat", "sys_enter_openat"));
        assert!(!glob("a?", "a"));
        // Many stars against a long miss stay fast.
        assert!(!glob(&"*a".repeat(50), &"a".repeat(40)));
    }
}
