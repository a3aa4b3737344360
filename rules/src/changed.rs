//! The files a session created or changed: the state behind the `changed_by_session` test.
//!
//! Every event that makes the file at a path different from what was there before — an open for
//! writing (or with `O_CREAT`/`O_TRUNC`), a rename or hard link onto the path, a symlink created
//! there, mkdir, chmod, chown, truncate, utime, write — records the path in a per-session set,
//! after the event's own rules ran (so an event never sees its own change). Any rule can then ask
//! "did this session create or change the file at `process.exe`?" (run what it wrote), "... at
//! `file.path`?" (read what it renamed into place). Paths are the canonical ones the sensor
//! reports, stored as 64-bit hashes. A set holds at most [`MAX_CHANGED_PATHS`] paths in two
//! generations (a cheap LRU: when the young one is full the old one is dropped), so memory per
//! session is bounded however many files an agent writes; the oldest changes are forgotten first.
//!
//! A narrower notion shares the sets: the files the session *created* (`created_by_session`): an
//! open the kernel marked as creating the file, or a rename onto the path of a file the session
//! created (an atomic write). A pre-existing secret the session merely opened for writing,
//! appended to or renamed is changed, not created, so it cannot launder itself into an
//! exemption.

use std::collections::HashSet;
use std::hash::Hasher;

use agent_model::{Event, Kind};

use crate::hash::{Fx, FxBuild};

/// Most paths remembered per session (two generations of half as many).
pub const MAX_CHANGED_PATHS: usize = 4096;

/// The paths one session created or changed, most recent [`MAX_CHANGED_PATHS`] at most.
#[derive(Default)]
pub(crate) struct ChangedPaths {
    young: HashSet<u64, FxBuild>,
    old: HashSet<u64, FxBuild>,
    /// Time of the newest change (for idle eviction).
    pub(crate) last: i64,
}

/// Mixed into a path's hash to mark "created" rather than "changed" in the same sets (so both
/// notions share one bound).
const CREATED: u64 = 0x9e37_79b9_7f4a_7c15;

fn path_hash(p: &[u8]) -> u64 {
    let mut h = Fx::default();
    h.write(p);
    h.finish()
}

impl ChangedPaths {
    /// Whether the session changed the file at `path` (within the remembered ones).
    #[inline]
    pub(crate) fn contains(&self, path: &[u8]) -> bool {
        let h = path_hash(path);
        self.young.contains(&h) || self.old.contains(&h)
    }

    /// Whether the session created the file at `path` (within the remembered ones).
    #[inline]
    pub(crate) fn created(&self, path: &[u8]) -> bool {
        let h = path_hash(path) ^ CREATED;
        self.young.contains(&h) || self.old.contains(&h)
    }

    /// Remember that the session created the file at `path` (it changed it too).
    pub(crate) fn insert_created(&mut self, path: &[u8], t: i64) {
        self.insert(path, t);
        self.insert_hash(path_hash(path) ^ CREATED, t);
    }

    pub(crate) fn insert(&mut self, path: &[u8], t: i64) {
        self.insert_hash(path_hash(path), t);
    }

    fn insert_hash(&mut self, h: u64, t: i64) {
        self.last = self.last.max(t);
        if self.young.contains(&h) {
            return;
        }
        if self.young.len() >= MAX_CHANGED_PATHS / 2 {
            self.old = std::mem::take(&mut self.young);
        }
        self.young.insert(h);
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.young.len() + self.old.len()
    }

    pub(crate) fn bytes(&self) -> usize {
        (self.young.capacity() + self.old.capacity()) * 9
    }
}

/// The path an event creates, and whether that is certain from the event alone: an open the
/// kernel marked `created`, or a rename whose source (`Some(source)`, to be checked against
/// the set) the session created.
pub(crate) fn created_path(ev: &Event) -> Option<(&[u8], Option<&[u8]>)> {
    let f = ev.file.as_ref()?;
    match ev.kind() {
        Kind::FileOpen if f.markers.iter().any(|m| m == "created") => Some((&f.path.0[..], None)),
        Kind::FileRename => f.target.as_ref().map(|t| (&t.0[..], Some(&f.path.0[..]))),
        _ => None,
    }
    .filter(|(p, _)| !p.is_empty())
}

/// The path an event creates or changes, if it changes one.
pub(crate) fn changed_path(ev: &Event) -> Option<&[u8]> {
    let f = ev.file.as_ref()?;
    match ev.kind() {
        Kind::FileOpen => {
            let writes = matches!(f.access.as_deref(), Some("write" | "read_write"))
                || f.flags
                    .iter()
                    .any(|x| matches!(x.as_str(), "O_CREAT" | "O_TRUNC" | "O_APPEND"));
            writes.then_some(&f.path.0[..])
        }
        Kind::FileRename => f.target.as_ref().map(|t| &t.0[..]),
        Kind::FileLink
        | Kind::FileSymlink
        | Kind::FileMkdir
        | Kind::FileChmod
        | Kind::FileChown
        | Kind::FileTruncate
        | Kind::FileUtime
        | Kind::FileXattr
        | Kind::FileWrite => Some(&f.path.0[..]),
        _ => None,
    }
    .filter(|p| !p.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembers_recent_paths_and_stays_bounded() {
        let mut c = ChangedPaths::default();
        c.insert(b"/tmp/x", 1);
        assert!(c.contains(b"/tmp/x"));
        assert!(!c.contains(b"/tmp/y"));
        for i in 0..(MAX_CHANGED_PATHS * 3) {
            c.insert(format!("/tmp/f{i}").as_bytes(), 2);
        }
        assert!(c.len() <= MAX_CHANGED_PATHS, "{}", c.len());
        assert!(
            !c.contains(b"/tmp/x"),
            "the oldest change is forgotten first"
        );
        let newest = format!("/tmp/f{}", MAX_CHANGED_PATHS * 3 - 1);
        assert!(c.contains(newest.as_bytes()));
    }
}
