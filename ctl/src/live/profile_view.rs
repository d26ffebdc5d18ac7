//! The profile box (`P`): while the daemon traces the program, how long it has been; then the
//! percentiles and the histogram, as `ebpfstatctl profile` prints them; or why there is none.

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::Line;
use ratatui::widgets::{Block, Clear, Paragraph, Wrap};

use super::app::{PROFILE_FOR, ProfileView};
use super::screen::fit;
use crate::render::histogram::{COLUMNS, PERCENTILES, percentiles, rows, summary};

/// Cells laid out in columns of the widest cell, right-aligned but the last.
fn aligned(table: &[Vec<String>]) -> Vec<String> {
    use unicode_width::UnicodeWidthStr;
    let n = table.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..n)
        .map(|i| {
            table
                .iter()
                .filter_map(|r| r.get(i))
                .map(|c| c.width())
                .max()
                .unwrap_or(0)
        })
        .collect();
    table
        .iter()
        .map(|r| {
            let cells: Vec<String> = r
                .iter()
                .zip(&widths)
                .enumerate()
                .map(|(i, (c, w))| {
                    let pad = " ".repeat(w.saturating_sub(c.width()));
                    if i + 1 == r.len() {
                        c.clone()
                    } else {
                        format!("{pad}{c}")
                    }
                })
                .collect();
            cells.join("  ").trim_end().to_owned()
        })
        .collect()
}

/// The box's lines for the profile as it stands.
pub fn lines(p: &ProfileView, width: usize) -> Vec<String> {
    let answer = match &p.answer {
        None => {
            let secs = p.started.elapsed().as_secs().min(PROFILE_FOR.as_secs());
            return vec![format!(
                "profiling {} (id {}): {secs}s of {}s…",
                p.name,
                p.id,
                PROFILE_FOR.as_secs()
            )];
        }
        Some(Err(why)) => return vec![format!("{} (id {}): {why}", p.name, p.id)],
        Some(Ok(a)) => a,
    };
    let mut out: Vec<String> = summary(answer).to_vec();
    if answer.runs == 0 {
        return out;
    }
    out.push(String::new());
    let head = |h: &[&str]| h.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
    out.extend(aligned(&[head(&PERCENTILES), percentiles(answer).to_vec()]));
    out.push(String::new());
    let bar = width.saturating_sub(40).clamp(4, 30);
    let mut table = vec![head(&COLUMNS)];
    table.extend(rows(answer, bar).into_iter().map(|r| r.to_vec()));
    out.extend(aligned(&table));
    out
}

/// The box over the middle of the screen.
pub fn draw(f: &mut Frame, p: &ProfileView) {
    let area = f.area();
    let width = area.width.min(90);
    let inner = usize::from(width.saturating_sub(2));
    let text = lines(p, inner);
    // The two sentences wrap; the tables are cut to the box.
    let shown: Vec<Line> = text
        .iter()
        .enumerate()
        .map(|(i, l)| Line::raw(if i < 2 { l.clone() } else { fit(l, inner) }))
        .collect();
    // Lines as wrapped to the box (a word may push a line over: one more for each).
    let wanted: usize = text
        .iter()
        .map(|l| {
            use unicode_width::UnicodeWidthStr;
            l.width().div_ceil(inner.max(1)).max(1) + usize::from(l.width() > inner)
        })
        .sum::<usize>()
        + 2;
    let height = area.height.min(u16::try_from(wanted).unwrap_or(u16::MAX));
    let r = Rect::new(
        area.x + (area.width - width) / 2,
        area.y + (area.height - height) / 2,
        width,
        height,
    );
    f.render_widget(Clear, r);
    f.render_widget(
        Paragraph::new(shown)
            .wrap(Wrap { trim: false })
            .block(Block::bordered().title(" profile (Esc closes) ")),
        r,
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_align_on_their_widest_cell() {
        let t = vec![
            vec!["P50".to_owned(), "MAX".to_owned()],
            vec!["120ns".to_owned(), "3.1µs".to_owned()],
        ];
        assert_eq!(aligned(&t), ["  P50  MAX", "120ns  3.1µs"]);
    }
}
