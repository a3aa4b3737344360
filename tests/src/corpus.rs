//! The attack and benign corpora (`tests/corpus/*.toml`) as data: parsing with unknown keys
//! rejected, and the README detection table rendered from them. Shared by the corpus test
//! (`tests/tests/corpus.rs`, which runs every scenario as a real session) and the
//! `corpus_table` example, so the table cannot claim a scenario the test does not run.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Deserialize;

/// How a scenario reaches its effect.
pub const FORMS: [&str; 3] = ["cli", "syscall", "atomic"];

/// One attack scenario.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Attack {
    pub id: String,
    pub category: String,
    pub technique: String,
    /// `cli`, `syscall` or `atomic`.
    pub form: String,
    /// A `/bin/sh` script.
    pub run: String,
    /// Rule ids that must all fire in the scenario's session.
    pub expect: Vec<String>,
    /// `etc`, `var` (overlay over that dir in a private mount namespace), `netns`.
    #[serde(default)]
    pub sandbox: Vec<String>,
}

/// One benign scenario: must raise nothing above `low`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Benign {
    pub id: String,
    pub run: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File<T> {
    scenario: Vec<T>,
}

/// The corpus directory.
pub fn dir() -> PathBuf {
    crate::root().join("tests/corpus")
}

fn load<T: for<'de> Deserialize<'de>>(name: &str) -> Result<Vec<T>, String> {
    let path = dir().join(name);
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    let f: File<T> = toml::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(f.scenario)
}

/// The attack corpus, checked: unique ids, known forms and sandboxes, at least one expected rule.
pub fn attacks() -> Result<Vec<Attack>, String> {
    let v: Vec<Attack> = load("attacks.toml")?;
    let mut seen = std::collections::HashSet::new();
    for a in &v {
        if !seen.insert(a.id.clone()) {
            return Err(format!("attacks.toml: duplicate id `{}`", a.id));
        }
        if !FORMS.contains(&a.form.as_str()) {
            return Err(format!(
                "attacks.toml: `{}`: unknown form `{}`",
                a.id, a.form
            ));
        }
        if let Some(s) = a
            .sandbox
            .iter()
            .find(|s| !["etc", "var", "netns"].contains(&s.as_str()))
        {
            return Err(format!("attacks.toml: `{}`: unknown sandbox `{s}`", a.id));
        }
        if a.expect.is_empty() {
            return Err(format!("attacks.toml: `{}`: empty `expect`", a.id));
        }
    }
    Ok(v)
}

/// The benign corpus, checked for unique ids.
pub fn benign() -> Result<Vec<Benign>, String> {
    let v: Vec<Benign> = load("benign.toml")?;
    let mut seen = std::collections::HashSet::new();
    for b in &v {
        if !seen.insert(b.id.clone()) {
            return Err(format!("benign.toml: duplicate id `{}`", b.id));
        }
    }
    Ok(v)
}

/// The README detection table: one row per technique, with the scenarios of each form and
/// the rules they must raise. Every listed scenario is asserted detected by the corpus test.
pub fn table_markdown(attacks: &[Attack]) -> String {
    let mut by: BTreeMap<(String, String), Vec<&Attack>> = BTreeMap::new();
    for a in attacks {
        by.entry((a.category.clone(), a.technique.clone()))
            .or_default()
            .push(a);
    }
    let mut out = String::from(
        "| category | technique | cli | syscall | atomic | rules |\n| --- | --- | --- | --- | --- | --- |\n",
    );
    for ((cat, tech), v) in &by {
        let cell = |form: &str| {
            let ids: Vec<String> = v
                .iter()
                .filter(|a| a.form == form)
                .map(|a| format!("✓ `{}`", a.id))
                .collect();
            if ids.is_empty() {
                "–".to_owned()
            } else {
                ids.join("<br>")
            }
        };
        let mut rules: Vec<&str> = v
            .iter()
            .flat_map(|a| a.expect.iter().map(String::as_str))
            .collect();
        rules.sort_unstable();
        rules.dedup();
        let rules: Vec<String> = rules.iter().map(|r| format!("`{r}`")).collect();
        out.push_str(&format!(
            "| {cat} | {tech} | {} | {} | {} | {} |\n",
            cell("cli"),
            cell("syscall"),
            cell("atomic"),
            rules.join(", ")
        ));
    }
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for a in attacks {
        *counts.entry(a.category.as_str()).or_default() += 1;
    }
    let c: Vec<String> = counts.iter().map(|(k, n)| format!("{k} {n}")).collect();
    out.push_str(&format!(
        "\n{} scenarios: {}.\n",
        attacks.len(),
        c.join(", ")
    ));
    out
}
