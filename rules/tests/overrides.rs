//! `[[override]]`: local changes to rules by id, applied on top of a policy whose files stay
//! untouched; every bad override is an error at its own `file:line:col`.

use std::sync::Arc;

use agent_model::Severity;
use rules::{Action, Engine, Policy, Source, default_sources, fixtures::event_from_line};

const SHIPPED: &str = r#"
[[rule]]
id = "cred.read"
description = "secret read"
kinds = ["file.open"]
severity = "high"
output = "read {file.path}"
tags = ["credential"]
[rule.condition]
field = "file.path"
prefix = "/secrets/"

[[rule]]
id = "cred.kill"
description = "secret read, killed"
kinds = ["file.open"]
severity = "critical"
output = "read {file.path}"
action = "kill"
mode = "enforce"
[rule.condition]
field = "file.path"
prefix = "/vault/"
"#;

fn compile(local: &str) -> Result<Policy, String> {
    Policy::compile(&[
        Source::from_text("rules/shipped.toml", SHIPPED),
        Source::from_text("rules/local.d/site.toml", local),
    ])
    .map_err(|e| e.to_string())
}

fn info<'a>(p: &'a Policy, id: &str) -> &'a rules::RuleInfo {
    p.rules().iter().find(|r| r.id == id).unwrap()
}

fn open(path: &str) -> agent_model::Event {
    let line = format!(
        r#"{{"kind": "file.open", "process": {{"exe": "/usr/bin/cat"}}, "file": {{"path": "{path}", "access": "read"}}}}"#
    );
    event_from_line(1, &line).unwrap()
}

#[test]
fn override_disables_and_changes_severity_and_tags() {
    let p = compile(
        r#"
[[override]]
rule = "cred.read"
severity = "low"
tags = ["site-ok", "credential"]

[[override]]
rule = "cred.kill"
enabled = false
"#,
    )
    .unwrap();
    let r = info(&p, "cred.read");
    assert_eq!(r.severity, Severity::Low);
    assert!(r.enabled);
    assert_eq!(r.tags, ["credential", "site-ok"]);
    assert_eq!(r.overrides, ["rules/local.d/site.toml:2:1"]);
    assert_eq!(r.defined_at, "rules/shipped.toml:2:1");
    let k = info(&p, "cred.kill");
    assert!(!k.enabled);
    assert_eq!(k.overrides, ["rules/local.d/site.toml:7:1"]);
    let mut e = Engine::new(Arc::new(p));
    let alerts = e.process(&open("/secrets/a"));
    assert_eq!(alerts.len(), 1);
    assert_eq!(alerts[0].severity, Severity::Low);
    assert!(
        e.process(&open("/vault/a")).is_empty(),
        "disabled rule fired"
    );
}

#[test]
fn override_appends_exceptions() {
    let p = compile(
        r#"
[[override]]
rule = "cred.read"
[[override.exceptions]]
field = "file.path"
prefix = "/secrets/public/"
"#,
    )
    .unwrap();
    let mut e = Engine::new(Arc::new(p));
    assert!(e.process(&open("/secrets/public/x")).is_empty());
    assert_eq!(e.process(&open("/secrets/private/x")).len(), 1);
}

#[test]
fn override_changes_the_response() {
    let p = compile(
        r#"
[[override]]
rule = "cred.kill"
mode = "dry_run"
rate_limit = "2/1m"

[[override]]
rule = "cred.read"
action = "freeze_session"
"#,
    )
    .unwrap();
    let k = info(&p, "cred.kill").response.clone().unwrap();
    assert_eq!(
        (k.action, k.dry_run, k.limit),
        (Action::Kill, Some(true), 2)
    );
    let r = info(&p, "cred.read").response.clone().unwrap();
    assert_eq!((r.action, r.dry_run), (Action::FreezeSession, None));
    // `action = "alert"` takes the response away.
    let p = compile("[[override]]\nrule = \"cred.kill\"\naction = \"alert\"\n").unwrap();
    assert!(info(&p, "cred.kill").response.is_none());
}

#[test]
fn later_overrides_win_and_all_are_listed() {
    let p = compile(
        "[[override]]\nrule = \"cred.read\"\nenabled = false\n\n[[override]]\nrule = \"cred.read\"\nenabled = true\nseverity = \"medium\"\n",
    )
    .unwrap();
    let r = info(&p, "cred.read");
    assert!(r.enabled);
    assert_eq!(r.severity, Severity::Medium);
    assert_eq!(r.overrides.len(), 2);
}

#[test]
fn bad_overrides_are_located_errors() {
    let cases: &[(&str, &str)] = &[
        (
            "[[override]]\nrule = \"cred.raed\"\nenabled = false\n",
            "rules/local.d/site.toml:2:8: override names unknown rule `cred.raed`, did you mean `cred.read`?",
        ),
        (
            "[[override]]\nrule = \"cred.read\"\n",
            "rules/local.d/site.toml:2:8: override of rule `cred.read` changes nothing",
        ),
        (
            "[[override]]\nrule = \"cred.read\"\nseverity = \"bogus\"\n",
            "rules/local.d/site.toml:3:12: unknown value `bogus`",
        ),
        (
            "[[override]]\nrule = \"cred.read\"\nenabld = false\n",
            "rules/local.d/site.toml:3:1: unknown key `enabld`, did you mean `enabled`?",
        ),
        (
            "[[override]]\nrule = \"cred.read\"\nmode = \"enforce\"\n",
            "rules/local.d/site.toml:3:8: override sets `mode` but rule `cred.read`'s `action` is `alert`",
        ),
        (
            "[[override]]\nrule = \"cred.kill\"\nmode = \"sometimes\"\n",
            "rules/local.d/site.toml:3:8: unknown mode `sometimes`",
        ),
        (
            "[[override]]\nrule = \"cred.read\"\naction = \"explode\"\n",
            "rules/local.d/site.toml:3:10: unknown action `explode`",
        ),
        (
            "[[override]]\nrule = \"cred.read\"\n[[override.exceptions]]\nfield = \"net.dst_port\"\nequals = 22\n",
            "rules/local.d/site.toml:3:1: field `net.dst_port` does not exist for `file.open` events",
        ),
        (
            "[[override]]\nrule = \"cred.read\"\n[[override.exceptions]]\nfield = \"file.pth\"\nprefix = \"/x\"\n",
            "rules/local.d/site.toml:3:1: unknown field `file.pth`, did you mean `file.path`?",
        ),
    ];
    for (local, want) in cases {
        let e = compile(local).expect_err(local);
        assert!(e.contains(want), "for\n{local}\nwant `{want}` in:\n{e}");
        assert!(
            !e.contains("shipped.toml"),
            "error blamed the shipped file:\n{e}"
        );
    }
}

#[test]
fn the_shipped_policy_takes_overrides_and_its_hash_changes() {
    let base = Policy::compile(&default_sources()).unwrap();
    let id = base.rules()[0].id.clone();
    let mut sources = default_sources();
    sources.push(Source::from_text(
        "local.d/off.toml",
        format!("[[override]]\nrule = \"{id}\"\nenabled = false\n"),
    ));
    let p = Policy::compile(&sources).unwrap();
    assert!(!info(&p, &id).enabled);
    assert_eq!(p.len(), base.len());
    assert_ne!(p.hash(), base.hash());
}
