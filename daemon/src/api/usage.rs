//! The `Status()` map's helpers: the mode in words, strings as variants.

use zbus::{OwnedVariant, Str};

use crate::observer::Mode;

pub fn mode_text(mode: Mode) -> String {
    match mode {
        Mode::Always => "always".into(),
        Mode::Budget(b) => format!("budget {}% of one core", b * 100.0),
        Mode::Fixed(d) => format!("duty {:.0}%", d * 100.0),
    }
}

pub fn var(s: impl Into<String>) -> OwnedVariant {
    OwnedVariant::from(Str::from(s.into()))
}
