//! Exports: JSON lines (each item exactly as stored) and OCSF.
//!
//! OCSF mapping (schema 1.3), one object per item:
//!
//! | agentwatch `kind` | OCSF class | activity |
//! | --- | --- | --- |
//! | `process.exec` / `process.fork` | Process Activity (1007) | Launch (1) |
//! | `process.exit` | Process Activity (1007) | Terminate (2) |
//! | `file.open` | File System Activity (1001) | Open (14) |
//! | `file.unlink` | File System Activity (1001) | Delete (4) |
//! | `file.rename` | File System Activity (1001) | Rename (5) |
//! | `net.connect` / `net.accept` | Network Activity (4001) | Open (1) |
//! | `net.listen` | Network Activity (4001) | Listen (7) |
//! | `alert` | Detection Finding (2004) | Create (1) |
//! | `monitor.*`, `session.*` | Base Event (0) | Other (99) |
//!
//! Every object carries `raw_data`: the item's JSON byte for byte, so values that are not
//! UTF-8 (shown lossily in the OCSF attributes) survive exactly.

use std::io::{self, Write};

use agent_model::{Alert, BStr, Event, Kind, Severity};
use serde_json::{Map, Value, json};

use crate::schema::to_v6;
use crate::search::ip_text;
use crate::{Hit, Item, StoredHit};

/// Write each hit's stored JSON on its own line.
pub fn write_jsonl(hits: &[StoredHit], w: &mut dyn Write) -> io::Result<()> {
    for h in hits {
        w.write_all(h.json.as_bytes())?;
        w.write_all(b"\n")?;
    }
    Ok(())
}

/// Write each hit as one OCSF JSON object a line.
pub fn write_ocsf(hits: &[StoredHit], w: &mut dyn Write) -> io::Result<()> {
    for h in hits {
        let v = match &h.hit.item {
            Item::Event(e) => ocsf_event(e, &h.json),
            Item::Alert(a) => ocsf_alert(a, &h.hit, &h.json),
        };
        serde_json::to_writer(&mut *w, &v)?;
        w.write_all(b"\n")?;
    }
    Ok(())
}

fn text(b: &BStr) -> Value {
    Value::String(b.to_str_lossy().into_owned())
}

fn ms(t: agent_model::Timestamp) -> i64 {
    t.0.div_euclid(1_000_000)
}

fn metadata(id: &str) -> Value {
    json!({
        "version": "1.3.0",
        "uid": id,
        "product": { "name": "agentwatch", "vendor_name": "agentwatch" },
    })
}

fn file_obj(path: &BStr) -> Value {
    let s = path.to_str_lossy();
    let name = s.rsplit('/').next().unwrap_or("").to_string();
    json!({ "path": s, "name": name })
}

fn process_obj(e: &Event) -> Value {
    let p = &e.process;
    let mut o = Map::new();
    o.insert("pid".into(), json!(p.pid));
    o.insert("tid".into(), json!(p.tid));
    o.insert("name".into(), text(&p.comm));
    o.insert("file".into(), file_obj(&p.exe));
    if !p.cmdline.is_empty() {
        o.insert("cmd_line".into(), text(&p.cmdline));
    }
    o.insert("created_time".into(), json!(ms(p.start)));
    o.insert("user".into(), json!({ "uid": p.uid.to_string() }));
    if !p.cwd.is_empty() {
        o.insert("working_directory".into(), text(&p.cwd));
    }
    if let Some(par) = &e.parent {
        let mut pp = Map::new();
        pp.insert("pid".into(), json!(par.pid));
        if !par.exe.is_empty() {
            pp.insert("file".into(), file_obj(&par.exe));
        }
        if let Some(s) = par.start {
            pp.insert("created_time".into(), json!(ms(s)));
        }
        o.insert("parent_process".into(), Value::Object(pp));
    }
    if !e.ancestry.is_empty() {
        o.insert(
            "lineage".into(),
            Value::Array(e.ancestry.iter().map(text).collect()),
        );
    }
    Value::Object(o)
}

fn unmapped(agent: Option<&str>, session: Option<&str>, kind: &str) -> Value {
    json!({ "agent.name": agent, "session.id": session, "kind": kind })
}

fn ocsf_event(e: &Event, raw: &str) -> Value {
    let (class_uid, class_name, category_uid, activity_id, activity_name) = match e.kind() {
        Kind::ProcessExec | Kind::ProcessFork => (1007, "Process Activity", 1, 1, "Launch"),
        Kind::ProcessExit => (1007, "Process Activity", 1, 2, "Terminate"),
        Kind::FileOpen => (1001, "File System Activity", 1, 14, "Open"),
        Kind::FileUnlink => (1001, "File System Activity", 1, 4, "Delete"),
        Kind::FileRename => (1001, "File System Activity", 1, 5, "Rename"),
        Kind::NetConnect | Kind::NetAccept => (4001, "Network Activity", 4, 1, "Open"),
        Kind::NetListen => (4001, "Network Activity", 4, 7, "Listen"),
        Kind::NetSend | Kind::NetFlow => (4001, "Network Activity", 4, 6, "Traffic"),
        Kind::NetDns => (4003, "DNS Activity", 4, 1, "Query"),
        Kind::FileChmod | Kind::FileChown => (1001, "File System Activity", 1, 7, "Set Security"),
        Kind::FileLink | Kind::FileSymlink | Kind::FileMkdir => {
            (1001, "File System Activity", 1, 1, "Create")
        }
        Kind::FileTruncate | Kind::FileWrite => (1001, "File System Activity", 1, 3, "Update"),
        Kind::FileMmapExec => (1001, "File System Activity", 1, 14, "Open"),
        Kind::FileUtime => (1001, "File System Activity", 1, 6, "Set Attributes"),
        Kind::FsMount => (1001, "File System Activity", 1, 12, "Mount"),
        Kind::ProcessPtrace => (1007, "Process Activity", 1, 4, "Inject"),
        Kind::PrivChange => (1007, "Process Activity", 1, 5, "Set User ID"),
        Kind::ProcessNamespace | Kind::ProcessMemfd | Kind::ProcessSignal => {
            (1007, "Process Activity", 1, 99, "Other")
        }
        Kind::KernelBpf | Kind::KernelModule => (1002, "Kernel Extension Activity", 1, 1, "Load"),
        Kind::MonitorLoss
        | Kind::MonitorStart
        | Kind::SessionStart
        | Kind::SessionEnd
        | Kind::ResponseAction => (0, "Base Event", 0, 99, "Other"),
        // What the agent said it did (its hooks); OCSF has no agent-intent class yet.
        Kind::AgentPrompt | Kind::AgentToolCall | Kind::AgentToolResult | Kind::AgentSession => {
            (0, "Base Event", 0, 99, "Other")
        }
        // An agent's model API exchange (TLS plaintext); no OCSF class for it either.
        Kind::LlmRequest | Kind::LlmResponse => (0, "Base Event", 0, 99, "Other"),
        // An MCP tool call the agent reported; OCSF has no class for it.
        Kind::McpCall => (0, "Base Event", 0, 99, "Other"),
    };
    let mut o = Map::new();
    o.insert("class_uid".into(), json!(class_uid));
    o.insert("class_name".into(), json!(class_name));
    o.insert("category_uid".into(), json!(category_uid));
    o.insert("activity_id".into(), json!(activity_id));
    o.insert("activity_name".into(), json!(activity_name));
    o.insert("type_uid".into(), json!(class_uid * 100 + activity_id));
    o.insert("severity_id".into(), json!(1));
    o.insert("time".into(), json!(ms(e.time)));
    o.insert("metadata".into(), metadata(&e.id));
    o.insert("device".into(), json!({ "hostname": e.host }));
    o.insert("actor".into(), json!({ "process": process_obj(e) }));
    match class_uid {
        1007 => {
            o.insert("process".into(), process_obj(e));
            if let Some(c) = e.exit.as_ref().and_then(|x| x.code) {
                o.insert("exit_code".into(), json!(c));
            }
        }
        1001 => {
            if let Some(f) = &e.file {
                o.insert("file".into(), file_obj(&f.path));
                if let Some(t) = &f.target {
                    o.insert("file_result".into(), file_obj(t));
                }
            }
        }
        4001 => {
            if let Some(n) = &e.net {
                let ep = |ip: Option<std::net::IpAddr>, port: Option<u16>| json!({ "ip": ip.map(|i| ip_text(to_v6(i))), "port": port });
                o.insert("src_endpoint".into(), ep(n.src_ip, n.src_port));
                o.insert("dst_endpoint".into(), ep(n.dst_ip, n.dst_port));
                o.insert(
                    "connection_info".into(),
                    json!({ "protocol_name": n.protocol, "direction_id": if e.kind() == Kind::NetConnect { 2 } else { 1 } }),
                );
            }
        }
        _ => {
            if let Some(m) = &e.monitor {
                o.insert("message".into(), json!(m.message));
            }
        }
    }
    o.insert(
        "unmapped".into(),
        unmapped(e.agent_name(), e.session_id(), e.kind().name()),
    );
    o.insert("raw_data".into(), Value::String(raw.to_string()));
    Value::Object(o)
}

fn severity_id(s: Severity) -> u8 {
    match s {
        Severity::Info => 1,
        Severity::Low => 2,
        Severity::Medium => 3,
        Severity::High => 4,
        Severity::Critical => 5,
    }
}

fn ocsf_alert(a: &Alert, h: &Hit, raw: &str) -> Value {
    let status = match h.triage_state() {
        Some(crate::TriageState::Acknowledged) => (2, "In Progress"),
        Some(crate::TriageState::Resolved) => (4, "Resolved"),
        _ => (1, "New"),
    };
    json!({
        "class_uid": 2004,
        "class_name": "Detection Finding",
        "category_uid": 2,
        "activity_id": 1,
        "activity_name": "Create",
        "type_uid": 200401,
        "time": ms(a.time),
        "severity_id": severity_id(a.severity),
        "severity": a.severity.name(),
        "status_id": status.0,
        "status": status.1,
        "comment": h.triage.as_ref().map(|t| t.note.clone()),
        "count": a.count,
        "start_time": ms(a.first_time),
        "end_time": ms(a.last_time),
        "metadata": metadata(&a.id),
        "device": { "hostname": a.host },
        "message": a.summary.to_str_lossy(),
        "finding_info": {
            "uid": a.id,
            "title": a.rule,
            "desc": a.summary.to_str_lossy(),
            "types": a.tags,
            "related_events": a.event_ids.iter().map(|id| json!({ "uid": id })).collect::<Vec<_>>(),
        },
        "unmapped": unmapped(
            a.agent.as_ref().map(|x| x.name.as_str()),
            a.session.as_ref().map(|x| x.id.as_str()),
            "alert",
        ),
        "raw_data": raw,
    })
}
