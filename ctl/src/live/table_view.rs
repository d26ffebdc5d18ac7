//! The program table: the columns' widths for the terminal at hand, the cells (cut with a
//! visible mark, never silently), the sort mark, and dim rows for unloaded programs.

use ratatui::Frame;
use ratatui::layout::{Alignment, Constraint, Layout, Rect};
use ratatui::style::{Modifier, Style};
use ratatui::text::Line;
use ratatui::widgets::{Cell, Row as TableRow, Table, TableState};

use super::app::App;
use super::model::{COLUMNS, Column, Row, Window};
use super::screen::{self, fit};
use crate::units;

const KEYS: &str =
    "q quit  ? help  ↑↓ select  Enter chart  / filter  w window  ←→ sort  r reverse  p pause";

/// Widths of the fixed columns; NAME and OWNER share what is left (NAME gets more).
fn fixed(c: Column) -> u16 {
    match c {
        Column::Id => 7,
        Column::Type => 10,
        Column::Avg | Column::RunsPerSec | Column::Cpu => 7,
        Column::AvgLoad | Column::MapMem => 8,
        Column::Name | Column::Owner => 0,
    }
}

/// Below this width TYPE is left out (the chart view and the filter still have it), so names
/// keep room in 80 columns.
const TYPE_FROM: u16 = 100;

/// The columns shown in `total` columns and their widths (one space between columns).
pub fn layout(total: u16) -> Vec<(Column, u16)> {
    let shown: Vec<Column> = COLUMNS
        .iter()
        .copied()
        .filter(|c| *c != Column::Type || total >= TYPE_FROM)
        .collect();
    let gaps = u16::try_from(shown.len() - 1).unwrap_or(0);
    let used: u16 = shown.iter().map(|c| fixed(*c)).sum::<u16>() + gaps;
    let left = total.saturating_sub(used);
    // Half each in 80 columns (owners read `comm[pid]`); wider, NAME gets three fifths.
    let name = if total < TYPE_FROM {
        left / 2 + left % 2
    } else {
        left * 3 / 5
    }
    .max(8);
    let owner = left.saturating_sub(name).max(6);
    shown
        .into_iter()
        .map(|c| {
            let w = match c {
                Column::Name => name,
                Column::Owner => owner,
                c => fixed(c),
            };
            (c, w)
        })
        .collect()
}

fn right(c: Column) -> bool {
    !matches!(c, Column::Name | Column::Type | Column::Owner)
}

fn text(r: &Row, c: Column) -> String {
    let est = |s: String| if r.estimated { format!("~{s}") } else { s };
    match c {
        Column::Id => r.id.to_string(),
        Column::Name => r.name.clone(),
        Column::Type => r.prog_type.clone(),
        Column::Avg => r.avg_ns.map_or("-".into(), units::ns),
        Column::AvgLoad => r.avg_load_ns.map_or("-".into(), units::ns),
        Column::RunsPerSec => est(units::count(r.runs_per_sec)),
        Column::Cpu => est(units::pct(r.cpu_pct)),
        Column::MapMem => r.map_memory.map_or("-".into(), units::bytes),
        Column::Owner if !r.alive => "(unloaded)".into(),
        Column::Owner => r.owner.clone(),
    }
}

fn cell(s: String, width: u16, right_aligned: bool) -> Cell<'static> {
    let line = Line::raw(fit(&s, usize::from(width)));
    Cell::from(if right_aligned {
        line.alignment(Alignment::Right)
    } else {
        line
    })
}

pub fn draw(f: &mut Frame, app: &mut App) {
    let [top, status, body, keys] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Length(1),
        Constraint::Fill(1),
        Constraint::Length(1),
    ])
    .areas(f.area());
    screen::top_line(f, top, app);
    screen::status_line(f, status, app, what(app));
    draw_table(f, body, app);
    screen::key_line(f, keys, KEYS);
}

/// The window, the sort and how many programs are shown.
fn what(app: &App) -> String {
    let arrow = if app.sorting.descending() {
        "↓"
    } else {
        "↑"
    };
    let mut s = format!(
        "{} · sort {}{arrow} · {} of {} programs",
        app.window.label(),
        app.sorting.column.title(),
        app.rows.len(),
        app.total()
    );
    if app.window == Window::Interval || app.window == Window::SinceLoad {
        s.push_str(" loaded");
    }
    if let (Window::Interval, Some(d)) = (app.window, &app.data) {
        s = s.replacen(
            "last interval",
            &format!("last interval ({})", humantime::format_duration(d.interval)),
            1,
        );
    }
    match (&app.typing, app.filter.is_empty()) {
        (Some(t), _) => s.push_str(&format!(" · filter: {t}▏")),
        (None, false) => s.push_str(&format!(" · filter: {}", app.filter)),
        (None, true) => {}
    }
    s
}

fn draw_table(f: &mut Frame, area: Rect, app: &mut App) {
    let columns = layout(area.width);
    let header = columns.iter().map(|(c, w)| {
        let mut title = c.title().to_owned();
        if *c == app.sorting.column {
            title.push(if app.sorting.descending() {
                '▼'
            } else {
                '▲'
            });
        }
        cell(title, *w, right(*c))
    });
    let rows = app.rows.iter().map(|r| {
        let cells = columns
            .iter()
            .map(|(c, w)| cell(text(r, *c), *w, right(*c)));
        let row = TableRow::new(cells);
        if r.alive {
            row
        } else {
            row.style(Style::new().add_modifier(Modifier::DIM))
        }
    });
    let table = Table::new(rows, columns.iter().map(|(_, w)| Constraint::Length(*w)))
        .header(TableRow::new(header).style(Style::new().add_modifier(Modifier::BOLD)))
        .row_highlight_style(Style::new().add_modifier(Modifier::REVERSED));
    app.page = usize::from(area.height.saturating_sub(1));
    let mut state =
        TableState::default().with_selected((!app.rows.is_empty()).then_some(app.selected));
    f.render_stateful_widget(table, area, &mut state);
    if app.rows.is_empty() {
        let msg = if app.data.is_none() {
            "waiting for the daemon's first answer…"
        } else if app.active_filter().is_empty() {
            "no programs in this window"
        } else {
            "no program matches the filter"
        };
        let below = Rect::new(
            area.x,
            area.y + 2,
            area.width,
            1.min(area.height.saturating_sub(2)),
        );
        f.render_widget(ratatui::widgets::Paragraph::new(msg), below);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_fill_80_and_wider_terminals_exactly() {
        for total in [80u16, 99, 100, 132, 200] {
            let l = layout(total);
            let sum: u16 =
                l.iter().map(|(_, w)| w).sum::<u16>() + u16::try_from(l.len() - 1).unwrap_or(0);
            assert_eq!(sum, total, "{l:?}");
            let width = |col| l.iter().find(|(c, _)| *c == col).map(|(_, w)| *w);
            assert!(width(Column::Name) >= width(Column::Owner), "{l:?}");
            assert_eq!(width(Column::Type).is_some(), total >= TYPE_FROM);
        }
        // 80 columns keep room for a 16-character kernel name and `bpftrace[1234]`-like owners.
        let l = layout(80);
        assert_eq!((l[1], l[7]), ((Column::Name, 15), (Column::Owner, 14)));
        // Narrower than the fixed columns: NAME and OWNER keep a minimum (ratatui cuts the right).
        let l = layout(40);
        assert_eq!((l[1].1, l[7].1), (8, 6));
    }
}
