//! How an error message quotes a value it was given: bounded and escaped, in one place for the
//! configuration, the command line and alert rules.

/// Characters of a value an error message quotes: a value may be a whole file's worth.
pub const SHOWN_CHARS: usize = 64;

/// A value as an error message quotes it (the one place that decides how): control characters
/// escaped, so a NUL or a terminal's escape sequence is seen rather than acted on, and only its
/// first [`SHOWN_CHARS`] characters, then `… (N bytes)`. `{}` writes it bare, `{:?}` quoted.
#[derive(Clone, Copy)]
pub struct Shown<'a>(pub &'a str);

impl<'a> Shown<'a> {
    /// The part quoted, and the whole length when that is not all of it.
    fn head(self) -> (&'a str, Option<usize>) {
        match self.0.char_indices().nth(SHOWN_CHARS) {
            Some((cut, _)) => (&self.0[..cut], Some(self.0.len())),
            None => (self.0, None),
        }
    }

    fn rest(f: &mut std::fmt::Formatter<'_>, len: Option<usize>) -> std::fmt::Result {
        match len {
            Some(n) => write!(f, "… ({n} bytes)"),
            None => Ok(()),
        }
    }
}

impl std::fmt::Display for Shown<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (head, len) = self.head();
        for c in head.chars() {
            if c.is_control() {
                write!(f, "{}", c.escape_debug())?;
            } else {
                write!(f, "{c}")?;
            }
        }
        Self::rest(f, len)
    }
}

impl std::fmt::Debug for Shown<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (head, len) = self.head();
        write!(f, "{head:?}")?;
        Self::rest(f, len)
    }
}
