//! Drawing: turns the model into a frame. Nothing here changes the model except the page size
//! hint (rows per page for PgUp/PgDn), which the caller passes back.
//!
//! Only visible rows are formatted, so a frame costs the same with 100 rows or 100 000. Cells are
//! cut with [`text::fit`] by display width, so wide and combining characters cannot push columns
//! out of line.

use agent_model::{Severity, Timestamp};
use ratatui::Frame;
use ratatui::layout::{Constraint, Direction, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Clear, Paragraph, Sparkline};

use crate::state::{
    Aggregation, App, Conn, Cursor, Entry, EntryKind, KEYS, Prompt, TriageState, View, duration,
};
use crate::text::{fit, pad, width};

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

    fn fg(&self, c: Color) -> Style {
        if self.color {
            Style::default().fg(c)
        } else {
            Style::default()
        }
    }

    fn sev(&self, s: Severity) -> Style {
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

    fn selected(&self) -> Style {
        Style::default().add_modifier(Modifier::REVERSED)
    }

    fn warn(&self) -> Style {
        if self.color {
            Style::default()
                .fg(Color::White)
                .bg(Color::Red)
                .add_modifier(Modifier::BOLD)
        } else {
            Style::default().add_modifier(Modifier::REVERSED | Modifier::BOLD)
        }
    }

    fn dim(&self) -> Style {
        if self.color {
            Style::default().fg(Color::DarkGray)
        } else {
            Style::default()
        }
    }
}

fn sev_tag(s: Severity) -> &'static str {
    match s {
        Severity::Critical => "CRIT",
        Severity::High => "HIGH",
        Severity::Medium => "MED ",
        Severity::Low => "LOW ",
        Severity::Info => "INFO",
    }
}

/// `HH:MM:SS` (UTC).
fn hms(t: Timestamp) -> String {
    let s = t.to_rfc3339();
    s.get(11..19).unwrap_or("--:--:--").to_string()
}

/// `MM-DD HH:MM` (UTC).
fn day_time(t: Timestamp) -> String {
    let s = t.to_rfc3339();
    format!(
        "{} {}",
        s.get(5..10).unwrap_or("--"),
        s.get(11..16).unwrap_or("--:--")
    )
}

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
        View::Alerts => draw_alerts(f, body, app, theme),
        View::Sessions => draw_sessions(f, body, app, theme),
        View::Timeline => draw_timeline(f, body, app, theme),
        View::Search => draw_search(f, body, app, theme),
        View::Rules => draw_rules(f, body, app, theme),
        View::Health => draw_health(f, body, app, theme),
    };
    draw_footer(f, rows[3], app, theme);
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
        View::Sessions => "?:help /:filter Enter:open session j/k:move Tab:view q:quit",
        View::Timeline => "?:help n/p:next/prev alert j/k:move Esc:back Tab:view q:quit",
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

/// Rows `[start, end)` of a list to show in `height` rows.
fn window(cur: &Cursor, len: usize, height: usize) -> std::ops::Range<usize> {
    let o = cur.offset(len, height);
    o..(o + height).min(len)
}

fn row_style(selected: bool, theme: Theme, base: Style) -> Style {
    if selected { theme.selected() } else { base }
}

fn header(text: String, w: usize, theme: Theme) -> Paragraph<'static> {
    let st = if theme.color {
        Style::default().fg(Color::Black).bg(Color::Gray)
    } else {
        Style::default().add_modifier(Modifier::BOLD)
    };
    Paragraph::new(pad(&text, w)).style(st)
}

fn split_v(r: Rect, top: u16) -> (Rect, Rect) {
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

fn draw_alerts(f: &mut Frame, r: Rect, app: &App, theme: Theme) -> usize {
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
    let fixed = 8 + 1 + 4 + 1 + 5 + 1 + 5 + 1 + agent_w + 1 + rule_w + 1;
    let sum_w = w.saturating_sub(fixed);
    f.render_widget(
        header(
            format!(
                "{} {} {} {} {} {} {}",
                pad("TIME", 8),
                pad("SEV", 4),
                pad("COUNT", 5),
                pad("STATE", 5),
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
                        " {} {} {} {} {}",
                        pad(&count, 5),
                        pad(state, 5),
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

fn draw_sessions(f: &mut Frame, r: Rect, app: &App, theme: Theme) -> usize {
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
    let root_w = w.saturating_sub(16 + 1 + agent_w + 1 + 11 + 1 + 8 + 1 + 7 + 1 + 6 + 1 + 4 + 1);
    f.render_widget(
        header(
            format!(
                "{} {} {} {} {} {} {} {}",
                pad("SESSION", 16),
                pad("AGENT", agent_w),
                pad("START", 11),
                pad("DURATION", 8),
                pad("EVENTS", 7),
                pad("ALERTS", 6),
                pad("LIVE", 4),
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
                Span::raw(format!(
                    " {} {}",
                    pad(if row.live { "yes" } else { "" }, 4),
                    pad(&row.root, root_w)
                )),
            ])
            .style(row_style(i == s.cur.sel, theme, Style::default()))
        })
        .collect();
    f.render_widget(Paragraph::new(lines), rest);
    h
}

fn entry_line(e: &Entry, w: usize, sel: bool, theme: Theme) -> Line<'static> {
    let (tag, st) = match e.kind {
        EntryKind::Alert(s) => (sev_tag(s).to_string(), theme.sev(s)),
        EntryKind::Loss => ("LOSS".to_string(), theme.warn()),
        EntryKind::Event(_) => ("    ".to_string(), Style::default()),
    };
    let mut text = e.text.clone();
    if let EntryKind::Alert(_) = e.kind {
        if e.count > 1 {
            text = format!("×{} {text}", e.count);
        }
        if e.in_loss {
            text = format!("[loss] {text}");
        }
    }
    let body = pad(&text, w.saturating_sub(8 + 1 + 4 + 1));
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

fn draw_detail(f: &mut Frame, r: Rect, e: Option<&Entry>, theme: Theme) {
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

fn draw_timeline(f: &mut Frame, r: Rect, app: &App, theme: Theme) -> usize {
    let t = &app.timeline;
    let w = r.width as usize;
    let Some(id) = &t.session else {
        f.render_widget(
            Paragraph::new("no session open: pick one in Sessions (2) or an alert (1), Enter")
                .style(theme.dim()),
            r,
        );
        return r.height as usize;
    };
    let alerts = t
        .entries
        .iter()
        .filter(|e| matches!(e.kind, EntryKind::Alert(_)))
        .count();
    let losses = t
        .entries
        .iter()
        .filter(|e| e.kind == EntryKind::Loss)
        .count();
    let title = format!(
        " session {} │ {} entries │ {} alerts │ {} loss/gap marks{}",
        crate::text::safe(id),
        t.entries.len(),
        alerts,
        losses,
        if t.loading { " │ loading…" } else { "" }
    );
    let (top, rest) = split_v(r, 1);
    f.render_widget(
        Paragraph::new(fit(&title, w)).style(theme.fg(Color::Cyan)),
        top,
    );
    // Process tree: left column when wide, top band otherwise.
    let wide = w >= 120;
    let (tree_r, main_r) = if wide {
        let c = Layout::default()
            .direction(Direction::Horizontal)
            .constraints([Constraint::Length(40), Constraint::Min(20)])
            .split(rest);
        (c[0], c[1])
    } else {
        let th = (t.procs.len() as u16 + 2)
            .min((rest.height / 3).max(3))
            .min(rest.height);
        split_v(rest, th)
    };
    let tw = tree_r.width.saturating_sub(2) as usize;
    let tree: Vec<Line> = t
        .procs
        .iter()
        .take(tree_r.height.saturating_sub(2) as usize)
        .map(|p| {
            let indent = "  ".repeat(p.depth.min(12));
            let mark = if p.depth == 0 { "" } else { "└ " };
            Line::from(fit(&format!("{indent}{mark}{}", p.text), tw))
        })
        .collect();
    f.render_widget(
        Paragraph::new(tree).block(
            Block::default()
                .borders(Borders::ALL)
                .title(" process tree "),
        ),
        tree_r,
    );
    // Timeline, with the selected entry's detail below when there is room.
    let detail_h = if main_r.height >= 30 { 14 } else { 0 };
    let (list_r, detail_r) = split_v(main_r, main_r.height - detail_h);
    let h = list_r.height as usize;
    let mw = list_r.width as usize;
    let lines: Vec<Line> = window(&t.cur, t.entries.len(), h)
        .map(|i| entry_line(&t.entries[i], mw, i == t.cur.sel, theme))
        .collect();
    if lines.is_empty() {
        f.render_widget(Paragraph::new("no events").style(theme.dim()), list_r);
    } else {
        f.render_widget(Paragraph::new(lines), list_r);
    }
    if detail_h > 0 {
        draw_detail(f, detail_r, t.selected(), theme);
    }
    h
}

fn bar(n: u64, max: u64, w: usize) -> String {
    if max == 0 || w == 0 {
        return String::new();
    }
    let cells = (n as f64 / max as f64 * w as f64).round() as usize;
    "█".repeat(cells.max((n > 0) as usize))
}

fn agg_lines(a: &Aggregation, w: usize, theme: Theme) -> Vec<Line<'static>> {
    match a {
        Aggregation::Count(n) => vec![Line::from(format!("count: {n}"))],
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

fn draw_search(f: &mut Frame, r: Rect, app: &App, theme: Theme) -> usize {
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
        Some(Aggregation::Count(_)) => 3,
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

fn draw_rules(f: &mut Frame, r: Rect, app: &App, theme: Theme) -> usize {
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

fn draw_health(f: &mut Frame, r: Rect, app: &App, theme: Theme) -> usize {
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
