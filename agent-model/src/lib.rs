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
pub mod linux;

pub use bstr::BStr;
pub use event::{
    AgentRef, Alert, Dns, Event, Exit, File, Intent, Kind, KindField, Llm, Mcp, Monitor, Net, Op,
    Parent, Priv, Process, Response, SessionRef, Severity, Target, Timestamp,
};
pub use fields::{DERIVED_FIELDS, FIELDS, Field, FieldDef, FieldType, Value};

/// Format a session id the way users see it (16 hex digits).
pub fn session_id_string(id: u64) -> String {
    let mut s = String::with_capacity(16);
    push_hex(&mut s, id, 16);
    s
}

/// Append `v` in lower-case hex, zero-padded to at least `width` digits. The daemon formats two
/// ids per event; this is several times cheaper than `format!`.
pub fn push_hex(out: &mut String, v: u64, width: usize) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let n = ((64 - v.leading_zeros() as usize).div_ceil(4))
        .max(width.min(16))
        .max(1);
    for i in (0..n).rev() {
        out.push(DIGITS[((v >> (i * 4)) & 0xf) as usize] as char);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_matches_format() {
        for v in [0u64, 1, 0xf, 0x10, 0xdead_beef, u64::MAX, 1 << 63] {
            for w in [0, 1, 4, 16] {
                let mut s = String::new();
                push_hex(&mut s, v, w);
                assert_eq!(s, format!("{v:0w$x}"), "v={v:#x} width={w}");
            }
        }
        assert_eq!(session_id_string(0xab), "00000000000000ab");
    }
}
