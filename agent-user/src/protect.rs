//! Self-protection glue between the daemon, the store's tamper evidence and the policy: where
//! the store's high-water mark lives (outside the data dir, so wiping the data dir does not wipe
//! the evidence that it held something), the store findings turned into critical alerts at
//! start, the daemon's real paths handed to the policy as the `monitor_paths` list, and the
//! alert raised when a policy reload drops rules.
//!
//! Pure functions over their inputs (paths, reports, rule sets); the daemon calls them. Nothing
//! here stops root: it makes what root did visible and named.

use std::path::{Path, PathBuf};

use agent_model::{Alert, BStr, Severity, Timestamp};
use sha2::{Digest as _, Sha256};

/// Directory of the default marks: one file per data dir, named by a hash of its path.
pub const MARK_DIR: &str = "/var/lib/agentwatch-mark";

/// Rule id of the alerts raised for store tamper evidence found at start.
pub const STORE_TAMPER: &str = "monitor.store_tamper";

/// Rule id of the alert raised when a policy reload removes rules.
pub const RULES_DROPPED: &str = "monitor.rules_dropped";

/// The default mark of a data dir: `/var/lib/agentwatch-mark/<first 16 bytes of the SHA-256 of
/// the canonical data dir path, hex>.mark`. The data dir is canonicalized when it exists, so
/// `./data` and `/abs/data` share a mark.
pub fn default_mark_path(data_dir: &Path) -> PathBuf {
    let canon = std::fs::canonicalize(data_dir).unwrap_or_else(|_| data_dir.to_path_buf());
    let digest = Sha256::digest(canon.as_os_str().as_encoded_bytes());
    let hex: String = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
    Path::new(MARK_DIR).join(format!("{hex}.mark"))
}

/// The mark the daemon uses: `--mark`, else `[daemon] mark`, else the default for the data dir.
pub fn mark_path(flag: Option<&Path>, config: Option<&Path>, data_dir: &Path) -> PathBuf {
    flag.or(config)
        .map(Path::to_path_buf)
        .unwrap_or_else(|| default_mark_path(data_dir))
}

/// One critical alert per tamper finding of the store's open report (what is missing or
/// altered: segments, seqs, a wiped or rolled-back store), rule [`STORE_TAMPER`].
pub fn store_tamper_alerts(
    findings: &[agent_store::Finding],
    host: &str,
    now: Timestamp,
) -> Vec<Alert> {
    findings
        .iter()
        .filter(|f| f.kind.is_tamper())
        .enumerate()
        .map(|(i, f)| {
            let mut summary = format!("store tamper evidence ({}): {}", f.kind.name(), f.detail);
            if let Some((a, b)) = f.seqs {
                summary.push_str(&format!(" [seqs {a}..={b}]"));
            }
            if let Some(seg) = &f.segment {
                summary.push_str(&format!(" [segment `{}`]", seg.display()));
            }
            Alert {
                id: format!("{STORE_TAMPER}:{}:{i}", now.0),
                time: now,
                host: host.to_owned(),
                rule: STORE_TAMPER.into(),
                severity: Severity::Critical,
                summary: BStr::from(summary),
                tags: vec![
                    "T1070".into(),
                    "T1562.001".into(),
                    "monitor".into(),
                    "tamper".into(),
                    f.kind.name().into(),
                ],
                count: 1,
                first_time: now,
                last_time: now,
                ..Default::default()
            }
        })
        .collect()
}

/// The alert for a reload that removed rules (ids sorted), or `None` when none was removed.
pub fn rules_dropped_alert(
    before: &[String],
    after: &[String],
    files_gone: &[String],
    host: &str,
    now: Timestamp,
) -> Option<Alert> {
    let after: std::collections::HashSet<&str> = after.iter().map(String::as_str).collect();
    let mut gone: Vec<&str> = before
        .iter()
        .map(String::as_str)
        .filter(|r| !after.contains(r))
        .collect();
    if gone.is_empty() && files_gone.is_empty() {
        return None;
    }
    gone.sort_unstable();
    let mut summary = format!(
        "policy reload dropped {} rules ({} -> {})",
        gone.len(),
        before.len(),
        after.len()
    );
    if !files_gone.is_empty() {
        summary.push_str(&format!("; rule files removed: {}", files_gone.join(", ")));
    }
    if !gone.is_empty() {
        const SHOWN: usize = 40;
        summary.push_str(": ");
        summary.push_str(&gone[..gone.len().min(SHOWN)].join(", "));
        if gone.len() > SHOWN {
            summary.push_str(&format!(" and {} more", gone.len() - SHOWN));
        }
    }
    Some(Alert {
        id: format!("{RULES_DROPPED}:{}", now.0),
        time: now,
        host: host.to_owned(),
        rule: RULES_DROPPED.into(),
        severity: Severity::Critical,
        summary: BStr::from(summary),
        tags: vec!["T1562.001".into(), "monitor".into(), "tamper".into()],
        count: 1,
        first_time: now,
        last_time: now,
        ..Default::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_mark_is_outside_the_data_dir_and_stable() {
        let d = tempfile::tempdir().unwrap();
        let a = default_mark_path(d.path());
        assert!(a.starts_with(MARK_DIR), "{}", a.display());
        assert_eq!(a, default_mark_path(&d.path().join(".")));
        assert_ne!(a, default_mark_path(Path::new("/var/lib/agentwatch")));
        assert_eq!(
            mark_path(Some(Path::new("/x")), Some(Path::new("/y")), d.path()),
            Path::new("/x")
        );
        assert_eq!(
            mark_path(None, Some(Path::new("/y")), d.path()),
            Path::new("/y")
        );
    }

    #[test]
    fn a_reload_that_drops_rules_names_them() {
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        let a = rules_dropped_alert(
            &s(&["a.x", "b.y", "c.z"]),
            &s(&["a.x"]),
            &s(&["`/r/b.toml`"]),
            "h",
            Timestamp(1),
        )
        .unwrap();
        let t = a.summary.to_str_lossy();
        assert!(t.contains("dropped 2 rules (3 -> 1)"), "{t}");
        assert!(t.contains("b.y, c.z") && t.contains("/r/b.toml"), "{t}");
        assert_eq!(a.severity, Severity::Critical);
        assert!(rules_dropped_alert(&s(&["a"]), &s(&["a", "b"]), &[], "h", Timestamp(1)).is_none());
    }
}
