//! The Timeline view: the open session's process tree beside (or above) its entries in time
//! order, and the selected entry's detail when there is room.

use ratatui::Frame;
use ratatui::layout::{Constraint, Direction, Layout, Rect};
use ratatui::style::Color;
use ratatui::text::Line;
use ratatui::widgets::{Block, Borders, Paragraph};

use super::theme::Theme;
use super::widgets::{draw_detail, entry_line, split_v, window};
use crate::state::{App, EntryKind};
use crate::text::fit;

pub(super) fn draw(f: &mut Frame, r: Rect, app: &App, theme: Theme) -> usize {
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
