//! The owned event model of agentwatch: events, alerts, the field catalogue and the decoder of
//! kernel records.
//!
//! Rules, the store, the CLI and the TUI all use these types, so this crate knows nothing of aya,
//! tokio or tantivy. Dotted field names (`process.exe`, `file.path`, `net.dst_ip`) are defined
//! once here, in [`fields`], and are the same in rules, queries, JSON output and the TUI.
#![forbid(unsafe_code)]

pub mod bstr;
pub mod decode;
pub mod display;
pub mod event;
pub mod fields;

pub use bstr::BStr;
pub use event::{
    AgentRef, Alert, Dns, Event, Exit, File, Kind, KindField, Monitor, Net, Op, Parent, Priv,
    Process, SessionRef, Severity, Target, Timestamp,
};
pub use fields::{FIELDS, Field, FieldDef, FieldType, Value};

/// Format a session id the way users see it (16 hex digits).
pub fn session_id_string(id: u64) -> String {
    format!("{id:016x}")
}
