//! Bad policy input (shared/anchors.md): every case is rejected with a clear
//! `file:line:col: message`.
//!
//! Each `tests/invalid/<case>.toml` (or `<case>/` directory of files, loaded in name order) has
//! a `<case>.expected` whose non-empty lines must each appear in the error output. Cases that
//! are too big to commit (huge files, 10,000 nesting levels, 100k rules) or that need file
//! metadata (non-regular, world-writable) are generated below.

use std::path::{Path, PathBuf};
use std::time::Instant;

use rules::{Engine, Policy, Source, default_sources};

fn case_sources(path: &Path) -> Vec<Source> {
    let mut files: Vec<PathBuf> = if path.is_dir() {
        std::fs::read_dir(path)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect()
    } else {
        vec![path.to_path_buf()]
    };
    files.sort();
    files
        .iter()
        .map(|f| {
            let name = f
                .strip_prefix(path.parent().unwrap())
                .unwrap()
                .display()
                .to_string();
            Source {
                name,
                bytes: std::fs::read(f).unwrap(),
                regular_file: true,
                mode: 0o100644,
                extends_optional: false,
            }
        })
        .collect()
}

fn errors_of(sources: &[Source]) -> String {
    match Policy::compile(sources) {
        Ok(p) => panic!("policy was accepted ({} rules)", p.len()),
        Err(e) => e.to_string(),
    }
}

fn assert_located(errors: &str) {
    for line in errors.lines() {
        let mut parts = line.splitn(4, ':');
        let (file, l, c) = (parts.next(), parts.next(), parts.next());
        assert!(
            file.is_some_and(|f| !f.is_empty())
                && l.is_some_and(|l| l.parse::<usize>().is_ok())
                && c.is_some_and(|c| c.parse::<usize>().is_ok())
                && parts.next().is_some_and(|m| m.starts_with(' ')),
            "error line without file:line:col: {line}"
        );
    }
}

#[test]
fn every_invalid_fixture_fails_with_its_expected_error() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/invalid");
    let mut cases: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir() || p.extension().is_some_and(|x| x == "toml"))
        .collect();
    cases.sort();
    assert!(cases.len() >= 40, "only {} cases", cases.len());
    let mut failures = Vec::new();
    for case in &cases {
        let expected_path = case.with_extension("expected");
        let errors = match Policy::compile(&case_sources(case)) {
            Ok(_) => {
                failures.push(format!("{}: accepted", case.display()));
                continue;
            }
            Err(e) => e.to_string(),
        };
        assert_located(&errors);
        let Ok(expected) = std::fs::read_to_string(&expected_path) else {
            failures.push(format!(
                "{}: no .expected; actual:\n{errors}",
                case.display()
            ));
            continue;
        };
        for want in expected.lines().filter(|l| !l.trim().is_empty()) {
            if !errors.contains(want) {
                failures.push(format!(
                    "{}: missing `{want}` in:\n{errors}",
                    case.display()
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

fn rule_text(id: &str) -> String {
    format!(
        "[[rule]]\nid = \"{id}\"\ndescription = \"d\"\nkinds = [\"file.open\"]\nseverity = \"low\"\noutput = \"{{file.path}}\"\ncondition = {{ field = \"file.path\", prefix = \"/etc/\" }}\n"
    )
}

#[test]
fn non_regular_file_is_rejected() {
    let mut s = Source::from_text("/etc/agentwatch/rules/fifo.toml", rule_text("a"));
    s.regular_file = false;
    let e = errors_of(&[s]);
    assert!(e.contains("/etc/agentwatch/rules/fifo.toml:1:1: `/etc/agentwatch/rules/fifo.toml` is not a regular file"), "{e}");
}

#[test]
fn world_writable_file_is_rejected() {
    let mut s = Source::from_text("rules.toml", rule_text("a"));
    s.mode = 0o100666;
    let e = errors_of(&[s]);
    assert!(
        e.contains("rules.toml:1:1: `rules.toml` is world-writable (mode `666`)"),
        "{e}"
    );
}

#[test]
fn huge_file_is_rejected_without_parsing() {
    let mut text = rule_text("a");
    while text.len() <= rules::MAX_FILE_BYTES {
        text.push_str(
            "# padding padding padding padding padding padding padding padding padding\n",
        );
    }
    let e = errors_of(&[Source::from_text("big.toml", text)]);
    assert!(e.contains("big.toml:1:1: file is `"), "{e}");
    assert!(e.contains("more than the limit of `1048576`"), "{e}");
}

#[test]
fn huge_line_is_rejected() {
    let text = format!(
        "{}# {}\n",
        rule_text("a"),
        "x".repeat(rules::MAX_LINE_BYTES + 10)
    );
    let e = errors_of(&[Source::from_text("line.toml", text)]);
    assert!(e.contains("line.toml:8:1: line is `"), "{e}");
}

#[test]
fn ten_thousand_nesting_levels_are_rejected_quickly() {
    let depth = 10_000;
    let cond = format!(
        "{}{{ field = \"file.path\", prefix = \"/etc/\" }}{}",
        "{ any = [\n".repeat(depth),
        "] }\n".repeat(depth)
    );
    let text = rule_text("a").replace(
        "condition = { field = \"file.path\", prefix = \"/etc/\" }",
        &format!("condition = {cond}"),
    );
    let start = Instant::now();
    let e = errors_of(&[Source::from_text("deep.toml", text)]);
    assert_eq!(e.lines().count(), 1, "{e}");
    assert!(e.starts_with("deep.toml:"), "{e}");
    assert!(e.contains("nesting is too deep"), "{e}");
    assert!(start.elapsed().as_secs() < 5);
}

#[test]
fn a_hundred_thousand_rules_are_rejected() {
    let sources: Vec<Source> = (0..100)
        .map(|f| {
            let text: String = (0..1000)
                .map(|i| rule_text(&format!("r.{f}.{i}")))
                .collect();
            Source::from_text(format!("bulk{f:03}.toml"), text)
        })
        .collect();
    let start = Instant::now();
    let e = errors_of(&sources);
    assert!(e.contains("policy has more than `10000` rules"), "{e}");
    assert!(start.elapsed().as_secs() < 30);
}

#[test]
fn no_sources_is_an_error() {
    assert!(errors_of(&[]).contains("no policy files given"));
}

#[test]
fn all_errors_are_reported_not_only_the_first() {
    let text = format!(
        "{}{}",
        rule_text("a").replace("prefix = \"/etc/\"", "regex = \"(\""),
        rule_text("b").replace("file.path\", prefix", "file.pth\", prefix")
    );
    let e = errors_of(&[Source::from_text("two.toml", text)]);
    assert_eq!(e.lines().count(), 2, "{e}");
    assert!(e.contains("two.toml:7:13: bad regex"), "{e}");
    assert!(
        e.contains("two.toml:14:13: unknown field `file.pth`, did you mean `file.path`?"),
        "{e}"
    );
}

/// Reload storms: the daemon may compile and swap many times a second; a rejected compile
/// leaves the running engine untouched, and repeated swaps keep state bounded.
#[test]
fn reload_storm_keeps_the_running_policy_and_bounded_state() {
    let good = std::sync::Arc::new(Policy::compile(&default_sources()).unwrap());
    let mut engine = Engine::new(good.clone());
    for i in 0..200 {
        let mut sources = default_sources();
        if i % 2 == 0 {
            // A half-written file arrives mid-reload.
            let half = sources[0].bytes.len() / 2;
            sources[0].bytes.truncate(half);
            assert!(Policy::compile(&sources).is_err());
        } else {
            let p = Policy::compile(&sources).unwrap();
            assert_eq!(p.hash(), good.hash());
            engine.swap_policy(std::sync::Arc::new(p));
        }
    }
    assert_eq!(engine.policy().len(), good.len());
    assert_eq!(engine.state_bytes(), Engine::new(good).state_bytes());
}
