//! The Alerts view: counts per severity, then one line per alert, newest first.

use agent_model::Severity;
use ratatui::Frame;
use ratatui::layout::{Constraint, Direction, Layout, Rect};
use ratatui::style::{Color, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;

use super::theme::{Theme, sev_tag};
use super::widgets::{header, hms, row_style, split_v, window};
use crate::state::{App, TriageState};
use crate::text::pad;

pub(super) fn draw(f: &mut Frame, r: Rect, app: &App, theme: Theme) -> usize {
    let a = &app.alerts;
    let w = r.width as usize;
    let (top, rest) = split_v(r, 2);
    let mut counts = vec![Span::raw(" ")];
    for s in Severity::ALL.iter().rev() {
        counts.push(Span::styled(
            format!("{} {}", s.name(), a.counts[*s as usize]),
            theme.sev(*s),
        ));
        counts.push(Span::raw("  "));
    }
    counts.push(Span::raw(format!("│ {} shown", a.len())));
    if !a.filter.is_empty() {
        counts.push(Span::styled(
            format!(" │ filter: {}", crate::text::safe(&a.filter)),
            theme.fg(Color::Yellow),
        ));
    }
    let top_rows = Layout::default()
        .direction(Direction::Vertical)
        .constraints([Constraint::Length(1), Constraint::Length(1)])
        .split(top);
    f.render_widget(Paragraph::new(Line::from(counts)), top_rows[0]);
    // time 8, sev 4, count 5, state 5, agent, rule, summary.
    let agent_w = if w >= 120 { 14 } else { 10 };
    let rule_w = if w >= 120 { 28 } else { 16 };
    // A fleet console shows the host each alert came from.
    let host_w = if app.fleet { 14 } else { 0 };
    let fixed = 8 + 1 + 4 + 1 + 5 + 1 + 5 + 1 + host_w + agent_w + 1 + rule_w + 1;
    let host_head = if app.fleet {
        format!("{} ", pad("HOST", host_w - 1))
    } else {
        String::new()
    };
    let sum_w = w.saturating_sub(fixed);
    f.render_widget(
        header(
            format!(
                "{} {} {} {} {}{} {} {}",
                pad("TIME", 8),
                pad("SEV", 4),
                pad("COUNT", 5),
                pad("STATE", 5),
                host_head,
                pad("AGENT", agent_w),
                pad("RULE", rule_w),
                "SUMMARY"
            ),
            w,
            theme,
        ),
        top_rows[1],
    );
    let h = rest.height as usize;
    if a.is_empty() {
        let msg = if a.rows.is_empty() {
            "no alerts yet"
        } else {
            "no alert matches the filter"
        };
        f.render_widget(Paragraph::new(msg).style(theme.dim()), rest);
        return h;
    }
    let lines: Vec<Line> = window(&a.cur, a.len(), h)
        .filter_map(|i| {
            let row = a.row(i)?;
            let al = &row.alert;
            let count = if al.count > 1 {
                format!("×{}", al.count)
            } else {
                String::new()
            };
            let state = match row.triage {
                TriageState::Open => "open",
                TriageState::Acknowledged => "ack",
                TriageState::Resolved => "done",
            };
            let summary = if al.in_loss_window {
                format!("[loss] {}", row.summary)
            } else {
                row.summary.clone()
            };
            let sel = i == a.cur.sel;
            let base = if row.triage == TriageState::Resolved {
                theme.dim()
            } else {
                Style::default()
            };
            Some(
                Line::from(vec![
                    Span::raw(format!("{} ", hms(al.last_time))),
                    Span::styled(sev_tag(al.severity), theme.sev(al.severity)),
                    Span::raw(format!(
                        " {} {} {}{} {} {}",
                        pad(&count, 5),
                        pad(state, 5),
                        if app.fleet {
                            format!("{} ", pad(&crate::text::safe(&al.host), host_w - 1))
                        } else {
                            String::new()
                        },
                        pad(&row.agent, agent_w),
                        pad(&row.rule, rule_w),
                        pad(&summary, sum_w)
                    )),
                ])
                .style(row_style(sel, theme, base)),
            )
        })
        .collect();
    f.render_widget(Paragraph::new(lines), rest);
    h
}
