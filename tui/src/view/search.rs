//! The Search view: the query and its status, the aggregation as bars, then the hits and the
//! selected hit's detail.

use ratatui::Frame;
use ratatui::layout::{Constraint, Direction, Layout, Rect};
use ratatui::style::Color;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Paragraph};

use super::theme::Theme;
use super::widgets::{bar, day_time, draw_detail, entry_line, split_v, window};
use crate::state::{Aggregation, App};
use crate::text::{duration, fit, pad, width};

fn agg_lines(a: &Aggregation, w: usize, theme: Theme) -> Vec<Line<'static>> {
    match a {
        Aggregation::Count { count } => vec![Line::from(format!("count: {count}"))],
        Aggregation::Terms {
            field,
            buckets,
            other,
        } => {
            let max = buckets.iter().map(|b| b.1).max().unwrap_or(0);
            let label_w = buckets
                .iter()
                .map(|b| width(&b.0))
                .max()
                .unwrap_or(0)
                .max(4)
                .min(w / 3);
            let mut v = vec![Line::from(Span::styled(
                fit(&format!("by {field}"), w),
                theme.fg(Color::Cyan),
            ))];
            for (l, n) in buckets {
                let num = n.to_string();
                let room = w.saturating_sub(label_w + 2 + num.len() + 1);
                v.push(Line::from(vec![
                    Span::raw(format!("{} ", pad(l, label_w))),
                    Span::styled(bar(*n, max, room), theme.fg(Color::Blue)),
                    Span::raw(format!(" {num}")),
                ]));
            }
            if *other > 0 {
                v.push(Line::from(format!("{} {other}", pad("(other)", label_w))));
            }
            v
        }
        Aggregation::Histogram {
            interval_ns,
            buckets,
        } => {
            let max = buckets.iter().map(|b| b.1).max().unwrap_or(0);
            let mut v = vec![Line::from(Span::styled(
                format!("histogram, {} buckets", duration(*interval_ns)),
                theme.fg(Color::Cyan),
            ))];
            for (t, n) in buckets {
                let num = n.to_string();
                let room = w.saturating_sub(11 + 1 + num.len() + 1);
                v.push(Line::from(vec![
                    Span::raw(format!("{} ", day_time(*t))),
                    Span::styled(bar(*n, max, room), theme.fg(Color::Blue)),
                    Span::raw(format!(" {num}")),
                ]));
            }
            v
        }
    }
}

pub(super) fn draw(f: &mut Frame, r: Rect, app: &App, theme: Theme) -> usize {
    let s = &app.search;
    let w = r.width as usize;
    let (top, rest) = split_v(r, 2);
    let q = if s.query.is_empty() {
        "(press / to type a query, e.g. kind:file.open AND file.path:*id_rsa* | top 5 process.exe)"
            .to_string()
    } else {
        crate::text::safe(&s.query)
    };
    f.render_widget(
        Paragraph::new(Line::from(vec![
            Span::styled(" query ", theme.fg(Color::Cyan)),
            Span::raw(fit(&q, w.saturating_sub(24))),
        ])),
        Rect { height: 1, ..top },
    );
    let status = match (&s.error, s.pending) {
        (Some(e), _) => format!(" error: {e}"),
        (None, true) => " searching…".to_string(),
        (None, false) => format!(
            " range: {} (t to change) │ {} hits, {} shown",
            s.range_name(),
            s.total,
            s.results.len()
        ),
    };
    let st = if s.error.is_some() {
        theme.fg(Color::Red)
    } else {
        theme.dim()
    };
    f.render_widget(
        Paragraph::new(fit(&status, w)).style(st),
        Rect {
            y: top.y + 1,
            height: top.height.saturating_sub(1),
            ..top
        },
    );
    let agg_h = match &s.aggregation {
        Some(Aggregation::Count { .. }) => 3,
        Some(Aggregation::Terms { buckets, other, .. }) => {
            buckets.len() as u16 + 3 + (*other > 0) as u16
        }
        Some(Aggregation::Histogram { buckets, .. }) => buckets.len() as u16 + 3,
        None => 0,
    }
    .min(rest.height / 2);
    let (agg_r, rest) = split_v(rest, agg_h);
    if let Some(a) = &s.aggregation {
        f.render_widget(
            Paragraph::new(agg_lines(a, agg_r.width.saturating_sub(2) as usize, theme)).block(
                Block::default()
                    .borders(Borders::ALL)
                    .title(" aggregation "),
            ),
            agg_r,
        );
    }
    let wide = w >= 120;
    let (list_r, detail_r) = if wide {
        let c = Layout::default()
            .direction(Direction::Horizontal)
            .constraints([Constraint::Percentage(55), Constraint::Percentage(45)])
            .split(rest);
        (c[0], c[1])
    } else {
        let dh = (rest.height / 2).min(10);
        split_v(rest, rest.height - dh)
    };
    let h = list_r.height as usize;
    let lw = list_r.width as usize;
    let lines: Vec<Line> = window(&s.cur, s.results.len(), h)
        .map(|i| entry_line(&s.results[i], lw, i == s.cur.sel, theme))
        .collect();
    f.render_widget(Paragraph::new(lines), list_r);
    if detail_r.height > 0 {
        draw_detail(f, detail_r, s.selected(), theme);
    }
    h
}
