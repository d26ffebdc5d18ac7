//! How stats are held, in words (`Status()`'s `stats_mode`).

use crate::observer::Mode;
use ebpfstat_numbers::Share;

pub fn mode_text(mode: Mode) -> String {
    match mode {
        Mode::Always => "always".into(),
        Mode::Budget(b) => format!("budget {}% of one core", Share(b).percent()),
        Mode::Fixed(d) => format!("duty {:.0}%", Share(d).percent()),
    }
}
