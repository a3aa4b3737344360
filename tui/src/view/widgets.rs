//! Pieces shared by the views: time formats, the visible window of a list, the selected-row
//! style, column headers, vertical splits, bars, and the entry line and detail panel that the
//! Timeline and Search views both draw.

use agent_model::Timestamp;
use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Paragraph};

use super::theme::{Theme, sev_tag};
use agent_api::SessionAction;
use ratatui::widgets::Clear;

use crate::state::{Confirm, Cursor, Entry, EntryKind};
use crate::text::{fit, pad};

/// `HH:MM:SS` (UTC).
pub(super) fn hms(t: Timestamp) -> String {
    let s = t.to_rfc3339();
    s.get(11..19).unwrap_or("--:--:--").to_string()
}

/// `MM-DD HH:MM` (UTC).
pub(super) fn day_time(t: Timestamp) -> String {
    let s = t.to_rfc3339();
    format!(
        "{} {}",
        s.get(5..10).unwrap_or("--"),
        s.get(11..16).unwrap_or("--:--")
    )
}

/// Rows `[start, end)` of a list to show in `height` rows.
pub(super) fn window(cur: &Cursor, len: usize, height: usize) -> std::ops::Range<usize> {
    let o = cur.offset(len, height);
    o..(o + height).min(len)
}

pub(super) fn row_style(selected: bool, theme: Theme, base: Style) -> Style {
    if selected { theme.selected() } else { base }
}

pub(super) fn header(text: String, w: usize, theme: Theme) -> Paragraph<'static> {
    let st = if theme.color {
        Style::default().fg(Color::Black).bg(Color::Gray)
    } else {
        Style::default().add_modifier(Modifier::BOLD)
    };
    Paragraph::new(pad(&text, w)).style(st)
}

pub(super) fn split_v(r: Rect, top: u16) -> (Rect, Rect) {
    let top = top.min(r.height);
    (
        Rect { height: top, ..r },
        Rect {
            y: r.y + top,
            height: r.height - top,
            ..r
        },
    )
}

pub(super) fn bar(n: u64, max: u64, w: usize) -> String {
    if max == 0 || w == 0 {
        return String::new();
    }
    let cells = (n as f64 / max as f64 * w as f64).round() as usize;
    "█".repeat(cells.max((n > 0) as usize))
}

pub(super) fn entry_line(e: &Entry, w: usize, sel: bool, theme: Theme) -> Line<'static> {
    let (tag, st) = match e.kind {
        EntryKind::Alert(s) => (sev_tag(s).to_string(), theme.sev(s)),
        EntryKind::Loss => ("LOSS".to_string(), theme.warn()),
        EntryKind::Event(_) => ("    ".to_string(), Style::default()),
    };
    let mut text = if e.depth > 0 {
        format!("  └ {}", e.text)
    } else {
        e.text.clone()
    };
    if let EntryKind::Alert(_) = e.kind {
        if e.count > 1 {
            text = format!("×{} {text}", e.count);
        }
        if e.in_loss {
            text = format!("[loss] {text}");
        }
    }
    let room = w.saturating_sub(8 + 1 + 4 + 1);
    // A gap or loss is a band across the whole row, so it cannot be read as one more event.
    if e.kind == EntryKind::Loss {
        let t = crate::text::width(&text);
        if t + 4 < room {
            text = format!("{text} {}", "━".repeat(room - t - 1));
        }
    }
    let body = pad(&text, room);
    let line = Line::from(vec![
        Span::raw(format!("{} ", hms(e.time))),
        Span::styled(tag, st),
        Span::raw(" "),
        Span::raw(body),
    ]);
    let base = match e.kind {
        EntryKind::Loss => theme.warn(),
        EntryKind::Alert(s) => theme.sev(s),
        EntryKind::Event(_) => Style::default(),
    };
    line.style(row_style(sel, theme, base))
}

pub(super) fn draw_detail(f: &mut Frame, r: Rect, e: Option<&Entry>, theme: Theme) {
    let w = r.width.saturating_sub(2) as usize;
    let lines: Vec<Line> = match e {
        None => vec![Line::from(Span::styled("nothing selected", theme.dim()))],
        Some(e) => {
            let name_w = e.fields.iter().map(|(n, _)| n.len()).max().unwrap_or(0);
            e.fields
                .iter()
                .map(|(n, v)| {
                    Line::from(vec![
                        Span::styled(pad(n, name_w), theme.fg(Color::Cyan)),
                        Span::raw(" "),
                        Span::raw(fit(v, w.saturating_sub(name_w + 1))),
                    ])
                })
                .collect()
        }
    };
    f.render_widget(
        Paragraph::new(lines).block(Block::default().borders(Borders::ALL).title(" detail ")),
        r,
    );
}

/// The confirmation box of a response action: what will happen to which session, the note
/// being typed, and how to confirm or cancel.
pub(super) fn draw_confirm(f: &mut Frame, area: Rect, c: &Confirm, note: &str, theme: Theme) {
    let w = 70.min(area.width);
    let h = 9.min(area.height);
    let r = Rect {
        x: area.x + (area.width - w) / 2,
        y: area.y + (area.height - h) / 2,
        width: w,
        height: h,
    };
    let inner = (w as usize).saturating_sub(2);
    let procs = match c.procs {
        Some(n) => format!("{n} live"),
        None => "not live (no process known)".to_owned(),
    };
    let what = match c.action {
        SessionAction::Kill => "SIGKILL every process of this session:",
        SessionAction::Freeze => "stop every process of this session (freeze):",
        SessionAction::Thaw => "resume every process of this session (thaw):",
    };
    let lines = vec![
        Line::from(Span::styled(fit(what, inner), theme.warn())),
        Line::from(fit(
            &format!("  session   {}", crate::text::safe(&c.session)),
            inner,
        )),
        Line::from(fit(&format!("  agent     {}", c.agent), inner)),
        Line::from(fit(&format!("  processes {procs}"), inner)),
        Line::from(vec![
            Span::styled("note: ", theme.fg(Color::Yellow)),
            Span::raw(fit(&crate::text::safe(note), inner.saturating_sub(7))),
            Span::styled("█", theme.dim()),
        ]),
        Line::from(Span::styled("Enter confirms · Esc cancels", theme.dim())),
    ];
    f.render_widget(Clear, r);
    f.render_widget(
        Paragraph::new(lines).block(
            Block::default()
                .borders(Borders::ALL)
                .title(format!(" {} session? ", c.action.name())),
        ),
        r,
    );
}
