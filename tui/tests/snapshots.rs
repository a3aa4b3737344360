//! Every view drawn with ratatui's `TestBackend` at 80×24 and 160×48, compared with insta
//! snapshots; plus hostile event content proving no raw control character reaches the screen.

mod common;

use agent_api::{Aggregation, Answer, ProcessNode, SearchResults, SessionDetail, SessionList};
use agent_model::{AgentRef, BStr, Kind, Severity};
use common::*;
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use ratatui::buffer::Buffer;
use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use serde_json::json;
use tui::backend::{Purpose, Update};
use tui::state::{App, View};
use tui::view::{Theme, draw};

const SIZES: [(u16, u16); 2] = [(80, 24), (160, 48)];

fn render(app: &mut App, w: u16, h: u16, theme: Theme) -> Buffer {
    let mut t = Terminal::new(TestBackend::new(w, h)).unwrap();
    t.draw(|f| app.page = draw(f, app, theme)).unwrap();
    t.backend().buffer().clone()
}

fn text(b: &Buffer) -> String {
    let w = b.area.width as usize;
    let mut out = String::new();
    let mut skip = 0;
    for (i, c) in b.content.iter().enumerate() {
        // The cell after a wide character is its continuation: draw nothing for it.
        if skip > 0 {
            skip -= 1;
        } else {
            out.push_str(c.symbol());
            skip = tui::text::width(c.symbol()).saturating_sub(1);
        }
        if (i + 1) % w == 0 {
            out.push('\n');
            skip = 0;
        }
    }
    out
}

fn no_color() -> Theme {
    Theme { color: false }
}

fn snap(name: &str, app: &mut App) {
    for (w, h) in SIZES {
        let b = render(app, w, h, no_color());
        assert_clean(&b);
        insta::assert_snapshot!(format!("{name}_{w}x{h}"), text(&b));
    }
}

/// No cell holds a control character, bidi control or zero-width format character.
fn assert_clean(b: &Buffer) {
    for (i, c) in b.content.iter().enumerate() {
        let bad: Vec<char> = c
            .symbol()
            .chars()
            .filter(|&ch| tui::text::is_dangerous(ch))
            .collect();
        assert!(
            bad.is_empty(),
            "cell {} ({}, {}) holds {bad:?}",
            i,
            i % b.area.width as usize,
            i / b.area.width as usize
        );
        assert!(
            c.symbol().chars().count() <= 1 + tui::text::MAX_MARKS,
            "{:?}",
            c.symbol()
        );
    }
}

fn key(app: &mut App, c: KeyCode) {
    app.on_key(KeyEvent::new(c, KeyModifiers::NONE));
}

fn with_session(app: &mut App) {
    answer(
        app,
        Purpose::Session {
            focus: Some("a-1".into()),
        },
        Answer::Session(Box::new(session_detail())),
    );
    app.view = View::Timeline;
}

#[test]
fn alerts_view() {
    let mut app = loaded_app();
    snap("alerts", &mut app);
}

#[test]
fn alerts_view_filtered_with_prompt() {
    let mut app = loaded_app();
    key(&mut app, KeyCode::Char('/'));
    for c in "secret-read".chars() {
        key(&mut app, KeyCode::Char(c));
    }
    snap("alerts_filter", &mut app);
}

#[test]
fn alerts_view_note_prompt() {
    let mut app = loaded_app();
    key(&mut app, KeyCode::Char('r'));
    for c in "false positive".chars() {
        key(&mut app, KeyCode::Char(c));
    }
    snap("alerts_note", &mut app);
}

#[test]
fn sessions_view() {
    let mut app = loaded_app();
    key(&mut app, KeyCode::Char('2'));
    snap("sessions", &mut app);
}

#[test]
fn timeline_view() {
    let mut app = loaded_app();
    with_session(&mut app);
    snap("timeline", &mut app);
}

#[test]
fn timeline_view_empty() {
    let mut app = loaded_app();
    key(&mut app, KeyCode::Char('3'));
    snap("timeline_empty", &mut app);
}

fn searched(app: &mut App, agg: Aggregation) {
    key(app, KeyCode::Char('4'));
    key(app, KeyCode::Char('/'));
    for c in "kind:file.open | top 3 file.path".chars() {
        key(app, KeyCode::Char(c));
    }
    key(app, KeyCode::Enter);
    let hits = vec![
        event_hit(event(1, Kind::FileOpen, "/home/dev/.ssh/id_rsa")),
        event_hit(event(5, Kind::FileOpen, "/home/dev/.aws/credentials")),
        alert_hit(&alerts_list()[0], "resolved"),
    ];
    answer(
        app,
        Purpose::Search,
        Answer::Search(SearchResults {
            total: 41,
            hits,
            aggregation: Some(agg),
        }),
    );
    // Select the alert hit: its detail fields are the TUI's own, so the snapshot does not churn
    // when the event field catalogue grows (event details are checked in tests/state.rs).
    key(app, KeyCode::Char('G'));
}

#[test]
fn search_view_with_bar_chart() {
    let mut app = loaded_app();
    searched(
        &mut app,
        serde_json::from_value(json!({"type": "terms", "field": "file.path", "buckets":
            [["/home/dev/.ssh/id_rsa", 30], ["/etc/passwd", 11], ["/home/dev/.aws/credentials", 4]],
            "other": 2}))
        .unwrap(),
    );
    snap("search", &mut app);
}

#[test]
fn search_view_histogram() {
    let mut app = loaded_app();
    searched(
        &mut app,
        serde_json::from_value(
            json!({"type": "histogram", "interval_ns": 60_000_000_000i64, "buckets":
            [[ts(0), 3], [ts(60), 9], [ts(120), 1]]}),
        )
        .unwrap(),
    );
    snap("search_histogram", &mut app);
}

#[test]
fn rules_view() {
    let mut app = loaded_app();
    key(&mut app, KeyCode::Char('5'));
    snap("rules", &mut app);
    let mut r = rules();
    r.policy.last_error =
        Some("rules/exec.toml:4:9: unknown key `conditon`; did you mean `condition`?".into());
    answer(&mut app, Purpose::Rules, Answer::Rules(r));
    snap("rules_error", &mut app);
}

#[test]
fn health_view() {
    let mut app = loaded_app();
    key(&mut app, KeyCode::Char('6'));
    snap("health", &mut app);
}

#[test]
fn help_overlay() {
    let mut app = loaded_app();
    key(&mut app, KeyCode::Char('?'));
    snap("help", &mut app);
}

#[test]
fn daemon_down_banner() {
    let mut app = loaded_app();
    app.on_update(Update::Disconnected {
        error: "cannot connect to `/var/lib/agentwatch/agentwatch.sock`".into(),
        retry: std::time::Duration::from_secs(2),
    });
    snap("banner", &mut app);
}

/// Hostile strings everywhere an agent can put text: file paths, argv, exe, comm, host, agent
/// name, session id, rule summary; on every view.
#[test]
fn hostile_content_is_escaped_on_every_view() {
    let mut app = loaded_app();
    let hostile = hostile_strings();
    let mut events = Vec::new();
    let mut alerts = Vec::new();
    for (i, s) in hostile.iter().enumerate() {
        let mut e = event(10 + i, Kind::FileOpen, s);
        e.host = s.clone();
        e.process.comm = BStr::from(s.as_str());
        e.process.exe = BStr::from(s.as_str());
        e.process.args = vec![BStr::from(s.as_str()), BStr::from("\x1b[6n")];
        e.process.cmdline = BStr::from(format!("{s} \x1b[6n").as_str());
        e.agent = Some(AgentRef { name: s.clone() });
        events.push(event_hit(e.clone()));
        let mut x = event(30 + i, Kind::ProcessExec, s);
        x.process.cmdline = BStr::from(s.as_str());
        events.push(event_hit(x));
        let mut a = alert(50 + i, Severity::Critical, s, s);
        a.agent = Some(AgentRef { name: s.clone() });
        a.host = s.clone();
        a.tags = vec![s.clone()];
        alerts.push(alert_hit(&a, "open"));
        app.on_update(live_alert(a));
        app.on_update(live_event(e));
    }
    let detail = SessionDetail {
        id: SESSION.into(),
        events: events.clone(),
        alerts: alerts.clone(),
        processes: hostile
            .iter()
            .enumerate()
            .map(|(i, s)| ProcessNode {
                pid: i as u32,
                start: ts(0),
                exe: s.clone(),
                parent_pid: None,
                parent_start: None,
                children: if i + 1 < hostile.len() {
                    vec![i + 1]
                } else {
                    vec![]
                },
            })
            .collect(),
        roots: vec![0],
    };
    answer(
        &mut app,
        Purpose::Session { focus: None },
        Answer::Session(Box::new(detail)),
    );
    let sessions: SessionList = parse(
        json!({"ok": true, "sessions": hostile.iter().map(|s| json!({"id": s, "agent": s,
            "start": ts(0), "end": ts(1), "events": 1, "alerts": 1, "root_exe": s, "root_pid": 1})).collect::<Vec<_>>()}),
    );
    answer(&mut app, Purpose::Sessions, Answer::Sessions(sessions));
    let mut r = rules();
    r.rules[0].description = hostile[1].clone();
    r.rules[0].id = hostile[6].clone();
    r.policy.last_error = Some(hostile[0].clone());
    answer(&mut app, Purpose::Rules, Answer::Rules(r));
    let mut st = status(5.0);
    st.host = hostile[2].clone();
    st.events_per_s.insert(hostile[5].clone(), 3.0);
    answer(&mut app, Purpose::Status, Answer::Status(Box::new(st)));
    app.search.query = hostile[3].clone();
    answer(
        &mut app,
        Purpose::Search,
        Answer::Search(SearchResults {
            total: 2,
            hits: vec![events[0].clone(), alerts[0].clone()],
            aggregation: Some(Aggregation::Terms {
                field: hostile[4].clone(),
                buckets: hostile.iter().map(|s| (s.clone(), 3)).collect(),
                other: 0,
            }),
        }),
    );
    app.on_update(Update::Disconnected {
        error: hostile[7].clone(),
        retry: std::time::Duration::from_secs(1),
    });
    app.message = None;

    let mut seen_escape = false;
    for view in View::ALL {
        app.view = view;
        for (w, h) in SIZES {
            for theme in [no_color(), Theme { color: true }] {
                let b = render(&mut app, w, h, theme);
                assert_clean(&b);
                let t = text(&b);
                seen_escape |= t.contains("\\x1b");
            }
        }
    }
    assert!(seen_escape, "escapes are shown visibly, not dropped");
    // Walk the timeline so the detail pane shows each hostile entry.
    app.view = View::Timeline;
    for _ in 0..app.timeline.entries.len() {
        assert_clean(&render(&mut app, 160, 48, no_color()));
        key(&mut app, KeyCode::Char('j'));
    }
    app.view = View::Alerts;
    let b = render(&mut app, 80, 24, no_color());
    insta::assert_snapshot!("hostile_alerts_80x24", text(&b));
    app.view = View::Timeline;
    app.timeline.cur.sel = app
        .timeline
        .entries
        .iter()
        .position(|e| matches!(e.kind, tui::state::EntryKind::Alert(_)))
        .unwrap();
    let b = render(&mut app, 160, 48, no_color());
    insta::assert_snapshot!("hostile_timeline_160x48", text(&b));
}

#[test]
fn no_color_draws_without_colours() {
    let mut app = loaded_app();
    let b = render(&mut app, 80, 24, no_color());
    assert!(
        b.content
            .iter()
            .all(|c| c.fg == ratatui::style::Color::Reset && c.bg == ratatui::style::Color::Reset)
    );
    let b = render(&mut app, 80, 24, Theme { color: true });
    assert!(
        b.content
            .iter()
            .any(|c| c.fg == ratatui::style::Color::Magenta),
        "critical"
    );
}

#[test]
fn every_view_survives_tiny_and_odd_sizes() {
    let mut app = loaded_app();
    with_session(&mut app);
    for view in View::ALL {
        app.view = view;
        for (w, h) in [(1, 1), (10, 3), (33, 7), (80, 24), (81, 25), (300, 100)] {
            assert_clean(&render(&mut app, w, h, no_color()));
        }
    }
}
