//! The shipped default policy: it compiles, covers every category of design §1 with ATT&CK
//! tags, every rule has passing positive and negative fixtures, and the recorded benign
//! session stays at `low` or below.

use std::path::Path;

use rules::{Policy, Source, default_sources, fixtures};

fn fixture_sources() -> Vec<Source> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("policy/fixtures");
    let mut paths: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml" || x == "jsonl"))
        .collect();
    paths.sort();
    paths
        .iter()
        .map(|p| Source::from_text(p.display().to_string(), std::fs::read_to_string(p).unwrap()))
        .collect()
}

#[test]
fn default_policy_compiles_with_at_least_40_rules() {
    let p = Policy::compile(&default_sources()).unwrap_or_else(|e| panic!("{e}"));
    assert!(p.len() >= 40, "only {} rules", p.len());
    assert_eq!(p.hash().len(), 16);
}

#[test]
fn embedded_policy_matches_the_policy_directory() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("policy");
    let mut on_disk: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    on_disk.sort();
    let mut embedded: Vec<String> = rules::DEFAULT_POLICY
        .iter()
        .map(|(n, _)| n.to_string())
        .collect();
    embedded.sort();
    assert_eq!(on_disk, embedded, "update DEFAULT_POLICY in lib.rs");
    for (n, text) in rules::DEFAULT_POLICY {
        assert_eq!(std::fs::read_to_string(dir.join(n)).unwrap(), *text);
    }
}

#[test]
fn every_category_is_covered_with_attack_tags() {
    let p = Policy::compile(&default_sources()).unwrap();
    for prefix in [
        "cred.", "exfil.", "disc.", "priv.", "persist.", "evasion.", "deleg.", "monitor.",
    ] {
        let n = p
            .rules()
            .iter()
            .filter(|r| r.id.starts_with(prefix))
            .count();
        assert!(n >= 2, "category `{prefix}` has {n} rules");
    }
    for r in p.rules() {
        assert!(
            r.tags
                .iter()
                .any(|t| t.starts_with('T')
                    && t[1..].chars().next().is_some_and(|c| c.is_ascii_digit())),
            "rule `{}` has no ATT&CK technique tag",
            r.id
        );
    }
    let modes: Vec<&str> = p.rules().iter().map(|r| r.mode).collect();
    for m in ["event", "count", "distinct", "sequence"] {
        assert!(modes.contains(&m), "no `{m}` rule in the default policy");
    }
}

#[test]
fn default_fixtures_pass_and_cover_every_rule() {
    let p = Policy::compile(&default_sources()).unwrap();
    let fx = fixture_sources();
    let report = fixtures::run(&p, &fx);
    println!("{report}");
    assert!(report.ok(), "{report}");
    assert!(
        report.passed() >= 2 * p.len(),
        "{} cases for {} rules",
        report.passed(),
        p.len()
    );
}

#[test]
fn benign_session_raises_nothing_above_low() {
    let p = Policy::compile(&default_sources()).unwrap();
    let fx: Vec<Source> = fixture_sources()
        .into_iter()
        .filter(|s| s.name.ends_with("benign_session.jsonl"))
        .collect();
    assert_eq!(fx.len(), 1);
    let report = fixtures::run(&p, &fx);
    let case = &report.cases[0];
    assert!(case.passed, "{}", case.message);
    // The session does reach unlisted registries: those alerts exist, at `low`.
    assert!(
        case.fired.contains(&"exfil.egress_unlisted".to_string()),
        "{:?}",
        case.fired
    );
}

/// The policy hash names what the user wrote: the same files read from another directory hash
/// the same, a source the daemon generates does not change it, a changed byte does.
#[test]
fn the_policy_hash_ignores_directories_and_generated_sources() {
    let base = default_sources();
    let h = Policy::compile(&base).unwrap().hash();
    let moved: Vec<Source> = base
        .iter()
        .map(|s| Source {
            name: s.name.replace("<default>/", "/etc/agentwatch/rules/"),
            ..s.clone()
        })
        .collect();
    assert_eq!(Policy::compile(&moved).unwrap().hash(), h);
    let mut with_daemon = base.clone();
    with_daemon.push(
        Source::from_text(
            "<daemon>/monitor_paths.toml",
            "[extend_lists]\nmonitor_paths = [\"/srv/aw/\"]\n",
        )
        .extends_optional(),
    );
    assert_eq!(Policy::compile(&with_daemon).unwrap().hash(), h);
    let mut changed = base.clone();
    changed[0].bytes.push(b'\n');
    assert_ne!(Policy::compile(&changed).unwrap().hash(), h);
}

/// The READMEs state the shipped policy's rule count.
#[test]
fn readmes_state_the_rule_count() {
    let n = Policy::compile(&default_sources()).unwrap().len();
    for (name, text) in [
        ("README.md", include_str!("../../README.md")),
        ("rules/README.md", include_str!("../README.md")),
    ] {
        assert!(
            text.contains(&format!("{n} rules")),
            "{name} does not say `{n} rules`"
        );
    }
}
