//! Bounded, redacted excerpts of the text an agent exchanges with its model.
//!
//! Every piece of prompt, model output or tool input that leaves this crate goes through
//! [`Excerpter::excerpt`]: it is redacted by the daemon's [`Redact`] hook (the same secret
//! redactor it applies to argv) and then cut to `max_bytes` on a char boundary. Redaction runs
//! on a window a little larger than the limit, so a secret that straddles the cut is still seen
//! whole by the redactor. In metadata-only mode no excerpt is produced at all: only names, sizes
//! and token counts leave the crate. [`TextAcc`] collects streamed text (SSE deltas) into such a
//! window while counting the full size.

use crate::limits::Stats;

/// The daemon's redaction hook, applied to every excerpt before it is cut.
pub trait Redact {
    fn redact(&self, text: &str) -> String;
}

impl<F: Fn(&str) -> String> Redact for F {
    fn redact(&self, text: &str) -> String {
        self(text)
    }
}

/// A redactor that changes nothing (tests, or a daemon configured without one).
pub fn no_redaction(text: &str) -> String {
    text.to_owned()
}

/// How much text may leave the crate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExcerptPolicy {
    /// Largest excerpt, in bytes.
    pub max_bytes: usize,
    /// Only metadata (model, tool names, sizes, tokens): every excerpt is `None`.
    pub metadata_only: bool,
}

impl Default for ExcerptPolicy {
    fn default() -> Self {
        Self {
            max_bytes: 2048,
            metadata_only: false,
        }
    }
}

impl ExcerptPolicy {
    /// The bytes kept before redaction: the limit plus room for a secret straddling the cut.
    pub fn window(&self) -> usize {
        self.max_bytes.saturating_mul(2).saturating_add(256)
    }
}

/// A policy and a redactor, borrowed for one parse.
#[derive(Clone, Copy)]
pub struct Excerpter<'a> {
    pub policy: &'a ExcerptPolicy,
    pub redact: &'a dyn Redact,
}

impl Excerpter<'_> {
    /// The redacted, bounded excerpt of `text`, or `None` in metadata-only mode or for empty
    /// text.
    pub fn excerpt(&self, text: &str, stats: &mut Stats) -> Option<String> {
        if self.policy.metadata_only || text.is_empty() {
            return None;
        }
        let window = cut(text, self.policy.window());
        let red = self.redact.redact(window);
        let out = cut(&red, self.policy.max_bytes);
        if out.len() < text.len() && (out.len() < red.len() || window.len() < text.len()) {
            stats.excerpts_cut += 1;
        }
        Some(out.to_owned())
    }
}

/// The longest prefix of `s` of at most `max` bytes that ends on a char boundary.
pub fn cut(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// Streamed text: keeps the first `window` bytes and counts them all.
#[derive(Debug, Default, Clone)]
pub struct TextAcc {
    pub text: String,
    pub bytes: u64,
}

impl TextAcc {
    pub fn push(&mut self, s: &str, window: usize) {
        self.bytes += s.len() as u64;
        let room = window.saturating_sub(self.text.len());
        if room > 0 {
            self.text.push_str(cut(s, room));
        }
    }

    /// Replaces the text (an API's final, complete value of something streamed before).
    pub fn set(&mut self, s: &str, window: usize) {
        self.text.clear();
        self.bytes = 0;
        self.push(s, window);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cut_respects_char_boundaries() {
        assert_eq!(cut("héllo", 2), "h");
        assert_eq!(cut("héllo", 3), "hé");
        assert_eq!(cut("abc", 10), "abc");
    }

    #[test]
    fn redaction_sees_a_secret_straddling_the_cut() {
        let redact = |s: &str| s.replace("sk-ant-SECRET", "[redacted]");
        let policy = ExcerptPolicy {
            max_bytes: 10,
            metadata_only: false,
        };
        let ex = Excerpter {
            policy: &policy,
            redact: &redact,
        };
        let mut stats = Stats::default();
        let out = ex
            .excerpt("key=sk-ant-SECRET and more", &mut stats)
            .unwrap();
        assert_eq!(out, "key=[redac");
        assert!(!out.contains("sk-ant"));
        assert_eq!(stats.excerpts_cut, 1);
    }

    #[test]
    fn metadata_only_gives_nothing() {
        let policy = ExcerptPolicy {
            max_bytes: 10,
            metadata_only: true,
        };
        let ex = Excerpter {
            policy: &policy,
            redact: &no_redaction,
        };
        assert_eq!(ex.excerpt("hello", &mut Stats::default()), None);
    }

    #[test]
    fn text_acc_keeps_a_window_and_counts_everything() {
        let mut acc = TextAcc::default();
        for _ in 0..1000 {
            acc.push("héllo ", 11);
        }
        assert_eq!(acc.text, "héllo hél");
        assert_eq!(acc.bytes, 7000);
    }
}
