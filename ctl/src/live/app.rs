//! The view's state and what each key does to it; drawing and fetching are elsewhere. Keys
//! give back what to ask the daemon next, so this is tested without a terminal.

use std::time::{Duration, Instant, SystemTime};

use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers};

use super::chart::{FIRST_SPAN, SPANS};
use super::fetch::{ChartData, TableData};
use super::model::{self, Row, Sorting, Window};
use ebpfstat_dbus::GroupBy;

/// What a key (or an answer) asks of the loop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effect {
    None,
    Quit,
    /// Ask for the table again now (the window changed).
    FetchTable,
    /// Ask for the chart now (opened, or its span changed).
    FetchChart,
    /// Profile the program in [`App::profile`] (`P`).
    Profile,
    /// The profile box was closed: stop asking.
    StopProfile,
}

/// How long `P` profiles a program: the API's default profile.
pub const PROFILE_FOR: Duration = Duration::from_nanos(ebpfstat_dbus::DEFAULT_PROFILE_NS);

/// A profile asked for with `P`: the program, and its answer once it came.
#[derive(Debug)]
pub struct ProfileView {
    pub id: u32,
    pub name: String,
    pub started: Instant,
    pub answer: Option<Result<Box<ebpfstat_dbus::Profile>, String>>,
}

/// The chart of one program.
#[derive(Debug)]
pub struct ChartView {
    /// The row it was opened from (its name, id and series).
    pub row: Row,
    pub span: usize,
    pub data: Option<Box<ChartData>>,
    /// When the shown data was asked for.
    pub fetched: Option<Instant>,
}

#[derive(Debug)]
pub struct App {
    pub window: Window,
    pub sorting: Sorting,
    /// The filter in force, and the text being typed after `/` (shown live).
    pub filter: String,
    pub typing: Option<String>,
    pub paused: bool,
    pub help: bool,
    pub data: Option<TableData>,
    /// The table as shown: filtered and sorted.
    pub rows: Vec<Row>,
    pub selected: usize,
    /// Rows that fit on the screen, from the last draw (for page keys).
    pub page: usize,
    /// The table's scroll position, kept between draws.
    pub table_state: ratatui::widgets::TableState,
    /// Time between refreshes: the daemon's interval, or `--refresh`.
    pub period: Duration,
    /// Why the last call failed, while it does.
    pub trouble: Option<String>,
    /// When the data shown was fetched.
    pub fetched_at: Option<SystemTime>,
    /// When the shown ranking of the window (Top) was fetched.
    pub ranked_at: Option<Instant>,
    pub chart: Option<ChartView>,
    /// Steps the chart area can show, from the last draw.
    pub chart_points: u32,
    /// The profile box, over either view while it is open.
    pub profile: Option<ProfileView>,
    /// What the rows are programs summed by (`b`); `None`: one row per program.
    pub group: Option<GroupBy>,
}

impl App {
    pub fn new(window: Window, sorting: Sorting) -> Self {
        Self {
            window,
            sorting,
            filter: String::new(),
            typing: None,
            paused: false,
            help: false,
            data: None,
            rows: Vec::new(),
            selected: 0,
            page: 10,
            table_state: ratatui::widgets::TableState::default(),
            period: Duration::from_secs(1),
            trouble: None,
            fetched_at: None,
            ranked_at: None,
            chart: None,
            chart_points: 120,
            profile: None,
            group: None,
        }
    }

    /// The filter shown and applied: the one being typed, else the one in force.
    pub fn active_filter(&self) -> &str {
        self.typing.as_deref().unwrap_or(&self.filter)
    }

    /// Rebuilds the shown rows from the last data, keeping the selected program selected.
    pub fn rebuild(&mut self) {
        let keep = self.rows.get(self.selected).map(|r| r.series_id);
        let Some(data) = &self.data else { return };
        if self.window != data.window && matches!(self.window, Window::Last(_)) {
            // Another window's numbers must not show under this one's name: nothing until it
            // is answered.
            self.rows.clear();
            return;
        }
        let mut rows = match (self.group, &data.groups) {
            // This window's groups, by what is asked: another's would show under its name.
            (Some(by), Some((asked, groups))) if *asked == by && data.window == self.window => {
                model::group_rows(groups, by)
            }
            // Asked for, not answered yet: no program rows under a group's header.
            (Some(_), _) => Vec::new(),
            (None, _) => model::rows(&data.snap, self.window, data.top.as_deref()),
        };
        let filter = self.active_filter().to_owned();
        rows.retain(|r| model::matches(r, &filter));
        self.sorting.apply(&mut rows);
        self.rows = rows;
        self.selected = keep
            .and_then(|id| self.rows.iter().position(|r| r.series_id == id))
            .unwrap_or(self.selected)
            .min(self.rows.len().saturating_sub(1));
    }

    /// The next grouping `b` gives: by container, unit, owner, then none.
    fn next_group(&mut self) -> Effect {
        self.group = match self.group {
            None => Some(GroupBy::Container),
            Some(GroupBy::Container) => Some(GroupBy::Unit),
            Some(GroupBy::Unit) => Some(GroupBy::Owner),
            Some(GroupBy::Owner) => None,
        };
        self.selected = 0;
        self.rebuild();
        Effect::FetchTable
    }

    /// Whether the next table request should ask for the groups again: grouped, and the
    /// window's groups not held, or (for a window of stored history) its ranking due.
    pub fn groups_due(&self) -> bool {
        let Some(by) = self.group else { return false };
        let held = self.data.as_ref().is_some_and(|d| {
            d.window == self.window && d.groups.as_ref().is_some_and(|(b, _)| *b == by)
        });
        !held || !matches!(self.window, Window::Last(_)) || self.rank_due()
    }

    /// The named groups shown (not the host's or the unloaded programs').
    pub fn named_groups(&self) -> usize {
        self.rows.iter().filter(|r| r.prog_type == "named").count()
    }

    /// Programs in the data before the typed filter.
    pub fn total(&self) -> usize {
        self.data.as_ref().map_or(0, |d| match &d.top {
            Some(top) => top.len(),
            None => d.snap.programs.len(),
        })
    }

    /// Whether the next table request should rank the window again (see
    /// [`model::rank_period`]); windows the snapshot answers need no ranking.
    pub fn rank_due(&self) -> bool {
        let Window::Last(d) = self.window else {
            return false;
        };
        let ranked = self
            .data
            .as_ref()
            .is_some_and(|data| data.window == self.window && data.top.is_some());
        match (ranked, self.ranked_at) {
            (true, Some(t)) => t.elapsed() >= model::rank_period(d, self.period),
            _ => true,
        }
    }

    pub fn table_answer(&mut self, r: Result<TableData, String>) {
        match r {
            Ok(mut d) => {
                if d.top.is_some() {
                    self.ranked_at = Some(Instant::now());
                } else if let Some(old) = self.data.take()
                    && old.window == d.window
                {
                    // The same window between rankings: the last ranking with a new snapshot.
                    d.top = old.top;
                    d.info = old.info;
                    if d.groups.is_none() {
                        d.groups = old.groups;
                    }
                }
                self.data = Some(d);
                self.trouble = None;
                self.fetched_at = Some(SystemTime::now());
                self.rebuild();
            }
            Err(e) => self.trouble = Some(e),
        }
    }

    pub fn chart_answer(&mut self, r: Result<Box<ChartData>, String>) {
        match r {
            Ok(d) => {
                self.trouble = None;
                if let Some(c) = &mut self.chart
                    && c.row.series_id == d.series_id
                    && SPANS[c.span] == d.span
                {
                    c.data = Some(d);
                }
            }
            Err(e) => self.trouble = Some(e),
        }
    }

    /// Whether the open chart is due again: a step of its answer (at least `interval`) passed.
    pub fn chart_due(&self) -> bool {
        let Some(c) = &self.chart else { return false };
        let step = c
            .data
            .as_ref()
            .map_or(Duration::ZERO, |d| Duration::from_nanos(d.info.step_ns));
        c.fetched
            .is_none_or(|t| t.elapsed() >= step.max(self.period))
    }

    pub fn key(&mut self, k: KeyEvent) -> Effect {
        if k.kind == KeyEventKind::Release {
            return Effect::None;
        }
        let ctrl_or_alt = k
            .modifiers
            .intersects(KeyModifiers::CONTROL | KeyModifiers::ALT);
        if ctrl_or_alt {
            // Ctrl-C leaves; other chords mean nothing here (Ctrl-W is not `w`).
            return if k.code == KeyCode::Char('c') && k.modifiers.contains(KeyModifiers::CONTROL) {
                Effect::Quit
            } else {
                Effect::None
            };
        }
        if self.help {
            // Any key closes the help.
            self.help = false;
            return Effect::None;
        }
        if self.typing.is_some() {
            self.type_filter(k.code);
            return Effect::None;
        }
        if self.profile.is_some() {
            // The box holds the keys: Esc, q or P closes it (and stops the profile).
            return if matches!(k.code, KeyCode::Esc | KeyCode::Char('q' | 'P')) {
                self.profile = None;
                Effect::StopProfile
            } else {
                Effect::None
            };
        }
        match k.code {
            KeyCode::Char('?' | 'h') => {
                self.help = true;
                Effect::None
            }
            KeyCode::Char('p' | ' ') => {
                self.paused = !self.paused;
                Effect::None
            }
            KeyCode::Char('b') if self.chart.is_none() => self.next_group(),
            // A group is not a program: nothing to profile or chart.
            KeyCode::Char('P') | KeyCode::Enter if self.group.is_some() => Effect::None,
            KeyCode::Char('P') => self.start_profile(),
            _ if self.chart.is_some() => self.chart_key(k.code),
            _ => self.table_key(k.code),
        }
    }

    /// `P`: profiles the selected program (or the charted one), if it is loaded.
    fn start_profile(&mut self) -> Effect {
        let row = match &self.chart {
            Some(c) => Some(&c.row),
            None => self.rows.get(self.selected),
        };
        let Some(row) = row.filter(|r| r.alive) else {
            return Effect::None;
        };
        self.profile = Some(ProfileView {
            id: row.id,
            name: row.name.clone(),
            started: Instant::now(),
            answer: None,
        });
        Effect::Profile
    }

    pub fn profile_answer(&mut self, r: Result<Box<ebpfstat_dbus::Profile>, String>) {
        if let Some(p) = &mut self.profile {
            p.answer = Some(r);
        }
    }

    fn type_filter(&mut self, code: KeyCode) {
        let Some(text) = &mut self.typing else { return };
        match code {
            KeyCode::Enter => {
                self.filter = self.typing.take().unwrap_or_default();
            }
            KeyCode::Esc => self.typing = None,
            KeyCode::Backspace => {
                text.pop();
            }
            KeyCode::Char(c) if !c.is_control() && text.chars().count() < 64 => text.push(c),
            _ => return,
        }
        self.rebuild();
    }

    fn table_key(&mut self, code: KeyCode) -> Effect {
        let last = self.rows.len().saturating_sub(1);
        match code {
            KeyCode::Char('q') => return Effect::Quit,
            KeyCode::Esc if !self.filter.is_empty() => self.filter.clear(),
            KeyCode::Esc => return Effect::Quit,
            KeyCode::Up | KeyCode::Char('k') => self.selected = self.selected.saturating_sub(1),
            KeyCode::Down | KeyCode::Char('j') => self.selected = (self.selected + 1).min(last),
            KeyCode::PageUp => self.selected = self.selected.saturating_sub(self.page.max(1)),
            KeyCode::PageDown => self.selected = (self.selected + self.page.max(1)).min(last),
            KeyCode::Home | KeyCode::Char('g') => self.selected = 0,
            KeyCode::End | KeyCode::Char('G') => self.selected = last,
            KeyCode::Char('/') => self.typing = Some(self.filter.clone()),
            KeyCode::Char('w') => {
                self.window = self.window.next();
                self.rebuild();
                return Effect::FetchTable;
            }
            KeyCode::Char('>' | 's') | KeyCode::Right => self.sorting = self.sorting.step(true),
            KeyCode::Char('<') | KeyCode::Left => self.sorting = self.sorting.step(false),
            KeyCode::Char('r') => self.sorting.reversed = !self.sorting.reversed,
            KeyCode::Enter => {
                let Some(row) = self.rows.get(self.selected) else {
                    return Effect::None;
                };
                self.chart = Some(ChartView {
                    row: row.clone(),
                    span: FIRST_SPAN,
                    data: None,
                    fetched: None,
                });
                return Effect::FetchChart;
            }
            _ => return Effect::None,
        }
        self.rebuild();
        Effect::None
    }

    fn chart_key(&mut self, code: KeyCode) -> Effect {
        let Some(c) = &mut self.chart else {
            return Effect::None;
        };
        let n = SPANS.len();
        match code {
            KeyCode::Char('q') | KeyCode::Esc | KeyCode::Backspace => {
                self.chart = None;
                return Effect::FetchTable;
            }
            KeyCode::Char('w') | KeyCode::Right | KeyCode::Char('>') => c.span = (c.span + 1) % n,
            KeyCode::Char('W') | KeyCode::Left | KeyCode::Char('<') => {
                c.span = (c.span + n - 1) % n;
            }
            _ => return Effect::None,
        }
        c.data = None;
        c.fetched = None;
        Effect::FetchChart
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::live::model::Column;

    fn press(app: &mut App, code: KeyCode) -> Effect {
        app.key(KeyEvent::new(code, KeyModifiers::NONE))
    }

    fn app_with(names: &[&str]) -> App {
        let mut app = App::new(
            Window::Interval,
            Sorting {
                column: Column::Name,
                reversed: false,
            },
        );
        app.rows = names
            .iter()
            .zip(1u32..)
            .map(|(n, id)| Row {
                series_id: i64::from(id),
                id,
                name: (*n).into(),
                prog_type: "kprobe".into(),
                alive: true,
                avg_ns: None,
                avg_load_ns: None,
                runs_per_sec: Some(0.0),
                cpu_pct: Some(0.0),
                estimated: false,
                map_memory: None,
                owner: String::new(),
            })
            .collect();
        app
    }

    #[test]
    fn shift_p_profiles_the_selected_program_and_its_box_holds_the_keys() {
        let mut app = app_with(&["a", "b"]);
        assert_eq!(press(&mut app, KeyCode::Down), Effect::None);
        assert_eq!(press(&mut app, KeyCode::Char('P')), Effect::Profile);
        let p = app.profile.as_ref().expect("open");
        assert_eq!((p.id, p.name.as_str()), (2, "b"));
        // Other keys do nothing while it is open; q closes it, not the view.
        assert_eq!(press(&mut app, KeyCode::Down), Effect::None);
        assert_eq!(app.selected, 1);
        assert_eq!(press(&mut app, KeyCode::Char('q')), Effect::StopProfile);
        assert!(app.profile.is_none());
        // An unloaded program cannot be profiled.
        app.rows[0].alive = false;
        app.selected = 0;
        assert_eq!(press(&mut app, KeyCode::Char('P')), Effect::None);
        assert!(app.profile.is_none());
    }

    #[test]
    fn q_and_esc_leave_the_chart_first_then_the_view() {
        let mut app = app_with(&["a", "b"]);
        press(&mut app, KeyCode::Down);
        assert_eq!(press(&mut app, KeyCode::Enter), Effect::FetchChart);
        assert_eq!(app.chart.as_ref().map(|c| c.row.id), Some(2));
        assert_eq!(press(&mut app, KeyCode::Char('w')), Effect::FetchChart);
        assert_eq!(app.chart.as_ref().map(|c| c.span), Some(FIRST_SPAN + 1));
        assert_eq!(press(&mut app, KeyCode::Esc), Effect::FetchTable);
        assert!(app.chart.is_none());
        assert_eq!(press(&mut app, KeyCode::Char('q')), Effect::Quit);
        let ctrl_c = KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL);
        assert_eq!(app.key(ctrl_c), Effect::Quit);
        let ctrl_w = KeyEvent::new(KeyCode::Char('w'), KeyModifiers::CONTROL);
        assert_eq!(app.key(ctrl_w), Effect::None);
        assert_eq!(app.window, Window::Interval);
    }

    #[test]
    fn typing_a_filter_edits_it_and_esc_gives_the_old_one_back() {
        let mut app = app_with(&["a"]);
        press(&mut app, KeyCode::Char('/'));
        for c in "xdpq".chars() {
            press(&mut app, KeyCode::Char(c));
        }
        // `q` while typing is text, not quit.
        assert_eq!(app.active_filter(), "xdpq");
        press(&mut app, KeyCode::Backspace);
        press(&mut app, KeyCode::Enter);
        assert_eq!((app.filter.as_str(), app.typing.is_none()), ("xdp", true));
        press(&mut app, KeyCode::Char('/'));
        press(&mut app, KeyCode::Char('z'));
        press(&mut app, KeyCode::Esc);
        assert_eq!(app.filter, "xdp");
        // Esc with a filter in force clears it; the next one leaves.
        assert_eq!(press(&mut app, KeyCode::Esc), Effect::None);
        assert_eq!(app.filter, "");
        assert_eq!(press(&mut app, KeyCode::Esc), Effect::Quit);
    }

    #[test]
    fn a_new_window_shows_nothing_until_answered_and_keeps_a_ranking_between_rankings() {
        use crate::live::model::tests::{program, snapshot};
        let mut app = app_with(&[]);
        let data = |window, top: Option<Vec<ebpfstat_dbus::TopRow>>| TableData {
            window,
            snap: snapshot(vec![program(5, 2000, 1_000_000)]),
            top,
            info: None,
            groups: None,
            interval: Duration::from_secs(1),
        };
        app.table_answer(Ok(data(Window::Interval, None)));
        assert_eq!(app.rows.len(), 1);
        assert!(!app.rank_due(), "the last interval needs no ranking");
        // `w`: the last interval's rates must not show as the last minute's.
        assert_eq!(press(&mut app, KeyCode::Char('w')), Effect::FetchTable);
        assert!(app.rows.is_empty());
        assert!(app.rank_due());
        app.table_answer(Ok(data(model::WINDOWS[1], Some(Vec::new()))));
        assert!(app.rows.is_empty(), "the ranking of the minute is empty");
        assert!(!app.rank_due(), "ranked just now");
        // A snapshot alone for the same window keeps the ranking it had.
        app.table_answer(Ok(data(model::WINDOWS[1], None)));
        assert!(app.data.as_ref().is_some_and(|d| d.top.is_some()));
    }

    #[test]
    fn selection_stays_inside_the_rows_and_help_swallows_one_key() {
        let mut app = app_with(&["a", "b", "c"]);
        press(&mut app, KeyCode::End);
        press(&mut app, KeyCode::Down);
        assert_eq!(app.selected, 2);
        press(&mut app, KeyCode::PageUp);
        assert_eq!(app.selected, 0);
        press(&mut app, KeyCode::Char('?'));
        assert!(app.help);
        assert_eq!(press(&mut app, KeyCode::Char('q')), Effect::None);
        assert!(!app.help);
        assert_eq!(press(&mut app, KeyCode::Char('w')), Effect::FetchTable);
        assert_eq!(app.window, model::WINDOWS[1]);
        press(&mut app, KeyCode::Char('r'));
        assert!(app.sorting.reversed);
        press(&mut app, KeyCode::Char('>'));
        assert_eq!(app.sorting.column, Column::Type);
    }
}
