//! Colours and severity styles, or none at all when `NO_COLOR` is set: every style a view uses
//! comes from [`Theme`], so the no-colour rendering is decided in one place.

use agent_model::Severity;
use ratatui::style::{Color, Modifier, Style};

/// Colours, or none at all when `NO_COLOR` is set.
#[derive(Clone, Copy, Debug)]
pub struct Theme {
    pub color: bool,
}

impl Theme {
    /// Honour `NO_COLOR` (any non-empty value).
    pub fn from_env() -> Theme {
        Theme {
            color: std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()),
        }
    }

    pub(super) fn fg(&self, c: Color) -> Style {
        if self.color {
            Style::default().fg(c)
        } else {
            Style::default()
        }
    }

    pub(super) fn sev(&self, s: Severity) -> Style {
        if !self.color {
            return match s {
                Severity::Critical | Severity::High => {
                    Style::default().add_modifier(Modifier::BOLD)
                }
                _ => Style::default(),
            };
        }
        match s {
            Severity::Critical => Style::default()
                .fg(Color::Magenta)
                .add_modifier(Modifier::BOLD),
            Severity::High => Style::default().fg(Color::Red),
            Severity::Medium => Style::default().fg(Color::Yellow),
            Severity::Low => Style::default().fg(Color::Cyan),
            Severity::Info => Style::default().fg(Color::Gray),
        }
    }

    pub(super) fn selected(&self) -> Style {
        Style::default().add_modifier(Modifier::REVERSED)
    }

    pub(super) fn warn(&self) -> Style {
        if self.color {
            Style::default()
                .fg(Color::White)
                .bg(Color::Red)
                .add_modifier(Modifier::BOLD)
        } else {
            Style::default().add_modifier(Modifier::REVERSED | Modifier::BOLD)
        }
    }

    pub(super) fn dim(&self) -> Style {
        if self.color {
            Style::default().fg(Color::DarkGray)
        } else {
            Style::default()
        }
    }
}

pub(super) fn sev_tag(s: Severity) -> &'static str {
    match s {
        Severity::Critical => "CRIT",
        Severity::High => "HIGH",
        Severity::Medium => "MED ",
        Severity::Low => "LOW ",
        Severity::Info => "INFO",
    }
}
