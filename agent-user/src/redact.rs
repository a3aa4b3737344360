//! Masks argv values that look like credentials before an event leaves the daemon, and flags the
//! event (`process.args_redacted`). The patterns are configurable (`[redact] patterns` in the
//! config); the defaults cover `--password=...`-style flags, the value after a bare `--token`
//! flag, bearer headers, credentials in URLs, and well-known token formats (AWS, GitHub, Slack,
//! OpenAI/Anthropic-style `sk-` keys, private key blocks).

use agent_model::BStr;
use regex::bytes::Regex;

/// The default patterns. In each, the first capture group (or the whole match when there is
/// none) is replaced by `***`.
pub const DEFAULT_PATTERNS: &[&str] = &[
    r"(?i)(?:^|[-_])(?:password|passwd|pass|pwd|token|secret|api[-_]?key|access[-_]?key|client[-_]?secret|auth)\s*[=:]\s*(\S+)",
    r"(?i)(?:^|\s)--?(?:password|passwd|pass|token|secret|api[-_]?key|access[-_]?key|secret[-_]?key|client[-_]?secret|auth[-_]?token)\s+([^\s;&|)-][^\s;&|)]*)",
    r"(?i)\bbearer\s+(\S+)",
    r"(?i)\bbasic\s+([A-Za-z0-9+/=]{8,})",
    r"://[^/\s:@]+:([^/\s@]+)@",
    r"\b(AKIA[0-9A-Z]{16})\b",
    r"\b(gh[pousr]_[A-Za-z0-9]{20,})",
    r"\b(github_pat_[A-Za-z0-9_]{20,})",
    r"\b(xox[abprs]-[A-Za-z0-9-]{10,})",
    r"\b(sk-[A-Za-z0-9_-]{20,})",
    r"(-----BEGIN [A-Z ]*PRIVATE KEY-----)",
    // `aws configure set aws_secret_access_key VALUE` inside one shell command string.
    r"(?i)\b(?:aws_secret_access_key|aws_session_token)\s+([^\s;&|)]+)",
];

/// Flags whose *next* argument is a secret.
const SECRET_FLAGS: &[&str] = &[
    "--password",
    "--passwd",
    "-password",
    "--token",
    "--secret",
    "--api-key",
    "--apikey",
    "--access-key",
    "--secret-key",
    "--client-secret",
    "--auth-token",
    // `aws configure set aws_secret_access_key VALUE`
    "aws_secret_access_key",
    "aws_session_token",
];

#[derive(Clone)]
pub struct Redactor {
    patterns: Vec<Regex>,
}

impl Redactor {
    pub fn new(patterns: &[String]) -> Result<Redactor, regex::Error> {
        Ok(Redactor {
            patterns: patterns
                .iter()
                .map(|p| Regex::new(p))
                .collect::<Result<_, _>>()?,
        })
    }

    pub fn defaults() -> Redactor {
        Redactor::new(
            &DEFAULT_PATTERNS
                .iter()
                .map(|s| s.to_string())
                .collect::<Vec<_>>(),
        )
        .expect("default patterns compile")
    }

    fn mask_one(&self, arg: &[u8]) -> Option<Vec<u8>> {
        let mut out = arg.to_vec();
        let mut changed = false;
        for re in &self.patterns {
            // Replace from the end so earlier offsets stay valid.
            let spans: Vec<(usize, usize)> = re
                .captures_iter(&out)
                .filter_map(|c| c.get(1).or_else(|| c.get(0)).map(|m| (m.start(), m.end())))
                .collect();
            for (a, b) in spans.into_iter().rev() {
                if &out[a..b] != b"***" {
                    out.splice(a..b, b"***".iter().copied());
                    changed = true;
                }
            }
        }
        changed.then_some(out)
    }

    /// Mask secrets in one free text (a tool's input or output, a prompt); true when anything
    /// was masked.
    pub fn redact_text(&self, text: &str) -> (String, bool) {
        match self.mask_one(text.as_bytes()) {
            Some(m) => (String::from_utf8_lossy(&m).into_owned(), true),
            None => (text.to_owned(), false),
        }
    }

    /// Mask secrets in argv in place; true when anything was masked.
    pub fn redact(&self, args: &mut [BStr]) -> bool {
        let mut any = false;
        let mut next_is_secret = false;
        for a in args.iter_mut() {
            if next_is_secret {
                next_is_secret = false;
                if !a.is_empty() {
                    *a = BStr::from("***");
                    any = true;
                    continue;
                }
            }
            let lower = a.to_str_lossy().to_ascii_lowercase();
            if SECRET_FLAGS.contains(&lower.as_str()) {
                next_is_secret = true;
                continue;
            }
            if let Some(m) = self.mask_one(a.as_bytes()) {
                *a = BStr(m);
                any = true;
            }
        }
        any
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(args: &[&str]) -> (Vec<String>, bool) {
        let mut v: Vec<BStr> = args.iter().map(|a| BStr::from(*a)).collect();
        let changed = Redactor::defaults().redact(&mut v);
        (
            v.iter().map(|a| a.to_str_lossy().into_owned()).collect(),
            changed,
        )
    }

    #[test]
    fn masks_common_credential_shapes() {
        assert_eq!(
            r(&["mysql", "--password=hunter2", "-u", "root"]).0,
            ["mysql", "--password=***", "-u", "root"]
        );
        assert_eq!(
            r(&["tool", "--token", "abc123", "x"]).0,
            ["tool", "--token", "***", "x"]
        );
        assert_eq!(
            r(&["curl", "-H", "Authorization: Bearer eyJhbGciOi.x.y"]).0,
            ["curl", "-H", "Authorization: Bearer ***"]
        );
        assert_eq!(
            r(&["git", "clone", "https://bob:s3cr3t@example.com/r.git"]).0[2],
            "https://bob:***@example.com/r.git"
        );
        assert_eq!(
            r(&["env", "AWS_ACCESS_KEY_ID=AKIAABCDEFGHIJKLMNOP"]).0[1],
            "AWS_ACCESS_KEY_ID=***"
        );
        assert_eq!(r(&["x", "ghp_abcdefghijklmnopqrstuvwxyz0123"]).0[1], "***");
        assert_eq!(
            r(&[
                "aws",
                "configure",
                "set",
                "aws_secret_access_key",
                "wJalrXUtnFEMI"
            ])
            .0,
            ["aws", "configure", "set", "aws_secret_access_key", "***"]
        );
        assert_eq!(
            r(&[
                "sh",
                "-c",
                "aws configure set aws_session_token IQoJb3JpZ2lu && ls"
            ])
            .0[2],
            "aws configure set aws_session_token *** && ls"
        );
        assert_eq!(
            r(&["x", "ANTHROPIC_API_KEY=sk-ant-api03-abcdefghijklmnopqrstu"]).0[1],
            "ANTHROPIC_API_KEY=***"
        );
    }

    /// Regression: most agent commands arrive as one `sh -c` string, where a secret follows its
    /// flag after a space inside the same argument.
    #[test]
    fn masks_flag_values_inside_a_shell_command_string() {
        let (v, changed) = r(&[
            "/bin/sh",
            "-c",
            "true --password=hunter2 --token s3cr3tT0ken; true",
        ]);
        assert!(changed);
        assert_eq!(v[2], "true --password=*** --token ***; true");
        assert!(
            !v.iter()
                .any(|a| a.contains("s3cr3t") || a.contains("hunter2"))
        );
    }

    #[test]
    fn leaves_ordinary_arguments_alone() {
        let (v, changed) = r(&[
            "cargo",
            "build",
            "--release",
            "--features",
            "passthrough",
            "token.rs",
        ]);
        assert!(!changed);
        assert_eq!(
            v,
            [
                "cargo",
                "build",
                "--release",
                "--features",
                "passthrough",
                "token.rs"
            ]
        );
    }
}
