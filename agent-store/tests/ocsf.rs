//! OCSF export validated against the compiled OCSF schema it declares.
//!
//! One representative event of every kind (`Kind::ALL`), each filled with every field the field
//! catalogue says that kind carries, plus a few hostile variants and alerts, goes through a real
//! store and the real OCSF export (`write_ocsf_resolving`, as `agentwatch export --format ocsf`
//! runs it). `tests/ocsf/validate.py` then checks every record from the venv `cargo xtask
//! setup` installs (`ocsf-json-schema` builds the class schema with the declared profiles;
//! `jsonschema` validates). The test fails listing every kind and JSON path that does not
//! validate; without the venv it skips, and in CI (`CI` set) it fails.

mod common;

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use agent_model::{Alert, DERIVED_FIELDS, Event, FIELDS, FieldType, Kind, Severity};
use agent_store::{SearchRequest, TriageState};
use common::*;
use serde_json::{Value, json};

/// The venv `cargo xtask setup` installs (`$AGENTWATCH_OCSF_VENV` overrides).
fn venv_python() -> PathBuf {
    std::env::var_os("AGENTWATCH_OCSF_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/opt/agentwatch-test/ocsf"))
        .join("bin/python")
}

fn validator_script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/ocsf/validate.py")
}

/// Why the validation cannot run here, if it cannot.
fn skip_reason() -> Option<String> {
    let py = venv_python();
    let ok = Command::new(&py)
        .args(["-c", "import ocsf_json_schema, jsonschema"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    (!ok).then(|| {
        format!(
            "`{}` cannot import ocsf_json_schema and jsonschema; run `cargo xtask setup`",
            py.display()
        )
    })
}

/// A value of the right type for `name`: meaningful where the export maps the value to an
/// OCSF enum (file type, protocol, flow state), a recognisable sample otherwise.
fn sample(name: &str, ty: FieldType, kind: Kind) -> Value {
    let t = |secs: i64| {
        agent_model::Timestamp(T0 + secs * 1_000_000_000)
            .to_rfc3339()
            .into()
    };
    match name {
        "process.pid" => json!(4242),
        "process.tid" => json!(4243),
        "parent.pid" => json!(4200),
        "target.pid" => json!(4300),
        "file.type" => "file".into(),
        "file.access" => "read_write".into(),
        "file.flags" => json!(["O_RDWR", "O_CREAT"]),
        "file.mode" => json!(0o640),
        "file.atime" => "now".into(),
        "file.mtime" => t(-3600),
        "file.via" => "syscall".into(),
        "file.markers" => json!(["writable_dir"]),
        "net.family" => "ipv4".into(),
        "net.protocol" if kind == Kind::NetDns => "udp".into(),
        "net.protocol" => "tcp".into(),
        "net.src_ip" => "10.0.0.5".into(),
        "net.dst_ip" => "203.0.113.7".into(),
        "net.src_port" => json!(40312),
        "net.dst_port" if kind == Kind::NetDns => json!(53),
        "net.dst_port" => json!(443),
        "net.unix_path" => "/run/user/1000/bus".into(),
        "net.via" => "syscall".into(),
        "net.flow_state" => "close".into(),
        "net.bytes" => json!(5120),
        "net.bytes_received" => json!(90_000),
        "dns.qname" => "aGVsbG8.exfil.example.com".into(),
        "dns.qtype" => "TXT".into(),
        "priv.op" => "setresuid".into(),
        "priv.caps" => "000001ffffffffff".into(),
        "target.relation" => "same_session".into(),
        "target.exe" => "/usr/bin/sleep".into(),
        "op.signal" => json!(9),
        "op.result" => json!(-1),
        "op.flags" => json!(["CLONE_NEWNET"]),
        "exit.signal" => json!(9),
        "monitor.loss_kind" => "file.open".into(),
        "response.action" => "kill_session".into(),
        "response.mode" => "enforce".into(),
        "response.by" => "rule:cred-read".into(),
        "response.result" => "done".into(),
        "llm.provider" => "anthropic".into(),
        "llm.host" => "api.anthropic.com".into(),
        "llm.path" => "/v1/messages".into(),
        "llm.status" => json!(200),
        "intent.hook" => "PreToolUse".into(),
        "intent.decision" => "deny".into(),
        _ => match ty {
            FieldType::Str => format!("sample {name}").into(),
            FieldType::StrList => json!([format!("{name} 1"), format!("{name} 2")]),
            FieldType::Int => json!(42),
            FieldType::Ip => "192.0.2.1".into(),
            FieldType::Port => json!(8080),
            FieldType::Bool => json!(true),
            FieldType::Time => t(-60),
        },
    }
}

fn set_path(root: &mut Value, dotted: &str, v: Value) {
    let mut cur = root;
    let mut parts = dotted.split('.').peekable();
    while let Some(p) = parts.next() {
        if parts.peek().is_none() {
            cur[p] = v;
            return;
        }
        if !cur[p].is_object() {
            cur[p] = json!({});
        }
        cur = &mut cur[p];
    }
}

/// The representative event of `kind`: every catalogue field of the kind filled.
fn full_event(i: usize, kind: Kind) -> Event {
    let mut v = serde_json::to_value(base(&format!("k{i}"), kind, i as i64)).unwrap();
    for def in FIELDS {
        let per_event = matches!(def.name, "id" | "time" | "host" | "kind");
        if per_event || DERIVED_FIELDS.contains(&def.field) || !def.field.applies_to(kind) {
            continue;
        }
        if def.name == "ancestry" {
            v["ancestry"] = json!(["/usr/bin/bash", "/usr/bin/node"]);
            continue;
        }
        set_path(&mut v, def.name, sample(def.name, def.ty, kind));
    }
    let e: Event = serde_json::from_value(v.clone())
        .unwrap_or_else(|err| panic!("{kind}: event from catalogue fields: {err}\n{v}"));
    // Nothing trivially empty: every field the kind carries reads back.
    for def in FIELDS {
        if def.field.applies_to(kind) && !DERIVED_FIELDS.contains(&def.field) {
            assert!(e.get(def.field).is_some(), "{kind}: `{}` not set", def.name);
        }
    }
    e
}

/// Events beyond one per kind: the shapes that took other branches of the mapping.
fn variants() -> Vec<(String, Event)> {
    let mut out = Vec::new();
    let mut e = full_event(100, Kind::NetConnect);
    let n = e.net.as_mut().unwrap();
    n.family = "unix".into();
    (n.src_ip, n.src_port, n.dst_ip, n.dst_port, n.protocol) = (None, None, None, None, None);
    out.push(("net.connect (unix)".into(), e));
    let mut e = full_event(106, Kind::NetConnect);
    let n = e.net.as_mut().unwrap();
    (n.src_ip, n.src_port, n.unix_path) = (None, None, None);
    out.push(("net.connect (no local address)".into(), e));
    let mut e = full_event(107, Kind::NetListen);
    let n = e.net.as_mut().unwrap();
    (n.src_ip, n.src_port, n.unix_path) = (None, None, None);
    out.push(("net.listen (nothing known)".into(), e));
    let mut e = full_event(101, Kind::NetAccept);
    let n = e.net.as_mut().unwrap();
    n.family = "ipv6".into();
    n.src_ip = Some("fe80::1".parse().unwrap());
    n.dst_ip = Some("2001:db8::7".parse().unwrap());
    n.unix_path = None;
    out.push(("net.accept (ipv6)".into(), e));
    let mut e = full_event(102, Kind::NetDns);
    e.dns.as_mut().unwrap().qname = agent_model::BStr(b"_dmarc.ex\xffample..com.".to_vec());
    out.push(("net.dns (hostile qname)".into(), e));
    let mut e = full_event(103, Kind::FileOpen);
    e.file.as_mut().unwrap().path = agent_model::BStr(b"/tmp/\xff\xfe/".to_vec());
    e.file.as_mut().unwrap().r#type = Some("dir".into());
    e.process.exe = agent_model::BStr::default();
    e.parent = None;
    out.push(("file.open (binary dir path, no exe, no parent)".into(), e));
    let mut e = full_event(104, Kind::NetFlow);
    e.net.as_mut().unwrap().flow_state = Some("update".into());
    out.push(("net.flow (update)".into(), e));
    let mut e = full_event(105, Kind::ProcessExec);
    e.process.args_truncated = false;
    e.parent = None;
    e.ancestry.clear();
    out.push(("process.exec (no parent)".into(), e));
    out
}

fn alerts() -> Vec<(String, Alert)> {
    let mut a = alert(
        "a1",
        200,
        "cred-read",
        Severity::High,
        "claude read ~/.ssh/id_rsa",
    );
    a.tags = vec![
        "T1552.004".into(),
        "credential_access".into(),
        "T1048".into(),
        "secrets".into(),
    ];
    // Events of the export (file.open and net.connect) and one the store does not hold.
    let open = Kind::ALL.iter().position(|k| *k == Kind::FileOpen).unwrap();
    let conn = Kind::ALL
        .iter()
        .position(|k| *k == Kind::NetConnect)
        .unwrap();
    a.event_ids = vec![format!("k{open}"), format!("k{conn}"), "gone-1".into()];
    a.count = 3;
    a.first_time = agent_model::Timestamp(a.time.0 - 5_000_000_000);
    let mut b = alert("a2", 201, "odd-exec", Severity::Critical, "memfd exec");
    b.tags.clear();
    b.event_ids.clear();
    b.agent = None;
    b.session = None;
    b.in_loss_window = true;
    vec![
        ("alert (attack tags, evidence)".into(), a),
        ("alert (no tags, triaged)".into(), b),
    ]
}

#[test]
fn every_kind_validates_against_the_declared_ocsf_schema() {
    if let Some(why) = skip_reason() {
        if std::env::var_os("CI").is_some() {
            panic!("ocsf validation cannot run in CI: {why}");
        }
        eprintln!("SKIPPED: {why}");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (s, _) = open(dir.path());
    // id -> what the record represents, for the failure list.
    let mut label: BTreeMap<String, String> = BTreeMap::new();
    let mut events: Vec<(String, Event)> = Kind::ALL
        .iter()
        .enumerate()
        .map(|(i, k)| (k.name().to_string(), full_event(i, *k)))
        .collect();
    events.extend(variants());
    for (l, e) in &events {
        label.insert(e.id.clone(), l.clone());
        s.append_event(e).unwrap();
    }
    for (l, a) in alerts() {
        label.insert(a.id.clone(), l);
        s.append_alert(&a).unwrap();
    }
    s.commit().unwrap();
    s.set_triage("a2", TriageState::Acknowledged, "looking", "uid:0")
        .unwrap();
    s.commit().unwrap();
    let r = s.reader().unwrap();
    let hits = r
        .search(&SearchRequest {
            query: "*".into(),
            limit: 1000,
            ..SearchRequest::default()
        })
        .unwrap()
        .hits;
    assert_eq!(hits.len(), label.len(), "every item found");
    let mut out = Vec::new();
    agent_store::export::write_ocsf_resolving(
        &hits,
        &|id| {
            r.by_id(id)
                .ok()?
                .into_iter()
                .find_map(|h| match h.hit.item {
                    agent_store::Item::Event(e) => Some(*e),
                    agent_store::Item::Alert(_) => None,
                })
        },
        &mut out,
    )
    .unwrap();
    let records: Vec<Value> = out
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| serde_json::from_slice(l).unwrap())
        .collect();
    assert_eq!(records.len(), hits.len());
    let labels: Vec<String> = records
        .iter()
        .map(|v| {
            let id = v["metadata"]["uid"].as_str().expect("metadata.uid");
            label.get(id).cloned().unwrap_or_else(|| format!("? {id}"))
        })
        .collect();
    for k in Kind::ALL {
        assert!(labels.iter().any(|l| l == k.name()), "{k} exported");
    }

    // The schema: every record, every problem.
    let mut child = Command::new(venv_python())
        .arg(validator_script())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run validate.py");
    child.stdin.take().unwrap().write_all(&out).unwrap();
    let res = child.wait_with_output().unwrap();
    let mut failures = Vec::new();
    for line in String::from_utf8_lossy(&res.stdout).lines() {
        let p: Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("validate.py printed `{line}`: {e}"));
        let i = p["index"].as_u64().unwrap() as usize;
        failures.push(format!(
            "{} (class {}): {}: {}",
            labels[i], records[i]["class_uid"], p["path"], p["message"]
        ));
    }
    assert!(
        failures.is_empty() && res.status.success(),
        "{} OCSF problems (validate.py exit {:?}, stderr: {}):\n{}",
        failures.len(),
        res.status.code(),
        String::from_utf8_lossy(&res.stderr),
        failures.join("\n")
    );

    // Semantics the schema cannot see.
    let rec = |l: &str| &records[labels.iter().position(|x| x == l).unwrap()];
    let exec = rec("process.exec");
    assert_eq!(exec["class_uid"], 1007);
    assert_eq!(exec["activity_id"], 1, "Launch");
    assert_eq!(exec["actor"]["process"]["pid"], 4200, "actor is the parent");
    assert_eq!(exec["process"]["pid"], 4242);
    assert_eq!(exec["process"]["parent_process"]["pid"], 4200);
    let ptrace = rec("process.ptrace");
    assert_eq!(ptrace["actor"]["process"]["pid"], 4242, "the tracer acts");
    assert_eq!(ptrace["process"]["pid"], 4300, "on the target");
    let module = rec("kernel.module");
    assert_eq!(module["class_uid"], 1002);
    assert_eq!(module["driver"]["file"]["path"], "sample op.object");
    assert_eq!(module["status_id"], 2, "a refused load failed");
    let dns = rec("net.dns");
    assert_eq!(dns["class_uid"], 4003);
    assert_eq!(dns["query"]["hostname"], "aGVsbG8.exfil.example.com");
    assert_eq!(dns["query"]["type"], "TXT");
    let flow = rec("net.flow");
    assert_eq!(flow["traffic"]["bytes_out"], 5120);
    assert_eq!(flow["traffic"]["bytes_in"], 90_000);
    let accept = rec("net.accept (ipv6)");
    // net.src_ip is the local address: the remote peer initiated, so it is the source.
    assert_eq!(
        accept["src_endpoint"]["ip"], "2001:db8::7",
        "the peer initiated"
    );
    assert_eq!(accept["dst_endpoint"]["ip"], "fe80::1");
    let bare = rec("net.connect (no local address)");
    assert!(bare.get("src_endpoint").is_none(), "{bare}");
    assert_eq!(bare["dst_endpoint"]["ip"], "203.0.113.7");
    let unix = rec("net.connect (unix)");
    assert_eq!(unix["dst_endpoint"]["name"], "/run/user/1000/bus");
    let open_rec = rec("file.open");
    assert_eq!(open_rec["file"]["type_id"], 1, "Regular File");
    assert_eq!(open_rec["device"]["hostname"], "dev1");
    let finding = rec("alert (attack tags, evidence)");
    assert_eq!(finding["class_uid"], 2004);
    assert_eq!(finding["finding_info"]["uid"], "a1");
    assert_eq!(finding["finding_info"]["title"], "cred-read");
    let attacks = finding["finding_info"]["attacks"].as_array().unwrap();
    assert!(
        attacks.iter().any(|a| a["technique"]["uid"] == "T1552"
            && a["sub_technique"]["uid"] == "T1552.004"
            && a["tactic"]["uid"] == "TA0006"),
        "{attacks:?}"
    );
    assert!(attacks.iter().any(|a| a["technique"]["uid"] == "T1048"));
    let ev = finding["evidences"].as_array().unwrap();
    assert!(ev.iter().any(|e| e["file"]["path"] == "sample file.path"));
    assert!(ev.iter().any(|e| e["dst_endpoint"]["ip"] == "203.0.113.7"));
    assert!(ev.iter().any(|e| e["data"]["event_uid"] == "gone-1"));
    let triaged = rec("alert (no tags, triaged)");
    assert_eq!(triaged["status_id"], 2, "In Progress");
    assert_eq!(triaged["comment"], "looking");
    assert!(triaged["finding_info"].get("attacks").is_none());
}
