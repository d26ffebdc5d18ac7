//! What both screens share: the top line (state, cost, clock), the key line at the bottom, the
//! help box, and cutting text to a width with a visible mark.

use std::time::SystemTime;

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Clear, Paragraph};

use super::app::App;
use super::fetch::TableData;
use super::model::Window;
use crate::render::StatsCost;

pub use crate::render::fit::fit;

/// `08:01:02 UTC`: the wall clock, as the daemon's times are kept.
pub fn clock(t: SystemTime) -> String {
    let text = humantime::format_rfc3339_seconds(t).to_string();
    format!("{} UTC", text.get(11..19).unwrap_or(&text))
}

/// What stats cost over the time the table's numbers are over: the window's (as `top --once`
/// says it for that window), else the last interval's.
fn cost(d: &TableData) -> StatsCost {
    match (d.window, &d.info) {
        (Window::Last(_), Some(info)) => StatsCost::of_window(info, &d.snap),
        _ => StatsCost::of_interval(&d.snap),
    }
}

/// The top line: the stats state and what stats cost the host, and the clock at the right.
pub fn top_line(f: &mut Frame, area: Rect, app: &App) {
    let mut left = vec![Span::styled(
        "ebpfstat top",
        Style::new().add_modifier(Modifier::BOLD),
    )];
    // The chart view does not ask for the table: once these figures are stale, their time
    // replaces the cost (which changes every pass).
    let stale = app
        .fetched_at
        .filter(|t| t.elapsed().unwrap_or_default() > app.period * 3);
    match (&app.data, stale) {
        (Some(d), Some(t)) => left.push(Span::raw(format!(
            " · stats {} as of {}",
            d.snap.stats_state,
            clock(t)
        ))),
        (Some(d), None) => left.push(Span::raw(format!(
            " · stats {} · {}",
            d.snap.stats_state,
            cost(d).short()
        ))),
        (None, _) => {}
    }
    let now = clock(SystemTime::now());
    let [l, r] = Layout::horizontal([Constraint::Fill(1), Constraint::Length(13)]).areas(area);
    let left = Line::from(left);
    let shown = fit(&left.to_string(), usize::from(l.width));
    f.render_widget(
        Paragraph::new(if shown == left.to_string() {
            left
        } else {
            Line::raw(shown)
        }),
        l,
    );
    f.render_widget(Paragraph::new(now).right_aligned(), r);
}

/// The second line: what is shown, or why the daemon gave nothing (in red, with the age of
/// what is still shown).
pub fn status_line(f: &mut Frame, area: Rect, app: &App, what: String) {
    let width = usize::from(area.width);
    let line = match &app.trouble {
        Some(why) => {
            // First what is done about it, then why: the why can be long (paths).
            let age = app.fetched_at.map_or("nothing shown yet".to_owned(), |t| {
                format!("showing {}", clock(t))
            });
            Line::styled(
                fit(&format!("retrying · {age} · {why}"), width),
                Style::new().fg(Color::Red).add_modifier(Modifier::BOLD),
            )
        }
        None if app.paused => Line::from(vec![
            Span::styled("PAUSED ", Style::new().add_modifier(Modifier::REVERSED)),
            Span::raw(fit(&what, width.saturating_sub(7))),
        ]),
        None => Line::raw(fit(&what, width)),
    };
    f.render_widget(Paragraph::new(line), area);
}

/// The key line.
pub fn key_line(f: &mut Frame, area: Rect, keys: &str) {
    f.render_widget(
        Paragraph::new(fit(keys, usize::from(area.width)))
            .style(Style::new().add_modifier(Modifier::REVERSED)),
        area,
    );
}

/// Lines of at most 76 columns: the box fits 80 without wrapping.
const HELP: &str = "\
Table
  ↑ ↓ j k  PgUp PgDn  Home End   select a program
  Enter        charts of the selected program
  / text       filter by name, type or owner (Enter keeps it, Esc drops it)
  w            window: last interval, 1m, 5m, 1h, 1d, since load
  ← → < > s    sort by the previous / next column
  r            reverse the sort
  b            sum the programs by container, by unit, by owner, then not
Charts
  w → / W ←    longer / shorter span: 1m 5m 1h 6h 1d 7d all
  Esc q        back to the table
Anywhere
  P            profile the program for 10 s: each run timed, percentiles and
               histogram (Esc closes the box and stops it)
  p space      pause the refresh (keys that change the view still ask)
  ? h          this help (any key closes it)
  q Esc        leave (Esc first drops a filter); Ctrl-C leaves from anywhere

AVG: average cost of one run in the window; AVG LOAD: since the program
was loaded. CPU% is of one core. ~: extrapolated from part of the window
(stats duty-cycled). Since load counts only runs while stats were on.
Dim rows marked (unloaded) were in the window and are gone.";

/// The help box over the middle of the screen; when the screen is too short, its last line
/// says so.
pub fn help(f: &mut Frame) {
    let area = f.area();
    let all: Vec<&str> = HELP.lines().collect();
    let width = area.width.min(80);
    let height = area
        .height
        .min(u16::try_from(all.len() + 2).unwrap_or(u16::MAX));
    let room = usize::from(height.saturating_sub(2));
    let inner = usize::from(width.saturating_sub(2));
    let mut lines: Vec<Line> = all
        .iter()
        .take(room)
        .map(|l| Line::raw(fit(l, inner)))
        .collect();
    if room < all.len()
        && let Some(last) = lines.last_mut()
    {
        *last = Line::raw(fit("… (a taller terminal shows the rest)", inner));
    }
    let x = area.x + (area.width - width) / 2;
    let y = area.y + (area.height - height) / 2;
    let r = Rect::new(x, y, width, height);
    f.render_widget(Clear, r);
    f.render_widget(
        Paragraph::new(lines).block(Block::bordered().title(" keys (any key closes) ")),
        r,
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use unicode_width::UnicodeWidthStr;

    #[test]
    fn help_lines_fit_an_80_column_box() {
        for l in HELP.lines() {
            assert!(l.width() <= 76, "{l:?} is {} columns", l.width());
        }
    }

    #[test]
    fn the_clock_is_the_time_of_day_in_utc() {
        let t = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(3600 + 62);
        assert_eq!(clock(t), "01:01:02 UTC");
    }
}
