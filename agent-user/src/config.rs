//! Daemon configuration: which processes are agents, and daemon settings.
//!
//! ```toml
//! [[agent]]
//! name = "claude"
//! exe = ["/usr/local/bin/claude", "/opt/*/bin/claude"]   # globs on the kernel's exe path
//! comm = ["claude"]                                       # kernel command name (15 bytes)
//! cgroup = ["/agents.slice/*"]                            # cgroup v2 path globs
//! uid = [1500]
//! ```
//!
//! Every selector is checked in the kernel at exec, so no event is lost between an agent's exec
//! and its identification. An exe glob is pre-matched in the kernel on its file name, which must
//! therefore be literal; user space confirms the whole glob on the exec record.

use std::path::{Path, PathBuf};

use globset::{Glob, GlobMatcher};
use serde::Deserialize;

/// The built-in configuration used when no file is given and `/etc/agentwatch/config.toml` is
/// absent: well-known AI agent CLIs by command name.
pub const DEFAULT_CONFIG: &str = include_str!("default_config.toml");

/// Default config path.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/agentwatch/config.toml";

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    agent: Vec<RawAgent>,
    #[serde(default)]
    daemon: RawDaemon,
    #[serde(default)]
    redact: RawRedact,
    #[serde(default)]
    output: Vec<RawOutput>,
}

/// `[[output]]`: where else events and alerts go, by `type`.
#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
enum RawOutput {
    /// NATS JetStream, shipped from the spool (`agent-fleet`).
    Nats(agent_fleet::NatsConfig),
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawRedact {
    /// Replace the default patterns.
    patterns: Option<Vec<String>>,
    /// Add to them.
    #[serde(default)]
    extra_patterns: Vec<String>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawDaemon {
    ringbuf_bytes: Option<u32>,
    flow_report_secs: Option<u64>,
    host: Option<String>,
    /// The user the daemon runs as when not root (name or uid); `agentwatch run` accepts a
    /// daemon running as root or as this user, nobody else.
    user: Option<String>,
    /// Where the store's high-water mark is kept (a file outside the data dir).
    mark: Option<PathBuf>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAgent {
    name: String,
    #[serde(default)]
    exe: Vec<String>,
    #[serde(default)]
    comm: Vec<String>,
    #[serde(default)]
    cgroup: Vec<String>,
    #[serde(default)]
    uid: Vec<u32>,
}

/// One agent class.
#[derive(Debug, Clone)]
pub struct Agent {
    pub name: String,
    pub exe: Vec<(String, GlobMatcher)>,
    pub comm: Vec<String>,
    pub cgroup: Vec<(String, GlobMatcher)>,
    pub uid: Vec<u32>,
}

impl Agent {
    /// Whether an executable path matches one of the exe globs.
    pub fn exe_matches(&self, exe: &str) -> bool {
        self.exe.iter().any(|(_, g)| g.is_match(exe))
    }
}

/// Validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where it came from (`<built-in>` or a path).
    pub origin: String,
    pub agents: Vec<Agent>,
    pub ringbuf_bytes: u32,
    /// How often a socket that is still open gets a `net.flow` `update` report (seconds).
    pub flow_report_secs: u64,
    pub host: Option<String>,
    /// argv redaction patterns (regexes; the first capture group is masked).
    pub redact_patterns: Vec<String>,
    /// `[daemon] user`: the daemon's user when it does not run as root (name or uid).
    pub daemon_user: Option<String>,
    /// `[daemon] mark`: the high-water mark file (default: see `protect::default_mark_path`).
    pub mark: Option<PathBuf>,
    /// `[[output]] type = "nats"`: fleet outputs, validated.
    pub nats_outputs: Vec<agent_fleet::NatsConfig>,
}

impl Config {
    /// The uids `agentwatch run` accepts as the daemon: root, and `[daemon] user` when set (a
    /// number, or a name looked up in `/etc/passwd`).
    pub fn daemon_uids(&self) -> Result<Vec<u32>, anyhow::Error> {
        let mut out = vec![0];
        if let Some(u) = &self.daemon_user {
            out.push(resolve_user(u).ok_or_else(|| {
                anyhow::anyhow!(
                    "{}: `[daemon] user` = `{u}` is neither a uid nor a user in `/etc/passwd`",
                    self.origin
                )
            })?);
        }
        Ok(out)
    }
}

/// A uid given as a number, or a user name from `/etc/passwd`.
fn resolve_user(u: &str) -> Option<u32> {
    if let Ok(n) = u.parse() {
        return Some(n);
    }
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    passwd.lines().find_map(|l| {
        let mut f = l.split(':');
        (f.next()? == u).then_some(())?;
        f.nth(1)?.parse().ok()
    })
}

/// A configuration error, displayed as `file:line:col: message`.
#[derive(Debug, thiserror::Error)]
#[error("{origin}:{line}:{col}: {message}")]
pub struct ConfigError {
    pub origin: String,
    pub line: usize,
    pub col: usize,
    pub message: String,
}

fn line_col(text: &str, byte: usize) -> (usize, usize) {
    let byte = byte.min(text.len());
    let before = &text[..byte];
    let line = before.matches('\n').count() + 1;
    let col = before.rfind('\n').map_or(byte, |i| byte - i - 1) + 1;
    (line, col)
}

/// Find the byte offset of a value in the text, for errors found after parsing.
fn locate(text: &str, needle: &str) -> usize {
    text.find(needle).unwrap_or(0)
}

impl Config {
    /// Load from `path`, or the default path, or the built-in config.
    pub fn load(path: Option<&Path>) -> Result<Config, anyhow::Error> {
        let path: Option<PathBuf> = match path {
            Some(p) => Some(p.to_path_buf()),
            None if Path::new(DEFAULT_CONFIG_PATH).exists() => Some(DEFAULT_CONFIG_PATH.into()),
            None => None,
        };
        match path {
            Some(p) => {
                let bytes = std::fs::read(&p)
                    .map_err(|e| anyhow::anyhow!("cannot read config `{}`: {e}", p.display()))?;
                let text = String::from_utf8(bytes).map_err(|e| ConfigError {
                    origin: p.display().to_string(),
                    line: 1,
                    col: 1,
                    message: format!("config is not valid UTF-8: {e}"),
                })?;
                Ok(Config::parse(&p.display().to_string(), &text)?)
            }
            None => Ok(Config::parse("<built-in config>", DEFAULT_CONFIG)?),
        }
    }

    /// Parse and validate config text.
    pub fn parse(origin: &str, text: &str) -> Result<Config, ConfigError> {
        let err = |at: usize, message: String| {
            let (line, col) = line_col(text, at);
            ConfigError {
                origin: origin.to_owned(),
                line,
                col,
                message,
            }
        };
        let raw: RawConfig = toml::from_str(text).map_err(|e| {
            let at = e.span().map_or(0, |s| s.start);
            err(at, e.message().trim().to_owned())
        })?;
        let mut agents = Vec::new();
        for a in raw.agent {
            let at = locate(text, &format!("\"{}\"", a.name));
            if a.name.is_empty()
                || !a
                    .name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
            {
                return Err(err(
                    at,
                    format!(
                        "agent name `{}` must be non-empty ASCII letters, digits, `-`, `_` or `.`",
                        a.name
                    ),
                ));
            }
            if agents.iter().any(|x: &Agent| x.name == a.name) {
                return Err(err(at, format!("duplicate agent `{}`", a.name)));
            }
            if a.exe.is_empty() && a.comm.is_empty() && a.cgroup.is_empty() && a.uid.is_empty() {
                return Err(err(
                    at,
                    format!(
                        "agent `{}` has no selector: give `exe`, `comm`, `cgroup` or `uid`",
                        a.name
                    ),
                ));
            }
            let mut exe = Vec::new();
            for g in a.exe {
                let at = locate(text, &g);
                if !g.starts_with('/') {
                    return Err(err(at, format!("exe glob `{g}` must be an absolute path")));
                }
                let base = g.rsplit('/').next().unwrap_or("");
                if base.is_empty() || base.contains(['*', '?', '[', '{']) {
                    return Err(err(
                        at,
                        format!(
                            "exe glob `{g}`: the file name part must be literal so the kernel can match it at exec; use `comm` for name patterns"
                        ),
                    ));
                }
                let m = Glob::new(&g)
                    .map_err(|e| err(at, format!("bad exe glob `{g}`: {e}")))?
                    .compile_matcher();
                exe.push((g, m));
            }
            for c in &a.comm {
                if c.is_empty() || c.len() > 15 {
                    return Err(err(
                        locate(text, c),
                        format!("comm `{c}` must be 1 to 15 bytes (the kernel keeps 15)"),
                    ));
                }
            }
            let mut cgroup = Vec::new();
            for g in a.cgroup {
                let at = locate(text, &g);
                if !g.starts_with('/') {
                    return Err(err(
                        at,
                        format!(
                            "cgroup glob `{g}` must start with `/` (relative to the cgroup v2 root)"
                        ),
                    ));
                }
                let m = Glob::new(&g)
                    .map_err(|e| err(at, format!("bad cgroup glob `{g}`: {e}")))?
                    .compile_matcher();
                cgroup.push((g, m));
            }
            agents.push(Agent {
                name: a.name,
                exe,
                comm: a.comm,
                cgroup,
                uid: a.uid,
            });
        }
        let ringbuf_bytes = raw.daemon.ringbuf_bytes.unwrap_or(16 << 20);
        if !ringbuf_bytes.is_power_of_two() || ringbuf_bytes < 4096 {
            return Err(err(
                locate(text, "ringbuf_bytes"),
                format!(
                    "`ringbuf_bytes` = `{ringbuf_bytes}` must be a power of two of at least 4096"
                ),
            ));
        }
        let flow_report_secs = raw.daemon.flow_report_secs.unwrap_or(30);
        if flow_report_secs == 0 {
            return Err(err(
                locate(text, "flow_report_secs"),
                "`flow_report_secs` must be at least 1".to_owned(),
            ));
        }
        if let Some(u) = &raw.daemon.user
            && (u.is_empty() || u.contains([':', '\n']))
        {
            return Err(err(
                locate(text, "user"),
                format!("`user` = `{u}` is not a user name or uid"),
            ));
        }
        let mark = raw.daemon.mark;
        if let Some(m) = &mark
            && !m.is_absolute()
        {
            return Err(err(
                locate(text, "mark"),
                format!("`mark` = `{}` must be an absolute path", m.display()),
            ));
        }
        let mut redact_patterns: Vec<String> = raw.redact.patterns.unwrap_or_else(|| {
            crate::redact::DEFAULT_PATTERNS
                .iter()
                .map(|p| p.to_string())
                .collect()
        });
        redact_patterns.extend(raw.redact.extra_patterns);
        for p in &redact_patterns {
            if let Err(e) = regex::bytes::Regex::new(p) {
                return Err(err(
                    locate(text, p),
                    format!("bad redaction pattern `{p}`: {e}"),
                ));
            }
        }
        let mut nats_outputs: Vec<agent_fleet::NatsConfig> = Vec::new();
        for RawOutput::Nats(n) in raw.output {
            let at = locate(text, "[[output]]");
            n.validate().map_err(|e| err(at, e.to_string()))?;
            if nats_outputs.iter().any(|o| o.name == n.name) {
                return Err(err(
                    at,
                    format!(
                        "two `[[output]]` are named `{}`; give each a `name`",
                        n.name
                    ),
                ));
            }
            nats_outputs.push(n);
        }
        Ok(Config {
            origin: origin.to_owned(),
            agents,
            ringbuf_bytes,
            flow_report_secs,
            host: raw.daemon.host,
            redact_patterns,
            daemon_user: raw.daemon.user,
            mark,
            nats_outputs,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_config_is_valid() {
        let c = Config::parse("<built-in>", DEFAULT_CONFIG).unwrap();
        assert!(!c.agents.is_empty());
    }

    #[test]
    fn unknown_key_names_file_line_and_column() {
        let e = Config::parse("c.toml", "[[agent]]\nname = \"a\"\ncomn = [\"x\"]\n").unwrap_err();
        let s = e.to_string();
        assert!(s.starts_with("c.toml:3:1: "), "{s}");
        assert!(s.contains("comn"), "{s}");
    }

    #[test]
    fn wildcard_file_name_in_exe_glob_is_rejected() {
        let e = Config::parse("c.toml", "[[agent]]\nname = \"a\"\nexe = [\"/opt/*\"]\n")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("c.toml:3:"), "{e}");
        assert!(e.contains("must be literal"), "{e}");
    }

    #[test]
    fn agent_without_selector_and_long_comm_are_rejected() {
        assert!(Config::parse("c", "[[agent]]\nname = \"a\"\n").is_err());
        assert!(
            Config::parse(
                "c",
                "[[agent]]\nname = \"a\"\ncomm = [\"abcdefghijklmnopq\"]\n"
            )
            .is_err()
        );
    }

    #[test]
    fn daemon_user_and_mark_are_read_and_checked() {
        let c = Config::parse("c", "[daemon]\nuser = \"root\"\nmark = \"/m/x\"\n").unwrap();
        assert_eq!(c.daemon_uids().unwrap(), [0, 0]);
        assert_eq!(c.mark.as_deref(), Some(Path::new("/m/x")));
        let c = Config::parse("c", "[daemon]\nuser = \"1234\"\n").unwrap();
        assert_eq!(c.daemon_uids().unwrap(), [0, 1234]);
        let c = Config::parse("c", "[daemon]\nuser = \"no-such-user-here\"\n").unwrap();
        let e = c.daemon_uids().unwrap_err().to_string();
        assert!(e.contains("no-such-user-here"), "{e}");
        let e = Config::parse("c", "[daemon]\nmark = \"rel/x\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("c:2:") && e.contains("absolute"), "{e}");
    }

    #[test]
    fn nats_outputs_are_read_and_checked() {
        let c = Config::parse(
            "c",
            "[[output]]\ntype = \"nats\"\nservers = [\"nats://10.0.0.1:4222\"]\nreplicas = 3\n",
        )
        .unwrap();
        assert_eq!(c.nats_outputs.len(), 1);
        assert_eq!(c.nats_outputs[0].replicas, 3);
        let e = Config::parse(
            "c",
            "[daemon]\n\n[[output]]\ntype = \"nats\"\nservers = []\n",
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.starts_with("c:3:1: ") && e.contains("`servers` is empty"),
            "{e}"
        );
        let e = Config::parse("c", "[[output]]\ntype = \"kafka\"\nservers = []\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("kafka"), "{e}");
        let e = Config::parse(
            "c",
            "[[output]]\ntype = \"nats\"\nservers = [\"nats://a:1\"]\nsubjects = 1\n",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("subjects"), "{e}");
    }

    #[test]
    fn exe_glob_matches_full_path() {
        let c = Config::parse("c", "[[agent]]\nname = \"a\"\nexe = [\"/opt/**/agent\"]\n").unwrap();
        assert!(c.agents[0].exe_matches("/opt/x/y/agent"));
        assert!(!c.agents[0].exe_matches("/usr/bin/agent"));
    }
}
