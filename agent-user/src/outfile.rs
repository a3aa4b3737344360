//! Opening the files the daemon appends to (`--events-jsonl`, `--alerts-jsonl`) without trusting
//! what is already at the path: the daemon runs as root, and an unprivileged user who can write
//! into the directory could otherwise point the path at a root-owned file (a symlink) or hand
//! the daemon a file they own and can read or rewrite.
//!
//! A new file is created 0600 with `O_NOFOLLOW`; an existing one must be a regular file owned by
//! root or the daemon's uid, not writable by group or others, and reached without a symlink in
//! the last component. Every refusal names the path.

use std::fs::File;
use std::os::fd::AsRawFd as _;
use std::os::unix::fs::{MetadataExt as _, OpenOptionsExt as _};
use std::path::Path;

use anyhow::{Result, anyhow, bail};

/// Open `p` for appending, as described in the module doc. `what` names the output in errors.
pub fn open_append(p: &Path, what: &str) -> Result<File> {
    // SAFETY: geteuid has no preconditions.
    let me = unsafe { libc::geteuid() };
    open_append_as(p, what, me)
}

/// [`open_append`] for a daemon running as uid `me`.
pub fn open_append_as(p: &Path, what: &str, me: u32) -> Result<File> {
    let f = match std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(p)
    {
        Ok(f) => f,
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) => bail!(
            "refusing {what} file `{}`: it is a symbolic link; hint: give the real path",
            p.display()
        ),
        Err(e) => bail!("cannot open {what} file `{}`: {e}", p.display()),
    };
    let m = f
        .metadata()
        .map_err(|e| anyhow!("cannot inspect {what} file `{}`: {e}", p.display()))?;
    if !m.file_type().is_file() {
        bail!("refusing {what} file `{}`: not a regular file", p.display());
    }
    if m.uid() != 0 && m.uid() != me {
        bail!(
            "refusing {what} file `{}`: owned by uid `{}`, not root or the daemon's uid `{me}`",
            p.display(),
            m.uid()
        );
    }
    if m.mode() & 0o022 != 0 {
        bail!(
            "refusing {what} file `{}`: writable by group or others (mode `{:o}`); hint: chmod 600",
            p.display(),
            m.mode() & 0o7777
        );
    }
    // O_NONBLOCK only guarded the open (a FIFO at the path must not hang the daemon).
    let fd = f.as_raw_fd();
    // SAFETY: fcntl on a descriptor this function owns.
    let fl = unsafe { libc::fcntl(fd, libc::F_GETFL) };
    if fl >= 0 {
        // SAFETY: as above.
        unsafe { libc::fcntl(fd, libc::F_SETFL, fl & !libc::O_NONBLOCK) };
    }
    Ok(f)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt as _;

    fn me() -> u32 {
        // SAFETY: geteuid has no preconditions.
        unsafe { libc::geteuid() }
    }

    #[test]
    fn a_new_output_file_is_created_0600() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("events.jsonl");
        open_append_as(&p, "events", me()).unwrap();
        let mode = std::fs::metadata(&p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }

    #[test]
    fn a_symlinked_output_file_is_refused_and_named() {
        let d = tempfile::tempdir().unwrap();
        let target = d.path().join("victim");
        std::fs::write(&target, "keep").unwrap();
        let p = d.path().join("alerts.jsonl");
        std::os::unix::fs::symlink(&target, &p).unwrap();
        let e = open_append_as(&p, "alerts", me()).unwrap_err().to_string();
        assert!(
            e.contains("symbolic link") && e.contains("alerts.jsonl"),
            "{e}"
        );
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "keep");
    }

    #[test]
    fn an_output_file_owned_by_another_uid_is_refused() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("events.jsonl");
        std::fs::write(&p, "").unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
        std::os::unix::fs::chown(&p, Some(65534), None).ok();
        let owner = std::fs::metadata(&p).unwrap().uid();
        if owner == 0 {
            // Not root and chown failed: the file is ours; nothing to show here.
            return;
        }
        let e = open_append_as(&p, "events", owner.wrapping_add(1))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("owned by uid") && e.contains("events.jsonl"),
            "{e}"
        );
    }

    #[test]
    fn a_group_writable_output_file_is_refused() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("events.jsonl");
        std::fs::write(&p, "").unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o666)).unwrap();
        let e = open_append_as(&p, "events", me()).unwrap_err().to_string();
        assert!(e.contains("writable by group or others"), "{e}");
    }

    #[test]
    fn a_directory_at_the_output_path_is_refused() {
        let d = tempfile::tempdir().unwrap();
        let e = open_append_as(d.path(), "events", me())
            .unwrap_err()
            .to_string();
        assert!(e.contains("events file"), "{e}");
    }
}
