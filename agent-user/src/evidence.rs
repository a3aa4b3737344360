//! `agentwatch verify` and `agentwatch export --evidence`: the CLI side of the store's tamper
//! evidence. `verify` checks a store read-only (with the daemon running or not: it only reads
//! the segment files and the mark) or an exported evidence pack, and prints exactly what is
//! missing or altered; `export --evidence` writes one session's pack.
//!
//! Exit status: 0 intact, 1 something missing or altered, 2 bad usage (no store, no pack).

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use agent_model::display::escape;
use anyhow::{Context as _, Result, anyhow};
use serde::Serialize;

use crate::BadInput;

/// The mark `verify` compares with, and whether it was asked for explicitly.
pub struct MarkChoice {
    pub path: PathBuf,
    /// Given by `--mark` or `[daemon] mark`: a missing file is then a finding; a missing
    /// default mark only means no mark was kept.
    pub explicit: bool,
}

#[derive(Serialize)]
struct StoreVerdict<'a> {
    intact: bool,
    store: String,
    mark: Option<String>,
    #[serde(flatten)]
    report: &'a agent_store::VerifyReport,
}

#[derive(Serialize)]
struct PackVerdict<'a> {
    intact: bool,
    pack: String,
    #[serde(flatten)]
    report: &'a agent_store::evidence::PackReport,
}

fn code(intact: bool) -> ExitCode {
    if intact {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

/// `agentwatch verify --data-dir DIR [--mark PATH]`.
pub fn verify_store(data_dir: &Path, mark: MarkChoice, as_json: bool) -> Result<ExitCode> {
    let dir = data_dir.join("store");
    if !dir.join("spool").is_dir() {
        return Err(BadInput(anyhow!(
            "no store in `{}` (no `spool` dir); hint: pass --data-dir",
            dir.display()
        ))
        .into());
    }
    let use_mark = (mark.explicit || mark.path.exists()).then_some(mark.path.as_path());
    let report = agent_store::verify(&dir, use_mark)
        .with_context(|| format!("cannot verify the store in `{}`", dir.display()))?;
    let intact = report.is_intact();
    let mut out = std::io::stdout().lock();
    if as_json {
        crate::cli::json_line(
            &mut out,
            &StoreVerdict {
                intact,
                store: dir.display().to_string(),
                mark: use_mark.map(|m| m.display().to_string()),
                report: &report,
            },
        )?;
        return Ok(code(intact));
    }
    writeln!(
        out,
        "store   `{}`: {} segments, {} records, last seq {}, head {}",
        dir.display(),
        report.segments,
        report.records,
        report.last_seq,
        report.head.as_deref().unwrap_or("-")
    )?;
    match (use_mark, report.mark_seq) {
        (Some(m), Some(seq)) => writeln!(out, "mark    `{}`: seq {seq}", m.display())?,
        (Some(m), None) => writeln!(out, "mark    `{}`: not usable (see below)", m.display())?,
        (None, _) => writeln!(
            out,
            "mark    none at `{}`: a wiped or rolled-back store cannot be told from a new one; hint: --mark PATH",
            mark.path.display()
        )?,
    }
    for f in &report.findings {
        writeln!(
            out,
            "{} {}: {}",
            if f.kind.is_tamper() {
                "TAMPER "
            } else {
                "note   "
            },
            f.kind.name(),
            escape(&f.detail)
        )?;
    }
    writeln!(
        out,
        "{}",
        if intact {
            "intact: nothing missing or altered"
        } else {
            "NOT INTACT: records are missing or altered (see above)"
        }
    )?;
    Ok(code(intact))
}

/// `agentwatch verify --pack FILE`.
pub fn verify_pack(pack: &Path, as_json: bool) -> Result<ExitCode> {
    let f = std::fs::File::open(pack).map_err(|e| {
        BadInput(anyhow!(
            "cannot open evidence pack `{}`: {e}",
            pack.display()
        ))
    })?;
    let report = agent_store::evidence::verify_pack(&mut std::io::BufReader::new(f))
        .with_context(|| format!("cannot read evidence pack `{}`", pack.display()))?;
    if report.session.is_empty() && report.findings.is_empty() {
        return Err(BadInput(anyhow!(
            "`{}` is not an evidence pack (no header line)",
            pack.display()
        ))
        .into());
    }
    let intact = report.is_intact();
    let mut out = std::io::stdout().lock();
    if as_json {
        crate::cli::json_line(
            &mut out,
            &PackVerdict {
                intact,
                pack: pack.display().to_string(),
                report: &report,
            },
        )?;
        return Ok(code(intact));
    }
    writeln!(
        out,
        "pack    `{}`: session {}, {} items, store head seq {} ({})",
        pack.display(),
        escape(&report.session),
        report.items,
        report.head_seq,
        report.head_chain.as_deref().unwrap_or("-")
    )?;
    for f in &report.findings {
        let at = match (f.line, f.seq) {
            (Some(l), Some(s)) => format!(" (line {l}, seq {s})"),
            (Some(l), None) => format!(" (line {l})"),
            (None, Some(s)) => format!(" (seq {s})"),
            (None, None) => String::new(),
        };
        let kind = serde_json::to_value(f.kind)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default();
        writeln!(
            out,
            "{} {kind}{at}: {}",
            if f.kind.is_tamper() {
                "TAMPER "
            } else {
                "note   "
            },
            escape(&f.detail)
        )?;
    }
    writeln!(
        out,
        "{}",
        if intact {
            "intact: nothing missing or altered"
        } else {
            "NOT INTACT: items are missing or altered (see above)"
        }
    )?;
    Ok(code(intact))
}

/// `agentwatch export --evidence SESSION`: the session's pack on stdout.
pub fn export_pack(data_dir: &Path, session: &str) -> Result<ExitCode> {
    let dir = data_dir.join("store");
    let reader = agent_store::Reader::open(&dir)
        .with_context(|| format!("cannot open the store in `{}`", dir.display()))?;
    let pack = reader
        .export_evidence(session)
        .with_context(|| format!("cannot export the evidence of session `{session}`"))?;
    if pack.items.is_empty() {
        return Err(BadInput(anyhow!("no stored item of session `{session}`")).into());
    }
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    pack.write_jsonl(&mut out)?;
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}
