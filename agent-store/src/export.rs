//! Exports: JSON lines (each item exactly as stored) and OCSF.
//!
//! OCSF: schema 1.3.0, profiles `host` and `linux/linux_users`, one object a line that
//! validates against the class schema it declares (agent-store/tests/ocsf.rs checks every kind
//! with the compiled schema). The mapping, kind by kind, is in docs/ocsf.md:
//!
//! | agentwatch `kind` | OCSF class | activity |
//! | --- | --- | --- |
//! | `process.exec` / `process.fork` | Process Activity (1007) | Launch (1), actor = the parent |
//! | `process.exit` | Process Activity (1007) | Terminate (2) |
//! | `process.ptrace` | Process Activity (1007) | Inject (4), process = the target |
//! | `priv.change` | Process Activity (1007) | Set User ID (5) |
//! | `process.signal` | Process Activity (1007) | Other (99), process = the target |
//! | `process.namespace` / `process.memfd` | Process Activity (1007) | Other (99) |
//! | `file.*` | File System Activity (1001) | Open, Delete, Rename, Create, Update, ... |
//! | `fs.mount` | File System Activity (1001) | Mount (12) |
//! | `net.connect` / `net.accept` | Network Activity (4001) | Open (1) |
//! | `net.listen` | Network Activity (4001) | Listen (7) |
//! | `net.send` / `net.flow` | Network Activity (4001) | Traffic (6) / Close (2), with `traffic` |
//! | `net.dns` | DNS Activity (4003) | Query (1), with `query` |
//! | `kernel.module` | Kernel Extension Activity (1002) | Load (1), with `driver` |
//! | `kernel.bpf` | Kernel Activity (1003) | Invoke (4), `kernel` = the bpf system call |
//! | `alert` | Detection Finding (2004) | Create (1), `finding_info.attacks`, `evidences` |
//! | `monitor.*`, `session.*`, `response.action`, `agent.*`, `llm.*` | Base Event (0) | Other (99) |
//!
//! OCSF has no nulls: absent values are omitted. Every object carries `raw_data`: the item's
//! JSON byte for byte, so values that are not UTF-8 (shown lossily in the OCSF attributes)
//! survive exactly.

use std::collections::HashMap;
use std::io::{self, Write};

use agent_model::{Alert, BStr, Event, Kind, Severity};
use serde_json::{Map, Value, json};

use crate::schema::to_v6;
use crate::search::ip_text;
use crate::{Hit, Item, StoredHit};

/// The OCSF schema version every exported object declares.
pub const OCSF_VERSION: &str = "1.3.0";

/// Write each hit's stored JSON on its own line.
pub fn write_jsonl(hits: &[StoredHit], w: &mut dyn Write) -> io::Result<()> {
    for h in hits {
        w.write_all(h.json.as_bytes())?;
        w.write_all(b"\n")?;
    }
    Ok(())
}

/// Write each hit as one OCSF JSON object a line. An alert's evidences come from the events of
/// the same export; see [`write_ocsf_resolving`] to look the others up.
pub fn write_ocsf(hits: &[StoredHit], w: &mut dyn Write) -> io::Result<()> {
    write_ocsf_resolving(hits, &|_| None, w)
}

/// [`write_ocsf`], resolving an alert's event ids that are not among `hits` with `resolve`
/// (the CLI reads them from the store). An id nobody resolves is still named in the evidence.
pub fn write_ocsf_resolving(
    hits: &[StoredHit],
    resolve: &dyn Fn(&str) -> Option<Event>,
    w: &mut dyn Write,
) -> io::Result<()> {
    let local: HashMap<&str, &Event> = hits
        .iter()
        .filter_map(|h| match &h.hit.item {
            Item::Event(e) => Some((e.id.as_str(), &**e)),
            Item::Alert(_) => None,
        })
        .collect();
    for h in hits {
        let v = match &h.hit.item {
            Item::Event(e) => ocsf_event(e, &h.json),
            Item::Alert(a) => {
                let evidence: Vec<(String, Option<Event>)> = a
                    .event_ids
                    .iter()
                    .map(|id| {
                        let e = local.get(id.as_str()).map(|e| (*e).clone());
                        (id.clone(), e.or_else(|| resolve(id)))
                    })
                    .collect();
                ocsf_alert(a, &h.hit, &evidence, &h.json)
            }
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

/// Insert `v` unless it is absent: OCSF has no nulls.
fn put(o: &mut Map<String, Value>, k: &str, v: Option<Value>) {
    if let Some(v) = v {
        o.insert(k.into(), v);
    }
}

fn metadata(id: &str, profiles: bool) -> Value {
    let mut m = json!({
        "version": OCSF_VERSION,
        "uid": id,
        "product": {
            "name": "agentwatch",
            "vendor_name": "agentwatch",
            "version": env!("CARGO_PKG_VERSION"),
        },
    });
    if profiles {
        m["profiles"] = json!(["host", "linux/linux_users"]);
    }
    m
}

/// The host: type unknown (agentwatch cannot tell a server from a laptop), OS Linux.
fn device(host: &str) -> Value {
    let mut d = json!({
        "type_id": 0,
        "type": "Unknown",
        "os": { "name": "Linux", "type_id": 200, "type": "Linux" },
    });
    if !host.is_empty() {
        d["hostname"] = json!(host);
    }
    d
}

/// OCSF file `type_id` from agentwatch's `file.type`.
fn file_type_id(t: Option<&str>) -> u8 {
    match t {
        Some("file") => 1,
        Some("dir") => 2,
        Some("char") => 3,
        Some("block") => 4,
        Some("socket") => 5,
        Some("fifo") => 6,
        Some("symlink") => 7,
        Some(_) => 99,
        None => 0,
    }
}

fn file_obj(path: &BStr, type_id: u8) -> Value {
    let s = path.to_str_lossy();
    let name = s.trim_end_matches('/').rsplit('/').next().unwrap_or("");
    json!({ "path": s, "name": name, "type_id": type_id })
}

fn user_obj(uid: u32) -> Value {
    json!({ "uid": uid.to_string() })
}

/// The subject process of an event.
fn process_obj(e: &Event) -> Value {
    let p = &e.process;
    let mut o = Map::new();
    o.insert("pid".into(), json!(p.pid));
    o.insert("tid".into(), json!(p.tid));
    if !p.comm.is_empty() {
        o.insert("name".into(), text(&p.comm));
    }
    if !p.exe.is_empty() {
        o.insert("file".into(), file_obj(&p.exe, 1));
    }
    if !p.cmdline.is_empty() {
        o.insert("cmd_line".into(), text(&p.cmdline));
    }
    o.insert("created_time".into(), json!(ms(p.start)));
    o.insert("user".into(), user_obj(p.uid));
    o.insert("group".into(), json!({ "uid": p.gid.to_string() }));
    put(&mut o, "euid", p.euid.map(|v| json!(v)));
    put(&mut o, "egid", p.egid.map(|v| json!(v)));
    if let Some(par) = &e.parent {
        o.insert("parent_process".into(), parent_obj(par));
    }
    if !e.ancestry.is_empty() {
        o.insert(
            "lineage".into(),
            Value::Array(e.ancestry.iter().map(text).collect()),
        );
    }
    Value::Object(o)
}

fn parent_obj(par: &agent_model::Parent) -> Value {
    let mut pp = Map::new();
    pp.insert("pid".into(), json!(par.pid));
    if !par.exe.is_empty() {
        pp.insert("file".into(), file_obj(&par.exe, 1));
    }
    put(&mut pp, "created_time", par.start.map(|s| json!(ms(s))));
    Value::Object(pp)
}

/// The process another process acted on (ptrace, signal).
fn target_obj(t: &agent_model::Target) -> Value {
    let mut o = Map::new();
    o.insert("pid".into(), json!(t.pid));
    if !t.exe.is_empty() {
        o.insert("file".into(), file_obj(&t.exe, 1));
    }
    Value::Object(o)
}

/// Who acted. For a launch it is the parent (the process that started the new one); otherwise
/// the subject process itself. The agent, when known, is the actor's application.
fn actor(e: &Event) -> Value {
    let mut a = Map::new();
    let launch = matches!(e.kind(), Kind::ProcessExec | Kind::ProcessFork);
    if launch {
        match &e.parent {
            Some(par) => {
                a.insert("process".into(), parent_obj(par));
            }
            None => {
                a.insert("user".into(), user_obj(e.process.uid));
            }
        }
    } else {
        a.insert("process".into(), process_obj(e));
    }
    put(&mut a, "app_name", e.agent_name().map(|n| json!(n)));
    Value::Object(a)
}

/// A DNS name as an OCSF `hostname_t` (letters, digits, inner hyphens, dot-separated labels):
/// a trailing dot dropped; a label outside that alphabet (underscores, binary) written as `x`
/// and its bytes in hex. `None` when the name was rewritten, so the caller keeps the original.
fn dns_hostname(q: &BStr) -> (String, bool) {
    let b = q.as_bytes();
    let b = b.strip_suffix(b".").unwrap_or(b);
    let ok_label = |l: &[u8]| {
        !l.is_empty()
            && l.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'-')
            && l[0] != b'-'
            && l[l.len() - 1] != b'-'
    };
    let mut changed = b.len() != q.as_bytes().len();
    let labels: Vec<String> = b
        .split(|c| *c == b'.')
        .map(|l| {
            if ok_label(l) {
                String::from_utf8_lossy(l).into_owned()
            } else {
                changed = true;
                let hex: String = l.iter().map(|c| format!("{c:02x}")).collect();
                format!("x{hex}")
            }
        })
        .collect();
    (labels.join("."), changed)
}

/// One side of a connection; `None` when nothing about it is known (an empty endpoint does not
/// validate: `network_endpoint` needs one of ip, name, hostname, uid, ...).
fn endpoint(
    n: &agent_model::Net,
    ip: Option<std::net::IpAddr>,
    port: Option<u16>,
) -> Option<Value> {
    let mut o = Map::new();
    put(&mut o, "ip", ip.map(|i| json!(ip_text(to_v6(i)))));
    put(&mut o, "port", port.map(|p| json!(p)));
    if ip.is_none() && n.family == "unix" {
        // A unix socket: its path is the endpoint's name.
        let name = n.unix_path.as_ref().map(|u| u.to_str_lossy().into_owned());
        o.insert("name".into(), json!(name.unwrap_or_else(|| "unix".into())));
    }
    (o.contains_key("ip") || o.contains_key("name")).then_some(Value::Object(o))
}

fn connection_info(n: &agent_model::Net, direction_id: u8) -> Value {
    let mut c = Map::new();
    c.insert("direction_id".into(), json!(direction_id));
    let dir = match direction_id {
        1 => "Inbound",
        2 => "Outbound",
        _ => "Unknown",
    };
    c.insert("direction".into(), json!(dir));
    put(
        &mut c,
        "protocol_name",
        n.protocol.as_ref().map(|p| json!(p)),
    );
    let num = match n.protocol.as_deref() {
        Some("tcp") => Some(6),
        Some("udp") => Some(17),
        Some("icmp") => Some(1),
        Some(other) => other.parse::<u8>().ok(),
        None => None,
    };
    put(&mut c, "protocol_num", num.map(|v| json!(v)));
    let ver = match n.family.as_str() {
        "ipv4" => Some(4),
        "ipv6" => Some(6),
        _ => None,
    };
    put(&mut c, "protocol_ver_id", ver.map(|v| json!(v)));
    Value::Object(c)
}

/// The OCSF class and activity of a kind: (class_uid, class name, category_uid, category name,
/// activity_id, activity name).
fn class_of(e: &Event) -> (u32, &'static str, u32, &'static str, u32, &'static str) {
    const SYS: (u32, &str) = (1, "System Activity");
    const NET: (u32, &str) = (4, "Network Activity");
    let file = |a, n| (1001, "File System Activity", SYS.0, SYS.1, a, n);
    let proc_ = |a, n| (1007, "Process Activity", SYS.0, SYS.1, a, n);
    let net = |a, n| (4001, "Network Activity", NET.0, NET.1, a, n);
    match e.kind() {
        Kind::ProcessExec | Kind::ProcessFork => proc_(1, "Launch"),
        Kind::ProcessExit => proc_(2, "Terminate"),
        Kind::ProcessPtrace => proc_(4, "Inject"),
        Kind::PrivChange => proc_(5, "Set User ID"),
        Kind::ProcessNamespace | Kind::ProcessMemfd | Kind::ProcessSignal => proc_(99, "Other"),
        Kind::FileOpen | Kind::FileMmapExec => file(14, "Open"),
        Kind::FileUnlink => file(4, "Delete"),
        Kind::FileRename => file(5, "Rename"),
        Kind::FileChmod | Kind::FileChown => file(7, "Set Security"),
        Kind::FileLink | Kind::FileSymlink | Kind::FileMkdir => file(1, "Create"),
        Kind::FileTruncate | Kind::FileWrite => file(3, "Update"),
        Kind::FileUtime => file(6, "Set Attributes"),
        Kind::FileXattr => file(6, "Set Attributes"),
        Kind::FsMount => file(12, "Mount"),
        Kind::NetConnect | Kind::NetAccept => net(1, "Open"),
        Kind::NetListen => net(7, "Listen"),
        Kind::NetSend => net(6, "Traffic"),
        Kind::NetFlow => match e.net.as_ref().and_then(|n| n.flow_state.as_deref()) {
            Some("close") => net(2, "Close"),
            _ => net(6, "Traffic"),
        },
        Kind::NetDns => (4003, "DNS Activity", NET.0, NET.1, 1, "Query"),
        Kind::KernelModule => (1002, "Kernel Extension Activity", SYS.0, SYS.1, 1, "Load"),
        Kind::KernelBpf => (1003, "Kernel Activity", SYS.0, SYS.1, 4, "Invoke"),
        // Health, bookkeeping, responses, what the agent said (its hooks) and its model API
        // exchanges: OCSF 1.3 has no class for these.
        Kind::MonitorLoss
        | Kind::MonitorStart
        | Kind::SessionStart
        | Kind::SessionEnd
        | Kind::ResponseAction
        | Kind::AgentPrompt
        | Kind::AgentToolCall
        | Kind::AgentToolResult
        | Kind::AgentSession
        | Kind::LlmRequest
        | Kind::LlmResponse
        | Kind::McpCall => (0, "Base Event", 0, "Uncategorized", 99, "Other"),
    }
}

fn ocsf_event(e: &Event, raw: &str) -> Value {
    let (class_uid, class_name, category_uid, category_name, activity_id, activity_name) =
        class_of(e);
    let mut o = Map::new();
    let mut un = Map::new();
    un.insert("kind".into(), json!(e.kind().name()));
    put(&mut un, "agent.name", e.agent_name().map(|v| json!(v)));
    put(&mut un, "session.id", e.session_id().map(|v| json!(v)));
    o.insert("class_uid".into(), json!(class_uid));
    o.insert("class_name".into(), json!(class_name));
    o.insert("category_uid".into(), json!(category_uid));
    o.insert("category_name".into(), json!(category_name));
    o.insert("activity_id".into(), json!(activity_id));
    o.insert("activity_name".into(), json!(activity_name));
    o.insert("type_uid".into(), json!(class_uid * 100 + activity_id));
    o.insert(
        "type_name".into(),
        json!(format!("{class_name}: {activity_name}")),
    );
    o.insert("severity_id".into(), json!(1));
    o.insert("severity".into(), json!("Informational"));
    o.insert("time".into(), json!(ms(e.time)));
    o.insert(
        "message".into(),
        json!(agent_model::display::event_line_dated(e)),
    );
    // Base Event has no `device` or `actor` in 1.3: the host goes to `unmapped`.
    let base = class_uid == 0;
    o.insert("metadata".into(), metadata(&e.id, !base));
    if base {
        un.insert("host".into(), json!(e.host));
    } else {
        o.insert("device".into(), device(&e.host));
        o.insert("actor".into(), actor(e));
    }
    if let Some(op) = &e.op
        && let Some(r) = op.result
    {
        let (id, name) = if r < 0 {
            (2, "Failure")
        } else {
            (1, "Success")
        };
        o.insert("status_id".into(), json!(id));
        o.insert("status".into(), json!(name));
        o.insert("status_code".into(), json!(r.to_string()));
    }
    if !e.process.cwd.is_empty() {
        un.insert("process.cwd".into(), text(&e.process.cwd));
    }
    match class_uid {
        1007 => process_activity(e, &mut o),
        1001 => file_activity(e, &mut o, &mut un),
        4001 | 4003 => network_activity(e, &mut o, &mut un),
        1002 => {
            let path = e.op.as_ref().and_then(|op| op.object.clone());
            let path = path.unwrap_or_else(|| BStr::from("unknown"));
            o.insert("driver".into(), json!({ "file": file_obj(&path, 1) }));
        }
        1003 => {
            let name = e.op.as_ref().map(|op| op.name.as_str()).unwrap_or("bpf");
            o.insert(
                "kernel".into(),
                json!({ "name": name, "type_id": 2, "type": "System Call", "system_call": "bpf" }),
            );
        }
        _ => {}
    }
    o.insert("unmapped".into(), Value::Object(un));
    o.insert("raw_data".into(), Value::String(raw.to_string()));
    Value::Object(o)
}

fn process_activity(e: &Event, o: &mut Map<String, Value>) {
    // ptrace and signals act on another process: that one is the activity's process.
    let target = matches!(e.kind(), Kind::ProcessPtrace | Kind::ProcessSignal);
    let p = match (&e.target, target) {
        (Some(t), true) => target_obj(t),
        _ => process_obj(e),
    };
    o.insert("process".into(), p);
    if let Some(x) = &e.exit
        && let Some(c) = x.code
    {
        o.insert("exit_code".into(), json!(c));
    }
    if let Some(pr) = &e.r#priv {
        // Set User ID: the actor's user after the change.
        o["actor"]["user"] = json!({ "uid": pr.euid.to_string() });
    }
}

fn file_activity(e: &Event, o: &mut Map<String, Value>, un: &mut Map<String, Value>) {
    if e.kind() == Kind::FsMount {
        let op = e.op.clone().unwrap_or_default();
        let point = op.target_path.unwrap_or_else(|| BStr::from("/"));
        o.insert("file".into(), file_obj(&point, 2));
        put(un, "op.object", op.object.as_ref().map(text));
        put(un, "op.type", op.r#type.map(Value::String));
        return;
    }
    let Some(f) = &e.file else {
        o.insert("file".into(), file_obj(&BStr::from("unknown"), 0));
        return;
    };
    let type_id = match e.kind() {
        Kind::FileMkdir => 2,
        Kind::FileSymlink => 7,
        Kind::FileMmapExec => 1,
        _ => file_type_id(f.r#type.as_deref()),
    };
    o.insert("file".into(), file_obj(&f.path, type_id));
    if let Some(t) = &f.target {
        if e.kind() == Kind::FileRename {
            o.insert("file_result".into(), file_obj(t, 0));
        } else {
            un.insert("file.target".into(), text(t));
        }
    }
}

fn network_activity(e: &Event, o: &mut Map<String, Value>, un: &mut Map<String, Value>) {
    let n = e.net.clone().unwrap_or_default();
    let local = endpoint(&n, n.src_ip, n.src_port);
    let remote = endpoint(&n, n.dst_ip, n.dst_port);
    // OCSF: the source initiated, the destination answered.
    let (src, dst, dir) = match e.kind() {
        Kind::NetAccept => (remote, local, 1),
        Kind::NetListen => (None, local, 1),
        Kind::NetFlow => (local, remote, 0),
        _ => (local, remote, 2),
    };
    put(o, "src_endpoint", src);
    // Network Activity requires a destination: name it unknown rather than omit it.
    let dst = dst.unwrap_or_else(|| json!({ "name": "unknown" }));
    o.insert("dst_endpoint".into(), dst);
    o.insert("connection_info".into(), connection_info(&n, dir));
    if matches!(e.kind(), Kind::NetSend | Kind::NetFlow) {
        let mut t = Map::new();
        put(&mut t, "bytes_out", n.bytes.map(|b| json!(b)));
        put(&mut t, "bytes_in", n.bytes_received.map(|b| json!(b)));
        let total = n.bytes.unwrap_or(0) + n.bytes_received.unwrap_or(0);
        t.insert("bytes".into(), json!(total));
        o.insert("traffic".into(), Value::Object(t));
    }
    if let Some(d) = n.flow_ms {
        o.insert("duration".into(), json!(d));
    }
    if let Some(d) = &e.dns {
        let (hostname, changed) = dns_hostname(&d.qname);
        o.insert(
            "query".into(),
            json!({ "hostname": hostname, "type": d.qtype }),
        );
        if changed {
            un.insert("dns.qname".into(), text(&d.qname));
        }
    }
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

/// MITRE ATT&CK enterprise tactics by the tag names the policy uses.
const TACTICS: &[(&str, &str, &str)] = &[
    ("reconnaissance", "TA0043", "Reconnaissance"),
    ("resource_development", "TA0042", "Resource Development"),
    ("initial_access", "TA0001", "Initial Access"),
    ("execution", "TA0002", "Execution"),
    ("persistence", "TA0003", "Persistence"),
    ("privilege_escalation", "TA0004", "Privilege Escalation"),
    ("defense_evasion", "TA0005", "Defense Evasion"),
    ("credential_access", "TA0006", "Credential Access"),
    ("discovery", "TA0007", "Discovery"),
    ("lateral_movement", "TA0008", "Lateral Movement"),
    ("collection", "TA0009", "Collection"),
    ("command_and_control", "TA0011", "Command and Control"),
    ("exfiltration", "TA0010", "Exfiltration"),
    ("impact", "TA0040", "Impact"),
];

/// A technique tag (`T1552`, `T1552.004`, optionally `attack.`-prefixed, any case) as
/// (technique, sub-technique).
fn technique(tag: &str) -> Option<(String, Option<String>)> {
    let t = tag
        .strip_prefix("attack.")
        .unwrap_or(tag)
        .to_ascii_uppercase();
    let digits = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_digit());
    let rest = t.strip_prefix('T')?;
    match rest.split_once('.') {
        None if digits(rest, 4) => Some((t.clone(), None)),
        Some((a, b)) if digits(a, 4) && digits(b, 3) => Some((format!("T{a}"), Some(t.clone()))),
        _ => None,
    }
}

/// `finding_info.attacks` from the alert's ATT&CK tags: one entry per technique, each with the
/// tactic(s) the tags name; tactics alone when no technique is tagged.
fn attacks(tags: &[String]) -> Vec<Value> {
    let tactics: Vec<Value> = tags
        .iter()
        .filter_map(|tag| {
            let t = tag
                .strip_prefix("attack.")
                .unwrap_or(tag)
                .to_ascii_lowercase();
            TACTICS.iter().find(|(k, _, _)| *k == t)
        })
        .map(|(_, uid, name)| json!({ "uid": uid, "name": name }))
        .collect();
    let with_tactics = |mut a: Map<String, Value>| {
        if let Some(first) = tactics.first() {
            a.insert("tactic".into(), first.clone());
        }
        if tactics.len() > 1 {
            a.insert("tactics".into(), json!(tactics));
        }
        Value::Object(a)
    };
    let mut out: Vec<Value> = tags
        .iter()
        .filter_map(|t| technique(t))
        .map(|(tech, sub)| {
            let mut a = Map::new();
            a.insert("technique".into(), json!({ "uid": tech }));
            put(&mut a, "sub_technique", sub.map(|s| json!({ "uid": s })));
            with_tactics(a)
        })
        .collect();
    if out.is_empty() && !tactics.is_empty() {
        out.push(with_tactics(Map::new()));
    }
    out
}

/// One evidence per event the alert names: what the event touched, or the id alone when the
/// event is not at hand.
fn evidence(id: &str, e: Option<&Event>) -> Value {
    let Some(e) = e else {
        return json!({ "data": { "event_uid": id } });
    };
    let mut o = Map::new();
    o.insert(
        "data".into(),
        json!({ "event_uid": id, "kind": e.kind().name() }),
    );
    o.insert("process".into(), process_obj(e));
    if let Some(f) = &e.file {
        o.insert(
            "file".into(),
            file_obj(&f.path, file_type_id(f.r#type.as_deref())),
        );
    }
    if let Some(n) = &e.net {
        put(&mut o, "src_endpoint", endpoint(n, n.src_ip, n.src_port));
        put(&mut o, "dst_endpoint", endpoint(n, n.dst_ip, n.dst_port));
    }
    if let Some(d) = &e.dns {
        let (hostname, _) = dns_hostname(&d.qname);
        o.insert(
            "query".into(),
            json!({ "hostname": hostname, "type": d.qtype }),
        );
    }
    Value::Object(o)
}

fn ocsf_alert(a: &Alert, h: &Hit, events: &[(String, Option<Event>)], raw: &str) -> Value {
    let status = match h.triage_state() {
        Some(crate::TriageState::Acknowledged) => (2, "In Progress"),
        Some(crate::TriageState::Resolved) => (4, "Resolved"),
        _ => (1, "New"),
    };
    let mut info = Map::new();
    info.insert("uid".into(), json!(a.id));
    info.insert("title".into(), json!(a.rule));
    info.insert("desc".into(), text(&a.summary));
    info.insert("first_seen_time".into(), json!(ms(a.first_time)));
    info.insert("last_seen_time".into(), json!(ms(a.last_time)));
    if !a.tags.is_empty() {
        info.insert("types".into(), json!(a.tags));
    }
    let att = attacks(&a.tags);
    if !att.is_empty() {
        info.insert("attacks".into(), Value::Array(att));
    }
    if !a.event_ids.is_empty() {
        info.insert(
            "related_events".into(),
            a.event_ids.iter().map(|id| json!({ "uid": id })).collect(),
        );
    }
    let mut o = Map::new();
    o.insert("class_uid".into(), json!(2004));
    o.insert("class_name".into(), json!("Detection Finding"));
    o.insert("category_uid".into(), json!(2));
    o.insert("category_name".into(), json!("Findings"));
    o.insert("activity_id".into(), json!(1));
    o.insert("activity_name".into(), json!("Create"));
    o.insert("type_uid".into(), json!(200401));
    o.insert("type_name".into(), json!("Detection Finding: Create"));
    o.insert("time".into(), json!(ms(a.time)));
    o.insert("severity_id".into(), json!(severity_id(a.severity)));
    o.insert("severity".into(), json!(a.severity.name()));
    o.insert("status_id".into(), json!(status.0));
    o.insert("status".into(), json!(status.1));
    if let Some(t) = h.triage.as_ref().filter(|t| !t.note.is_empty()) {
        o.insert("comment".into(), json!(t.note));
    }
    o.insert("count".into(), json!(a.count));
    o.insert("start_time".into(), json!(ms(a.first_time)));
    o.insert("end_time".into(), json!(ms(a.last_time)));
    o.insert("metadata".into(), metadata(&a.id, true));
    o.insert("device".into(), device(&a.host));
    o.insert("message".into(), text(&a.summary));
    o.insert("finding_info".into(), Value::Object(info));
    if !events.is_empty() {
        o.insert(
            "evidences".into(),
            events
                .iter()
                .map(|(id, e)| evidence(id, e.as_ref()))
                .collect(),
        );
    }
    let mut un = Map::new();
    un.insert("kind".into(), json!("alert"));
    put(
        &mut un,
        "agent.name",
        a.agent.as_ref().map(|x| json!(x.name)),
    );
    put(
        &mut un,
        "session.id",
        a.session.as_ref().map(|x| json!(x.id)),
    );
    if a.in_loss_window {
        un.insert("in_loss_window".into(), json!(true));
    }
    o.insert("unmapped".into(), Value::Object(un));
    o.insert("raw_data".into(), json!(raw));
    Value::Object(o)
}
