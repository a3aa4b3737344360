//! The agentwatch terminal UI: live alerts, sessions with their process trees and timelines,
//! search over the whole history, rules and sensor health, for SOC staff who live in a terminal.
//!
//! Shaped like tokio-console, model apart from drawing, and laid out so that no module imports
//! one that imports it back:
//!
//! - [`state`] is the model: pure, updated by keys, daemon answers and ticks, unit-tested. One
//!   file per view model (`state/alerts.rs`, `sessions`, `timeline`, `search`, `rules`,
//!   `health`); the filtered ones are built on one generic list (`state/list.rs`: rows, filter,
//!   order, sort hook, cursor) and every list moves the same cursor; `state/mod.rs` holds the
//!   [`state::App`] and the key dispatch.
//! - [`view`] draws the model with ratatui (snapshot-tested with `TestBackend`): one file per
//!   view plus the theme and shared widgets.
//! - [`answer`] makes rows of the daemon's answers, which arrive typed (the `agent-api` crate
//!   owns every request and answer of the protocol); both the model and the backend use it.
//! - [`msg`] holds the [`msg::Request`]s the model queues and the [`msg::Update`]s it receives,
//!   so that the model and the backend both use it and never each other.
//! - [`backend`] talks to the daemon on background threads so the UI never blocks on it.
//! - [`intent`] reads what agent events say (LLM model and tokens) and a restart's downtime by
//!   dotted field name from the event's JSON, for the answers and the model.
//! - [`text`] makes strings safe and fits them to columns. Every string that came from an agent
//!   is escaped once, when it enters the model ([`text::safe`]), and cut to its column width by
//!   display width when drawn.
//!
//! This file runs the terminal: raw mode, the event loop, and restoring the terminal on exit or
//! panic.
#![forbid(unsafe_code)]

pub mod answer;
pub mod backend;
pub mod intent;
pub mod msg;
pub mod state;
pub mod text;
pub mod view;

use std::time::{Duration, Instant};

use agent_model::Timestamp;
use anyhow::Context as _;
use ratatui::crossterm::event::{self, Event as TermEvent, KeyEventKind};
use ratatui::crossterm::execute;
use ratatui::crossterm::terminal::{
    EnterAlternateScreen, LeaveAlternateScreen, disable_raw_mode, enable_raw_mode,
};

pub use backend::{Backend, BackendFactory, SocketBackend, Subscription};

/// How the TUI runs.
#[derive(Clone, Debug)]
pub struct Options {
    /// Model tick (status polls every 4 ticks).
    pub tick: Duration,
    /// Force colours off (on top of `NO_COLOR`).
    pub no_color: bool,
    /// A fleet console: alerts show their host, and are fetched every second (triage made on
    /// other consoles shows within about a second).
    pub fleet: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            tick: Duration::from_millis(250),
            no_color: false,
            fleet: false,
        }
    }
}

/// Most live updates applied between two frames, so a flood cannot freeze the screen.
const UPDATES_PER_FRAME: usize = 20_000;

/// Run the TUI on the current terminal until the user quits.
///
/// `factory` builds a [`Backend`]; it is called on background threads, again after every
/// disconnect, so a restarted daemon is picked up on its own. Use
/// [`SocketBackend::factory`] for the daemon, or a factory returning the offline reader.
pub fn run(factory: BackendFactory, opts: Options) -> anyhow::Result<()> {
    let mut theme = view::Theme::from_env();
    if opts.no_color {
        theme.color = false;
    }
    enable_raw_mode().context("cannot put the terminal in raw mode (is stdout a terminal?)")?;
    execute!(std::io::stdout(), EnterAlternateScreen)?;
    let prev_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        restore();
        prev_hook(info);
    }));
    let backend = ratatui::backend::CrosstermBackend::new(std::io::stdout());
    let result = ratatui::Terminal::new(backend)
        .map_err(anyhow::Error::from)
        .and_then(|mut t| event_loop(&mut t, factory, &opts, theme));
    restore();
    result
}

fn restore() {
    let _ = disable_raw_mode();
    let _ = execute!(std::io::stdout(), LeaveAlternateScreen);
}

fn event_loop<B: ratatui::backend::Backend>(
    term: &mut ratatui::Terminal<B>,
    factory: BackendFactory,
    opts: &Options,
    theme: view::Theme,
) -> anyhow::Result<()> {
    let worker = backend::Worker::start(factory);
    let mut app = state::App::new(Timestamp::now());
    app.fleet = opts.fleet;
    let mut next_tick = Instant::now() + opts.tick;
    let mut dirty = true;
    let mut dropped = 0u64;
    while !app.quit {
        for r in app.outbox.drain(..) {
            if !worker.send(r) {
                dropped += 1;
            }
        }
        if dropped > 0 {
            app.message = Some(format!("daemon slow: {dropped} requests dropped"));
            dropped = 0;
        }
        for u in worker.updates.try_iter().take(UPDATES_PER_FRAME) {
            app.on_update(u);
            dirty = true;
        }
        if dirty {
            term.draw(|f| app.page = view::draw(f, &app, theme))?;
            dirty = false;
        }
        let now = Instant::now();
        if now >= next_tick {
            app.on_tick(Timestamp::now());
            next_tick = now + opts.tick;
            dirty = true;
        }
        // Wake often enough to show live updates promptly (~30 fps at most).
        let wait = next_tick
            .saturating_duration_since(Instant::now())
            .min(Duration::from_millis(33));
        if event::poll(wait)? {
            match event::read()? {
                TermEvent::Key(k) if k.kind == KeyEventKind::Press => {
                    app.on_key(k);
                    dirty = true;
                }
                TermEvent::Resize(..) => dirty = true,
                _ => {}
            }
        }
    }
    Ok(())
}
