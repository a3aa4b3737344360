//! Sessions as the tracker knows them, the agent lookup it needs from the config, and the
//! kernel actions a record can call for (confirm or drop a provisional session).

use agent_model::Timestamp;

#[derive(Clone, Debug)]
pub struct Session {
    pub id: u64,
    pub agent: String,
    pub root: (u32, u64),
    pub start: Timestamp,
    pub live: u64,
    pub events: u64,
}

/// Something the sensor must do in the kernel after a record.
#[derive(Debug, PartialEq, Eq)]
pub enum Action {
    /// Remove these pids from the session map (a provisional session that did not match).
    Drop(Vec<u32>),
    /// Clear the provisional flag of this pid's session entry.
    Confirm(u32, u64, u32),
}

/// Agent name lookup and exe-glob confirmation, from the config.
pub trait Agents {
    fn name(&self, id: u32) -> String;
    /// For a provisional session: does the full exe path match agent `id`'s globs?
    fn confirm_exe(&self, id: u32, exe: &str) -> bool;
    /// Whether agent `id` keeps only metadata of what it tells its model (`metadata_only`).
    fn metadata_only(&self, _id: u32) -> bool {
        false
    }
}
