//! The pipeline without root: events in, the built-in default policy, a temp-dir store and
//! JSON-lines files; the alerts and stored records that come out.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use agent_model::{
    AgentRef, BStr, Event, File, Kind, KindField, Process, SessionRef, Severity, Timestamp,
};
use agent_store::{SearchRequest, Store, StoreConfig};
use agent_user::pipeline::{LiveItem, Outputs, Pipeline};
use agent_user::reload::{PolicySource, PolicyState};

const T0: i64 = 1_704_067_200_000_000_000;

fn event(n: i64, kind: Kind, exe: &str, path: Option<&str>) -> Event {
    Event {
        id: format!("test-{n}"),
        time: Timestamp(T0 + n * 1_000_000),
        host: "h".into(),
        kind: KindField(kind),
        session: Some(SessionRef {
            id: "00000000000000aa".into(),
        }),
        agent: Some(AgentRef { name: "t".into() }),
        process: Process {
            pid: 100 + n as u32,
            tid: 100 + n as u32,
            exe: BStr::from(exe),
            ..Default::default()
        },
        file: path.map(|p| File {
            path: BStr::from(p),
            access: Some("read".into()),
            ..Default::default()
        }),
        ..Default::default()
    }
}

#[test]
fn events_go_through_the_default_policy_into_the_store_and_the_files() {
    let dir = tempfile::tempdir().unwrap();
    let (store, report) = Store::open(&dir.path().join("store"), StoreConfig::default()).unwrap();
    assert!(report.is_clean());
    let store = Arc::new(store);
    let source = PolicySource::Embedded;
    let policy = source.compile().unwrap();
    let state = PolicyState::new(source, &policy);
    let (live, mut rx) = tokio::sync::broadcast::channel(1024);
    let events_path = dir.path().join("events.jsonl");
    let alerts_path = dir.path().join("alerts.jsonl");
    let mut p = Pipeline::new(
        "h".into(),
        Outputs {
            events_jsonl: Some(&events_path),
            alerts_jsonl: Some(&alerts_path),
        },
        live,
        Arc::new(policy),
        state,
        Arc::new(AtomicBool::new(false)),
        Some(store.clone()),
    )
    .unwrap();

    p.event(event(1, Kind::ProcessExec, "/usr/bin/cat", None));
    p.event(event(
        2,
        Kind::FileOpen,
        "/usr/bin/cat",
        Some("/tmp/notes.txt"),
    ));
    p.event(event(
        3,
        Kind::FileOpen,
        "/usr/bin/cat",
        Some("/home/u/.ssh/id_rsa"),
    ));
    p.flush();
    // JSON lines wait for the store's fsync: none is written before it.
    if std::fs::read_to_string(&events_path)
        .unwrap_or_default()
        .lines()
        .count()
        > 0
    {
        assert!(
            store.durable_seq() > 0,
            "a JSON line was written before its record was durable"
        );
    }
    p.sync();
    p.flush();

    // Live: every event, and the alert right after the event that raised it.
    let mut live_items = Vec::new();
    while let Ok(item) = rx.try_recv() {
        live_items.push(match &*item {
            LiveItem::Event(e) => format!("event {}", e.id),
            LiveItem::Alert { alert } => format!("alert {}", alert.rule),
        });
    }
    assert_eq!(
        live_items,
        vec![
            "event test-1",
            "event test-2",
            "event test-3",
            "alert cred.ssh_private_key"
        ]
    );

    // JSON lines: three events, one alert.
    let events = std::fs::read_to_string(&events_path).unwrap();
    assert_eq!(events.lines().count(), 3);
    assert!(
        events
            .lines()
            .nth(2)
            .unwrap()
            .contains("/home/u/.ssh/id_rsa")
    );
    let alerts = std::fs::read_to_string(&alerts_path).unwrap();
    assert_eq!(alerts.lines().count(), 1);
    assert!(alerts.contains("cred.ssh_private_key"));

    // The store: the three events and the alert, searchable.
    store.commit().unwrap();
    let r = store.reader().unwrap();
    let hits = r.alerts(None, Severity::Info, 10).unwrap();
    assert_eq!(hits.len(), 1);
    let agent_store::Item::Alert(a) = &hits[0].hit.item else {
        panic!("not an alert: {:?}", hits[0].hit.item);
    };
    assert_eq!(a.rule, "cred.ssh_private_key");
    assert_eq!(a.severity, Severity::High);
    assert_eq!(
        a.session.as_ref().map(|s| s.id.as_str()),
        Some("00000000000000aa")
    );
    let found = r
        .search(&SearchRequest {
            query: "kind:file.open".into(),
            since: None,
            until: None,
            limit: 10,
            offset: 0,
        })
        .unwrap();
    assert_eq!(found.total, 2);

    // Status shows the alert count and the policy.
    let mut st = agent_api::Status::default();
    p.status_into(&mut st);
    assert_eq!(st.policy.as_ref().map(|p| p.alerts), Some(1));
    assert_eq!(st.output_errors, 0);
}
