//! Terminal-safe, width-aware text: every agent-originated string is passed through [`safe`]
//! once (when it enters the model), and cells are cut to their column width with [`fit`].
//!
//! [`agent_model::display::escape`] already turns control characters, C1, bidi and zero-width
//! characters into visible escapes. On top of that we cap combining marks: a base character keeps
//! at most [`MAX_MARKS`] of them and the rest are shown as `\u{..}` escapes, so a combining-mark
//! storm cannot pile thousands of code points into one terminal cell, and a mark with no base at
//! the start of a string cannot attach itself to the cell drawn before it.
//!
//! The two human formats of numbers the UI shows, [`duration`] and [`bytes`], live here too: they
//! make short display strings as well, and both the answer parsing and the drawing use them.

use unicode_width::{UnicodeWidthChar as _, UnicodeWidthStr as _};

/// Combining marks kept on one base character.
pub const MAX_MARKS: usize = 2;

/// Longest text (in chars) kept for one value; the rest is summarised.
pub const MAX_CHARS: usize = 4096;

/// Escape an agent-originated string for display.
pub fn safe(s: &str) -> String {
    let escaped = agent_model::display::escape(s);
    let mut out = String::with_capacity(escaped.len().min(MAX_CHARS * 4));
    let mut marks = 0usize;
    let mut have_base = false;
    let mut chars = 0usize;
    let mut rest = 0usize;
    for c in escaped.chars() {
        if chars >= MAX_CHARS {
            rest += c.len_utf8();
            continue;
        }
        let w = c.width().unwrap_or(0);
        if w == 0 {
            if have_base && marks < MAX_MARKS {
                marks += 1;
                out.push(c);
                chars += 1;
            } else {
                let e = format!("\\u{{{:04x}}}", c as u32);
                chars += e.len();
                out.push_str(&e);
            }
        } else {
            have_base = true;
            marks = 0;
            out.push(c);
            chars += 1;
        }
    }
    if rest > 0 {
        out.push_str(&format!("…(+{rest} bytes)"));
    }
    out
}

/// Display width in terminal columns.
pub fn width(s: &str) -> usize {
    s.width()
}

/// Cut `s` (already safe) to at most `cols` columns, ending with `…` when cut. Never splits a
/// wide character.
pub fn fit(s: &str, cols: usize) -> String {
    if cols == 0 {
        return String::new();
    }
    // Fast path: short ASCII-ish strings.
    if s.len() <= cols && s.is_ascii() {
        return s.to_string();
    }
    let mut out = String::new();
    let mut used = 0usize;
    for (i, c) in s.char_indices() {
        let w = c.width().unwrap_or(0);
        if used + w > cols.saturating_sub(1) {
            // Does the rest fit exactly?
            if s[i..].width() + used <= cols {
                out.push_str(&s[i..]);
                return out;
            }
            out.push('…');
            return out;
        }
        used += w;
        out.push(c);
    }
    out
}

/// `fit` then pad with spaces to exactly `cols` columns.
pub fn pad(s: &str, cols: usize) -> String {
    let mut f = fit(s, cols);
    let w = f.width();
    for _ in w..cols {
        f.push(' ');
    }
    f
}

/// True when `c` must never reach the terminal raw.
pub fn is_dangerous(c: char) -> bool {
    let u = c as u32;
    c.is_control()
        || (0x200b..=0x200f).contains(&u)
        || (0x2028..=0x202e).contains(&u)
        || (0x2060..=0x206f).contains(&u)
        || u == 0xfeff
        || (0xfff9..=0xfffb).contains(&u)
}

/// `1h02m`, `3m05s`, `12s`.
pub fn duration(ns: i64) -> String {
    let s = (ns / 1_000_000_000).max(0);
    if s >= 86400 {
        format!("{}d{:02}h", s / 86400, s % 86400 / 3600)
    } else if s >= 3600 {
        format!("{}h{:02}m", s / 3600, s % 3600 / 60)
    } else if s >= 60 {
        format!("{}m{:02}s", s / 60, s % 60)
    } else {
        format!("{s}s")
    }
}

/// `512 B`, `1.5 KiB`, ... up to TiB.
pub fn bytes(n: u64) -> String {
    const U: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut f = n as f64;
    let mut u = 0;
    while f >= 1024.0 && u < U.len() - 1 {
        f /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{f:.1} {}", U[u])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_controls_and_caps_marks() {
        let s = safe("a\x1b[2J\u{202e}b\u{200b}\ne\u{301}\u{301}\u{301}\u{301}");
        assert!(!s.chars().any(is_dangerous), "{s:?}");
        assert_eq!(s.matches('\u{301}').count(), MAX_MARKS);
        assert!(s.contains("\\u{0301}"));
    }

    #[test]
    fn leading_mark_is_escaped() {
        assert_eq!(safe("\u{301}x"), "\\u{0301}x");
    }

    #[test]
    fn huge_values_are_summarised() {
        let s = safe(&"x".repeat(65536));
        assert!(s.ends_with("…(+61440 bytes)"), "{}", &s[s.len() - 30..]);
    }

    #[test]
    fn fit_respects_wide_characters() {
        assert_eq!(fit("文件文件", 5), "文件…");
        assert_eq!(width(&fit("文件文件", 5)), 5);
        assert_eq!(fit("文件", 4), "文件");
        assert_eq!(fit("abcdef", 4), "abc…");
        assert_eq!(fit("abcd", 4), "abcd");
        assert_eq!(width(&pad("文x", 6)), 6);
    }
}
