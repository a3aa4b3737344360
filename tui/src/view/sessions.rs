//! The Sessions view: sessions per agent, then one line per session, newest first, with its
//! state (live, frozen, killed) and, when the terminal is wide enough, what its agent events
//! say: model, tool calls and tokens.

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::style::{Color, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;

use super::theme::Theme;
use super::widgets::{day_time, header, row_style, split_v, window};
use crate::intent::count;
use crate::state::App;
use crate::text::{duration, fit, pad};

pub(super) fn draw(f: &mut Frame, r: Rect, app: &App, theme: Theme) -> usize {
    let s = &app.sessions;
    let w = r.width as usize;
    let (top, rest) = split_v(r, 2);
    let agents: Vec<String> = s
        .agents()
        .iter()
        .map(|(a, n, l)| format!("{a}: {n} sessions ({l} live)"))
        .collect();
    let mut info = format!(" agents │ {}", agents.join(" │ "));
    if !s.filter.is_empty() {
        info.push_str(&format!(" │ filter: {}", crate::text::safe(&s.filter)));
    }
    f.render_widget(Paragraph::new(fit(&info, w)), Rect { height: 1, ..top });
    let agent_w = 12;
    // Model, tool calls and tokens (in/out) when there is room for them and the root.
    let intent_w = 16 + 1 + 5 + 1 + 13 + 1;
    let fixed = 16 + 1 + agent_w + 1 + 11 + 1 + 8 + 1 + 7 + 1 + 6 + 1 + 6 + 1;
    let wide = w >= fixed + intent_w + 20;
    let root_w = w.saturating_sub(fixed + if wide { intent_w } else { 0 });
    let intent_head = if wide {
        format!(
            "{} {} {} ",
            pad("MODEL", 16),
            pad("CALLS", 5),
            pad("TOKENS IN/OUT", 13)
        )
    } else {
        String::new()
    };
    f.render_widget(
        header(
            format!(
                "{} {} {} {} {} {} {} {}{}",
                pad("SESSION", 16),
                pad("AGENT", agent_w),
                pad("START", 11),
                pad("DURATION", 8),
                pad("EVENTS", 7),
                pad("ALERTS", 6),
                pad("STATE", 6),
                intent_head,
                "ROOT"
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
    if s.visible.is_empty() {
        f.render_widget(Paragraph::new("no sessions").style(theme.dim()), rest);
        return h;
    }
    let lines: Vec<Line> = window(&s.cur, s.visible.len(), h)
        .map(|i| {
            let row = &s.rows[s.visible[i]];
            let end = if row.live { app.now } else { row.end };
            let alerts_st = if row.alerts > 0 {
                theme.fg(Color::Red)
            } else {
                Style::default()
            };
            let (state, state_st) = match (row.response, row.live) {
                (Some(r), _) => (r, theme.warn()),
                (None, true) => ("live", Style::default()),
                (None, false) => ("", Style::default()),
            };
            let intent = if wide {
                let i = &row.intent;
                let tokens = if i.tokens_known {
                    format!("{}/{}", count(i.input_tokens), count(i.output_tokens))
                } else {
                    "-".into()
                };
                let calls = if i.tool_calls > 0 || i.model.is_some() {
                    i.tool_calls.to_string()
                } else {
                    "-".into()
                };
                format!(
                    "{} {} {} ",
                    pad(i.model.as_deref().unwrap_or("-"), 16),
                    pad(&calls, 5),
                    pad(&tokens, 13)
                )
            } else {
                String::new()
            };
            Line::from(vec![
                Span::raw(format!(
                    "{} {} {} {} {} ",
                    pad(&row.id_text, 16),
                    pad(&row.agent, agent_w),
                    pad(&day_time(row.start), 11),
                    pad(&duration(end.0 - row.start.0), 8),
                    pad(&row.events.to_string(), 7),
                )),
                Span::styled(pad(&row.alerts.to_string(), 6), alerts_st),
                Span::raw(" "),
                Span::styled(pad(state, 6), state_st),
                Span::raw(format!(" {intent}{}", pad(&row.root, root_w))),
            ])
            .style(row_style(i == s.cur.sel, theme, Style::default()))
        })
        .collect();
    f.render_widget(Paragraph::new(lines), rest);
    h
}
