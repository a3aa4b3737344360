//! Terminal-safe text: every string that came from an agent goes through [`escape`] before it
//! reaches a terminal, so no control sequence, bidi override or newline from an event can move
//! the cursor, retitle the window or hide text.

use crate::event::{Event, Kind};

/// Escape control characters (C0, DEL, C1), bidi controls, zero-width and other format
/// characters as `\xNN` or `\u{NNNN}`; backslashes are doubled so the output is unambiguous.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\x{:02x}", c as u32))
            }
            c if is_unsafe_format_char(c) => out.push_str(&format!("\\u{{{:04x}}}", c as u32)),
            c => out.push(c),
        }
    }
    out
}

/// [`escape`] for raw bytes: invalid UTF-8 shows as `\xNN` per byte, so names that differ only
/// in their invalid bytes print differently (a lossy U+FFFD would make them look the same).
pub fn escape_bytes(b: &[u8]) -> String {
    let mut out = String::with_capacity(b.len());
    for chunk in b.utf8_chunks() {
        out.push_str(&escape(chunk.valid()));
        for x in chunk.invalid() {
            out.push_str(&format!("\\x{x:02x}"));
        }
    }
    out
}

fn is_unsafe_format_char(c: char) -> bool {
    let u = c as u32;
    (0x80..=0x9f).contains(&u)            // C1 controls (8-bit CSI, OSC, DCS...)
        || (0x200b..=0x200f).contains(&u) // zero-width, LRM/RLM
        || (0x2028..=0x202e).contains(&u) // line/paragraph separators, bidi embeddings
        || (0x2060..=0x206f).contains(&u) // word joiner, bidi isolates, invisible operators
        || u == 0xfeff                    // BOM / zero-width no-break space
        || (0xfff9..=0xfffb).contains(&u) // interlinear annotation
}

/// The endpoint of a network event as text: `tcp 1.2.3.4:443`, `unix /run/x.sock`, or
/// `tcp listen 0.0.0.0:8080`. `esc` makes agent-originated strings safe for the caller's screen.
pub fn net_endpoint(n: &crate::Net, esc: impl Fn(&str) -> String) -> String {
    let proto = esc(n.protocol.as_deref().unwrap_or(""));
    match (&n.unix_path, n.dst_ip, n.dst_port) {
        (Some(u), _, _) => format!("unix {}", esc(&u.to_str_lossy())),
        (None, Some(ip), Some(port)) => format!("{proto} {ip}:{port}"),
        _ => format!(
            "{proto} listen {}:{}",
            n.src_ip.map(|i| i.to_string()).unwrap_or_default(),
            n.src_port.unwrap_or(0)
        ),
    }
}

/// One readable line for an event (escaped).
pub fn event_line(ev: &Event) -> String {
    let t = ev.time.to_rfc3339();
    event_line_at(ev, t.get(11..23).unwrap_or(&t))
}

/// `2026-12-07T14:17:21.123Z`: the date and the UTC time to the millisecond, for stored items
/// (search results, timelines), where the time of day alone is ambiguous.
pub fn utc_stamp(t: crate::Timestamp) -> String {
    let s = t.to_rfc3339();
    let ms = t.0.rem_euclid(1_000_000_000) / 1_000_000;
    format!("{}.{ms:03}Z", s.get(..19).unwrap_or(&s))
}

/// [`event_line`] with the full [`utc_stamp`] in front.
pub fn event_line_dated(ev: &Event) -> String {
    event_line_at(ev, &utc_stamp(ev.time))
}

fn event_line_at(ev: &Event, time: &str) -> String {
    let agent = ev.agent_name().unwrap_or("-");
    let session = ev
        .session_id()
        .map(|s| &s[s.len().saturating_sub(8)..])
        .unwrap_or("-");
    let p = &ev.process;
    let who = format!("{}[{}]", escape_bytes(p.comm.as_bytes()), p.pid);
    let what = match ev.kind() {
        Kind::ProcessExec => format!(
            "{}  argv: {}{}",
            escape_bytes(p.exe.as_bytes()),
            escape_bytes(p.cmdline.as_bytes()),
            if p.args_truncated { " [truncated]" } else { "" }
        ),
        Kind::ProcessExit => match &ev.exit {
            Some(x) => match (x.code, x.signal) {
                (_, Some(s)) => format!("killed by signal {s}"),
                (Some(c), _) => format!("exit code {c}"),
                _ => String::new(),
            },
            None => String::new(),
        },
        Kind::ProcessFork => format!(
            "forked from pid {}",
            ev.parent.as_ref().map_or(0, |p| p.pid)
        ),
        Kind::FileOpen | Kind::FileUnlink | Kind::FileRename => match &ev.file {
            Some(f) => {
                let mut s = escape_bytes(f.path.as_bytes());
                if let Some(t) = &f.target {
                    s.push_str(" -> ");
                    s.push_str(&escape_bytes(t.as_bytes()));
                }
                if let Some(a) = &f.access {
                    s.push_str(&format!("  ({a}"));
                    for fl in f
                        .flags
                        .iter()
                        .filter(|f| matches!(f.as_str(), "O_CREAT" | "O_TRUNC" | "O_APPEND"))
                    {
                        s.push(' ');
                        s.push_str(fl);
                    }
                    if f.via.as_deref() == Some("io_uring") {
                        s.push_str(" via io_uring");
                    }
                    s.push(')');
                }
                s
            }
            None => String::new(),
        },
        Kind::NetDns => match &ev.dns {
            Some(d) => format!("{} {}", d.qtype, escape_bytes(d.qname.as_bytes())),
            None => String::new(),
        },
        Kind::NetFlow => match &ev.net {
            Some(n) => format!(
                "{}  sent {} received {} ({})",
                net_endpoint(n, escape),
                n.bytes.unwrap_or(0),
                n.bytes_received.unwrap_or(0),
                n.flow_state.as_deref().unwrap_or("-")
            ),
            None => String::new(),
        },
        Kind::NetSend => match &ev.net {
            Some(n) => format!(
                "{}  {} bytes",
                net_endpoint(n, escape),
                n.bytes.unwrap_or(0)
            ),
            None => String::new(),
        },
        _ => match (&ev.net, &ev.file, &ev.monitor) {
            (Some(n), _, _) => net_endpoint(n, escape),
            (None, Some(f), _) => escape_bytes(f.path.as_bytes()),
            (None, None, Some(m)) => m.message.as_deref().map(escape).unwrap_or_default(),
            _ => String::new(),
        },
    };
    format!(
        "{time} {agent:<12} {session} {:<13} {who:<22} {what}",
        ev.kind().name()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_utf8_bytes_print_escaped_and_distinct() {
        let names: [&[u8]; 3] = [b"a\xff.txt", b"a\xfe.txt", b"a\xc3.txt"];
        let shown: Vec<String> = names.iter().map(|b| escape_bytes(b)).collect();
        assert_eq!(shown, ["a\\xff.txt", "a\\xfe.txt", "a\\xc3.txt"]);
        // Valid text is escaped as before; a literal backslash stays distinguishable.
        assert_eq!(escape_bytes("é\n\\xff".as_bytes()), "é\\n\\\\xff");
    }

    #[test]
    fn utc_stamp_has_date_millis_and_z() {
        // 2026-12-07T14:17:21.123456789Z
        let t = crate::Timestamp(1_796_653_041_123_456_789);
        assert_eq!(utc_stamp(t), "2026-12-07T14:17:21.123Z");
        assert_eq!(
            utc_stamp(crate::Timestamp(1_796_653_041_000_000_000)),
            "2026-12-07T14:17:21.000Z"
        );
    }

    #[test]
    fn escapes_every_dangerous_character() {
        let hostile = "a\x1b]0;pwned\x07b\x1b[2Jc\u{9b}31m\u{202e}evil\u{200b}\nnext\\";
        let e = escape(hostile);
        assert_eq!(
            e,
            "a\\x1b]0;pwned\\x07b\\x1b[2Jc\\u{009b}31m\\u{202e}evil\\u{200b}\\nnext\\\\"
        );
        assert!(e.chars().all(|c| !c.is_control()));
    }

    #[test]
    fn plain_text_and_wide_characters_are_kept() {
        assert_eq!(escape("/home/ünï/文件.txt"), "/home/ünï/文件.txt");
    }
}
