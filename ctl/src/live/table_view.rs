//! The program table: the columns' widths for the terminal at hand, the cells (cut with a
//! visible mark, never silently), the sort mark, and dim rows for unloaded programs.

use ratatui::Frame;
use ratatui::layout::{Alignment, Constraint, Layout, Rect};
use ratatui::style::{Modifier, Style};
use ratatui::text::Line;
use ratatui::widgets::{Cell, Row as TableRow, Table};

use super::app::App;
use super::model::{self, COLUMNS, Column, Row, Window};
use super::screen::{self, fit};
use crate::render::fit as fitting;
use crate::units;

const KEYS: &str = "q quit ? help ↑↓ select Enter chart P profile / filter w window b by ←→ sort r \
                    reverse p pause";
const GROUPED_KEYS: &str =
    "q quit ? help ↑↓ select / filter w window b by ←→ sort r reverse p pause";

/// Widths of the fixed columns; NAME and OWNER share what is left (NAME gets more).
fn fixed(c: Column) -> u16 {
    match c {
        Column::Id => 7,
        Column::Type => 10,
        // `~0.0040%`, `AVG LOAD▼`: the widest a value or a sorted header gets.
        Column::Avg | Column::RunsPerSec => 7,
        Column::Cpu | Column::MapMem => 8,
        Column::AvgLoad => 9,
        Column::Name | Column::Owner => 0,
    }
}

/// Columns left out, in this order, while NAME and OWNER would get less than their minimum:
/// a cell is never cut without a mark, and a column is dropped whole rather than squeezed.
const DROPPED_FIRST: [Column; 5] = [
    Column::Type,
    Column::AvgLoad,
    Column::MapMem,
    Column::Owner,
    Column::Avg,
];
use fitting::{MIN_HOLDERS as MIN_OWNER, MIN_NAME};

/// The columns shown in `total` columns and their widths (one space between columns), fitted
/// as the printed tables are ([`fitting::widths`]); the values' widths are fixed, so columns hold
/// still while the values change.
pub fn layout(total: u16, grouped: bool) -> Vec<(Column, u16)> {
    // TYPE only where names still get three fifths of a roomy line (100 columns); a group has
    // no type, average since load or owner.
    let columns: Vec<Column> = COLUMNS
        .into_iter()
        .filter(|c| *c != Column::Type || (total >= 100 && !grouped))
        .filter(|c| !grouped || !matches!(c, Column::AvgLoad | Column::Owner))
        .collect();
    // Half each in 80 columns (owners read `comm[pid]`); wider, NAME gets three fifths.
    let (name, owner) = if total < 100 { (1, 1) } else { (3, 2) };
    let wants: Vec<fitting::Want> = columns
        .iter()
        .map(|c| {
            let drop = DROPPED_FIRST
                .iter()
                .position(|d| d == c)
                .map(|p| u8::try_from(p).unwrap_or(u8::MAX));
            let flexible = |min, weight| fitting::Want {
                natural: u16::MAX,
                min,
                weight,
                drop,
            };
            match c {
                Column::Name => flexible(MIN_NAME, name),
                Column::Owner => flexible(MIN_OWNER, owner),
                c => fitting::Want::whole(fixed(*c), drop),
            }
        })
        .collect();
    let widths = fitting::widths(&wants, total, fitting::Spacing { sep: 1, edges: 0 });
    columns
        .into_iter()
        .zip(widths)
        .filter_map(|(c, w)| w.map(|w| (c, w)))
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
        Column::RunsPerSec => r.runs_per_sec.map_or("-".into(), |v| est(units::count(v))),
        Column::Cpu => r.cpu_pct.map_or("-".into(), |v| est(units::pct(v))),
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
    screen::key_line(
        f,
        keys,
        if app.group.is_some() {
            GROUPED_KEYS
        } else {
            KEYS
        },
    );
}

/// The window, the sort and how many programs are shown.
fn what(app: &App) -> String {
    let arrow = if app.sorting.descending() {
        "↓"
    } else {
        "↑"
    };
    let mut window = app.window.label();
    if let (Window::Last(d), Some(_)) = (app.window, &app.data) {
        let every = model::rank_period(d, app.period);
        if every > app.period {
            window.push_str(&format!(
                ", ranked every {}",
                humantime::format_duration(every)
            ));
        }
    }
    let shown = match app.group {
        Some(by) => format!(
            "{} of {} programs",
            crate::render::groups::counted(app.named_groups(), by),
            app.total()
        ),
        None => format!("{} of {} programs", app.rows.len(), app.total()),
    };
    let mut s = format!(
        "{window} · sort {}{arrow} · {shown}",
        title(app.sorting.column, app.group)
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

/// A column's title; grouped, NAME is what the rows are groups of and ID their programs.
fn title(c: Column, group: Option<ebpfstat_dbus::GroupBy>) -> String {
    match (c, group) {
        (Column::Name, Some(by)) => by.as_str().to_uppercase(),
        (Column::Id, Some(_)) => "PROGS".into(),
        _ => c.title().into(),
    }
}

fn draw_table(f: &mut Frame, area: Rect, app: &mut App) {
    let columns = layout(area.width, app.group.is_some());
    let header = columns.iter().map(|(c, w)| {
        let mut title = title(*c, app.group);
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
    app.table_state
        .select((!app.rows.is_empty()).then_some(app.selected));
    f.render_stateful_widget(table, area, &mut app.table_state);
    if app.rows.is_empty() {
        let asking = app.data.as_ref().is_some_and(|d| d.window != app.window);
        let msg = if app.data.is_none() {
            "waiting for the daemon's first answer…"
        } else if asking {
            "asking the daemon for this window…"
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

    fn width(l: &[(Column, u16)], col: Column) -> Option<u16> {
        l.iter().find(|(c, _)| *c == col).map(|(_, w)| *w)
    }

    #[test]
    fn columns_fill_the_line_exactly_and_drop_whole_when_narrow() {
        for total in [40u16, 60, 70, 80, 99, 100, 132, 200] {
            let l = layout(total, false);
            let gaps = u16::try_from(l.len() - 1).unwrap_or(0);
            assert_eq!(l.iter().map(|(_, w)| w).sum::<u16>() + gaps, total, "{l:?}");
            assert!(width(&l, Column::Name) >= Some(MIN_NAME), "{total}: {l:?}");
            if let Some(owner) = width(&l, Column::Owner) {
                assert!(owner >= MIN_OWNER, "{total}: {l:?}");
            }
            assert_eq!(width(&l, Column::Type).is_some(), total >= 100, "{total}");
        }
        assert_eq!(layout(80, false).len(), 8);
        assert_eq!(width(&layout(80, false), Column::Name), Some(15));
        // 60 columns: no AVG LOAD, no MAP MEM.
        let l: Vec<Column> = layout(60, false).into_iter().map(|(c, _)| c).collect();
        assert_eq!(
            l,
            [
                Column::Id,
                Column::Name,
                Column::Avg,
                Column::RunsPerSec,
                Column::Cpu,
                Column::Owner
            ]
        );
    }
}
