//! The Health view: a sparkline of events/s per kind, and facts about the sensor and store.

use ratatui::Frame;
use ratatui::layout::{Constraint, Direction, Layout, Rect};
use ratatui::style::{Color, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Paragraph, Sparkline};

use super::theme::Theme;
use crate::state::App;
use crate::text::{fit, pad};

pub(super) fn draw(f: &mut Frame, r: Rect, app: &App, theme: Theme) -> usize {
    let hs = &app.health;
    let w = r.width as usize;
    let facts_w: usize = if w >= 120 { 44 } else { 34 };
    let c = Layout::default()
        .direction(Direction::Horizontal)
        .constraints([Constraint::Min(20), Constraint::Length(facts_w as u16)])
        .split(r);
    // Facts column.
    let mut facts: Vec<Line> = hs
        .facts
        .iter()
        .map(|(k, v)| {
            let st = if (k == "events lost" && v != "0") || k == "policy error" {
                theme.fg(Color::Red)
            } else {
                Style::default()
            };
            Line::from(vec![
                Span::styled(pad(k, 18), theme.fg(Color::Cyan)),
                Span::styled(fit(v, facts_w.saturating_sub(20)), st),
            ])
        })
        .collect();
    if app.lagged > 0 {
        facts.push(Line::from(vec![
            Span::styled(pad("ui lagged", 18), theme.fg(Color::Cyan)),
            Span::styled(app.lagged.to_string(), theme.fg(Color::Red)),
        ]));
    }
    for (k, n) in &hs.losses {
        if *n > 0 {
            facts.push(Line::from(Span::styled(
                fit(&format!("lost {k}: {n}"), facts_w.saturating_sub(2)),
                theme.fg(Color::Red),
            )));
        }
    }
    f.render_widget(
        Paragraph::new(facts).block(
            Block::default()
                .borders(Borders::ALL)
                .title(" sensor & store "),
        ),
        c[1],
    );
    // Rates column: one sparkline per kind.
    let left = c[0];
    let block = Block::default()
        .borders(Borders::ALL)
        .title(format!(" events/s per kind ({} polls) ", hs.polls));
    let inner = block.inner(left);
    f.render_widget(block, left);
    if hs.kinds.is_empty() {
        f.render_widget(
            Paragraph::new("waiting for status…").style(theme.dim()),
            inner,
        );
        return inner.height as usize;
    }
    let label_w = 24usize;
    let spark_w = (inner.width as usize).saturating_sub(label_w);
    let total: Vec<(String, f64, &std::collections::VecDeque<u64>)> = std::iter::once((
        "all".to_string(),
        hs.kinds.values().map(|k| k.1).sum::<f64>(),
        &hs.total_rate,
    ))
    .chain(hs.kinds.iter().map(|(k, v)| (k.clone(), v.1, &v.2)))
    .collect();
    for (y, (k, rate, hist)) in (inner.y..).zip(total) {
        if y >= inner.y + inner.height {
            break;
        }
        let row = Rect {
            x: inner.x,
            y,
            width: inner.width,
            height: 1,
        };
        f.render_widget(
            Paragraph::new(pad(&format!("{} {:>8.1}", pad(&k, 14), rate), label_w)),
            row,
        );
        let data: Vec<u64> = hist
            .iter()
            .skip(hist.len().saturating_sub(spark_w))
            .copied()
            .collect();
        f.render_widget(
            Sparkline::default()
                .data(&data)
                .style(theme.fg(Color::Green)),
            Rect {
                x: inner.x + label_w as u16,
                width: spark_w as u16,
                ..row
            },
        );
    }
    inner.height as usize
}
