//! The chart screen: runs/s, average per run and CPU % of one program over the chosen span,
//! from the daemon's stored history, with its reloads marked; its maps, owners and attach
//! points beside them.

use std::time::Duration;

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::symbols::Marker;
use ratatui::text::Line;
use ratatui::widgets::{Axis, Block, Chart, Dataset, GraphType, Paragraph};

use super::app::{App, ChartView};
use super::chart::{self, METRICS, Metric, SPANS};
use super::fetch::ChartData;
use super::screen::{self, fit};
use crate::units;
use ebpfstat_dbus as wire;

const KEYS: &str = "Esc back  w/→ longer  W/← shorter  P profile  p pause  ? help  Ctrl-C quit";
/// Columns of the y-axis labels.
const Y_LABELS: u16 = 9;

fn value(m: Metric, v: f64) -> String {
    match m {
        Metric::RunsPerSec => units::count(v),
        Metric::AvgNs => units::ns(v),
        Metric::Cpu => units::pct(v),
    }
}

/// `-1h30m`: a time before now, short.
fn ago(secs: f64) -> String {
    #[expect(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        reason = "a whole number of seconds for a label; saturating is fine"
    )]
    let whole = secs.abs().round() as u64;
    let text = humantime::format_duration(Duration::from_secs(whole)).to_string();
    format!("-{}", text.replace(' ', ""))
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
    let Some(c) = &app.chart else { return };
    screen::status_line(f, status, app, what(c));
    let beside = body.width >= 70;
    let [charts, details] = if beside {
        let side = (body.width / 3).min(40);
        Layout::horizontal([Constraint::Fill(1), Constraint::Length(side)]).areas(body)
    } else {
        [body, Rect::default()]
    };
    // Two Braille dots per column: as many steps as the chart can show.
    app.chart_points = u32::from(charts.width.saturating_sub(Y_LABELS + 1)).max(10) * 2;
    let Some(c) = &app.chart else { return };
    match &c.data {
        Some(d) => {
            draw_charts(f, charts, d);
            if beside {
                let mut lines = details_text(d, details.width);
                let room = usize::from(details.height);
                if lines.len() > room && room > 0 {
                    let more = lines.len() - (room - 1);
                    lines.truncate(room - 1);
                    lines.push(Line::raw(format!(" … {more} more lines")));
                }
                f.render_widget(Paragraph::new(lines), details);
            }
        }
        None => f.render_widget(
            Paragraph::new(format!("asking the daemon for {}…", SPANS[c.span].label())),
            charts,
        ),
    }
    screen::key_line(f, keys, KEYS);
}

/// The program, the span and what the answer came from (the type is in the side panel).
fn what(c: &ChartView) -> String {
    let mut s = format!(
        "{} (id {}) · {}",
        c.row.name,
        c.row.id,
        SPANS[c.span].label()
    );
    if let Some(d) = &c.data {
        s.push_str(&format!(
            " · step {} ({})",
            humantime::format_duration(Duration::from_nanos(d.info.step_ns)),
            d.info.tier
        ));
        match chart::reloads(&d.info.series, d.from_ns, d.now_ns).len() {
            0 => {}
            1 => s.push_str(" · 1 reload marked │"),
            n => s.push_str(&format!(" · {n} reloads marked │")),
        }
    }
    s
}

fn draw_charts(f: &mut Frame, area: Rect, d: &ChartData) {
    let areas = Layout::vertical([Constraint::Fill(1); 3]).split(area);
    let x_from = (d.from_ns - d.now_ns) as f64 / 1e9;
    let reloads = chart::reloads(&d.info.series, d.from_ns, d.now_ns);
    for (i, (m, a)) in METRICS.iter().zip(areas.iter()).enumerate() {
        let segments = chart::segments(&d.points, *m, d.now_ns);
        let peak = chart::peak(&segments);
        let last = segments.last().and_then(|s| s.last()).map(|(_, v)| *v);
        let y_top = peak * 1.1;
        let marks: Vec<[(f64, f64); 2]> =
            reloads.iter().map(|x| [(*x, 0.0), (*x, y_top)]).collect();
        let mut sets: Vec<Dataset> = segments
            .iter()
            .map(|s| {
                Dataset::default()
                    .marker(Marker::Braille)
                    .graph_type(GraphType::Line)
                    .style(Style::new().fg(Color::Cyan))
                    .data(s)
            })
            .collect();
        sets.extend(marks.iter().map(|m| {
            Dataset::default()
                .marker(Marker::Braille)
                .graph_type(GraphType::Line)
                .style(Style::new().fg(Color::Yellow))
                .data(m)
        }));
        let title = format!(
            "{}: now {} · peak {}",
            m.title(),
            last.map_or("-".into(), |v| value(*m, v)),
            if segments.is_empty() {
                "-".into()
            } else {
                value(*m, peak)
            }
        );
        let bottom = i + 1 == METRICS.len();
        let x_labels: Vec<String> = if bottom {
            vec![ago(x_from), ago(x_from / 2.0), "now".into()]
        } else {
            Vec::new()
        };
        // Labels of one width, so the three charts' time axes line up.
        let pad = |s: &str| {
            format!(
                "{:>w$}",
                fit(s, usize::from(Y_LABELS)),
                w = usize::from(Y_LABELS)
            )
        };
        let y_labels = vec![pad("0"), pad(&value(*m, y_top))];
        let chart = Chart::new(sets)
            .block(Block::new().title(Line::styled(
                fit(&title, usize::from(a.width)),
                Style::new().add_modifier(Modifier::BOLD),
            )))
            .x_axis(Axis::default().bounds([x_from, 0.0]).labels(x_labels))
            .y_axis(Axis::default().bounds([0.0, y_top]).labels(y_labels))
            .hidden_legend_constraints((Constraint::Length(0), Constraint::Length(0)));
        f.render_widget(chart, *a);
    }
}

/// The side panel: what the program is and holds.
fn details_text(d: &ChartData, width: u16) -> Vec<Line<'static>> {
    let w = usize::from(width.saturating_sub(1));
    let head = |s: &str| Line::styled(format!(" {s}"), Style::new().add_modifier(Modifier::BOLD));
    let item = |s: String| Line::raw(format!(" {}", fit(&s, w.saturating_sub(1))));
    let mut out = Vec::new();
    let runs: u64 = d.points.iter().map(|p| p.run_cnt).sum();
    let run_time: u64 = d.points.iter().map(|p| p.run_time_ns).sum();
    // Exact: the count a person can check against what they drove.
    out.push(head("in this span"));
    out.push(item(format!("runs {runs}")));
    out.push(item(format!("run time {}", units::ns(run_time as f64))));
    let loads = d.info.series.len();
    out.push(head("loads"));
    out.push(item(format!(
        "{loads} stored, {} loaded now",
        d.info.series.iter().filter(|s| s.alive).count()
    )));
    let Some(p) = &d.detail else {
        out.push(item("not loaded now: no maps,".into()));
        out.push(item("owners or attach points".into()));
        return out;
    };
    out.push(head("program"));
    out.push(item(p.program.prog_type.clone()));
    out.push(item(format!("tag {}", p.program.tag)));
    out.push(item(format!(
        "{} insns, jited {}",
        p.verified_insns,
        units::bytes(u64::from(p.jited_size))
    )));
    let mem: u64 = p.maps.iter().map(|m| m.memlock_bytes).sum();
    out.push(head(&format!(
        "maps ({}, {})",
        p.maps.len(),
        units::bytes(mem)
    )));
    for m in &p.maps {
        let fill = wire::MapUsage::of(&d.usage, m.id)
            .and_then(wire::MapUsage::counted)
            .map_or_else(String::new, |(n, pct)| {
                format!(" {n}/{} {}", m.max_entries, units::pct(pct))
            });
        out.push(item(format!(
            "{} {} {}{fill}",
            m.name,
            m.map_type,
            units::bytes(m.memlock_bytes)
        )));
        if let Some((_, points)) = d.map_entries.iter().find(|(id, _)| *id == m.id) {
            // Entries across the span, each column the most held then (0 to max entries).
            let width = w.saturating_sub(3).max(4);
            let columns = units::step_columns(points, (d.from_ns, d.now_ns), width);
            out.push(item(format!(
                "  {}",
                units::sparkline_to(&columns, f64::from(m.max_entries))
            )));
        }
    }
    out.push(head("owners"));
    if p.program.owners.is_empty() {
        out.push(item("none (pinned or attached only)".into()));
    }
    out.extend(p.program.owners.iter().map(|o| item(o.text())));
    out.push(head("attach"));
    if p.attach.is_empty() {
        out.push(item("no link (or not visible)".into()));
    }
    out.extend(
        p.attach
            .iter()
            .map(|a| item(format!("{} {}", a.link_type, a.target))),
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn axis_times_are_short() {
        assert_eq!(ago(-3600.0), "-1h");
        assert_eq!(ago(-5400.0), "-1h30m");
        assert_eq!(ago(-604_800.0), "-7days");
    }
}
