//! The `Status()` map's helpers: the mode in words, strings as variants.

use zbus::{OwnedVariant, Str};

use crate::observer::Mode;
use ebpfstat_numbers::Share;

pub fn mode_text(mode: Mode) -> String {
    match mode {
        Mode::Always => "always".into(),
        Mode::Budget(b) => format!("budget {}% of one core", Share(b).percent()),
        Mode::Fixed(d) => format!("duty {:.0}%", Share(d).percent()),
    }
}

pub fn var(s: impl Into<String>) -> OwnedVariant {
    OwnedVariant::from(Str::from(s.into()))
}
