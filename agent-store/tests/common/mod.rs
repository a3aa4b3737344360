//! Shared helpers of the store tests: event and alert builders.
#![allow(dead_code)]

use std::net::IpAddr;
use std::path::Path;
use std::time::Duration;

use agent_model::{
    AgentRef, Alert, BStr, Event, File, Kind, KindField, Net, Parent, Process, SessionRef,
    Severity, Timestamp,
};
use agent_store::{Reader, SearchRequest, Store, StoreConfig};

/// 2026-11-21T10:00:00Z in ns.
pub const T0: i64 = 1_795_255_200_000_000_000;

pub fn cfg() -> StoreConfig {
    StoreConfig {
        commit_every_events: 10_000,
        commit_every: Duration::from_millis(200),
        sync_every_events: 1000,
        sync_every: Duration::from_millis(20),
        retention_age: None,
        retention_bytes: None,
        segment_bytes: 1 << 20,
        index_memory_bytes: 40 << 20,
        index_threads: 2,
        mark: None,
        backlog_bytes: 64 << 20,
    }
}

pub fn open(dir: &Path) -> (Store, agent_store::OpenReport) {
    Store::open(dir, cfg()).expect("open store")
}

pub fn base(id: &str, kind: Kind, secs: i64) -> Event {
    Event {
        id: id.to_string(),
        time: Timestamp(T0 + secs * 1_000_000_000),
        host: "dev1".into(),
        kind: KindField(kind),
        agent: Some(AgentRef {
            name: "claude".into(),
        }),
        session: Some(SessionRef {
            id: "00000000000000ab".into(),
        }),
        process: Process {
            pid: 4242,
            tid: 4242,
            start: Timestamp(T0 - 60_000_000_000),
            exe: BStr::from("/usr/bin/cat"),
            comm: BStr::from("cat"),
            uid: 1000,
            gid: 1000,
            ..Process::default()
        },
        parent: Some(Parent {
            pid: 4200,
            start: Some(Timestamp(T0 - 120_000_000_000)),
            exe: BStr::from("/usr/bin/bash"),
        }),
        ..Event::default()
    }
}

pub fn open_event(id: &str, secs: i64, path: &str) -> Event {
    let mut e = base(id, Kind::FileOpen, secs);
    e.file = Some(File {
        path: BStr::from(path),
        access: Some("read".into()),
        ..File::default()
    });
    e
}

pub fn exec_event(id: &str, secs: i64, exe: &str, args: &[&str]) -> Event {
    let mut e = base(id, Kind::ProcessExec, secs);
    e.process.exe = BStr::from(exe);
    e.process.comm = BStr::from(exe.rsplit('/').next().unwrap_or(exe));
    e.process.args = args.iter().map(|a| BStr::from(*a)).collect();
    e.process.cmdline = BStr::from(args.join(" "));
    e
}

pub fn connect_event(id: &str, secs: i64, ip: &str, port: u16) -> Event {
    let mut e = base(id, Kind::NetConnect, secs);
    e.process.exe = BStr::from("/usr/bin/curl");
    e.process.comm = BStr::from("curl");
    e.net = Some(Net {
        family: "ipv4".into(),
        protocol: Some("tcp".into()),
        dst_ip: Some(ip.parse::<IpAddr>().unwrap()),
        dst_port: Some(port),
        ..Net::default()
    });
    e
}

pub fn alert(id: &str, secs: i64, rule: &str, sev: Severity, summary: &str) -> Alert {
    let t = Timestamp(T0 + secs * 1_000_000_000);
    Alert {
        id: id.into(),
        time: t,
        host: "dev1".into(),
        rule: rule.into(),
        severity: sev,
        agent: Some(AgentRef {
            name: "claude".into(),
        }),
        session: Some(SessionRef {
            id: "00000000000000ab".into(),
        }),
        summary: BStr::from(summary),
        tags: vec!["T1552.004".into()],
        event_ids: vec!["e1".into()],
        count: 1,
        first_time: t,
        last_time: t,
        in_loss_window: false,
    }
}

/// Ids of every hit of `q`, newest first.
pub fn ids(r: &Reader, q: &str) -> Vec<String> {
    let resp = r
        .search(&SearchRequest {
            query: q.into(),
            limit: 10_000,
            ..SearchRequest::default()
        })
        .unwrap_or_else(|e| panic!("query `{q}` failed: {e}"));
    assert_eq!(resp.total as usize, resp.hits.len(), "total of `{q}`");
    resp.hits
        .iter()
        .map(|h| h.hit.item.id().to_string())
        .collect()
}

/// Sorted ids of `q`.
pub fn sids(r: &Reader, q: &str) -> Vec<String> {
    let mut v = ids(r, q);
    v.sort();
    v
}
