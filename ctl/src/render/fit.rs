//! Fitting a table to a terminal's width, for the printed tables and the live view alike:
//! columns are left out whole, in an order of priority, while the others would not fit at
//! their narrowest; the columns that may be cut (names, holders) then share what is left, and
//! a cut cell ends with `…`, so a cut never looks whole.

use std::io::{self, Write};

use unicode_width::{UnicodeWidthChar, UnicodeWidthStr};

/// A name is cut to no fewer columns than a kernel name has (15 bytes).
pub const MIN_NAME: u16 = 15;
/// Holders to no fewer than `comm[pid]` takes, about.
pub const MIN_HOLDERS: u16 = 11;

/// What one column asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Want {
    /// Its widest cell, header included; `u16::MAX` for a column that takes what is left.
    pub natural: u16,
    /// The narrowest it may be cut to; `natural` for a column never cut.
    pub min: u16,
    /// Its share of the room left, against the other columns that may be cut.
    pub weight: u16,
    /// When it is left out: lower first; `None` for never.
    pub drop: Option<u8>,
}

impl Want {
    /// A column shown whole or not at all.
    pub fn whole(natural: u16, drop: Option<u8>) -> Self {
        Self {
            natural,
            min: natural,
            weight: 0,
            drop,
        }
    }
}

/// How a table spaces its columns: `sep` columns between two, `edges` around the line.
#[derive(Debug, Clone, Copy)]
pub struct Spacing {
    pub sep: u16,
    pub edges: u16,
}

/// The width of each column in `total` columns (`None`: left out).
pub fn widths(wants: &[Want], total: u16, spacing: Spacing) -> Vec<Option<u16>> {
    let mut shown = vec![true; wants.len()];
    let line = |shown: &[bool], width: &dyn Fn(&Want) -> u16| -> u32 {
        let n = shown.iter().filter(|s| **s).count();
        let cells: u32 = wants
            .iter()
            .zip(shown)
            .filter(|(_, s)| **s)
            .map(|(w, _)| u32::from(width(w)))
            .sum();
        let gaps = u32::try_from(n.saturating_sub(1)).unwrap_or(u32::MAX);
        cells + gaps * u32::from(spacing.sep) + u32::from(spacing.edges)
    };
    while line(&shown, &|w| w.min) > u32::from(total) {
        let next = (0..wants.len())
            .filter(|&i| shown[i])
            .filter_map(|i| wants[i].drop.map(|d| (d, i)))
            .min();
        match next {
            Some((_, i)) => shown[i] = false,
            // Nothing more may go: the line is as narrow as it gets.
            None => break,
        }
    }
    let rigid = |w: &Want| if w.min == w.natural { w.natural } else { 0 };
    let room = u32::from(total).saturating_sub(line(&shown, &rigid));
    let cut: Vec<usize> = (0..wants.len())
        .filter(|&i| shown[i] && wants[i].min != wants[i].natural)
        .collect();
    let shares = share(wants, &cut, room);
    (0..wants.len())
        .map(|i| {
            shown[i].then(|| {
                cut.iter()
                    .position(|&c| c == i)
                    .map_or(wants[i].natural, |at| shares[at])
            })
        })
        .collect()
}

/// `room` shared among the columns `cut` by weight, each between its minimum and its natural
/// width; what one cannot take goes to the others; a remainder to the first.
fn share(wants: &[Want], cut: &[usize], room: u32) -> Vec<u16> {
    let mut fixed: Vec<Option<u16>> = vec![None; cut.len()];
    let mut room = room;
    loop {
        let open: Vec<usize> = (0..cut.len()).filter(|&k| fixed[k].is_none()).collect();
        let weights: u32 = open
            .iter()
            .map(|&k| u32::from(wants[cut[k]].weight.max(1)))
            .sum();
        if open.is_empty() || weights == 0 {
            break;
        }
        let mut given: Vec<u32> = open
            .iter()
            .map(|&k| room * u32::from(wants[cut[k]].weight.max(1)) / weights)
            .collect();
        let rest = room.saturating_sub(given.iter().sum::<u32>());
        if let Some(first) = given.first_mut() {
            *first += rest;
        }
        let w = |k: usize| wants[cut[k]];
        let below: Vec<usize> = (0..open.len())
            .filter(|&j| given[j] < u32::from(w(open[j]).min))
            .collect();
        let above: Vec<usize> = (0..open.len())
            .filter(|&j| given[j] > u32::from(w(open[j]).natural))
            .collect();
        let (settle, at): (&[usize], fn(Want) -> u16) = match (&below[..], &above[..]) {
            ([], []) => {
                for (j, &k) in open.iter().enumerate() {
                    fixed[k] = Some(u16::try_from(given[j]).unwrap_or(u16::MAX));
                }
                break;
            }
            ([], above) => (above, |w| w.natural),
            (below, _) => (below, |w| w.min),
        };
        for &j in settle {
            let v = at(w(open[j]));
            fixed[open[j]] = Some(v);
            room = room.saturating_sub(u32::from(v));
        }
    }
    fixed.into_iter().map(Option::unwrap_or_default).collect()
}

/// `text` in at most `width` columns: cut with `…` when longer. The text is what the terminal
/// shows (already made [`super::visible`]).
pub fn cut(text: &str, width: usize) -> String {
    if text.width() <= width {
        return text.to_owned();
    }
    if width == 0 {
        return String::new();
    }
    let mut out = String::new();
    let mut used = 0;
    for c in text.chars() {
        let w = c.width().unwrap_or(0);
        if used + w > width - 1 {
            break;
        }
        used += w;
        out.push(c);
    }
    out.push('…');
    out
}

/// Any text in at most `width` columns: made [`super::visible`] (the escapes are what is
/// measured and cut), then [`cut`].
pub fn fit(text: &str, width: usize) -> String {
    cut(&super::visible(text), width)
}

/// `text` in lines of at most `width` columns, broken between words; a word longer than a line
/// is broken where the line ends (nothing of it is lost). Lines after the first start with
/// `indent` spaces.
pub fn wrap(text: &str, width: usize, indent: usize) -> Vec<String> {
    let pad = " ".repeat(indent);
    let mut lines = Vec::new();
    let mut line = String::new();
    let mut used = 0;
    // Whether the line holds no word yet (but its indent).
    let mut fresh = true;
    for word in text.split(' ') {
        if !fresh && used + 1 + word.width() > width {
            lines.push(std::mem::replace(&mut line, pad.clone()));
            used = indent;
            fresh = true;
        }
        if !fresh {
            line.push(' ');
            used += 1;
        }
        for c in word.chars() {
            let w = c.width().unwrap_or(0);
            if used + w > width && used > indent {
                lines.push(std::mem::replace(&mut line, pad.clone()));
                used = indent;
            }
            line.push(c);
            used += w;
        }
        fresh = false;
    }
    lines.push(line);
    lines
}

/// A line holding a name between `lead` and `rest` (`full name: …`, `NAME · 2 loads · …`). On
/// a terminal the name is cut with `…` to leave the line's width to the rest (to no fewer than
/// [`MIN_NAME`] columns), and what still does not fit breaks between words, continuing
/// `indent` columns in; piped, the line is whole.
pub fn say_named(lead: &str, name: &str, rest: &str, indent: usize) -> io::Result<()> {
    let Some(width) = super::terminal_width() else {
        return super::say(&format!("{lead}{name}{rest}"));
    };
    let lines = named(lead, name, rest, usize::from(width), indent);
    let mut out = io::stdout().lock();
    for line in lines {
        writeln!(out, "{line}")?;
    }
    Ok(())
}

/// [`say_named`]'s lines in `width` columns.
fn named(lead: &str, name: &str, rest: &str, width: usize, indent: usize) -> Vec<String> {
    let (lead, rest) = (super::visible(lead), super::visible(rest));
    let room = width
        .saturating_sub(lead.width() + rest.width())
        .max(usize::from(MIN_NAME));
    wrap(&format!("{lead}{}{rest}", fit(name, room)), width, indent)
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIVE: Spacing = Spacing { sep: 1, edges: 0 };

    #[test]
    fn a_cut_is_marked_and_fits_in_columns() {
        assert_eq!(fit("sys_enter_openat", 16), "sys_enter_openat");
        assert_eq!(fit("sys_enter_openat", 8), "sys_ent…");
        assert_eq!(fit("µµµµ", 3), "µµ…");
        assert_eq!(fit("abc", 0), "");
        assert_eq!(fit("abc", 1), "…");
    }

    #[test]
    fn controls_are_shown_escaped_and_measured_so() {
        assert_eq!(fit("\x1b[2J\x07", 12), "\\e[2J\\x07");
        assert_eq!(fit("\x1b[2J\x07", 6), "\\e[2J…");
        assert_eq!(fit("a\u{202e}b", 3), "a\\…");
    }

    #[test]
    fn a_table_that_fits_keeps_its_natural_widths() {
        let wants = [
            Want::whole(5, None),
            Want {
                natural: 20,
                min: 10,
                weight: 1,
                drop: None,
            },
            Want::whole(8, Some(0)),
        ];
        assert_eq!(widths(&wants, 80, LIVE), [Some(5), Some(20), Some(8)]);
        // Too narrow for all at their natural width: the name is cut before a column goes.
        assert_eq!(widths(&wants, 30, LIVE), [Some(5), Some(15), Some(8)]);
        // Too narrow for the name's minimum beside it: the column goes whole.
        assert_eq!(widths(&wants, 20, LIVE), [Some(5), Some(14), None]);
        // Nothing more may go: as narrow as it gets.
        assert_eq!(widths(&wants, 10, LIVE), [Some(5), Some(10), None]);
    }

    #[test]
    fn columns_that_may_be_cut_share_by_weight_within_their_bounds() {
        let flex = |natural, min, weight| Want {
            natural,
            min,
            weight,
            drop: None,
        };
        // 3 : 2 of 50.
        let w = widths(&[flex(u16::MAX, 5, 3), flex(u16::MAX, 5, 2)], 51, LIVE);
        assert_eq!(w, [Some(30), Some(20)]);
        // One wants less than its share: the other takes the rest.
        let w = widths(&[flex(100, 5, 1), flex(12, 5, 1)], 61, LIVE);
        assert_eq!(w, [Some(48), Some(12)]);
        // One would get less than its minimum: it gets its minimum.
        let w = widths(&[flex(u16::MAX, 15, 1), flex(u16::MAX, 11, 1)], 28, LIVE);
        assert_eq!(w, [Some(15), Some(12)]);
    }

    #[test]
    fn a_name_is_cut_to_leave_room_for_what_follows_it() {
        let name = "n".repeat(40);
        assert_eq!(
            named("full name: ", &name, "", 30, 11),
            [format!("full name: {}…", "n".repeat(18))]
        );
        assert_eq!(
            named("", &name, " · tier raw", 30, 2),
            [format!("{}… · tier raw", "n".repeat(18))]
        );
        // Never below a kernel name's width: the rest goes on the next line.
        assert_eq!(
            named("", &name, " · 2 loads", 20, 2),
            [format!("{}… · 2", "n".repeat(14)), "  loads".to_owned()]
        );
        // Short, it is whole.
        assert_eq!(named("", "abc", " · x", 80, 2), ["abc · x"]);
    }

    #[test]
    fn prose_breaks_between_words_and_indents_what_follows() {
        assert_eq!(
            wrap("* map memory: the kernel's estimate", 16, 2),
            ["* map memory:", "  the kernel's", "  estimate"]
        );
        assert_eq!(wrap("short", 80, 2), ["short"]);
        assert_eq!(wrap("abcdefghij", 4, 0), ["abcd", "efgh", "ij"]);
        for l in wrap(&"word ".repeat(40), 20, 3) {
            assert!(l.width() <= 20, "{l:?}");
        }
    }
}
