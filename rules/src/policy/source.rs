//! [`Source`]: one policy file as bytes plus the metadata the checks need.
//!
//! The caller does the reading (the `fs` module, the daemon, a test, a fuzz target), so
//! compiling stays free of IO; the mode and file type travel with the bytes because a
//! world-writable or non-regular policy file is itself an error.

/// One policy file, read by the caller (see `fs::load_sources`), checked here.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Source {
    /// Path shown in errors.
    pub name: String,
    pub bytes: Vec<u8>,
    /// False for directories, fifos, devices, sockets.
    pub regular_file: bool,
    /// Unix mode bits (`st_mode`).
    pub mode: u32,
    /// An `[extend_lists]` entry naming a list no source defines is skipped instead of being
    /// an error: for sources the daemon generates (its own paths), which must fit any policy.
    /// A policy without the list has no rule that could use the extension.
    pub extends_optional: bool,
}

impl Source {
    /// A regular, owner-writable in-memory source (tests, embedded policy).
    pub fn from_text(name: impl Into<String>, text: impl Into<String>) -> Source {
        Source {
            name: name.into(),
            bytes: text.into().into_bytes(),
            regular_file: true,
            mode: 0o100644,
            extends_optional: false,
        }
    }

    /// The same source with [`Source::extends_optional`] set.
    pub fn extends_optional(mut self) -> Source {
        self.extends_optional = true;
        self
    }
}
