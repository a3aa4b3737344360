//! Hostile values (escapes, invalid UTF-8, bidi, 64 KiB paths, 128 KiB arguments, query syntax,
//! JSON-hostile characters) round-trip byte-exact through spool, index and export.

mod common;

use agent_model::{BStr, Event, Severity};
use agent_store::export::{write_jsonl, write_ocsf};
use agent_store::{Item, Reader, SearchRequest};
use common::*;

fn hostile_events() -> Vec<Event> {
    let mut out = Vec::new();
    let mut e = open_event(
        "h-esc",
        1,
        "/tmp/\x1b[2J\x1b]0;pwned\x07\u{9b}31m\nname\r\"quote\"\\",
    );
    e.process.cmdline = BStr::from("echo \x1b]52;c;aGVsbG8=\x07 \u{202e}txt.exe \u{200b}");
    out.push(e);
    let mut e = open_event("h-bin", 2, "x");
    e.file.as_mut().unwrap().path =
        BStr(vec![b'/', b't', 0xff, 0xfe, 0x00, b'\n', 0xc3, b'(', 0x80]);
    e.process.exe = BStr(vec![b'/', 0xed, 0xa0, 0x80, b'x']);
    e.process.args = vec![BStr(vec![0xff; 10]), BStr::from("ok")];
    out.push(e);
    let long_path = format!("/{}", "a/".repeat(32 * 1024));
    assert!(long_path.len() >= 64 * 1024);
    out.push(open_event("h-long", 3, &long_path));
    let big_arg = "B".repeat(128 * 1024);
    let mut e = exec_event(
        "h-args",
        4,
        "/usr/bin/python3",
        &["python3", "-c", &big_arg],
    );
    e.process.args_truncated = true;
    out.push(e);
    out.push(open_event(
        "h-query",
        5,
        "- * a:(^ [unbalanced {x TO \"y AND NOT b",
    ));
    out.push(open_event(
        "h-combining",
        6,
        &format!("/tmp/z{}", "\u{0301}".repeat(5000)),
    ));
    out
}

#[test]
fn hostile_values_round_trip_byte_exact() {
    let dir = tempfile::tempdir().unwrap();
    let evs = hostile_events();
    {
        let (s, _) = open(dir.path());
        for e in &evs {
            s.append_event(e).unwrap();
        }
        let mut a = alert("h-alert", 7, "rule-\x1b[31m", Severity::Critical, "x");
        a.summary = BStr(vec![b's', 0xff, b'\x1b', b'[', b'H']);
        s.append_alert(&a).unwrap();
        s.close().unwrap();
    }
    let r = Reader::open(dir.path()).unwrap();
    for e in &evs {
        let hits = r.by_id(&e.id).unwrap();
        assert_eq!(hits.len(), 1, "{}", e.id);
        let h = &hits[0];
        assert_eq!(h.json, e.to_json(), "{} stored JSON", e.id);
        assert_eq!(
            h.hit.item,
            Item::Event(Box::new(e.clone())),
            "{} decoded",
            e.id
        );
    }
    // Found through the index by their hostile values.
    let q = |q: &str| {
        r.search(&SearchRequest {
            query: q.into(),
            limit: 10,
            ..SearchRequest::default()
        })
        .unwrap()
        .hits
        .iter()
        .map(|h| h.hit.item.id().to_string())
        .collect::<Vec<_>>()
    };
    let long = String::from_utf8(evs[2].file.as_ref().unwrap().path.0.clone()).unwrap();
    assert_eq!(q(&format!("path:\"{long}\"")), ["h-long"]);
    assert_eq!(q("path:/tmp/\\x1b*"), Vec::<String>::new());
    assert_eq!(q("pwned"), ["h-esc"]);
    assert_eq!(q("path:*pwned*"), ["h-esc"]);
    assert_eq!(q("process.args_truncated:true"), ["h-args"]);
    assert_eq!(q("\"[unbalanced\""), ["h-query"]);
    assert_eq!(q("kind:alert"), ["h-alert"]);
    // Export: JSON lines are exactly what went in.
    let all = r
        .search(&SearchRequest {
            query: "*".into(),
            limit: 100,
            ..SearchRequest::default()
        })
        .unwrap()
        .hits;
    let mut out = Vec::new();
    write_jsonl(&all, &mut out).unwrap();
    let mut expect = Vec::new();
    for h in &all {
        let json = match &h.hit.item {
            Item::Event(e) => e.to_json(),
            Item::Alert(a) => serde_json::to_string(a).unwrap(),
        };
        expect.extend_from_slice(json.as_bytes());
        expect.push(b'\n');
    }
    assert_eq!(out, expect);
    for (line, h) in out.split(|b| *b == b'\n').zip(&all) {
        match &h.hit.item {
            Item::Event(e) => assert_eq!(&serde_json::from_slice::<Event>(line).unwrap(), &**e),
            Item::Alert(a) => {
                assert_eq!(
                    &serde_json::from_slice::<agent_model::Alert>(line).unwrap(),
                    &**a
                )
            }
        }
    }
    // OCSF: valid JSON, one object a line, raw_data carries the exact record.
    let mut o = Vec::new();
    write_ocsf(&all, &mut o).unwrap();
    let lines: Vec<&[u8]> = o.split(|b| *b == b'\n').filter(|l| !l.is_empty()).collect();
    assert_eq!(lines.len(), all.len());
    for (line, h) in lines.iter().zip(&all) {
        let v: serde_json::Value = serde_json::from_slice(line).unwrap();
        assert_eq!(v["raw_data"].as_str().unwrap(), h.json);
        let class = v["class_uid"].as_u64().unwrap();
        match &h.hit.item {
            Item::Alert(_) => assert_eq!(class, 2004),
            Item::Event(e) => match e.kind() {
                agent_model::Kind::FileOpen => assert_eq!(class, 1001),
                agent_model::Kind::ProcessExec => assert_eq!(class, 1007),
                _ => {}
            },
        }
    }
}

#[test]
fn ocsf_network_and_process_mapping() {
    let dir = tempfile::tempdir().unwrap();
    let (s, _) = open(dir.path());
    s.append_event(&connect_event("n1", 1, "10.0.0.7", 443))
        .unwrap();
    s.append_event(&exec_event("p1", 2, "/usr/bin/curl", &["curl", "x"]))
        .unwrap();
    s.commit().unwrap();
    let r = s.reader().unwrap();
    let hits = r
        .search(&SearchRequest {
            query: "*".into(),
            limit: 10,
            ..SearchRequest::default()
        })
        .unwrap()
        .hits;
    let mut o = Vec::new();
    write_ocsf(&hits, &mut o).unwrap();
    let vs: Vec<serde_json::Value> = o
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| serde_json::from_slice(l).unwrap())
        .collect();
    let net = vs.iter().find(|v| v["class_uid"] == 4001).unwrap();
    assert_eq!(net["dst_endpoint"]["ip"], "10.0.0.7");
    assert_eq!(net["dst_endpoint"]["port"], 443);
    assert_eq!(net["type_uid"], 400101);
    let p = vs.iter().find(|v| v["class_uid"] == 1007).unwrap();
    assert_eq!(p["process"]["cmd_line"], "curl x");
    // Process Launch: the actor is the parent that started it (OCSF), the process is the new one.
    assert_eq!(p["actor"]["process"]["pid"], 4200);
    assert_eq!(p["process"]["parent_process"]["pid"], 4200);
    assert_eq!(p["unmapped"]["session.id"], "00000000000000ab");
}
