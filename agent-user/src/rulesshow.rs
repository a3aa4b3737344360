//! `agentwatch rules show ID`: one rule as it is enforced — after every `[[override]]` — with
//! where it is defined, the text of its definition and of each override that changed it, and
//! its hits in the running daemon.
//!
//! The policy is compiled here from the same files the daemon reads (the daemon names them in
//! its `rules` answer; `--rules` or the default otherwise), so the command works without a
//! daemon too; when the daemon runs a different policy (a reload pending or rejected) it says
//! so instead of showing one as the other.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use agent_api::{Client, Request, RuleStatus, RulesListing};
use agent_model::display::{escape, utc_stamp};
use anyhow::{Result, anyhow};
use serde::Serialize;

use crate::cli::{json_line, refused};
use crate::reload::PolicySource;

/// Longest definition shown (lines).
const MAX_LINES: usize = 200;

/// What `rules show --json` prints.
#[derive(Serialize)]
struct Shown<'a> {
    #[serde(flatten)]
    rule: &'a rules::RuleInfo,
    /// The `[[rule]]` table as written.
    definition: String,
    /// Each override that changed the rule: its place and text.
    override_texts: Vec<Placed>,
    /// Hits in the running daemon (`null`: no daemon answered).
    hits: Option<u64>,
    last_hit: Option<agent_model::Timestamp>,
    /// The policy hash of the files read here, and the daemon's when it differs.
    hash: String,
    daemon_hash: Option<String>,
}

#[derive(Serialize)]
struct Placed {
    at: String,
    text: String,
}

/// The daemon's policy source as the paths it reads (`None`: its built-in policy).
fn daemon_paths(source: &str) -> Option<Vec<PathBuf>> {
    (source != PolicySource::Embedded.describe())
        .then(|| source.split(", ").map(PathBuf::from).collect())
}

pub fn rules_show(socket: &Path, paths: &[PathBuf], id: &str, as_json: bool) -> Result<ExitCode> {
    let daemon: Option<RulesListing> = match Client::connect(socket) {
        Ok(mut c) => Some(c.call(&Request::Rules).map_err(refused)?),
        Err(_) => None,
    };
    let source = match (&daemon, paths.is_empty()) {
        (Some(l), true) => match daemon_paths(&l.policy.source) {
            Some(p) => PolicySource::Paths(p),
            None => PolicySource::Embedded,
        },
        _ => PolicySource::from_args(paths),
    };
    let sources = match &source {
        PolicySource::Paths(p) => rules::fs::load_sources(p).map_err(|e| anyhow!(e))?,
        PolicySource::Embedded => rules::default_sources(),
    };
    let policy = rules::Policy::compile(&sources)
        .map_err(|e| anyhow!("the policy in {} does not compile:\n{e}", source.describe()))?;
    let Some(rule) = policy.rules().iter().find(|r| r.id == id) else {
        let hint = rules::did_you_mean(id, policy.rules().iter().map(|r| r.id.as_str()));
        eprintln!(
            "error: unknown rule `{}` in {}{hint}",
            id.escape_debug(),
            source.describe()
        );
        return Ok(ExitCode::from(2));
    };
    let status: Option<&RuleStatus> = daemon
        .as_ref()
        .and_then(|l| l.rules.iter().find(|r| r.id == id));
    let daemon_hash = daemon
        .as_ref()
        .map(|l| l.policy.hash.clone())
        .filter(|h| *h != policy.hash());
    let shown = Shown {
        rule,
        definition: text_at(&sources, &rule.defined_at).unwrap_or_default(),
        override_texts: rule
            .overrides
            .iter()
            .map(|at| Placed {
                at: at.clone(),
                text: text_at(&sources, at).unwrap_or_default(),
            })
            .collect(),
        hits: daemon.as_ref().map(|_| status.map_or(0, |s| s.hits)),
        last_hit: status.and_then(|s| s.last_hit),
        hash: policy.hash(),
        daemon_hash,
    };
    let mut out = std::io::stdout().lock();
    if as_json {
        json_line(&mut out, &shown)?;
        return Ok(ExitCode::SUCCESS);
    }
    print(&mut out, &shown)?;
    Ok(ExitCode::SUCCESS)
}

fn print(out: &mut dyn std::io::Write, s: &Shown<'_>) -> Result<()> {
    let r = s.rule;
    let kinds: Vec<&str> = r.kinds.iter().map(|k| k.name()).collect();
    writeln!(out, "rule        {}", r.id)?;
    writeln!(out, "description {}", escape(&r.description))?;
    writeln!(out, "defined at  {}", r.defined_at)?;
    writeln!(out, "enabled     {}", if r.enabled { "yes" } else { "no" })?;
    writeln!(out, "severity    {}", r.severity.name())?;
    writeln!(out, "kinds       {}", kinds.join(", "))?;
    writeln!(out, "mode        {}", r.mode)?;
    writeln!(out, "tags        {}", escape(&r.tags.join(", ")))?;
    match &r.response {
        None => writeln!(out, "action      alert")?,
        Some(x) => writeln!(
            out,
            "action      {} ({}, at most {} per {}s{})",
            x.action.name(),
            match x.dry_run {
                Some(true) => "dry_run",
                Some(false) => "enforce",
                None => "the daemon's default mode",
            },
            x.limit,
            x.per_ns / 1_000_000_000,
            if x.inline.is_some() {
                ", inline in the kernel"
            } else {
                ""
            }
        )?,
    }
    if r.overrides.is_empty() {
        writeln!(out, "overrides   none")?;
    } else {
        writeln!(out, "overrides   {}", r.overrides.join(", "))?;
    }
    match (s.hits, s.last_hit) {
        (None, _) => writeln!(out, "hits        (no daemon answers)")?,
        (Some(n), None) => writeln!(out, "hits        {n}")?,
        (Some(n), Some(t)) => writeln!(out, "hits        {n} (last {})", utc_stamp(t))?,
    }
    writeln!(out, "policy hash {}", s.hash)?;
    if let Some(h) = &s.daemon_hash {
        writeln!(
            out,
            "note: the daemon runs policy hash {h}, not these files (a reload pending or rejected)"
        )?;
    }
    writeln!(out, "\n# {}", r.defined_at)?;
    write_text(out, &s.definition)?;
    for o in &s.override_texts {
        writeln!(out, "\n# {}", o.at)?;
        write_text(out, &o.text)?;
    }
    Ok(())
}

fn write_text(out: &mut dyn std::io::Write, text: &str) -> std::io::Result<()> {
    for l in text.lines() {
        // Policy files are the operator's, but a terminal gets no control sequence from them.
        let l: String = l
            .chars()
            .map(|c| if c.is_control() && c != '\t' { '?' } else { c })
            .collect();
        writeln!(out, "{l}")?;
    }
    Ok(())
}

/// The table that starts at `file:line:col` (a `[[rule]]` or `[[override]]`), up to the next
/// table that is not one of its own sub-tables, without trailing blank or comment lines.
fn text_at(sources: &[rules::Source], at: &str) -> Option<String> {
    let mut parts = at.rsplitn(3, ':');
    let (_col, line, file) = (parts.next()?, parts.next()?, parts.next()?);
    let line: usize = line.parse().ok()?;
    let src = sources.iter().find(|s| s.name == file)?;
    let text = std::str::from_utf8(&src.bytes).ok()?;
    let mut lines = text.lines().skip(line.checked_sub(1)?);
    let first = lines.next()?;
    let own = |l: &str| {
        let t = l.trim_start().trim_start_matches('[');
        t.starts_with("rule.") || t.starts_with("override.")
    };
    let mut body: Vec<&str> = vec![first];
    for l in lines.take(MAX_LINES) {
        if l.trim_start().starts_with('[') && !own(l) {
            break;
        }
        body.push(l);
    }
    while body
        .last()
        .is_some_and(|l| l.trim().is_empty() || l.trim_start().starts_with('#'))
    {
        body.pop();
    }
    Some(body.join("\n"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_at_takes_the_table_with_its_sub_tables_only() {
        let src = rules::Source::from_text(
            "/p/a.toml",
            "[[rule]]\nid = \"a\"\n[rule.condition]\nfield = \"x\"\n\n# next\n[[rule]]\nid = \"b\"\n\n[[override]]\nrule = \"a\"\n[[override.exceptions]]\nfield = \"y\"\n[lists]\nz = []\n",
        );
        let s = [src];
        assert_eq!(
            text_at(&s, "/p/a.toml:1:1").unwrap(),
            "[[rule]]\nid = \"a\"\n[rule.condition]\nfield = \"x\""
        );
        assert_eq!(
            text_at(&s, "/p/a.toml:7:1").unwrap(),
            "[[rule]]\nid = \"b\""
        );
        assert_eq!(
            text_at(&s, "/p/a.toml:10:1").unwrap(),
            "[[override]]\nrule = \"a\"\n[[override.exceptions]]\nfield = \"y\""
        );
        assert!(text_at(&s, "/p/b.toml:1:1").is_none());
    }

    #[test]
    fn the_daemon_source_names_its_paths() {
        assert_eq!(
            daemon_paths("/etc/a, /etc/b").unwrap(),
            [PathBuf::from("/etc/a"), PathBuf::from("/etc/b")]
        );
        assert!(daemon_paths(&PolicySource::Embedded.describe()).is_none());
    }
}
