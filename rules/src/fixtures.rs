//! Rule fixtures: recorded (or hand-written) events and the alerts they must and must not raise.
//!
//! A fixture file is TOML:
//!
//! ```toml
//! rule = "cred.ssh_private_key"        # optional: the rule these cases are about
//!
//! [[case]]
//! name = "cat reads a private key"
//! expect = ["cred.ssh_private_key"]    # rules that must fire
//! expect_not = []                      # rules that must not fire
//! max_severity = "low"                 # optional: no alert above this severity
//! events = '''
//! {"kind":"file.open","process":{"exe":"/usr/bin/cat"},"file":{"path":"/home/a/.ssh/id_rsa","access":"read"}}
//! '''
//! ```
//!
//! `events` holds JSON lines. Each line is merged (objects key by key, anything else replaced)
//! onto a base event: id `fx-<n>`, host `fixture`, agent `agent`, session `00000000000000f1`,
//! process `/usr/bin/true` pid 1000 uid 1000, ancestry `[/usr/bin/bash, /usr/local/bin/agent]`,
//! time `2026-01-01T00:00:00Z` plus 1 ms per line. `"@t": 12.5` sets the time to base + 12.5 s.
//! `process.comm` defaults to the basename of `process.exe`, and `process.cmdline` to the
//! joined `process.args`. The result must be a valid event (unknown keys are errors).
//! Each case runs on a fresh engine, which is flushed at the end, so folded counts are seen.
//!
//! A `.jsonl` fixture (handy for recorded sessions) holds the same in JSON lines: an optional
//! `{"@rule": "id"}` line, then for each case a `{"@case": "name", "expect": [...],
//! "expect_not": [...], "max_severity": "low"}` line followed by its events.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use agent_model::{Event, Severity, Timestamp};
use serde::Deserialize;
use serde_json::{Map, Value as Json, json};

use crate::engine::Engine;
use crate::error::{Error, line_col};
use crate::policy::{Policy, Source};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FixtureFile {
    rule: Option<String>,
    #[serde(default)]
    case: Vec<toml::Spanned<CaseDef>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CaseDef {
    name: String,
    #[serde(default)]
    expect: Vec<String>,
    #[serde(default)]
    expect_not: Vec<String>,
    max_severity: Option<Severity>,
    events: String,
}

/// The outcome of one case.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CaseResult {
    /// Fixture file name.
    pub file: String,
    /// The rule the case is about (the file's `rule`, else the first expected id).
    pub rule: String,
    pub name: String,
    pub passed: bool,
    /// Why it failed (empty when it passed).
    pub message: String,
    /// Rule ids that fired, sorted and unique.
    pub fired: Vec<String>,
}

/// Everything `rules test` reports.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TestReport {
    pub cases: Vec<CaseResult>,
    /// Problems that are not one case: unreadable fixtures, rules without a positive or a
    /// negative case, expectations naming unknown rules.
    pub errors: Vec<String>,
}

impl TestReport {
    /// Per-rule results: rule → (cases passed, cases failed), plus coverage failures.
    pub fn by_rule(&self) -> BTreeMap<String, (usize, usize)> {
        let mut m: BTreeMap<String, (usize, usize)> = BTreeMap::new();
        for c in &self.cases {
            let e = m.entry(c.rule.clone()).or_default();
            if c.passed {
                e.0 += 1;
            } else {
                e.1 += 1;
            }
        }
        m
    }

    pub fn passed(&self) -> usize {
        self.cases.iter().filter(|c| c.passed).count()
    }

    pub fn failed(&self) -> usize {
        self.cases.iter().filter(|c| !c.passed).count() + self.errors.len()
    }

    pub fn ok(&self) -> bool {
        self.failed() == 0
    }
}

impl fmt::Display for TestReport {
    /// One line per rule (`ok` or `FAIL`), the failing cases and errors, then
    /// `N passed, M failed` counting cases (each error counts as one failure).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (rule, (p, n)) in self.by_rule() {
            let status = if n == 0 { "ok  " } else { "FAIL" };
            writeln!(f, "{status} {rule} ({p} passed, {n} failed)")?;
            for c in self.cases.iter().filter(|c| c.rule == rule && !c.passed) {
                writeln!(f, "     {}: {}: {}", c.file, c.name, c.message)?;
            }
        }
        for e in &self.errors {
            writeln!(f, "FAIL {e}")?;
        }
        write!(f, "{} passed, {} failed", self.passed(), self.failed())
    }
}

/// The base every fixture event is merged onto.
fn base_event(n: usize) -> Json {
    json!({
        "id": format!("fx-{n}"),
        "time": "2026-01-01T00:00:00Z",
        "host": "fixture",
        "kind": "process.exec",
        "agent": {"name": "agent"},
        "session": {"id": "00000000000000f1"},
        "process": {"pid": 1000, "tid": 1000, "start": "2026-01-01T00:00:00Z", "exe": "/usr/bin/true",
                    "comm": "true", "uid": 1000, "gid": 1000, "cwd": "/home/dev/project"},
        "parent": {"pid": 999, "exe": "/usr/bin/bash"},
        "ancestry": ["/usr/bin/bash", "/usr/local/bin/agent"],
    })
}

fn merge(base: &mut Json, over: Json) {
    match (base, over) {
        (Json::Object(b), Json::Object(o)) => {
            for (k, v) in o {
                match b.get_mut(&k) {
                    Some(slot) if slot.is_object() && v.is_object() => merge(slot, v),
                    _ => {
                        b.insert(k, v);
                    }
                }
            }
        }
        (b, o) => *b = o,
    }
}

const BASE_NS: i64 = 1_767_225_600_000_000_000; // 2026-01-01T00:00:00Z

/// Build an event from one fixture line (see the module docs).
pub fn event_from_line(n: usize, line: &str) -> Result<Event, String> {
    let over: Json = serde_json::from_str(line).map_err(|e| format!("bad JSON: {e}"))?;
    let Json::Object(mut over) = over else {
        return Err("an event line must be a JSON object".into());
    };
    let at = over.remove("@t");
    let mut ev = base_event(n);
    let has_comm = over.get("process").and_then(|p| p.get("comm")).is_some();
    let has_cmdline = over.get("process").and_then(|p| p.get("cmdline")).is_some();
    merge(&mut ev, Json::Object(over));
    let time = match at {
        Some(t) => {
            let s = t.as_f64().ok_or("`@t` must be a number of seconds")?;
            Timestamp(BASE_NS + (s * 1e9) as i64)
        }
        None => Timestamp(BASE_NS + n as i64 * 1_000_000),
    };
    let p: &mut Map<String, Json> = ev
        .get_mut("process")
        .and_then(Json::as_object_mut)
        .ok_or("`process` must be an object")?;
    if !has_comm && let Some(exe) = p.get("exe").and_then(Json::as_str) {
        let base: String = exe
            .rsplit('/')
            .next()
            .unwrap_or(exe)
            .chars()
            .take(15)
            .collect();
        p.insert("comm".into(), Json::String(base));
    }
    if !has_cmdline && let Some(args) = p.get("args").and_then(Json::as_array) {
        let joined: Vec<&str> = args.iter().filter_map(Json::as_str).collect();
        p.insert("cmdline".into(), Json::String(joined.join(" ")));
    }
    let mut ev: Event =
        serde_json::from_value(ev).map_err(|e| format!("not a valid event: {e}"))?;
    if !line.contains("\"time\"") {
        ev.time = time;
    }
    Ok(ev)
}

/// Run fixture files against a policy.
pub fn run(policy: &Policy, fixture_sources: &[Source]) -> TestReport {
    // Cheap: a policy's compiled parts are shared.
    let policy = Arc::new(policy.clone());
    let mut report = TestReport::default();
    let known: std::collections::HashSet<&str> =
        policy.rules().iter().map(|r| r.id.as_str()).collect();
    let mut positive: std::collections::HashSet<String> = Default::default();
    let mut negative: std::collections::HashSet<String> = Default::default();
    for src in fixture_sources {
        let text = match std::str::from_utf8(&src.bytes) {
            Ok(t) => t,
            Err(e) => {
                report.errors.push(format!(
                    "{}: invalid UTF-8 at byte {}",
                    src.name,
                    e.valid_up_to()
                ));
                continue;
            }
        };
        let parsed = if src.name.ends_with(".jsonl") {
            parse_jsonl(&src.name, text)
        } else {
            parse_toml(&src.name, text)
        };
        let (file_rule, cases) = match parsed {
            Ok(x) => x,
            Err(e) => {
                report.errors.push(e);
                continue;
            }
        };
        if cases.is_empty() {
            report
                .errors
                .push(format!("{}: no cases in fixture file", src.name));
        }
        for (line, case) in cases {
            let rule = file_rule
                .clone()
                .or_else(|| case.expect.first().cloned())
                .or_else(|| case.expect_not.first().cloned())
                .unwrap_or_else(|| format!("fixture:{}", case.name));
            for id in case.expect.iter().chain(&case.expect_not) {
                if !known.contains(id.as_str()) {
                    report.errors.push(format!(
                        "{}:{line}:1: case `{}` names unknown rule `{id}`",
                        src.name, case.name
                    ));
                }
            }
            positive.extend(case.expect.iter().cloned());
            negative.extend(case.expect_not.iter().cloned());
            report.cases.push(run_case(&policy, &src.name, rule, &case));
        }
    }
    for r in policy.rules() {
        if !r.enabled {
            continue;
        }
        if !positive.contains(&r.id) {
            report.errors.push(format!(
                "rule `{}` has no positive fixture (a case with it in `expect`)",
                r.id
            ));
        }
        if !negative.contains(&r.id) {
            report.errors.push(format!(
                "rule `{}` has no negative fixture (a case with it in `expect_not`)",
                r.id
            ));
        }
    }
    report
}

type Parsed = (Option<String>, Vec<(usize, CaseDef)>);

fn parse_toml(name: &str, text: &str) -> Result<Parsed, String> {
    let file: FixtureFile = match toml::from_str(text) {
        Ok(f) => f,
        Err(e) => {
            let (l, c) = line_col(text.as_bytes(), e.span().map_or(0, |s| s.start));
            return Err(Error::Fixture {
                file: name.to_string(),
                line: l,
                col: c,
                message: e.message().trim().to_string(),
            }
            .to_string());
        }
    };
    let cases = file
        .case
        .into_iter()
        .map(|c| {
            let (line, _) = line_col(text.as_bytes(), c.span().start);
            (line, c.into_inner())
        })
        .collect();
    Ok((file.rule, cases))
}

/// A directive line of a JSONL fixture.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct JsonDirective {
    #[serde(rename = "@rule")]
    rule: Option<String>,
    #[serde(rename = "@case")]
    case: Option<String>,
    #[serde(default)]
    expect: Vec<String>,
    #[serde(default)]
    expect_not: Vec<String>,
    max_severity: Option<Severity>,
}

/// JSONL fixtures: `{"@rule": "id"}` (optional, first), then for each case a directive line
/// `{"@case": "name", "expect": [...], "expect_not": [...], "max_severity": "low"}` followed by
/// its event lines.
fn parse_jsonl(name: &str, text: &str) -> Result<Parsed, String> {
    let mut rule = None;
    let mut cases: Vec<(usize, CaseDef)> = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let t = line.trim();
        if t.is_empty() {
            continue;
        }
        if t.starts_with("{\"@rule\"") || t.starts_with("{\"@case\"") {
            let d: JsonDirective =
                serde_json::from_str(t).map_err(|e| format!("{name}:{}:1: {e}", i + 1))?;
            if let Some(r) = d.rule {
                rule = Some(r);
            }
            if let Some(c) = d.case {
                cases.push((
                    i + 1,
                    CaseDef {
                        name: c,
                        expect: d.expect,
                        expect_not: d.expect_not,
                        max_severity: d.max_severity,
                        events: String::new(),
                    },
                ));
            }
            continue;
        }
        let Some((_, case)) = cases.last_mut() else {
            return Err(format!(
                "{name}:{}:1: event before the first `@case` line",
                i + 1
            ));
        };
        case.events.push_str(t);
        case.events.push('\n');
    }
    Ok((rule, cases))
}

fn run_case(policy: &Arc<Policy>, file: &str, rule: String, case: &CaseDef) -> CaseResult {
    let mut result = CaseResult {
        file: file.to_string(),
        rule,
        name: case.name.clone(),
        passed: false,
        message: String::new(),
        fired: Vec::new(),
    };
    let mut engine = Engine::new(Arc::clone(policy));
    let mut alerts = Vec::new();
    let mut last = Timestamp(BASE_NS);
    for (n, line) in case
        .events
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .enumerate()
    {
        match event_from_line(n, line) {
            Ok(ev) => {
                last = last.max(ev.time);
                alerts.extend(engine.process(&ev));
            }
            Err(e) => {
                result.message = format!("event {}: {e}", n + 1);
                return result;
            }
        }
    }
    alerts.extend(engine.flush(Timestamp(last.0 + 86_400_000_000_000)));
    let mut fired: Vec<String> = alerts.iter().map(|a| a.rule.clone()).collect();
    fired.sort();
    fired.dedup();
    let mut problems = Vec::new();
    for e in &case.expect {
        if !fired.contains(e) {
            problems.push(format!("expected `{e}` to fire"));
        }
    }
    for e in &case.expect_not {
        if fired.contains(e) {
            problems.push(format!("expected `{e}` not to fire"));
        }
    }
    if let Some(max) = case.max_severity {
        for a in alerts.iter().filter(|a| a.severity > max) {
            problems.push(format!(
                "`{}` fired at `{}`, above `{max}`: {}",
                a.rule, a.severity, a.summary
            ));
        }
    }
    if problems.is_empty() {
        result.passed = true;
    } else {
        result.message = format!("{} (fired: [{}])", problems.join("; "), fired.join(", "));
    }
    result.fired = fired;
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> Policy {
        Policy::compile(&[Source::from_text(
            "p.toml",
            "[[rule]]\nid = \"t.etc\"\ndescription = \"d\"\nkinds = [\"file.open\"]\nseverity = \"high\"\noutput = \"{file.path}\"\ncondition = { field = \"file.path\", prefix = \"/etc/\" }\n",
        )])
        .unwrap()
    }

    #[test]
    fn jsonl_fixtures_run_and_report_failures() {
        let fx = Source::from_text(
            "t.jsonl",
            r#"{"@rule": "t.etc"}
{"@case": "hit", "expect": ["t.etc"]}
{"kind":"file.open","file":{"path":"/etc/x"}}
{"@case": "miss", "expect_not": ["t.etc"]}
{"kind":"file.open","file":{"path":"/home/x"}}
{"@case": "wrong", "expect": ["t.etc"]}
{"kind":"file.open","file":{"path":"/tmp/x"}}
"#,
        );
        let r = run(&policy(), &[fx]);
        assert_eq!((r.passed(), r.failed()), (2, 1), "{r}");
        assert!(
            r.to_string()
                .contains("t.jsonl: wrong: expected `t.etc` to fire"),
            "{r}"
        );
        assert!(r.to_string().ends_with("2 passed, 1 failed"), "{r}");
    }

    #[test]
    fn max_severity_and_bad_events_fail_cases() {
        let fx = Source::from_text(
            "t.toml",
            r#"[[case]]
name = "quiet"
max_severity = "low"
expect_not = ["t.etc"]
events = '{"kind":"file.open","file":{"path":"/etc/x"}}'
[[case]]
name = "broken"
expect = ["t.etc"]
events = '{"kind":"file.open","file":{"path":"/etc/x","colour":"red"}}'
"#,
        );
        let r = run(&policy(), &[fx]);
        let text = r.to_string();
        assert!(
            text.contains("`t.etc` fired at `high`, above `low`"),
            "{text}"
        );
        assert!(
            text.contains("broken: event 1: not a valid event"),
            "{text}"
        );
        assert_eq!(r.passed(), 0);
    }

    #[test]
    fn jsonl_event_before_a_case_is_an_error() {
        let fx = Source::from_text("t.jsonl", "{\"kind\":\"file.open\"}\n");
        let r = run(&policy(), &[fx]);
        assert!(
            r.errors
                .iter()
                .any(|e| e.contains("t.jsonl:1:1: event before the first `@case` line")),
            "{r}"
        );
    }
}
