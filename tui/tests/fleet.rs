//! The fleet console's model and view (`tui --fleet`): a HOST column only in fleet mode, the
//! alert list read again every second (so triage made on another console shows here), and a
//! shared triage arriving in that list replacing the row's state.

mod common;

use agent_api::{AlertList, Answer};
use agent_model::Severity;
use common::*;
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use tui::backend::{Purpose, Update};
use tui::state::{App, TriageState};
use tui::view::{Theme, draw};

fn screen(app: &mut App) -> String {
    let mut t = Terminal::new(TestBackend::new(120, 12)).unwrap();
    t.draw(|f| app.page = draw(f, app, Theme { color: false }))
        .unwrap();
    let b = t.backend().buffer().clone();
    b.content
        .chunks(b.area.width as usize)
        .map(|l| l.iter().map(|c| c.symbol()).collect::<String>() + "\n")
        .collect()
}

fn alerts_answer(hits: Vec<agent_api::Hit>) -> Update {
    Update::Answer {
        purpose: Purpose::Alerts,
        result: Ok(Answer::Alerts(AlertList { hits })),
    }
}

#[test]
fn fleet_mode_shows_each_alerts_host_and_only_then() {
    let mut a = alert(1, Severity::High, "ssh-key-read", "read id_rsa");
    a.host = "web-7\u{1b}[2J".into();
    let mut app = App::new(ts(10));
    app.on_update(alerts_answer(vec![alert_hit(&a, "open")]));
    let local = screen(&mut app);
    assert!(!local.contains("HOST"), "{local}");
    app.fleet = true;
    let fleet = screen(&mut app);
    assert!(fleet.contains("HOST"), "{fleet}");
    assert!(fleet.contains("web-7"), "{fleet}");
    assert!(
        !fleet.contains('\u{1b}'),
        "a host name reached the screen raw"
    );
}

#[test]
fn fleet_console_rereads_alerts_every_second_and_shows_anothers_triage() {
    let a = alert(1, Severity::High, "ssh-key-read", "read id_rsa");
    let count_alert_requests = |app: &App| {
        app.outbox
            .iter()
            .filter(|r| r.purpose == Purpose::Alerts)
            .count()
    };
    let mut local = App::new(ts(10));
    let mut fleet = App::new(ts(10));
    fleet.fleet = true;
    local.outbox.clear();
    fleet.outbox.clear();
    local.on_update(Update::Connected);
    fleet.on_update(Update::Connected);
    local.outbox.clear();
    fleet.outbox.clear();
    for _ in 0..4 {
        local.on_tick(ts(10));
        fleet.on_tick(ts(10));
    }
    assert_eq!(count_alert_requests(&fleet), 1, "{:?}", fleet.outbox);
    assert_eq!(count_alert_requests(&local), 0, "{:?}", local.outbox);
    fleet.on_update(alerts_answer(vec![alert_hit(&a, "open")]));
    assert_eq!(fleet.alerts.rows[0].triage, TriageState::Open);
    // Another console acknowledged it: the next read carries the shared triage.
    fleet.on_update(alerts_answer(vec![alert_hit(&a, "acknowledged")]));
    assert_eq!(fleet.alerts.rows[0].triage, TriageState::Acknowledged);
}
