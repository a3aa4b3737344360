//! The TUI's response keys, intent nesting and gap rows, through the model and drawn with
//! ratatui's `TestBackend`: a tool call is the parent row of the kernel events it caused (on
//! load and live), the Sessions view counts tool calls, a kill or freeze asks for confirmation
//! naming the session, its agent and its processes, sends the `respond` request with the note
//! only on Enter, and the row shows the result; loss and restart gaps are drawn as bands.

mod common;

use agent_api::{Answer, Responded, SessionAction, SessionDetail};
use agent_model::{BStr, Event, Intent, Kind};
use common::*;
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use tui::backend::{Purpose, Update};
use tui::state::{App, Prompt, View};
use tui::view::{Theme, draw};

fn screen(app: &mut App, w: u16, h: u16) -> String {
    let mut t = Terminal::new(TestBackend::new(w, h)).unwrap();
    t.draw(|f| app.page = draw(f, app, Theme { color: false }))
        .unwrap();
    let b = t.backend().buffer().clone();
    b.content
        .chunks(w as usize)
        .map(|row| row.iter().map(|c| c.symbol()).collect::<String>())
        .collect::<Vec<_>>()
        .join("\n")
}

fn key(app: &mut App, code: KeyCode) {
    app.on_key(KeyEvent::new(code, KeyModifiers::NONE));
}

fn ctrl(app: &mut App, c: char) {
    app.on_key(KeyEvent::new(KeyCode::Char(c), KeyModifiers::CONTROL));
}

fn typed(app: &mut App, s: &str) {
    for c in s.chars() {
        key(app, KeyCode::Char(c));
    }
}

/// An agent event of the session, with its intent.
fn agent_ev(i: usize, kind: Kind, call: Option<&str>, tool: &str, input: &str) -> Event {
    let mut e = event(i, kind, "");
    e.intent = Some(Intent {
        hook: Some("PreToolUse".into()),
        tool_name: Some(tool.into()),
        tool_call_id: call.map(str::to_owned),
        tool_input: Some(BStr::from(input)),
        prompt: (kind == Kind::AgentPrompt).then(|| BStr::from("fix the build")),
        tool_success: (kind == Kind::AgentToolResult).then_some(true),
        ..Default::default()
    });
    e
}

/// A kernel event caused by tool call `call` (or by none).
fn caused(i: usize, kind: Kind, path: &str, call: Option<&str>) -> Event {
    let mut e = event(i, kind, path);
    e.intent = call.map(|c| Intent {
        tool_call_id: Some(c.into()),
        tool_name: Some("Bash".into()),
        ..Default::default()
    });
    e
}

fn intent_detail() -> SessionDetail {
    let evs = vec![
        agent_ev(0, Kind::AgentPrompt, None, "", ""),
        agent_ev(1, Kind::AgentToolCall, Some("c1"), "Bash", "cargo build"),
        caused(2, Kind::ProcessExec, "/usr/bin/cargo", Some("c1")),
        // A background job no call explains, between the call's own events.
        caused(3, Kind::FileOpen, "/home/dev/.ssh/id_rsa", None),
        caused(4, Kind::FileOpen, "/home/dev/proj/Cargo.toml", Some("c1")),
        agent_ev(5, Kind::AgentToolResult, Some("c1"), "Bash", ""),
        // Caused by a call the timeline does not hold: stays where its time puts it.
        caused(6, Kind::ProcessExec, "/usr/bin/make", Some("c-gone")),
        event(7, Kind::MonitorLoss, ""),
    ];
    SessionDetail {
        id: SESSION.into(),
        events: evs.into_iter().map(event_hit).collect(),
        alerts: vec![],
        processes: vec![],
        roots: vec![],
    }
}

fn open_intent_timeline() -> App {
    let mut app = loaded_app();
    answer(
        &mut app,
        Purpose::Session { focus: None },
        Answer::Session(Box::new(intent_detail())),
    );
    app.view = View::Timeline;
    app
}

fn order(app: &App) -> Vec<(String, u8)> {
    app.timeline
        .entries
        .iter()
        .map(|e| (e.id.clone(), e.depth))
        .collect()
}

fn ids(v: &[(&str, u8)]) -> Vec<(String, u8)> {
    v.iter().map(|(i, d)| (i.to_string(), *d)).collect()
}

#[test]
fn a_tool_call_is_the_parent_row_of_what_it_caused() {
    let mut app = open_intent_timeline();
    assert_eq!(
        order(&app),
        ids(&[
            ("e-0", 0),
            ("e-1", 0),
            ("e-2", 1),
            ("e-4", 1),
            ("e-5", 1),
            ("e-3", 0),
            ("e-6", 0),
            ("e-7", 0),
        ])
    );
    // Live: a late event of the call joins its children; an unrelated one goes to the end.
    app.timeline.cur.sel = 5; // on e-3
    app.on_update(live_event(caused(
        8,
        Kind::FileOpen,
        "/home/dev/proj/src/main.rs",
        Some("c1"),
    )));
    app.on_update(live_event(caused(9, Kind::NetConnect, "", None)));
    assert_eq!(
        order(&app),
        ids(&[
            ("e-0", 0),
            ("e-1", 0),
            ("e-2", 1),
            ("e-4", 1),
            ("e-5", 1),
            ("e-8", 1),
            ("e-3", 0),
            ("e-6", 0),
            ("e-7", 0),
            ("e-9", 0),
        ])
    );
    assert_eq!(
        app.timeline.selected().map(|e| e.id.as_str()),
        Some("e-3"),
        "the selection stays on its entry"
    );
    let s = screen(&mut app, 160, 48);
    let line = |needle: &str| {
        s.lines()
            .find(|l| l.contains(needle))
            .unwrap_or_else(|| panic!("no `{needle}` on screen:\n{s}"))
            .to_owned()
    };
    assert!(line("Bash: cargo build").contains("agent.tool_call"), "{s}");
    assert!(
        line("prompt: fix the build").contains("agent.prompt"),
        "{s}"
    );
    for child in ["/usr/bin/cargo -q", "Cargo.toml", "Bash ok", "src/main.rs"] {
        assert!(line(child).contains("  └ "), "`{child}` not nested:\n{s}");
    }
    for top in ["id_rsa", "/usr/bin/make -q"] {
        assert!(!line(top).contains("└"), "`{top}` nested:\n{s}");
    }
    // The loss is a band across the row.
    assert!(
        line("LOSS: 37 file.open records lost").contains("━━━━"),
        "{s}"
    );
    insta::assert_snapshot!("intent_timeline_160x48", s);
}

#[test]
fn the_sessions_view_counts_tool_calls_from_events_and_timelines() {
    let mut app = loaded_app();
    app.on_update(live_event(agent_ev(
        1,
        Kind::AgentToolCall,
        Some("c1"),
        "Bash",
        "ls",
    )));
    app.on_update(live_event(agent_ev(
        2,
        Kind::AgentToolCall,
        Some("c2"),
        "Read",
        "x",
    )));
    app.on_update(live_event(agent_ev(
        3,
        Kind::AgentToolResult,
        Some("c2"),
        "Read",
        "",
    )));
    let row = |app: &App| {
        app.sessions
            .rows
            .iter()
            .find(|r| r.id == SESSION)
            .unwrap()
            .intent
            .clone()
    };
    assert_eq!(row(&app).tool_calls, 2);
    // A fresh sessions answer keeps what the events said.
    answer(&mut app, Purpose::Sessions, Answer::Sessions(sessions()));
    assert_eq!(row(&app).tool_calls, 2);
    // The whole timeline replaces the live count: it holds one call.
    answer(
        &mut app,
        Purpose::Session { focus: None },
        Answer::Session(Box::new(intent_detail())),
    );
    assert_eq!(row(&app).tool_calls, 1);
    app.view = View::Sessions;
    let s = screen(&mut app, 160, 48);
    assert!(s.contains("MODEL") && s.contains("CALLS"), "{s}");
    let l = s.lines().find(|l| l.contains(SESSION)).unwrap();
    assert!(l.contains(" 1 "), "{l}");
}

fn responded(app: &mut App, session: &str, action: SessionAction, result: Result<u64, &str>) {
    app.on_update(Update::Answer {
        purpose: Purpose::Respond {
            session: session.into(),
            action,
        },
        result: result
            .map(|n| {
                Answer::Responded(Responded {
                    session: session.into(),
                    action: format!("{}_session", action.name()),
                    mode: "enforce".into(),
                    result: "done".into(),
                    processes: n,
                    event: "e-99".into(),
                })
            })
            .map_err(str::to_owned),
    });
}

#[test]
fn kill_and_freeze_ask_first_name_the_session_and_send_the_note_only_on_enter() {
    let mut app = loaded_app();
    key(&mut app, KeyCode::Char('2'));
    app.outbox.clear();
    // Ctrl-K: a confirmation naming what will happen to which session; Esc sends nothing.
    ctrl(&mut app, 'k');
    let Some((Prompt::Respond(c), _)) = &app.prompt else {
        panic!("no confirmation: {:?}", app.prompt);
    };
    assert_eq!(
        (c.session.as_str(), c.action, c.agent.as_str()),
        (SESSION, SessionAction::Kill, "claude")
    );
    let s = screen(&mut app, 80, 24);
    for want in [
        "kill session?",
        "SIGKILL every process",
        SESSION,
        "claude",
        "processes 0 live",
        "Enter confirms",
    ] {
        assert!(s.contains(want), "`{want}` missing:\n{s}");
    }
    insta::assert_snapshot!("confirm_kill_80x24", s);
    typed(&mut app, "not now");
    key(&mut app, KeyCode::Esc);
    assert!(app.prompt.is_none());
    assert!(app.outbox.is_empty(), "Esc sent {:?}", app.outbox);
    assert!(app.message.as_deref().unwrap().contains("cancelled"));
    // `j` in the prompt is text, not movement; Enter sends the request with the note.
    key(&mut app, KeyCode::Char('f'));
    typed(&mut app, "just looking");
    key(&mut app, KeyCode::Enter);
    assert_eq!(app.outbox.len(), 1);
    assert_eq!(
        app.outbox[0].body,
        agent_api::Request::Respond {
            session: SESSION.into(),
            action: SessionAction::Freeze,
            note: "just looking".into(),
        }
    );
    responded(&mut app, SESSION, SessionAction::Freeze, Ok(3));
    let row = |app: &App| {
        app.sessions
            .rows
            .iter()
            .find(|r| r.id == SESSION)
            .unwrap()
            .response
    };
    assert_eq!(row(&app), Some("frozen"));
    let s = screen(&mut app, 160, 48);
    assert!(
        s.lines()
            .any(|l| l.contains(SESSION) && l.contains("frozen")),
        "{s}"
    );
    assert!(s.contains("freeze session `00000000c0ffee01`: done (3 processes)"));
    // The daemon's refusal is shown as it said it, and changes nothing.
    ctrl(&mut app, 'k');
    key(&mut app, KeyCode::Enter);
    responded(
        &mut app,
        SESSION,
        SessionAction::Kill,
        Err("respond is allowed to root only"),
    );
    assert_eq!(row(&app), Some("frozen"));
    assert!(
        app.message
            .as_deref()
            .unwrap()
            .contains("allowed to root only")
    );
    // A thaw clears it; a kill is final.
    responded(&mut app, SESSION, SessionAction::Thaw, Ok(3));
    assert_eq!(row(&app), None);
    responded(&mut app, SESSION, SessionAction::Kill, Ok(3));
    responded(&mut app, SESSION, SessionAction::Thaw, Ok(0));
    assert_eq!(row(&app), Some("killed"));
    // From the Timeline, the open session is the one acted on.
    answer(
        &mut app,
        Purpose::Session { focus: None },
        Answer::Session(Box::new(intent_detail())),
    );
    app.view = View::Timeline;
    key(&mut app, KeyCode::Char('u'));
    assert!(matches!(
        &app.prompt,
        Some((Prompt::Respond(c), _)) if c.session == SESSION && c.action == SessionAction::Thaw
    ));
    // Elsewhere the keys do nothing.
    key(&mut app, KeyCode::Esc);
    app.view = View::Rules;
    ctrl(&mut app, 'k');
    key(&mut app, KeyCode::Char('f'));
    assert!(app.prompt.is_none());
}
