//! The agentwatch terminal UI: live alerts, sessions with their process trees and timelines,
//! search over the whole history, rules and sensor health, for SOC staff who live in a terminal.
//!
//! Shaped like tokio-console: [`state`] is the model (pure, updated by keys, daemon answers and
//! ticks, unit-tested), [`view`] draws it with ratatui (snapshot-tested with `TestBackend`), and
//! [`backend`] talks to the daemon on background threads so the UI never blocks on it. Every
//! string that came from an agent is escaped once, when it enters the model ([`text::safe`]),
//! and cut to its column width by display width when drawn.
#![forbid(unsafe_code)]

pub mod backend;
pub mod state;
pub mod text;
