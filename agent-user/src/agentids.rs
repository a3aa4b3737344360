//! The agent id table kept on disk (`<data-dir>/agent-ids.json`), so a daemon that adopts an
//! earlier daemon's pinned sensor (`loader::pin`) names its sessions as that daemon did.
//!
//! The kernel's `SESSIONS` map holds an agent id per process, not a name; ids of names given to
//! `agentwatch run --agent NAME` exist only in the daemon that handed them out. The table is
//! written whenever an id is added (a temporary file, fsynced, renamed over the old one, 0600)
//! and read back on adoption. The data dir is protected but the file is still read as hostile
//! input: no symbolic link, a regular file owned by root or the daemon's uid and writable by
//! nobody else, bounded size and entries, names without control characters, unique ids and
//! names. A file that fails any of this is refused with a message naming it and the fault.

use std::io::{Read as _, Write as _};
use std::os::unix::fs::{MetadataExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result, anyhow, bail};
use serde::{Deserialize, Serialize};

/// The file name in the data dir.
pub const FILE: &str = "agent-ids.json";
/// At most this many bytes are read.
const MAX_BYTES: u64 = 1 << 20;
/// At most this many entries.
const MAX_ENTRIES: usize = 4096;
/// Longest agent name.
const MAX_NAME: usize = 256;

#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
struct Table {
    version: u32,
    agents: Vec<Entry>,
}

#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
struct Entry {
    id: u32,
    name: String,
}

/// The path of the table for `data_dir`.
pub fn path(data_dir: &Path) -> PathBuf {
    data_dir.join(FILE)
}

/// Read and validate the table: (id, name) in id order. `Ok(None)`: there is none.
pub fn load(p: &Path) -> Result<Option<Vec<(u32, String)>>> {
    let f = match std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(p)
    {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) => {
            bail!("refusing `{}`: it is a symbolic link", p.display())
        }
        Err(e) => bail!("cannot open `{}`: {e}", p.display()),
    };
    let m = f
        .metadata()
        .with_context(|| format!("cannot inspect `{}`", p.display()))?;
    // SAFETY: geteuid has no preconditions.
    let me = unsafe { libc::geteuid() };
    if !m.file_type().is_file() {
        bail!("refusing `{}`: not a regular file", p.display());
    }
    if m.uid() != 0 && m.uid() != me {
        bail!("refusing `{}`: owned by uid `{}`", p.display(), m.uid());
    }
    if m.mode() & 0o022 != 0 {
        bail!(
            "refusing `{}`: writable by group or others (mode `{:o}`)",
            p.display(),
            m.mode() & 0o7777
        );
    }
    let mut text = String::new();
    f.take(MAX_BYTES + 1)
        .read_to_string(&mut text)
        .with_context(|| format!("cannot read `{}`", p.display()))?;
    if text.len() as u64 > MAX_BYTES {
        bail!("refusing `{}`: larger than {MAX_BYTES} bytes", p.display());
    }
    parse(&text)
        .map(Some)
        .map_err(|e| anyhow!("`{}`: {e}", p.display()))
}

/// Validate the table's text.
fn parse(text: &str) -> Result<Vec<(u32, String)>> {
    let t: Table = serde_json::from_str(text).context("not an agent id table")?;
    if t.version != 1 {
        bail!("unknown version `{}`", t.version);
    }
    if t.agents.len() > MAX_ENTRIES {
        bail!("more than {MAX_ENTRIES} agents");
    }
    let mut out: Vec<(u32, String)> = Vec::with_capacity(t.agents.len());
    for e in t.agents {
        if e.id == 0 || e.id > 65_535 {
            bail!("agent id `{}` out of range 1..=65535", e.id);
        }
        if e.name.is_empty() || e.name.len() > MAX_NAME || e.name.chars().any(char::is_control) {
            bail!(
                "agent name `{}` of id `{}` is empty, longer than {MAX_NAME} bytes or holds control characters",
                e.name.escape_debug(),
                e.id
            );
        }
        if out.iter().any(|(i, n)| *i == e.id || *n == e.name) {
            bail!(
                "agent id `{}` or name `{}` twice",
                e.id,
                e.name.escape_debug()
            );
        }
        out.push((e.id, e.name));
    }
    out.sort_by_key(|(i, _)| *i);
    Ok(out)
}

/// Write the table atomically: a 0600 temporary file beside it, fsynced, renamed over it.
pub fn save(p: &Path, agents: &[(u32, String)]) -> Result<()> {
    let t = Table {
        version: 1,
        agents: agents
            .iter()
            .map(|(id, name)| Entry {
                id: *id,
                name: name.clone(),
            })
            .collect(),
    };
    let text = serde_json::to_vec(&t)?;
    let tmp = p.with_extension("json.tmp");
    let _ = std::fs::remove_file(&tmp);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&tmp)
        .with_context(|| format!("cannot create `{}`", tmp.display()))?;
    f.write_all(&text)
        .and_then(|()| f.sync_all())
        .with_context(|| format!("cannot write `{}`", tmp.display()))?;
    std::fs::rename(&tmp, p).with_context(|| format!("cannot replace `{}`", p.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_saved_table_reads_back_and_is_private() {
        let d = tempfile::tempdir().unwrap();
        let p = path(d.path());
        assert_eq!(load(&p).unwrap(), None);
        let t = vec![(1, "claude".to_owned()), (3, "t-run".to_owned())];
        save(&p, &t).unwrap();
        assert_eq!(load(&p).unwrap(), Some(t));
        assert_eq!(std::fs::metadata(&p).unwrap().mode() & 0o777, 0o600);
    }

    #[test]
    fn hostile_tables_are_refused_naming_the_fault() {
        for (text, want) in [
            ("{", "not an agent id table"),
            (r#"{"version":2,"agents":[]}"#, "unknown version"),
            (
                r#"{"version":1,"agents":[{"id":0,"name":"a"}]}"#,
                "out of range",
            ),
            (
                r#"{"version":1,"agents":[{"id":1,"name":"a\u001b[2J"}]}"#,
                "control characters",
            ),
            (
                r#"{"version":1,"agents":[{"id":1,"name":"a"},{"id":2,"name":"a"}]}"#,
                "twice",
            ),
            (
                r#"{"version":1,"agents":[],"extra":1}"#,
                "not an agent id table",
            ),
        ] {
            let e = parse(text).unwrap_err();
            assert!(format!("{e:#}").contains(want), "{text}: {e:#}");
        }
    }

    #[test]
    fn symlinks_and_shared_files_are_refused() {
        let d = tempfile::tempdir().unwrap();
        let real = d.path().join("real.json");
        save(&real, &[(1, "a".into())]).unwrap();
        let link = d.path().join(FILE);
        std::os::unix::fs::symlink(&real, &link).unwrap();
        assert!(
            load(&link)
                .unwrap_err()
                .to_string()
                .contains("symbolic link")
        );
        let shared = d.path().join("shared.json");
        std::fs::write(&shared, r#"{"version":1,"agents":[]}"#).unwrap();
        std::fs::set_permissions(&shared, std::os::unix::fs::PermissionsExt::from_mode(0o666))
            .unwrap();
        assert!(load(&shared).unwrap_err().to_string().contains("writable"));
    }
}
