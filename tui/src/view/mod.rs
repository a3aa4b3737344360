//! Drawing: turns the model into a frame. Nothing here changes the model except the page size
//! hint (rows per page for PgUp/PgDn), which the caller passes back.
//!
//! One file per view, plus the `theme` every style comes from and the `widgets` the views
//! share; this file draws the frame around them (tabs, banner, footer or prompt, help overlay).
//! Only visible rows are formatted, so a frame costs the same with 100 rows or 100 000. Cells are
//! cut with [`crate::text::fit`] by display width, so wide and combining characters cannot push
//! columns out of line.

mod alerts;
mod health;
mod rules;
mod search;
mod sessions;
mod theme;
mod timeline;
mod widgets;

use ratatui::Frame;
use ratatui::layout::{Constraint, Direction, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Clear, Paragraph};

pub use self::theme::Theme;
use crate::state::{App, Conn, KEYS, Prompt, TriageState, View};
use crate::text::{fit, pad, width};

/// Draw the whole UI. Returns the number of list rows visible (the page size).
pub fn draw(f: &mut Frame, app: &App, theme: Theme) -> usize {
    let area = f.area();
    let banner = banner(app);
    let rows = Layout::default()
        .direction(Direction::Vertical)
        .constraints([
            Constraint::Length(1),
            Constraint::Length(banner.is_some() as u16),
            Constraint::Min(1),
            Constraint::Length(1),
        ])
        .split(area);
    draw_tabs(f, rows[0], app, theme);
    if let Some(b) = banner {
        f.render_widget(
            Paragraph::new(fit(&b, rows[1].width as usize)).style(theme.warn()),
            rows[1],
        );
    }
    let body = rows[2];
    let page = match app.view {
        View::Alerts => alerts::draw(f, body, app, theme),
        View::Sessions => sessions::draw(f, body, app, theme),
        View::Timeline => timeline::draw(f, body, app, theme),
        View::Search => search::draw(f, body, app, theme),
        View::Rules => rules::draw(f, body, app, theme),
        View::Health => health::draw(f, body, app, theme),
    };
    draw_footer(f, rows[3], app, theme);
    if let Some((Prompt::Respond(c), note)) = &app.prompt {
        widgets::draw_confirm(f, body, c, note, theme);
    }
    if app.help {
        draw_help(f, area, theme);
    }
    page
}

fn banner(app: &App) -> Option<String> {
    match &app.conn {
        Conn::Down { error, retry_ms } => Some(format!(
            " daemon unreachable, retrying in {:.1}s, data may be stale: {error}",
            *retry_ms as f64 / 1000.0
        )),
        _ => None,
    }
}

fn draw_tabs(f: &mut Frame, r: Rect, app: &App, theme: Theme) {
    // The product name only when there is room for it and the connection status.
    let mut spans = if r.width >= 100 {
        vec![Span::styled(" agentwatch ", theme.fg(Color::Cyan))]
    } else {
        vec![Span::raw(" ")]
    };
    for (i, v) in View::ALL.iter().enumerate() {
        let label = format!(" {} {} ", i + 1, v.name());
        let st = if *v == app.view {
            theme.selected().add_modifier(Modifier::BOLD)
        } else {
            Style::default()
        };
        spans.push(Span::styled(label, st));
    }
    let status = match &app.conn {
        Conn::Connecting => "connecting…",
        Conn::Live => "● live",
        Conn::Down { .. } => "○ down",
        Conn::Offline => "offline (read-only)",
    };
    let used: usize = spans.iter().map(|s| width(&s.content)).sum();
    let left = (r.width as usize).saturating_sub(used);
    if left > width(status) + 1 {
        spans.push(Span::raw(" ".repeat(left - width(status) - 1)));
        let st = match app.conn {
            Conn::Live => theme.fg(Color::Green),
            Conn::Down { .. } => theme.fg(Color::Red),
            _ => theme.dim(),
        };
        spans.push(Span::styled(status, st));
    }
    f.render_widget(Paragraph::new(Line::from(spans)), r);
}

fn draw_footer(f: &mut Frame, r: Rect, app: &App, theme: Theme) {
    let w = r.width as usize;
    if let Some((p, buf)) = &app.prompt {
        let label = match p {
            Prompt::Filter => "filter: ".to_string(),
            Prompt::Query => "query: ".to_string(),
            Prompt::Command => ":".to_string(),
            // Name the alert: a live alert may have arrived on top since the key was pressed.
            Prompt::Note { state, alert_id } => format!(
                "{} `{}`, note (Enter sends, Esc cancels): ",
                match state {
                    TriageState::Acknowledged => "acknowledge",
                    TriageState::Resolved => "resolve",
                    TriageState::Open => "reopen",
                },
                crate::text::safe(alert_id)
            ),
            Prompt::Respond(c) => format!(
                "{} `{}`, note (Enter confirms, Esc cancels): ",
                c.action.name(),
                crate::text::safe(&c.session)
            ),
        };
        // The typed text is the user's own, but it may hold pasted agent text: show it escaped,
        // and keep its end visible.
        let shown = crate::text::safe(buf);
        let room = w.saturating_sub(width(&label) + 1);
        let tail: String = if width(&shown) > room {
            let mut t: Vec<char> = Vec::new();
            let mut used = 0;
            for c in shown.chars().rev() {
                let cw = width(c.encode_utf8(&mut [0; 4]));
                if used + cw + 1 > room {
                    break;
                }
                used += cw;
                t.push(c);
            }
            std::iter::once('…').chain(t.into_iter().rev()).collect()
        } else {
            shown
        };
        let line = Line::from(vec![
            Span::styled(label, theme.fg(Color::Yellow)),
            Span::raw(tail),
            Span::styled("█", theme.dim()),
        ]);
        f.render_widget(Paragraph::new(line), r);
        return;
    }
    if let Some(m) = &app.message {
        f.render_widget(Paragraph::new(fit(m, w)).style(theme.fg(Color::Yellow)), r);
        return;
    }
    let hints = match app.view {
        View::Alerts => "?:help /:filter Enter:timeline a:ack r:resolve o:reopen Tab:view q:quit",
        View::Sessions => {
            "?:help /:filter Enter:open session C-k:kill f:freeze u:thaw Tab:view q:quit"
        }
        View::Timeline => {
            "?:help n/p:next/prev alert C-k:kill f:freeze u:thaw Esc:back Tab:view q:quit"
        }
        View::Search => "?:help /:edit query Enter:run/open t:time range Tab:view q:quit",
        View::Rules => "?:help /:filter j/k:move Tab:view q:quit",
        View::Health => "?:help Tab:view q:quit",
    };
    f.render_widget(Paragraph::new(fit(hints, w)).style(theme.dim()), r);
}

fn draw_help(f: &mut Frame, area: Rect, theme: Theme) {
    let w = 78.min(area.width);
    let h = (KEYS.len() as u16 + 4).min(area.height);
    let r = Rect {
        x: area.x + (area.width - w) / 2,
        y: area.y + (area.height - h) / 2,
        width: w,
        height: h,
    };
    f.render_widget(Clear, r);
    let inner = (w as usize).saturating_sub(4);
    let mut lines: Vec<Line> = KEYS
        .iter()
        .map(|(k, d)| {
            Line::from(vec![
                Span::styled(pad(k, 16), theme.fg(Color::Cyan)),
                Span::raw(fit(d, inner.saturating_sub(16))),
            ])
        })
        .collect();
    lines.push(Line::from(Span::styled("any key closes", theme.dim())));
    f.render_widget(
        Paragraph::new(lines).block(
            Block::default()
                .borders(Borders::ALL)
                .title(" keys ")
                .style(Style::default()),
        ),
        Rect {
            x: r.x,
            y: r.y,
            width: r.width,
            height: r.height,
        },
    );
}
