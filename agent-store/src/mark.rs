//! The high-water mark: the store's last durable sequence number, chain head, segment count and
//! first retained seq, kept in a small file *outside* the data dir (the caller chooses where), so
//! that wiping or rolling back the data dir cannot also erase the record of what it held.
//!
//! Rewritten after every durable group (write to `<path>.tmp`, fsync, rename: a reader sees the
//! old mark or the new one, never a mix), only after the spool fsync it describes, so a mark is
//! never ahead of the disk. A power loss can leave it one group behind, which open accepts: only
//! a spool *behind* the mark, or with a different chain at the mark's seq, is a finding.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::chain::{self, Chain};

/// The high-water mark of a store.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mark {
    /// Last durable sequence number.
    pub last_seq: u64,
    /// Chain value after `last_seq`.
    pub last_chain: Chain,
    /// Spool segments at the time.
    pub segments: u64,
    /// First seq still in the spool (moves only with retention).
    pub first_seq: u64,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Wire {
    version: u32,
    last_seq: u64,
    last_chain: String,
    segments: u64,
    first_seq: u64,
}

/// Read the mark at `path`: `Ok(None)` when there is none, `Err(why)` when it is unreadable.
pub fn read(path: &Path) -> Result<Option<Mark>, String> {
    let text = match fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("cannot read the mark `{}`: {e}", path.display())),
    };
    let w: Wire = serde_json::from_str(&text)
        .map_err(|e| format!("the mark `{}` is not valid: {e}", path.display()))?;
    if w.version != 1 {
        return Err(format!(
            "the mark `{}` has version `{}`",
            path.display(),
            w.version
        ));
    }
    let last_chain = chain::from_hex(&w.last_chain)
        .ok_or_else(|| format!("the mark `{}` has a bad chain value", path.display()))?;
    Ok(Some(Mark {
        last_seq: w.last_seq,
        last_chain,
        segments: w.segments,
        first_seq: w.first_seq,
    }))
}

/// Replace the mark at `path` atomically (its directory is created private if missing).
pub fn write(path: &Path, m: &Mark) -> std::io::Result<()> {
    if let Some(dir) = path.parent()
        && !dir.as_os_str().is_empty()
        && !dir.exists()
    {
        fs::create_dir_all(dir)?;
        fs::set_permissions(dir, fs::Permissions::from_mode(0o700))?;
    }
    let w = Wire {
        version: 1,
        last_seq: m.last_seq,
        last_chain: chain::to_hex(&m.last_chain),
        segments: m.segments,
        first_seq: m.first_seq,
    };
    let mut tmp = PathBuf::from(path);
    tmp.as_mut_os_string().push(".tmp");
    let mut f = OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)?;
    f.write_all(serde_json::to_string(&w).unwrap_or_default().as_bytes())?;
    f.write_all(b"\n")?;
    f.sync_data()?;
    fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_then_read_round_trips_and_garbage_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("hwm/store1");
        assert_eq!(read(&p), Ok(None));
        let m = Mark {
            last_seq: 42,
            last_chain: chain::link(&chain::GENESIS, b"a", b"b"),
            segments: 3,
            first_seq: 1,
        };
        write(&p, &m).unwrap();
        assert_eq!(read(&p), Ok(Some(m)));
        fs::write(&p, b"{}").unwrap();
        assert!(read(&p).unwrap_err().contains("not valid"));
    }
}
