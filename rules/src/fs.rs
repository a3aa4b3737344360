//! The only IO in the crate (feature `fs`): reading policy and fixture files, and the bodies of
//! `agentwatch rules check` and `agentwatch rules test`.
//!
//! Fixtures of a policy directory live in its `fixtures/` subdirectory; for a policy file, in
//! the `fixtures/` directory beside it. A policy directory's `local.d/` subdirectory holds the
//! site's own files (typically `[[override]]`s of shipped rules), read after the directory's
//! files, so a package upgrade that replaces the shipped policy leaves local changes alone.

use std::fs;
use std::io::{Read, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use crate::fixtures;
use crate::policy::{MAX_FILE_BYTES, Policy, Source};

/// The shipped default policy in the source tree.
pub fn default_policy_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("policy")
}

fn read_one(path: &Path) -> Result<Source, String> {
    let name = path.display().to_string();
    let meta = fs::metadata(path).map_err(|e| format!("cannot read `{name}`: {e}"))?;
    let mut src = Source {
        name: name.clone(),
        bytes: Vec::new(),
        regular_file: meta.is_file(),
        mode: meta.mode(),
        extends_optional: false,
    };
    if !src.regular_file {
        // Never open fifos or devices: reading them could block or never end.
        return Ok(src);
    }
    let f = fs::File::open(path).map_err(|e| format!("cannot read `{name}`: {e}"))?;
    // Read one byte past the limit so an oversized file is reported, never loaded whole.
    f.take(MAX_FILE_BYTES as u64 + 1)
        .read_to_end(&mut src.bytes)
        .map_err(|e| format!("cannot read `{name}`: {e}"))?;
    Ok(src)
}

fn toml_files(dir: &Path) -> Result<Vec<PathBuf>, String> {
    files_with(dir, &["toml"])
}

fn files_with(dir: &Path, exts: &[&str]) -> Result<Vec<PathBuf>, String> {
    let rd =
        fs::read_dir(dir).map_err(|e| format!("cannot read directory `{}`: {e}", dir.display()))?;
    let mut files: Vec<PathBuf> = rd
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| exts.iter().any(|e| x == *e)))
        .collect();
    files.sort();
    Ok(files)
}

/// The subdirectory of a policy directory that holds the site's own files.
pub const LOCAL_DIR: &str = "local.d";

/// Anyone who can write a policy directory can replace the files in it.
fn check_dir_mode(p: &Path) -> Result<(), String> {
    let mode = fs::metadata(p).map(|m| m.mode()).unwrap_or(0);
    if mode & 0o002 != 0 && mode & 0o1000 == 0 {
        return Err(format!(
            "policy directory `{}` is world-writable (mode `{:o}`): any user could replace the policy; run `chmod o-w` on it",
            p.display(),
            mode & 0o7777
        ));
    }
    Ok(())
}

/// Read policy sources: a directory means every `*.toml` in it (not recursive), sorted, then
/// every `*.toml` in its `local.d/` (see the module docs).
pub fn load_sources(paths: &[PathBuf]) -> Result<Vec<Source>, String> {
    let mut out = Vec::new();
    for p in paths {
        if p.is_dir() {
            check_dir_mode(p)?;
            let files = toml_files(p)?;
            if files.is_empty() {
                return Err(format!("no `*.toml` policy files in `{}`", p.display()));
            }
            for f in files {
                out.push(read_one(&f)?);
            }
            let local = p.join(LOCAL_DIR);
            if local.is_dir() {
                check_dir_mode(&local)?;
                for f in toml_files(&local)? {
                    out.push(read_one(&f)?);
                }
            }
        } else {
            out.push(read_one(p)?);
        }
    }
    Ok(out)
}

/// Fixture files (`*.toml`, `*.jsonl`) that belong to the policy paths (see the module docs).
pub fn load_fixture_sources(paths: &[PathBuf]) -> Result<Vec<Source>, String> {
    let mut dirs: Vec<PathBuf> = Vec::new();
    for p in paths {
        let d = if p.is_dir() {
            p.join("fixtures")
        } else {
            p.parent().unwrap_or(Path::new(".")).join("fixtures")
        };
        if !dirs.contains(&d) {
            dirs.push(d);
        }
    }
    let mut out = Vec::new();
    for d in dirs.iter().filter(|d| d.is_dir()) {
        for f in files_with(d, &["toml", "jsonl"])? {
            out.push(read_one(&f)?);
        }
    }
    Ok(out)
}

fn paths_or_default(paths: &[PathBuf]) -> Vec<PathBuf> {
    if paths.is_empty() {
        vec![default_policy_dir()]
    } else {
        paths.to_vec()
    }
}

fn load_policy(paths: &[PathBuf], err: &mut dyn Write) -> Option<Policy> {
    let sources = match load_sources(paths) {
        Ok(s) => s,
        Err(e) => {
            let _ = writeln!(err, "error: {e}");
            return None;
        }
    };
    match Policy::compile(&sources) {
        Ok(p) => Some(p),
        Err(errors) => {
            let _ = writeln!(err, "{errors}");
            let n = errors.len();
            let _ = writeln!(
                err,
                "policy rejected: {n} error{}",
                if n == 1 { "" } else { "s" }
            );
            None
        }
    }
}

/// `agentwatch rules check [PATH...]`: 0 when the policy compiles, 2 on any error.
pub fn cmd_check(paths: &[PathBuf], out: &mut dyn Write, err: &mut dyn Write) -> i32 {
    let paths = paths_or_default(paths);
    let Some(p) = load_policy(&paths, err) else {
        return 2;
    };
    let enabled = p.rules().iter().filter(|r| r.enabled).count();
    let overridden = p.rules().iter().filter(|r| !r.overrides.is_empty()).count();
    let _ = writeln!(
        out,
        "policy ok: {} rules ({enabled} enabled), hash {}",
        p.len(),
        p.hash()
    );
    if overridden > 0 {
        let _ = writeln!(out, "{overridden} rules changed by overrides:");
        for r in p.rules().iter().filter(|r| !r.overrides.is_empty()) {
            let _ = writeln!(
                out,
                "  {} ({}, {}) by {}",
                r.id,
                r.severity.name(),
                if r.enabled { "enabled" } else { "disabled" },
                r.overrides.join(", ")
            );
        }
    }
    0
}

/// `agentwatch rules test [PATH...]`: 0 when every fixture passes, 1 on any failure, 2 when
/// the policy is invalid.
pub fn cmd_test(paths: &[PathBuf], out: &mut dyn Write, err: &mut dyn Write) -> i32 {
    let paths = paths_or_default(paths);
    let Some(p) = load_policy(&paths, err) else {
        return 2;
    };
    let fx = match load_fixture_sources(&paths) {
        Ok(f) => f,
        Err(e) => {
            let _ = writeln!(err, "error: {e}");
            return 2;
        }
    };
    if fx.is_empty() {
        let _ = writeln!(
            err,
            "error: no fixture files found (expected `*.toml` or `*.jsonl` in a `fixtures/` directory beside the policy)"
        );
        return 1;
    }
    let report = fixtures::run(&p, &fx);
    let _ = writeln!(out, "{report}");
    if report.ok() { 0 } else { 1 }
}
