//! `docs/api.md` against the types: every example in it parses into the request or answer type
//! of its section and is written back unchanged (so the doc names exactly the fields the types
//! send), and every op of [`Request`] has a row in the table and a section with examples.

use agent_api::{
    AlertList, Done, HookAnswer, OfflineStatus, Registered, Reply, Request, Responded,
    RulesListing, SearchResults, SessionDetail, SessionList, Status, StreamItem,
};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

const DOC: &str = include_str!("../../docs/api.md");

/// A fenced example: its section (`op`, or the heading text), its role, and its JSON.
struct Example {
    section: String,
    role: String,
    json: String,
    line: usize,
}

fn examples() -> Vec<Example> {
    let mut out = Vec::new();
    let mut section = String::new();
    let mut open: Option<Example> = None;
    for (i, l) in DOC.lines().enumerate() {
        if let Some(ex) = &mut open {
            if l.starts_with("```") {
                out.extend(open.take());
            } else {
                ex.json.push_str(l);
                ex.json.push('\n');
            }
        } else if let Some(h) = l.strip_prefix("### ") {
            section = h.trim().trim_matches('`').to_owned();
        } else if let Some(role) = l.strip_prefix("```json ") {
            open = Some(Example {
                section: section.clone(),
                role: role.trim().to_owned(),
                json: String::new(),
                line: i + 1,
            });
        }
    }
    assert!(open.is_none(), "unclosed code block in docs/api.md");
    out
}

/// Parse `ex` as `T` and check that writing it back gives the same JSON.
fn round_trip<T: DeserializeOwned + Serialize>(ex: &Example) -> T {
    let doc: Value = serde_json::from_str(&ex.json)
        .unwrap_or_else(|e| panic!("docs/api.md:{}: not JSON: {e}", ex.line));
    let t: T = serde_json::from_value(doc.clone()).unwrap_or_else(|e| {
        panic!(
            "docs/api.md:{}: does not parse as {}: {e}",
            ex.line,
            std::any::type_name::<T>()
        )
    });
    let back = serde_json::to_value(&t).unwrap();
    assert_eq!(
        back, doc,
        "docs/api.md:{}: the types write this example back differently (a field missing from the doc or the types?)",
        ex.line
    );
    t
}

fn ok<T: DeserializeOwned + Serialize>(ex: &Example) {
    match round_trip::<Reply<T>>(ex) {
        Reply::Ok(_) => {}
        Reply::Err(e) => panic!(
            "docs/api.md:{}: an `answer` example must succeed (`error` blocks fail): {e}",
            ex.line
        ),
    }
}

#[test]
fn every_example_parses_into_its_type_and_writes_back_unchanged() {
    let all = examples();
    assert!(all.len() > 20, "examples not found: {}", all.len());
    for ex in &all {
        match (ex.section.as_str(), ex.role.as_str()) {
            (op, "request") => {
                let r: Request = round_trip(ex);
                assert_eq!(
                    r.op(),
                    op,
                    "docs/api.md:{}: request in the wrong section",
                    ex.line
                );
            }
            ("register", "answer") => ok::<Registered>(ex),
            // The offline answer parses as a `Status` too, but is written as its own type.
            ("status", "answer") if ex.json.contains("\"offline\"") => {
                ok::<OfflineStatus>(ex);
                let st: Reply<Status> = serde_json::from_str(&ex.json).unwrap();
                assert!(matches!(st, Reply::Ok(Status { offline: true, .. })));
            }
            ("status", "answer") => ok::<Status>(ex),
            ("subscribe" | "triage", "answer") => ok::<Done>(ex),
            ("subscribe", "stream") => {
                round_trip::<StreamItem>(ex);
            }
            ("rules", "answer") => ok::<RulesListing>(ex),
            ("search", "answer") => ok::<SearchResults>(ex),
            ("alerts", "answer") => ok::<AlertList>(ex),
            ("sessions", "answer") => ok::<SessionList>(ex),
            ("session", "answer") => ok::<SessionDetail>(ex),
            ("hook", "answer") => ok::<HookAnswer>(ex),
            ("respond", "answer") => ok::<Responded>(ex),
            (_, "error") => {
                assert!(
                    matches!(round_trip::<Reply<Done>>(ex), Reply::Err(_)),
                    "docs/api.md:{}: an `error` example must fail",
                    ex.line
                );
            }
            (s, r) => panic!(
                "docs/api.md:{}: unexpected `{r}` block in section `{s}`",
                ex.line
            ),
        }
    }
}

#[test]
fn every_op_has_a_table_row_and_examples_of_its_request_and_answer() {
    let all = examples();
    for op in Request::OPS {
        assert!(
            DOC.contains(&format!("| `{{\"op\": \"{op}\"")),
            "docs/api.md: no table row for `{op}`"
        );
        for role in ["request", "answer"] {
            assert!(
                all.iter().any(|e| e.section == op && e.role == role),
                "docs/api.md: no `{role}` example for `{op}`"
            );
        }
    }
    for ex in &all {
        assert!(
            ex.section == "Errors" || Request::OPS.contains(&ex.section.as_str()),
            "docs/api.md:{}: section `{}` names no op",
            ex.line,
            ex.section
        );
    }
}

/// The parser of this test must see through a broken example, or the tests above prove nothing.
#[test]
fn a_field_the_types_do_not_know_is_caught() {
    let ex = Example {
        section: "register".into(),
        role: "answer".into(),
        json: r#"{"ok": true, "session": "00000000000000ab", "pid": 1, "user": "alice"}"#.into(),
        line: 0,
    };
    assert!(std::panic::catch_unwind(|| ok::<Registered>(&ex)).is_err());
}
