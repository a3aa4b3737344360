//! The Rules view: the policy and its last reload error, then one line per rule.

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;

use super::theme::{Theme, sev_tag};
use super::widgets::{header, row_style, split_v, window};
use crate::state::App;
use crate::text::{fit, pad};

pub(super) fn draw(f: &mut Frame, r: Rect, app: &App, theme: Theme) -> usize {
    let s = &app.rules;
    let w = r.width as usize;
    let (top, rest) = split_v(r, 2);
    let mut info = format!(
        " {} rules │ policy {} (generation {})",
        s.rows.len(),
        if s.source.is_empty() { "-" } else { &s.source },
        s.generation
    );
    if !s.filter.is_empty() {
        info.push_str(&format!(" │ filter: {}", crate::text::safe(&s.filter)));
    }
    match &s.last_error {
        Some(e) => f.render_widget(
            Paragraph::new(fit(&format!(" last reload failed: {e}"), w)).style(theme.warn()),
            Rect { height: 1, ..top },
        ),
        None => f.render_widget(Paragraph::new(fit(&info, w)), Rect { height: 1, ..top }),
    }
    let id_w = if w >= 120 { 32 } else { 22 };
    let kinds_w = if w >= 120 { 24 } else { 12 };
    let desc_w = w.saturating_sub(id_w + 1 + 4 + 1 + 3 + 1 + 7 + 1 + 8 + 1 + kinds_w + 1);
    f.render_widget(
        header(
            format!(
                "{} {} {} {} {} {} {}",
                pad("RULE", id_w),
                pad("SEV", 4),
                pad("ON", 3),
                pad("HITS", 7),
                pad("LAST HIT", 8),
                pad("KINDS", kinds_w),
                "DESCRIPTION"
            ),
            w,
            theme,
        ),
        Rect {
            y: top.y + 1,
            height: top.height.saturating_sub(1),
            ..top
        },
    );
    let h = rest.height as usize;
    let lines: Vec<Line> = window(&s.cur, s.visible.len(), h)
        .map(|i| {
            let row = &s.rows[s.visible[i]];
            let (tag, st) = match row.severity {
                Some(sv) => (sev_tag(sv), theme.sev(sv)),
                None => ("?   ", Style::default()),
            };
            Line::from(vec![
                Span::raw(format!("{} ", pad(&row.id, id_w))),
                Span::styled(tag, st),
                Span::raw(format!(
                    " {} {} {} {} {}",
                    pad(if row.enabled { "on" } else { "off" }, 3),
                    pad(&row.hits.to_string(), 7),
                    pad(&row.last_hit, 8),
                    pad(&row.kinds, kinds_w),
                    pad(&row.description, desc_w)
                )),
            ])
            .style(row_style(
                i == s.cur.sel,
                theme,
                if row.enabled {
                    Style::default()
                } else {
                    theme.dim()
                },
            ))
        })
        .collect();
    if lines.is_empty() {
        f.render_widget(Paragraph::new("no rules").style(theme.dim()), rest);
    } else {
        f.render_widget(Paragraph::new(lines), rest);
    }
    h
}
