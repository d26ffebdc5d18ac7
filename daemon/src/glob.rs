//! Shell-style globs on program names and units, as the API's filters and alert rules take them.
//!
//! A glob is compiled once into a set of positions (a bit per pattern character) and a text is
//! matched by moving that set one character at a time: time linear in the text, times the
//! pattern's length over 64, whatever the pattern. Backtracking matchers take time of the
//! pattern's length times the text's for `*aaa…ab` against `aaa…a`, which an alert rule can be.

use std::fmt;

/// Shell-style glob: `*` any run of characters, `?` any one; everything else itself.
#[derive(Clone)]
pub struct Glob(Box<Compiled>);

#[derive(Clone)]
struct Compiled {
    source: String,
    /// The pattern's characters, runs of `*` taken as one.
    atoms: Vec<char>,
    /// The positions each character of the pattern (and `?`) is matched at, by character.
    by_char: Vec<(char, Vec<u64>)>,
    /// The positions of `?`: what a character that is not in the pattern is matched at.
    any: Vec<u64>,
    /// The positions of `*`.
    stars: Vec<u64>,
}

impl Glob {
    pub fn new(pattern: &str) -> Self {
        let mut atoms: Vec<char> = Vec::with_capacity(pattern.len());
        for c in pattern.chars() {
            if !(c == '*' && atoms.last() == Some(&'*')) {
                atoms.push(c);
            }
        }
        // Bit i stands for "the first i atoms matched": positions 0 ..= atoms.len().
        let words = (atoms.len() + 1).div_ceil(64);
        let mask = |pick: &dyn Fn(char) -> bool| {
            let mut m = vec![0u64; words];
            for (i, &a) in atoms.iter().enumerate() {
                if pick(a) {
                    m[i / 64] |= 1 << (i % 64);
                }
            }
            m
        };
        let mut chars: Vec<char> = atoms
            .iter()
            .copied()
            .filter(|&c| c != '*' && c != '?')
            .collect();
        chars.sort_unstable();
        chars.dedup();
        let by_char = chars
            .iter()
            .map(|&c| (c, mask(&|a| a == c || a == '?')))
            .collect();
        Self(Box::new(Compiled {
            source: pattern.to_owned(),
            any: mask(&|a| a == '?'),
            stars: mask(&|a| a == '*'),
            by_char,
            atoms,
        }))
    }

    pub fn as_str(&self) -> &str {
        &self.0.source
    }

    /// Whether the whole of `text` matches.
    pub fn matches(&self, text: &str) -> bool {
        self.0.matches(text)
    }
}

impl Compiled {
    fn matches(&self, text: &str) -> bool {
        if !self.ends_fit(text) {
            return false;
        }
        let mut at = vec![0u64; self.any.len()];
        at[0] = 1;
        self.close(&mut at);
        for c in text.chars() {
            let fit = self
                .by_char
                .binary_search_by_key(&c, |(k, _)| *k)
                .map_or(&self.any, |i| &self.by_char[i].1);
            let mut carry = 0;
            for (w, word) in at.iter_mut().enumerate() {
                // A star stays where it is (it takes the character); a fitting atom moves on.
                let moved = *word & fit[w];
                let next = (moved << 1) | carry | (*word & self.stars[w]);
                carry = moved >> 63;
                *word = next;
            }
            self.close(&mut at);
            if at.iter().all(|&w| w == 0) {
                return false;
            }
        }
        let end = self.atoms.len();
        at[end / 64] & (1 << (end % 64)) != 0
    }

    /// A star may take nothing: where one is reached, the atom after it is reached too (runs of
    /// stars are one atom, so one step is enough).
    fn close(&self, at: &mut [u64]) {
        let mut carry = 0;
        for (w, word) in at.iter_mut().enumerate() {
            let on_star = *word & self.stars[w];
            let reached = (on_star << 1) | carry;
            carry = on_star >> 63;
            *word |= reached;
        }
    }

    /// The characters before the first star must begin the text and those after the last star
    /// end it: checked first, so most misses cost a few comparisons.
    fn ends_fit(&self, text: &str) -> bool {
        let fits = |a: &char, c: char| *a == '?' || *a == c;
        let head = self.atoms.iter().take_while(|&&a| a != '*');
        let mut chars = text.chars();
        for a in head {
            match chars.next() {
                Some(c) if fits(a, c) => {}
                _ => return false,
            }
        }
        if !self.atoms.contains(&'*') {
            return chars.next().is_none();
        }
        let tail = self.atoms.iter().rev().take_while(|&&a| a != '*');
        let mut back = text.chars().rev();
        tail.into_iter()
            .all(|a| back.next().is_some_and(|c| fits(a, c)))
    }
}

impl From<&str> for Glob {
    fn from(pattern: &str) -> Self {
        Self::new(pattern)
    }
}

impl Eq for Glob {}

impl PartialEq for Glob {
    fn eq(&self, other: &Self) -> bool {
        self.0.source == other.0.source
    }
}

impl fmt::Debug for Glob {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Glob({:?})", self.0.source)
    }
}

impl fmt::Display for Glob {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.source)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn glob(p: &str, t: &str) -> bool {
        Glob::new(p).matches(t)
    }

    /// What a shell does, by recursion: the oracle, on short strings only.
    fn oracle(p: &[char], t: &[char]) -> bool {
        match p.split_first() {
            None => t.is_empty(),
            Some(('*', rest)) => (0..=t.len()).any(|i| oracle(rest, &t[i..])),
            Some((&c, rest)) => t
                .split_first()
                .is_some_and(|(&x, tr)| (c == '?' || c == x) && oracle(rest, tr)),
        }
    }

    #[test]
    fn globs_match_as_a_shell_does() {
        assert!(glob("sys_enter_*", "sys_enter_openat"));
        assert!(glob("*openat", "sys_enter_openat"));
        assert!(glob("sys_?nter*", "sys_enter_openat"));
        assert!(glob("*", ""));
        assert!(glob("**", "x"));
        assert!(glob("cil*_from_*", "cil_from_container"));
        assert!(!glob("sys_exit_*", "sys_enter_openat"));
        assert!(!glob("openat", "sys_enter_openat"));
        assert!(!glob("a?", "a"));
        assert!(glob("é?*ü", "éxyzü"));
        assert!(!glob("", "a"));
        assert!(glob("", ""));
    }

    #[test]
    fn every_short_pattern_agrees_with_the_oracle() {
        let alphabet = ['a', 'b', '*', '?'];
        let texts: Vec<String> = (0..4u32)
            .flat_map(|len| {
                (0..2u32.pow(len)).map(move |n| {
                    (0..len)
                        .map(|i| if n >> i & 1 == 0 { 'a' } else { 'b' })
                        .collect()
                })
            })
            .collect();
        for len in 0..5u32 {
            for n in 0..4u32.pow(len) {
                let p: String = (0..len)
                    .map(|i| alphabet[(n / 4u32.pow(i) % 4) as usize])
                    .collect();
                let g = Glob::new(&p);
                for t in &texts {
                    let pc: Vec<char> = p.chars().collect();
                    let tc: Vec<char> = t.chars().collect();
                    assert_eq!(g.matches(t), oracle(&pc, &tc), "{p:?} on {t:?}");
                }
            }
        }
    }

    #[test]
    fn long_patterns_span_words() {
        let long = format!("{}*{}", "a".repeat(100), "b".repeat(100));
        assert!(glob(
            &long,
            &format!("{}x{}", "a".repeat(100), "b".repeat(100))
        ));
        assert!(!glob(
            &long,
            &format!("{}{}", "a".repeat(100), "b".repeat(99))
        ));
        let middle = format!("*{}?*", "ab".repeat(70));
        assert!(glob(&middle, &format!("zz{}qz", "ab".repeat(70))));
        assert!(!glob(&middle, &format!("zz{}", "ab".repeat(70))));
    }

    #[test]
    fn the_adversary_s_patterns_are_linear() {
        // What a backtracking matcher takes time of pattern × text for: a count of steps here
        // would be the same for every pattern, so the outcome is what is checked.
        let text = "a".repeat(480);
        assert!(!glob(&format!("*{}b", "a".repeat(254)), &text));
        assert!(!glob(&format!("*{}b*", "a".repeat(200)), &text));
        assert!(!glob(&"*a".repeat(128), &"a".repeat(127)));
        assert!(glob(&"*a".repeat(128), &text));
    }
}
