//! `ebpfstatctl top` on a terminal: a full-screen view refreshed at the daemon's interval,
//! with keys to sort, filter, pick the window, and charts of one program from stored history.
//!
//! One loop owns the screen and the state (`app`); keys come from a thread blocked on the
//! terminal, answers from the task that owns the D-Bus connection (`fetch`), one request at a
//! time. The terminal is given back on every way out: `q`, a signal, an error, a panic.

mod app;
mod chart;
mod chart_view;
mod fetch;
mod model;
mod profile_view;
mod screen;
mod table_view;

use std::io;
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, Result};
use ebpfstat_dbus::Stats1Proxy;
use ratatui::DefaultTerminal;
use ratatui::crossterm::event::{self, Event};
use ratatui::crossterm::terminal::{self, EnterAlternateScreen, LeaveAlternateScreen};
use ratatui::crossterm::{cursor, execute};
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::mpsc;
use tokio::time::MissedTickBehavior;

use self::app::{App, Effect};
use self::chart::SPANS;
pub use self::fetch::Target;
use self::fetch::{Reply, Request};
use self::model::{Column, Sorting, Window};
use crate::{By, Sort, TopArgs};

/// Refreshes until the daemon's interval is known.
const FIRST_REFRESH: Duration = Duration::from_secs(1);

/// Gives the terminal back: cooked mode, the main screen, a cursor.
fn restore() {
    let raw = terminal::disable_raw_mode();
    let screen = execute!(io::stdout(), LeaveAlternateScreen, cursor::Show);
    if let Err(e) = raw.and(screen) {
        eprintln!("ebpfstatctl: could not restore the terminal ({e}); `reset` will");
    }
}

/// The full screen while it lives; the terminal as it was once dropped.
struct Screen(DefaultTerminal);

impl Screen {
    fn open() -> Result<Self> {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            restore();
            previous(info);
        }));
        let screen = Self(ratatui::Terminal::new(
            ratatui::backend::CrosstermBackend::new(io::stdout()),
        )?);
        // From here on, dropping `screen` gives the terminal back.
        terminal::enable_raw_mode().context("cannot put the terminal in raw mode")?;
        execute!(io::stdout(), EnterAlternateScreen, cursor::Hide)?;
        Ok(screen)
    }
}

impl Drop for Screen {
    fn drop(&mut self) {
        restore();
    }
}

fn first_window(a: &TopArgs) -> Window {
    if a.cumulative {
        return Window::SinceLoad;
    }
    if let Some(since) = a.since {
        let d = SystemTime::now()
            .duration_since(since.0)
            .unwrap_or_default();
        // Whole seconds, ending now (the view's windows slide).
        return Window::Last(Duration::from_secs(d.as_secs().max(1)));
    }
    a.window.map_or(Window::Interval, Window::Last)
}

fn first_sorting(s: Sort) -> Sorting {
    let column = match s {
        // Run time and CPU rank alike within one window.
        Sort::Runtime | Sort::Cpu => Column::Cpu,
        Sort::Runs => Column::RunsPerSec,
        Sort::Avg => Column::Avg,
        Sort::Mapmem => Column::MapMem,
    };
    Sorting {
        column,
        reversed: false,
    }
}

pub async fn run(proxy: Stats1Proxy<'static>, a: &TopArgs, target: Target) -> Result<()> {
    let mut app = App::new(first_window(a), first_sorting(a.sort));
    app.group = a.by.map(By::group_by);
    let (request_tx, request_rx) = mpsc::channel::<Request>(1);
    let (reply_tx, mut replies) = mpsc::unbounded_channel::<Reply>();
    let mut profiler = Profiler {
        target: target.clone(),
        replies: reply_tx.clone(),
        task: None,
    };
    let fetcher = tokio::spawn(fetch::serve(target, proxy, request_rx, reply_tx.clone()));
    let mut terms = signal(SignalKind::terminate())?;
    let mut hangups = signal(SignalKind::hangup())?;
    let mut interrupts = signal(SignalKind::interrupt())?;

    let mut screen = Screen::open()?;
    let mut keys = read_keys();
    let mut refresh = Refresh::new(a.refresh);
    app.period = refresh.period;
    let mut clock = tokio::time::interval(Duration::from_secs(1));
    clock.set_missed_tick_behavior(MissedTickBehavior::Skip);
    let mut in_flight = false;
    let mut wanted = Effect::FetchTable;
    loop {
        draw(&mut screen, &mut app)?;
        let effect = tokio::select! {
            ev = keys.recv() => match ev {
                Some(Event::Key(k)) => app.key(k),
                // A resize is drawn at the loop's top.
                Some(_) => Effect::None,
                None => Effect::Quit,
            },
            Some(reply) = replies.recv() => {
                match reply {
                    Reply::Profile(r) => app.profile_answer(r),
                    Reply::Table(r) => {
                        in_flight = false;
                        if let Ok(d) = &r {
                            refresh.follow(d.interval, &mut app);
                        }
                        app.table_answer(r.map(|d| *d));
                    }
                    Reply::Chart(r) => {
                        in_flight = false;
                        app.chart_answer(r);
                    }
                }
                Effect::None
            }
            _ = refresh.timer.tick() => match (&app.chart, app.paused) {
                (_, true) => Effect::None,
                (Some(_), false) if app.chart_due() => Effect::FetchChart,
                (Some(_), false) => Effect::None,
                (None, false) => Effect::FetchTable,
            },
            _ = clock.tick() => Effect::None,
            _ = terms.recv() => Effect::Quit,
            _ = hangups.recv() => Effect::Quit,
            _ = interrupts.recv() => Effect::Quit,
        };
        match effect {
            Effect::Quit => break,
            Effect::None => {}
            Effect::Profile | Effect::StopProfile => profiler.follow(effect, &app),
            e => wanted = e,
        }
        // One request at a time: a wanted one waits for the answer in flight.
        if !in_flight
            && wanted != Effect::None
            && let Some(r) = request(&mut app, std::mem::replace(&mut wanted, Effect::None))
        {
            in_flight = true;
            request_tx
                .send(r)
                .await
                .context("the connection task ended")?;
        }
    }
    drop(screen);
    fetcher.abort();
    Ok(())
}

/// The profile the box asks for, on a connection of its own: closing the box (or leaving the
/// view) aborts it, which drops the connection, and the daemon, seeing its caller gone,
/// detaches.
struct Profiler {
    target: Target,
    replies: mpsc::UnboundedSender<Reply>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Profiler {
    fn follow(&mut self, effect: Effect, app: &App) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
        if let (Effect::Profile, Some(p)) = (effect, &app.profile) {
            let asked = fetch::profile(self.target.clone(), p.id, app::PROFILE_FOR);
            let tx = self.replies.clone();
            self.task = Some(tokio::spawn(async move {
                // The view may be gone by the answer: nothing is waiting then.
                let _ = tx.send(asked.await);
            }));
        }
    }
}

impl Drop for Profiler {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

fn draw(screen: &mut Screen, app: &mut App) -> Result<()> {
    screen.0.draw(|f| {
        if app.chart.is_some() {
            chart_view::draw(f, app);
        } else {
            table_view::draw(f, app);
        }
        if let Some(p) = &app.profile {
            profile_view::draw(f, p);
        }
        if app.help {
            screen::help(f);
        }
    })?;
    Ok(())
}

/// Keys from a thread blocked on the terminal; it ends with the process (nothing to join).
fn read_keys() -> mpsc::UnboundedReceiver<Event> {
    let (key_tx, keys) = mpsc::unbounded_channel::<Event>();
    std::thread::spawn(move || {
        while let Ok(ev) = event::read() {
            if key_tx.send(ev).is_err() {
                break;
            }
        }
    });
    keys
}

/// How often the view asks again: `--refresh`, else the daemon's interval once it says it.
struct Refresh {
    period: Duration,
    given: bool,
    timer: tokio::time::Interval,
}

impl Refresh {
    fn new(given: Option<Duration>) -> Self {
        let period = given.unwrap_or(FIRST_REFRESH);
        let mut timer = tokio::time::interval(period);
        timer.set_missed_tick_behavior(MissedTickBehavior::Delay);
        Self {
            period,
            given: given.is_some(),
            timer,
        }
    }

    /// The daemon's interval, unless `--refresh` was given.
    fn follow(&mut self, interval: Duration, app: &mut App) {
        if self.given || interval == self.period || interval.is_zero() {
            return;
        }
        self.period = interval;
        app.period = interval;
        self.timer = tokio::time::interval(interval);
        self.timer
            .set_missed_tick_behavior(MissedTickBehavior::Delay);
        self.timer.reset();
    }
}

/// What to ask the daemon for what is wanted.
fn request(app: &mut App, wanted: Effect) -> Option<Request> {
    match wanted {
        Effect::None | Effect::Quit | Effect::Profile | Effect::StopProfile => None,
        Effect::FetchChart => {
            let points = app.chart_points;
            app.chart.as_mut().map(|c| {
                c.fetched = Some(Instant::now());
                Request::Chart {
                    name: c.row.name.clone(),
                    series_id: c.row.series_id,
                    id: c.row.alive.then_some(c.row.id),
                    span: SPANS[c.span],
                    points,
                }
            })
        }
        _ => Some(Request::Table {
            window: app.window,
            rank: app.rank_due(),
            group: app.group.filter(|_| app.groups_due()),
        }),
    }
}
