//! The socket backend against a tiny in-test unix-socket server speaking the daemon's protocol,
//! and the worker's reconnect behaviour when that server goes away and comes back.

use std::io::{BufRead as _, BufReader, Write as _};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use agent_api::{Aggregation, Answer, Reply, StreamItem, TriageState};
use agent_model::{Alert, Event, Kind, KindField};
use serde_json::{Value, json};
use tui::backend::{Backend, Purpose, Request, SocketBackend, Update, Worker};

/// A fake daemon: answers `status`, `search` (echoing the query as the aggregation's field),
/// `alerts` and slowly `triage`, and for `subscribe` sends `{"ok":true}`, one event, one alert
/// and a lag notice, then keeps the stream open until `stop`.
fn serve(listener: UnixListener, stop: Arc<AtomicBool>) {
    listener.set_nonblocking(true).unwrap();
    while !stop.load(Ordering::SeqCst) {
        match listener.accept() {
            Ok((s, _)) => {
                let stop = stop.clone();
                thread::spawn(move || connection(s, stop));
            }
            Err(_) => thread::sleep(Duration::from_millis(5)),
        }
    }
}

fn connection(s: UnixStream, stop: Arc<AtomicBool>) {
    s.set_nonblocking(false).unwrap();
    let mut w = s.try_clone().unwrap();
    let mut lines = BufReader::new(s).lines();
    while let Some(Ok(line)) = lines.next() {
        let req: Value = match serde_json::from_str(&line) {
            Ok(v) => v,
            Err(e) => {
                writeln!(
                    w,
                    "{}",
                    json!({"ok": false, "error": format!("bad request: {e}")})
                )
                .unwrap();
                continue;
            }
        };
        let op = req.get("op").and_then(Value::as_str);
        match op {
            Some("status") => {
                writeln!(w, "{}", json!({"ok": true, "events": {"file.open": 3}})).unwrap()
            }
            Some("search") => writeln!(
                w,
                "{}",
                json!({"ok": true, "total": 0, "hits": [], "aggregation":
                    {"type": "terms", "field": req.get("query"), "buckets": [], "other": 0}})
            )
            .unwrap(),
            Some("alerts") => {
                let a = json!({"id": "a-1", "time": "2026-11-25T10:00:00Z", "host": "h",
                    "rule": "secret-read", "severity": "high", "summary": "read id_rsa", "count": 2,
                    "first_time": "2026-11-25T10:00:00Z", "last_time": "2026-11-25T10:00:00Z"});
                writeln!(
                    w,
                    "{}",
                    json!({"ok": true, "hits": [{"alert": a, "triage": {"state": "open"}}]})
                )
                .unwrap()
            }
            Some("triage") => {
                thread::sleep(Duration::from_millis(300));
                writeln!(w, "{}", json!({"ok": true})).unwrap();
            }
            Some("subscribe") => {
                writeln!(w, "{}", json!({"ok": true})).unwrap();
                let e = Event {
                    id: "e-1".into(),
                    kind: KindField(Kind::FileOpen),
                    ..Default::default()
                };
                writeln!(w, "{}", e.to_json()).unwrap();
                writeln!(w).unwrap();
                let a = Alert {
                    id: "a-1".into(),
                    ..Default::default()
                };
                writeln!(w, "{}", json!({"alert": a})).unwrap();
                writeln!(w, "{}", json!({"lagged": 5})).unwrap();
                while !stop.load(Ordering::SeqCst) {
                    thread::sleep(Duration::from_millis(5));
                }
                return;
            }
            _ => writeln!(w, "{}", json!({"ok": false, "error": "unknown op"})).unwrap(),
        }
    }
}

fn start(path: &Path) -> Arc<AtomicBool> {
    let _ = std::fs::remove_file(path);
    let l = UnixListener::bind(path).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let s = stop.clone();
    thread::spawn(move || serve(l, s));
    stop
}

#[test]
fn requests_get_one_answer_each() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("agentwatch.sock");
    let stop = start(&path);
    let mut b = SocketBackend::connect(&path).unwrap();
    let v = b.request(&agent_api::Request::Status).unwrap();
    assert!(matches!(v, Reply::Ok(Answer::Status(st)) if st.events["file.open"] == 3));
    let v = b
        .request(&agent_api::Request::Search {
            query: "file.path:\"a\\nb\"".into(),
            since: None,
            until: None,
            limit: 10,
            offset: 0,
        })
        .unwrap();
    let Reply::Ok(Answer::Search(r)) = v else {
        panic!("{v:?}")
    };
    assert!(
        matches!(r.aggregation, Some(Aggregation::Terms { field, .. }) if field == "file.path:\"a\\nb\""),
        "query survives JSON framing"
    );
    let v = b.request(&agent_api::Request::Rules).unwrap();
    assert!(matches!(v, Reply::Err(_)), "{v:?}");
    stop.store(true, Ordering::SeqCst);
}

/// Run `f` on a thread and fail (instead of hanging) if it takes more than 10 s.
fn within_10s(f: impl FnOnce() + Send + 'static) {
    let (tx, rx) = std::sync::mpsc::channel();
    let h = thread::spawn(move || {
        f();
        let _ = tx.send(());
    });
    match rx.recv_timeout(Duration::from_secs(10)) {
        Ok(()) => h.join().unwrap(),
        Err(_) if h.is_finished() => h.join().unwrap(), // propagate the panic
        Err(_) => panic!("timed out"),
    }
}

/// Regression: the stream must keep the lines the daemon sent right after `{"ok":true}`, which
/// may already sit in the request reader's buffer.
#[test]
fn subscribe_streams_objects_until_the_daemon_closes() {
    for _ in 0..50 {
        within_10s(subscribe_once);
    }
}

fn subscribe_once() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("agentwatch.sock");
    let stop = start(&path);
    let mut b = SocketBackend::connect(&path).unwrap();
    let mut sub = b
        .subscribe(&agent_api::Request::subscribe(None, true, true))
        .unwrap()
        .expect("socket backend streams");
    assert!(matches!(sub.next().unwrap().unwrap(), Ok(StreamItem::Event(e)) if e.id == "e-1"));
    assert!(
        matches!(sub.next().unwrap().unwrap(), Ok(StreamItem::Alert(a)) if a.id == "a-1"),
        "blank lines are skipped"
    );
    assert!(matches!(
        sub.next().unwrap().unwrap(),
        Ok(StreamItem::Lagged(5))
    ));
    stop.store(true, Ordering::SeqCst);
    drop(b);
    assert!(sub.next().unwrap().is_none(), "end of stream");
}

#[test]
fn connecting_to_a_missing_socket_names_it() {
    let err = SocketBackend::connect(Path::new("/nonexistent/agentwatch.sock"))
        .err()
        .unwrap();
    assert!(
        err.to_string().contains("`/nonexistent/agentwatch.sock`"),
        "{err}"
    );
}

fn wait_for(w: &Worker, what: &str, mut f: impl FnMut(&Update) -> bool) -> Vec<Update> {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut seen = Vec::new();
    while Instant::now() < deadline {
        if let Ok(u) = w.updates.recv_timeout(Duration::from_millis(50)) {
            let done = f(&u);
            seen.push(u);
            if done {
                return seen;
            }
        }
    }
    panic!("timed out waiting for {what}; saw {seen:?}");
}

#[test]
fn worker_reconnects_when_the_daemon_comes_back() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("agentwatch.sock");
    let w = Worker::start(SocketBackend::factory(path.clone()));
    // No daemon yet: a banner-worthy disconnect, and requests fail without blocking.
    wait_for(&w, "disconnect", |u| {
        matches!(u, Update::Disconnected { .. })
    });
    assert!(w.send(Request {
        purpose: Purpose::Status,
        body: agent_api::Request::Status
    }));
    wait_for(
        &w,
        "failed status",
        |u| matches!(u, Update::Answer { purpose: Purpose::Status, result: Err(e) } if e.contains("cannot connect")),
    );
    // The daemon starts: the live thread connects and streams.
    let stop = start(&path);
    wait_for(&w, "connected", |u| matches!(u, Update::Connected));
    wait_for(&w, "live lag", |u| {
        matches!(u, Update::Live(Ok(StreamItem::Lagged(5))))
    });
    // Requests work again (the request thread reconnects on its own).
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        w.send(Request {
            purpose: Purpose::Status,
            body: agent_api::Request::Status,
        });
        let us = wait_for(&w, "status answer", |u| matches!(u, Update::Answer { .. }));
        if us
            .iter()
            .any(|u| matches!(u, Update::Answer { result: Ok(_), .. }))
        {
            break;
        }
        assert!(Instant::now() < deadline, "requests never recovered");
        thread::sleep(Duration::from_millis(100));
    }
    // The daemon goes away: the stream ends and the worker says so.
    stop.store(true, Ordering::SeqCst);
    wait_for(&w, "disconnect after stop", |u| {
        matches!(u, Update::Disconnected { .. })
    });
    // And comes back.
    let _stop = start(&path);
    wait_for(&w, "reconnected", |u| matches!(u, Update::Connected));
}

#[test]
fn a_slow_daemon_never_blocks_the_caller() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("agentwatch.sock");
    let stop = start(&path);
    let w = Worker::start(SocketBackend::factory(path));
    let t = Instant::now();
    let slow = || Request {
        purpose: Purpose::Triage,
        body: agent_api::Request::triage("a-1", TriageState::Resolved, ""),
    };
    for _ in 0..10 {
        w.send(slow());
    }
    assert!(
        t.elapsed() < Duration::from_millis(100),
        "send is non-blocking"
    );
    // The queue is bounded: flooding it reports drops instead of blocking.
    let mut refused = 0;
    for _ in 0..(tui::backend::REQUEST_QUEUE * 2) {
        if !w.send(slow()) {
            refused += 1;
        }
    }
    assert!(refused > 0);
    assert!(t.elapsed() < Duration::from_millis(200));
    stop.store(true, Ordering::SeqCst);
}

#[test]
fn the_worker_parses_alert_lists_off_the_ui_thread() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("agentwatch.sock");
    let stop = start(&path);
    let w = Worker::start(SocketBackend::factory(path));
    w.send(Request {
        purpose: Purpose::Alerts,
        body: agent_api::Request::Alerts {
            since: Some("24h".into()),
            severity: None,
            limit: 100,
        },
    });
    let seen = wait_for(&w, "alert rows", |u| matches!(u, Update::AlertRows(_)));
    match seen.last() {
        Some(Update::AlertRows(rows)) => {
            assert_eq!(rows.len(), 1);
            assert_eq!(rows[0].alert.count, 2);
        }
        u => panic!("{u:?}"),
    }
    stop.store(true, Ordering::SeqCst);
}
