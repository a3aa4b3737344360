//! State/update tests: keys, filters, selection and the requests each view produces.

mod common;

use agent_api::{AlertList, Answer, SearchResults};
use agent_model::{Kind, Severity};
use common::*;
use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use serde_json::json;
use tui::backend::{Purpose, Request, Update};
use tui::state::{App, Conn, EntryKind, Prompt, TriageState, View};

fn key(app: &mut App, c: KeyCode) {
    app.on_key(KeyEvent::new(c, KeyModifiers::NONE));
}

/// A request as it goes on the wire.
fn wire(r: &Request) -> serde_json::Value {
    serde_json::to_value(&r.body).unwrap()
}

fn typed(app: &mut App, s: &str) {
    for c in s.chars() {
        key(app, KeyCode::Char(c));
    }
}

#[test]
fn start_asks_for_status_rules_alerts_and_sessions() {
    let app = App::new(ts(0));
    let ops: Vec<&str> = app.outbox.iter().map(|r| r.body.op()).collect();
    assert_eq!(ops, ["status", "rules", "alerts", "sessions"]);
}

#[test]
fn alerts_are_newest_first_with_counts_per_severity() {
    let app = loaded_app();
    assert_eq!(app.alerts.len(), 6);
    assert_eq!(app.alerts.row(0).unwrap().alert.id, "a-6");
    assert_eq!(app.alerts.row(5).unwrap().alert.id, "a-1");
    assert_eq!(app.alerts.counts[Severity::High as usize], 2);
    assert_eq!(app.alerts.counts[Severity::Critical as usize], 1);
    assert_eq!(
        app.alerts.row(3).unwrap().triage,
        TriageState::Acknowledged,
        "triage from the hit is kept"
    );
}

#[test]
fn navigation_keys_move_the_selection_within_bounds() {
    let mut app = loaded_app();
    key(&mut app, KeyCode::Char('j'));
    key(&mut app, KeyCode::Down);
    assert_eq!(app.alerts.cur.sel, 2);
    key(&mut app, KeyCode::Char('k'));
    assert_eq!(app.alerts.cur.sel, 1);
    key(&mut app, KeyCode::Char('G'));
    assert_eq!(app.alerts.cur.sel, 5);
    key(&mut app, KeyCode::Char('j'));
    assert_eq!(app.alerts.cur.sel, 5, "does not run past the end");
    key(&mut app, KeyCode::Char('g'));
    assert_eq!(app.alerts.cur.sel, 0);
    app.page = 4;
    key(&mut app, KeyCode::PageDown);
    assert_eq!(app.alerts.cur.sel, 4);
    key(&mut app, KeyCode::PageUp);
    key(&mut app, KeyCode::PageUp);
    assert_eq!(app.alerts.cur.sel, 0);
}

#[test]
fn filter_as_you_type_then_escape_clears_it() {
    let mut app = loaded_app();
    key(&mut app, KeyCode::Char('/'));
    assert!(matches!(app.prompt, Some((Prompt::Filter, _))));
    typed(&mut app, "secret-read");
    assert_eq!(app.alerts.len(), 2, "filter applies while typing");
    typed(&mut app, " aws");
    assert_eq!(app.alerts.len(), 1);
    assert_eq!(app.alerts.row(0).unwrap().alert.id, "a-6");
    key(&mut app, KeyCode::Backspace);
    key(&mut app, KeyCode::Backspace);
    key(&mut app, KeyCode::Backspace);
    assert_eq!(app.alerts.len(), 2);
    key(&mut app, KeyCode::Enter);
    assert!(app.prompt.is_none());
    assert_eq!(app.alerts.len(), 2, "Enter keeps the filter");
    key(&mut app, KeyCode::Char('q'));
    assert!(app.quit, "q quits once the prompt is closed");
    app.quit = false;
    key(&mut app, KeyCode::Esc);
    assert_eq!(app.alerts.len(), 6, "Esc clears the filter");
}

#[test]
fn filter_matches_severity_and_agent() {
    let mut app = loaded_app();
    app.alerts.set_filter("critical");
    assert_eq!(app.alerts.len(), 1);
    app.alerts.set_filter("CLAUDE");
    assert_eq!(app.alerts.len(), 6);
    app.alerts.set_filter("nothing-like-this");
    assert!(app.alerts.is_empty());
}

#[test]
fn live_alerts_go_on_top_and_keep_a_scrolled_selection() {
    let mut app = loaded_app();
    key(&mut app, KeyCode::Char('j'));
    key(&mut app, KeyCode::Char('j'));
    let before = app.alerts.selected().unwrap().alert.id.clone();
    let a = alert(
        7,
        Severity::Critical,
        "secret-send",
        "sent id_rsa to 203.0.113.7",
    );
    app.on_update(live_alert(a));
    assert_eq!(app.alerts.row(0).unwrap().alert.id, "a-7");
    assert_eq!(app.alerts.selected().unwrap().alert.id, before);
    assert_eq!(app.alerts.counts[Severity::Critical as usize], 2);
}

#[test]
fn folded_duplicates_update_in_place_and_keep_triage() {
    let mut app = loaded_app();
    let mut a = medium_alert();
    a.count = 9;
    app.on_update(live_alert(a));
    assert_eq!(app.alerts.len(), 6, "no new row for a folded duplicate");
    let row = app
        .alerts
        .rows
        .iter()
        .find(|r| r.alert.id == "a-3")
        .unwrap();
    assert_eq!(row.alert.count, 9);
    assert_eq!(row.triage, TriageState::Acknowledged);
    assert_eq!(app.alerts.counts[Severity::Medium as usize], 1);
}

fn medium_alert() -> agent_model::Alert {
    alerts_list().remove(2)
}

#[test]
fn acknowledge_with_a_note_sends_a_triage_request() {
    let mut app = loaded_app();
    key(&mut app, KeyCode::Char('j')); // a-5
    key(&mut app, KeyCode::Char('a'));
    assert!(matches!(
        app.prompt,
        Some((
            Prompt::Note {
                state: TriageState::Acknowledged,
                ..
            },
            _
        ))
    ));
    typed(&mut app, "known tool");
    key(&mut app, KeyCode::Enter);
    let r = app.outbox.last().unwrap();
    assert_eq!(r.purpose, Purpose::Triage);
    assert_eq!(
        wire(r),
        json!({"op": "triage", "alert_id": "a-5", "state": "acknowledged", "note": "known tool"})
    );
    let row = app.alerts.selected().unwrap();
    assert_eq!(row.triage, TriageState::Acknowledged);
    assert_eq!(row.note, "known tool");
}

#[test]
fn resolve_and_reopen_and_cancel() {
    let mut app = loaded_app();
    key(&mut app, KeyCode::Char('r'));
    key(&mut app, KeyCode::Enter);
    assert_eq!(wire(app.outbox.last().unwrap())["state"], "resolved");
    assert_eq!(wire(app.outbox.last().unwrap())["alert_id"], "a-6");
    key(&mut app, KeyCode::Char('o'));
    key(&mut app, KeyCode::Enter);
    assert_eq!(wire(app.outbox.last().unwrap())["state"], "open");
    let n = app.outbox.len();
    key(&mut app, KeyCode::Char('a'));
    typed(&mut app, "oops");
    key(&mut app, KeyCode::Esc);
    assert_eq!(
        app.outbox.len(),
        n,
        "Esc cancels the note without a request"
    );
}

#[test]
fn view_switching_by_number_tab_and_command() {
    let mut app = loaded_app();
    key(&mut app, KeyCode::Char('2'));
    assert_eq!(app.view, View::Sessions);
    assert_eq!(app.outbox.last().unwrap().body.op(), "sessions");
    key(&mut app, KeyCode::Tab);
    assert_eq!(app.view, View::Timeline);
    key(&mut app, KeyCode::BackTab);
    key(&mut app, KeyCode::BackTab);
    assert_eq!(app.view, View::Alerts);
    key(&mut app, KeyCode::BackTab);
    assert_eq!(app.view, View::Health);
    key(&mut app, KeyCode::Char(':'));
    typed(&mut app, "ru");
    key(&mut app, KeyCode::Enter);
    assert_eq!(app.view, View::Rules);
    key(&mut app, KeyCode::Char(':'));
    typed(&mut app, "bogus");
    key(&mut app, KeyCode::Enter);
    assert_eq!(app.view, View::Rules);
    assert!(app.message.as_deref().unwrap().contains("unknown command"));
    key(&mut app, KeyCode::Char(':'));
    typed(&mut app, "q");
    key(&mut app, KeyCode::Enter);
    assert!(app.quit);
}

#[test]
fn help_toggles_and_any_key_closes_it() {
    let mut app = loaded_app();
    key(&mut app, KeyCode::Char('?'));
    assert!(app.help);
    key(&mut app, KeyCode::Char('j'));
    assert!(!app.help);
    assert_eq!(app.alerts.cur.sel, 0, "the closing key does nothing else");
    app.on_key(KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL));
    assert!(app.quit);
}

#[test]
fn sessions_sorted_newest_first_live_marked_and_enter_opens_the_timeline() {
    let mut app = loaded_app();
    key(&mut app, KeyCode::Char('2'));
    let s = &app.sessions;
    assert_eq!(s.selected().unwrap().id, SESSION);
    assert!(s.selected().unwrap().live, "live from the status sessions");
    assert!(!s.rows[1].live);
    assert_eq!(
        s.agents(),
        vec![("claude".into(), 1, 1), ("codex".into(), 1, 0)]
    );
    key(&mut app, KeyCode::Char('/'));
    typed(&mut app, "codex");
    key(&mut app, KeyCode::Enter);
    assert_eq!(app.sessions.visible.len(), 1);
    key(&mut app, KeyCode::Enter);
    assert_eq!(app.view, View::Timeline);
    let r = app.outbox.last().unwrap();
    assert_eq!(wire(r), json!({"op": "session", "id": "00000000c0ffee00"}));
    assert_eq!(r.purpose, Purpose::Session { focus: None });
}

#[test]
fn enter_on_an_alert_opens_its_session_centred_on_it() {
    let mut app = loaded_app();
    key(&mut app, KeyCode::Char('G')); // a-1, the oldest
    key(&mut app, KeyCode::Enter);
    assert_eq!(app.view, View::Timeline);
    let r = app.outbox.last().unwrap().clone();
    assert_eq!(wire(&r), json!({"op": "session", "id": SESSION}));
    answer(
        &mut app,
        r.purpose,
        Answer::Session(Box::new(session_detail())),
    );
    assert_eq!(app.back, View::Alerts);
    let t = &app.timeline;
    let sel = t.selected().unwrap();
    assert_eq!(sel.id, "a-1");
    // The events just before and after it are its neighbours.
    assert_eq!(t.entries[t.cur.sel - 1].id, "e-1");
    assert_eq!(t.entries[t.cur.sel + 1].id, "e-2");
    assert_eq!(t.procs.len(), 3);
    assert_eq!(t.procs[1].depth, 1);
}

#[test]
fn timeline_orders_events_marks_losses_and_jumps_between_alerts() {
    let mut app = loaded_app();
    answer(
        &mut app,
        Purpose::Session { focus: None },
        Answer::Session(Box::new(session_detail())),
    );
    app.view = View::Timeline;
    let t = &app.timeline;
    assert!(t.entries.windows(2).all(|w| w[0].time <= w[1].time));
    let loss = t
        .entries
        .iter()
        .find(|e| e.kind == EntryKind::Loss)
        .unwrap();
    assert!(
        loss.text.contains("37 file.open records lost"),
        "{}",
        loss.text
    );
    assert_eq!(t.cur.sel, 0);
    key(&mut app, KeyCode::Char('n'));
    assert_eq!(app.timeline.selected().unwrap().id, "a-1");
    key(&mut app, KeyCode::Char('n'));
    assert_eq!(app.timeline.selected().unwrap().id, "a-6");
    key(&mut app, KeyCode::Char('n'));
    assert_eq!(
        app.timeline.selected().unwrap().id,
        "a-6",
        "stays on the last alert"
    );
    key(&mut app, KeyCode::Char('p'));
    assert_eq!(app.timeline.selected().unwrap().id, "a-1");
    // A live event of this session lands in time order.
    let ev = event(6, Kind::FileOpen, "/home/dev/.netrc");
    app.on_update(live_event(ev));
    let pos = app
        .timeline
        .entries
        .iter()
        .position(|e| e.id == "e-6")
        .unwrap();
    assert_eq!(app.timeline.entries[pos + 1].id, "a-6");
    app.back = View::Search;
    key(&mut app, KeyCode::Esc);
    assert_eq!(
        app.view,
        View::Search,
        "Esc goes back where the timeline was opened from"
    );
}

#[test]
fn search_runs_the_query_with_the_time_range_and_shows_aggregations() {
    let mut app = loaded_app();
    key(&mut app, KeyCode::Char('4'));
    key(&mut app, KeyCode::Char('/'));
    typed(&mut app, "kind:file.open | top 3 file.path");
    key(&mut app, KeyCode::Enter);
    let r = app.outbox.last().unwrap();
    assert_eq!(r.purpose, Purpose::Search);
    assert_eq!(wire(r)["query"], "kind:file.open | top 3 file.path");
    assert_eq!(wire(r)["since"], "24h");
    assert!(app.search.pending);
    key(&mut app, KeyCode::Char('t'));
    assert_eq!(wire(app.outbox.last().unwrap())["since"], "7d");
    key(&mut app, KeyCode::Char('t'));
    assert_eq!(
        wire(app.outbox.last().unwrap())["since"],
        serde_json::Value::Null
    );
    let hits = vec![
        serde_json::to_value(event_hit(event(1, Kind::FileOpen, "/home/dev/.ssh/id_rsa"))).unwrap(),
        serde_json::to_value(alert_hit(&alerts_list()[0], "resolved")).unwrap(),
    ];
    let found: SearchResults = parse(json!({"ok": true, "total": 41, "hits": hits, "aggregation":
            {"type": "terms", "field": "file.path", "buckets": [["/home/dev/.ssh/id_rsa", 30], ["/etc/passwd", 11]], "other": 0}}));
    answer(&mut app, Purpose::Search, Answer::Search(found));
    assert!(!app.search.pending);
    assert_eq!(app.search.total, 41);
    assert_eq!(app.search.results.len(), 2);
    let e = &app.search.results[0];
    assert!(
        e.fields
            .iter()
            .any(|(n, v)| n == "file.path" && v == "/home/dev/.ssh/id_rsa")
    );
    assert!(
        e.fields
            .iter()
            .any(|(n, v)| n == "process.pid" && v == "4242")
    );
    assert!(matches!(
        &app.search.aggregation,
        Some(tui::state::Aggregation::Terms { buckets, .. }) if buckets.len() == 2
    ));
    let a = &app.search.results[1];
    assert!(
        a.fields
            .iter()
            .any(|(n, v)| n == "triage.state" && v == "resolved")
    );
    // Enter on a hit opens its session at that hit.
    key(&mut app, KeyCode::Enter);
    assert_eq!(app.view, View::Timeline);
    assert_eq!(
        app.outbox.last().unwrap().purpose,
        Purpose::Session {
            focus: Some("e-1".into())
        }
    );
}

#[test]
fn search_errors_are_shown() {
    let mut app = loaded_app();
    app.on_update(Update::Answer {
        purpose: Purpose::Search,
        result: Answer::read(
            &agent_api::Request::Search {
                query: "(".into(),
                since: None,
                until: None,
                limit: 1,
                offset: 0,
            },
            r#"{"ok": false, "error": "unbalanced `(` at 1:5"}"#,
        )
        .unwrap()
        .into_result()
        .map_err(|e| e.to_string()),
    });
    assert_eq!(app.search.error.as_deref(), Some("unbalanced `(` at 1:5"));
}

#[test]
fn rules_filter_and_reload_error() {
    let mut app = loaded_app();
    key(&mut app, KeyCode::Char('5'));
    assert_eq!(app.rules.rows.len(), 3);
    assert_eq!(app.rules.rows[0].hits, 4);
    assert!(!app.rules.rows[2].enabled);
    key(&mut app, KeyCode::Char('/'));
    typed(&mut app, "shell");
    assert_eq!(app.rules.visible.len(), 1);
    let mut r = rules();
    r.policy.last_error = Some("rules/exec.toml:4:9: unknown key `conditon`".into());
    answer(&mut app, Purpose::Rules, Answer::Rules(r));
    assert_eq!(
        app.rules.last_error.as_deref(),
        Some("rules/exec.toml:4:9: unknown key `conditon`")
    );
}

#[test]
fn health_keeps_a_rate_history_per_kind() {
    let app = loaded_app();
    let (total, rate, hist) = &app.health.kinds["file.open"];
    assert_eq!(*total, 5400);
    assert_eq!(*rate, 60.0);
    assert_eq!(
        hist.iter().copied().collect::<Vec<_>>(),
        [40, 12, 55, 30, 80, 41, 8, 60]
    );
    assert_eq!(app.health.losses["file.open"], 37);
    assert!(
        app.health
            .facts
            .iter()
            .any(|(k, v)| k == "store lag" && v == "2")
    );
    assert!(
        app.health
            .facts
            .iter()
            .any(|(k, v)| k == "index size" && v == "70.0 MiB")
    );
}

#[test]
fn ticks_poll_status_without_piling_up_requests() {
    let mut app = App::new(ts(0));
    app.outbox.clear();
    for _ in 0..8 {
        app.on_tick(ts(1));
    }
    let statuses = app
        .outbox
        .iter()
        .filter(|r| r.purpose == Purpose::Status)
        .count();
    assert_eq!(statuses, 0, "the first status is still unanswered");
    answer(
        &mut app,
        Purpose::Status,
        Answer::Status(Box::new(status(1.0))),
    );
    for _ in 0..4 {
        app.on_tick(ts(2));
    }
    let statuses = app
        .outbox
        .iter()
        .filter(|r| r.purpose == Purpose::Status)
        .count();
    assert_eq!(statuses, 1);
}

#[test]
fn alert_rows_parsed_by_the_worker_replace_the_list() {
    let mut app = loaded_app();
    let hits: Vec<_> = alerts_list()[..2]
        .iter()
        .map(|a| alert_hit(a, "resolved"))
        .collect();
    let rows = tui::state::alert_rows(AlertList { hits });
    app.on_update(Update::AlertRows(rows));
    assert_eq!(app.alerts.len(), 2);
    assert_eq!(app.alerts.row(0).unwrap().triage, TriageState::Resolved);
    assert_eq!(app.alerts.counts.iter().sum::<u64>(), 2);
}

#[test]
fn live_alerts_are_resynced_every_30_seconds() {
    let mut app = loaded_app();
    app.outbox.clear();
    // The one re-fetch right after connecting (see the test below), then none until 30 s.
    for _ in 0..10 {
        app.on_tick(ts(50));
    }
    app.outbox.clear();
    for _ in 10..119 {
        app.on_tick(ts(50));
    }
    assert!(!app.outbox.iter().any(|r| r.purpose == Purpose::Alerts));
    app.on_tick(ts(50));
    assert!(app.outbox.iter().any(|r| r.purpose == Purpose::Alerts));
}

#[test]
fn disconnect_shows_a_banner_and_reconnect_resyncs() {
    let mut app = loaded_app();
    app.on_update(Update::Disconnected {
        error: "daemon closed the live stream\x1b[2J".into(),
        retry: std::time::Duration::from_millis(500),
    });
    match &app.conn {
        Conn::Down { error, retry_ms } => {
            assert_eq!(error, "daemon closed the live stream\\x1b[2J");
            assert_eq!(*retry_ms, 500);
        }
        c => panic!("{c:?}"),
    }
    app.outbox.clear();
    app.on_update(Update::Connected);
    assert_eq!(app.conn, Conn::Live);
    let ops: Vec<&str> = app.outbox.iter().map(|r| r.body.op()).collect();
    assert_eq!(ops, ["status", "rules", "alerts", "sessions"]);
}

#[test]
fn hostile_alert_text_is_escaped_in_the_model() {
    let mut app = loaded_app();
    for (i, s) in hostile_strings().iter().enumerate() {
        let mut a = alert(100 + i, Severity::High, s, s);
        a.agent = Some(agent_model::AgentRef { name: s.clone() });
        app.on_update(live_alert(a));
    }
    for r in &app.alerts.rows {
        for s in [&r.summary, &r.rule, &r.agent, &r.session] {
            assert!(!s.chars().any(tui::text::is_dangerous), "{s:?}");
        }
    }
}

#[test]
fn lagged_and_malformed_live_objects_are_counted() {
    let mut app = loaded_app();
    app.on_update(live(json!({"lagged": 12})));
    app.on_update(live(json!({"alert": {"id": 3}})));
    app.on_update(live(json!({"what": "no"})));
    assert_eq!(app.lagged, 12);
    assert_eq!(app.bad_objects, 2);
    assert_eq!(app.alerts.len(), 6);
}

/// Regression: alerts raised just before the TUI connected were not indexed yet when the first
/// list came back, and did not show until the 30 s resync. After connecting, the list is fetched
/// again once the store's commit cadence has passed.
#[test]
fn alerts_are_fetched_again_shortly_after_connecting() {
    let mut app = App::new(ts(0));
    app.on_update(tui::backend::Update::Connected);
    app.outbox.clear();
    let mut asked = false;
    for i in 0..8 {
        app.on_tick(ts(i));
        if app.outbox.drain(..).any(|r| r.body.op() == "alerts") {
            asked = true;
        }
    }
    assert!(asked, "no alerts request within 2 s of connecting");
}

#[test]
fn rules_show_the_time_of_their_last_hit() {
    let mut app = App::new(ts(0));
    app.on_update(Update::Answer {
        purpose: Purpose::Rules,
        result: Ok(Answer::Rules(parse(json!({"ok": true, "policy": {"generation": 1}, "rules": [
            {"id": "cred.ssh_private_key", "severity": "high", "enabled": true, "description": "d",
             "kinds": ["file.open"], "tags": [], "mode": "event", "defined_at": "r.toml:1:1",
             "hits": 3, "last_hit": "2026-11-21T10:11:12.5Z"},
            {"id": "quiet.rule", "severity": "low", "enabled": true, "description": "d",
             "kinds": ["file.open"], "tags": [], "mode": "event", "defined_at": "r.toml:9:1",
             "hits": 0, "last_hit": null}
        ]})))),
    });
    assert_eq!(app.rules.rows[0].last_hit, "10:11:12");
    assert_eq!(app.rules.rows[1].last_hit, "-");
}
