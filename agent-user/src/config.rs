// Over 800 lines: every config section is parsed and checked here with spans for `file:line:col`; about a third is its tests.
//! Daemon configuration: which processes are agents, and daemon settings.
//!
//! ```toml
//! [[agent]]
//! name = "claude"
//! exe = ["/usr/local/bin/claude", "/opt/*/bin/claude"]   # globs on the kernel's exe path
//! comm = ["claude"]                                       # kernel command name (15 bytes)
//! cgroup = ["/agents.slice/*"]                            # cgroup v2 path globs
//! uid = [1500]
//! metadata_only = false   # true: hook and llm.* events keep no prompt, tool input or output text
//! ```
//!
//! Every selector is checked in the kernel at exec, so no event is lost between an agent's exec
//! and its identification. An exe glob is pre-matched in the kernel on its file name, which must
//! therefore be literal; user space confirms the whole glob on the exec record.

use std::path::{Path, PathBuf};

use globset::{Glob, GlobMatcher};
use serde::Deserialize;
use toml::Spanned;

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
    hooks: RawHooks,
    #[serde(default)]
    response: RawResponse,
    #[serde(default)]
    store: RawStore,
    #[serde(default)]
    output: Vec<RawOutput>,
    #[serde(default)]
    protect: RawProtect,
    #[serde(default)]
    egress: Vec<crate::egress::RawEgress>,
    #[serde(default)]
    metrics: RawMetrics,
    #[serde(default)]
    intent: RawIntent,
}

/// `[intent]`: where the agent's intent is read from.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawIntent {
    /// TLS plaintext uprobes on libssl and executables exporting `SSL_write` (default on).
    tls: Option<bool>,
}

/// `[protect]`: what happens to sessions while no daemon runs.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawProtect {
    fail_closed: Option<Spanned<String>>,
    fail_closed_after_secs: Option<Spanned<u64>>,
}

/// `[metrics]`: the Prometheus endpoint (off unless `listen` is set).
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawMetrics {
    /// `IP:PORT` on a loopback address, e.g. `127.0.0.1:9464`.
    listen: Option<Spanned<String>>,
}

/// `[[output]]`: where else events and alerts go, by `type`.
#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
enum RawOutput {
    /// NATS JetStream, shipped from the spool (`agent-fleet`).
    Nats(agent_fleet::NatsConfig),
    /// Alerts POSTed as JSON, shipped from the spool (`webhook`).
    Webhook(crate::webhook::WebhookConfig),
    /// Alerts as RFC 5424 syslog messages, shipped from the spool (`syslog`).
    Syslog(crate::syslog::SyslogConfig),
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawHooks {
    socket: Option<Spanned<PathBuf>>,
    fail: Option<Spanned<String>>,
    timeout_ms: Option<Spanned<u64>>,
}

/// Default path of the hook socket (any local user may connect; see `docs/api.md`).
pub const DEFAULT_HOOK_SOCKET: &str = "/run/agentwatch/hook.sock";

/// Agent hooks: where the daemon listens for them, and what `agentwatch hook` does when the
/// daemon does not answer in time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HooksConfig {
    pub socket: PathBuf,
    /// Deny (true) or allow (false) when no answer comes within `timeout_ms`.
    pub fail_closed: bool,
    pub timeout_ms: u64,
}

impl Default for HooksConfig {
    fn default() -> HooksConfig {
        HooksConfig {
            socket: PathBuf::from(DEFAULT_HOOK_SOCKET),
            fail_closed: false,
            timeout_ms: 2000,
        }
    }
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawResponse {
    enabled: Option<bool>,
    default_mode: Option<Spanned<String>>,
}

/// The `[response]` section: the kill switch and the mode of rules that name none.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResponseConfig {
    /// `false` disables every action, manual or automatic (each is still recorded, refused).
    pub enabled: bool,
    /// `true`: rule actions without a `mode` only record what they would have done.
    pub default_dry_run: bool,
}

impl Default for ResponseConfig {
    fn default() -> Self {
        ResponseConfig {
            enabled: true,
            default_dry_run: true,
        }
    }
}

/// `[store]`: retention of the durable store.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawStore {
    /// Delete spool segments (and their documents) older than this (`30d`, `12h`, ...;
    /// `"off"` keeps everything).
    max_age: Option<Spanned<String>>,
    /// Delete the oldest segments while the spool is larger than this (bytes, or `10G`,
    /// `500M`, ...).
    max_bytes: Option<Spanned<ByteSize>>,
    /// Memory for events while the disk does not take writes (bytes, or `64M`); past it events
    /// are dropped and counted.
    backlog: Option<Spanned<ByteSize>>,
    /// Free space of the data dir below which `monitor.low_space` is raised (bytes, `512M`,
    /// a percentage of the filesystem such as `"5%"`, or `"off"`); below half of it only
    /// alerts and monitor events are stored.
    low_space: Option<Spanned<ByteSize>>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum ByteSize {
    Int(u64),
    Text(String),
}

/// Default `[store] max_age`.
pub const DEFAULT_MAX_AGE: std::time::Duration = std::time::Duration::from_secs(30 * 86_400);

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawRedact {
    /// Replace the default patterns.
    patterns: Option<Vec<Spanned<String>>>,
    /// Add to them.
    #[serde(default)]
    extra_patterns: Vec<Spanned<String>>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawDaemon {
    ringbuf_bytes: Option<Spanned<u32>>,
    flow_report_secs: Option<Spanned<u64>>,
    host: Option<String>,
    /// The user the daemon runs as when not root (name or uid); `agentwatch run` accepts a
    /// daemon running as root or as this user, nobody else.
    user: Option<Spanned<String>>,
    /// Where the store's high-water mark is kept (a file outside the data dir).
    mark: Option<Spanned<PathBuf>>,
    /// A group (name or gid) whose members may read over the API socket (status, search,
    /// alerts, sessions, live events) but not register sessions, triage or act.
    read_group: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAgent {
    name: Spanned<String>,
    #[serde(default)]
    exe: Vec<Spanned<String>>,
    #[serde(default)]
    comm: Vec<Spanned<String>>,
    #[serde(default)]
    cgroup: Vec<Spanned<String>>,
    #[serde(default)]
    uid: Vec<u32>,
    /// Keep only metadata of what this agent tells its model and its hooks (privacy switch).
    #[serde(default)]
    metadata_only: bool,
}

/// One agent class.
#[derive(Debug, Clone)]
pub struct Agent {
    pub name: String,
    pub exe: Vec<(String, GlobMatcher)>,
    pub comm: Vec<String>,
    pub cgroup: Vec<(String, GlobMatcher)>,
    pub uid: Vec<u32>,
    /// `metadata_only = true`: the `agent.*` events of its hooks keep tool names, ids, hook
    /// names, decisions and success, never the prompt, the tool input or the tool output. The
    /// policy still sees the text to decide a `hook.deny`; only what is stored is cut. Its
    /// `llm.*` events likewise keep no `llm.excerpt`, `llm.system` or `llm.error`.
    pub metadata_only: bool,
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
    /// `[daemon] read_group`, resolved: members may only read over the API socket.
    pub read_gid: Option<u32>,
    /// `[daemon] mark`: the high-water mark file (default: see `protect::default_mark_path`).
    pub mark: Option<PathBuf>,
    pub hooks: HooksConfig,
    /// `[response]`: automatic and manual response actions.
    pub response: ResponseConfig,
    /// `[store] max_age`: retention by age (`None`: keep everything).
    pub retention_age: Option<std::time::Duration>,
    /// `[store] max_bytes`: retention by spool size.
    pub retention_bytes: Option<u64>,
    /// `[store] backlog`: memory for events while the disk is full (`None`: the store's default).
    pub store_backlog: Option<u64>,
    /// `[store] low_space` (`None`: off).
    pub low_space: Option<crate::lowspace::Threshold>,
    /// `[[output]] type = "nats"`: fleet outputs, validated.
    pub nats_outputs: Vec<agent_fleet::NatsConfig>,
    /// `[protect] fail_closed`: `agent_common::FAIL_CLOSED_*` (off, freeze, kill).
    pub fail_closed: u64,
    /// `[protect] fail_closed_after_secs`: how long the daemon may be gone first.
    pub fail_closed_after_secs: u64,
    /// `[[egress]]`: per-agent allow-lists enforced at connect and sendmsg (`egress`).
    pub egress: Vec<crate::egress::EgressPolicy>,
    /// `[metrics] listen`: where `/metrics` is served (loopback only; `None`: off).
    pub metrics_listen: Option<std::net::SocketAddr>,
    /// `[intent] tls`: attach the TLS plaintext uprobes (default true).
    pub tls_uprobes: bool,
    /// `[[output]] type = "webhook"`, URLs checked (headers are read at start).
    pub webhook_outputs: Vec<crate::webhook::WebhookConfig>,
    /// `[[output]] type = "syslog"`, addresses checked.
    pub syslog_outputs: Vec<crate::syslog::SyslogConfig>,
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

/// A gid given as a number, or a group name from `/etc/group`.
fn resolve_group(g: &str) -> Option<u32> {
    if let Ok(n) = g.parse() {
        return Some(n);
    }
    if g.is_empty() || g.contains([':', '\n']) {
        return None;
    }
    let groups = std::fs::read_to_string("/etc/group").ok()?;
    groups.lines().find_map(|l| {
        let mut f = l.split(':');
        (f.next()? == g).then_some(())?;
        f.nth(1)?.parse().ok()
    })
}

/// Offset of the `i`-th `[[output]]` table header (where its errors point), or 0.
fn nth_output_header(text: &str, i: usize) -> usize {
    let mut at = 0;
    let mut seen = 0;
    for line in text.split_inclusive('\n') {
        if line.trim_start().starts_with("[[output]]") {
            if seen == i {
                return at + (line.len() - line.trim_start().len());
            }
            seen += 1;
        }
        at += line.len();
    }
    0
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

/// `10G`, `500M`, `64K` (binary multiples, optional `B`/`iB`) or a plain number of bytes.
fn parse_bytes(s: &str) -> Option<u64> {
    let t = s.trim();
    let t = t
        .strip_suffix("iB")
        .or_else(|| t.strip_suffix('B'))
        .unwrap_or(t);
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (n, unit) = t.split_at(split);
    let n: u64 = n.parse().ok()?;
    let mult: u64 = match unit.trim() {
        "" => 1,
        "K" | "k" => 1 << 10,
        "M" => 1 << 20,
        "G" => 1 << 30,
        "T" => 1 << 40,
        _ => return None,
    };
    n.checked_mul(mult)
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
            let at = a.name.span().start;
            let name = a.name.into_inner();
            if name.is_empty()
                || !name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
            {
                return Err(err(
                    at,
                    format!(
                        "agent name `{name}` must be non-empty ASCII letters, digits, `-`, `_` or `.`"
                    ),
                ));
            }
            if agents.iter().any(|x: &Agent| x.name == name) {
                return Err(err(at, format!("duplicate agent `{name}`")));
            }
            if a.exe.is_empty() && a.comm.is_empty() && a.cgroup.is_empty() && a.uid.is_empty() {
                return Err(err(
                    at,
                    format!(
                        "agent `{name}` has no selector: give `exe`, `comm`, `cgroup` or `uid`"
                    ),
                ));
            }
            let mut exe = Vec::new();
            for g in a.exe {
                let at = g.span().start;
                let g = g.into_inner();
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
            let mut comm = Vec::new();
            for c in a.comm {
                if c.get_ref().is_empty() || c.get_ref().len() > 15 {
                    return Err(err(
                        c.span().start,
                        format!(
                            "comm `{}` must be 1 to 15 bytes (the kernel keeps 15)",
                            c.get_ref()
                        ),
                    ));
                }
                comm.push(c.into_inner());
            }
            let mut cgroup = Vec::new();
            for g in a.cgroup {
                let at = g.span().start;
                let g = g.into_inner();
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
                name,
                exe,
                comm,
                cgroup,
                uid: a.uid,
                metadata_only: a.metadata_only,
            });
        }
        let (ringbuf_bytes, at) = raw
            .daemon
            .ringbuf_bytes
            .map_or((16 << 20, 0), |v| (*v.get_ref(), v.span().start));
        if !ringbuf_bytes.is_power_of_two() || ringbuf_bytes < 4096 {
            return Err(err(
                at,
                format!(
                    "`ringbuf_bytes` = `{ringbuf_bytes}` must be a power of two of at least 4096"
                ),
            ));
        }
        let (flow_report_secs, at) = raw
            .daemon
            .flow_report_secs
            .map_or((30, 0), |v| (*v.get_ref(), v.span().start));
        if flow_report_secs == 0 {
            return Err(err(at, "`flow_report_secs` must be at least 1".to_owned()));
        }
        if let Some(u) = &raw.daemon.user
            && (u.get_ref().is_empty() || u.get_ref().contains([':', '\n']))
        {
            return Err(err(
                u.span().start,
                format!("`user` = `{}` is not a user name or uid", u.get_ref()),
            ));
        }
        if let Some(m) = &raw.daemon.mark
            && !m.get_ref().is_absolute()
        {
            return Err(err(
                m.span().start,
                format!(
                    "`mark` = `{}` must be an absolute path",
                    m.get_ref().display()
                ),
            ));
        }
        let mark = raw.daemon.mark.map(Spanned::into_inner);
        let read_gid = match &raw.daemon.read_group {
            None => None,
            Some(g) => Some(resolve_group(g.get_ref()).ok_or_else(|| {
                err(
                    g.span().start,
                    format!(
                        "`read_group` = `{}` is neither a gid nor a group in `/etc/group`",
                        g.get_ref()
                    ),
                )
            })?),
        };
        // `patterns` replaces the defaults, `extra_patterns` adds to them; each user pattern is
        // checked where it stands.
        let mut redact_patterns: Vec<String> = Vec::new();
        let user_patterns = match raw.redact.patterns {
            Some(p) => p,
            None => {
                redact_patterns.extend(
                    crate::redact::DEFAULT_PATTERNS
                        .iter()
                        .map(|p| p.to_string()),
                );
                Vec::new()
            }
        };
        for p in user_patterns.into_iter().chain(raw.redact.extra_patterns) {
            if let Err(e) = regex::bytes::Regex::new(p.get_ref()) {
                return Err(err(
                    p.span().start,
                    format!("bad redaction pattern `{}`: {e}", p.get_ref()),
                ));
            }
            redact_patterns.push(p.into_inner());
        }
        let mut hooks = HooksConfig::default();
        if let Some(p) = raw.hooks.socket {
            if !p.get_ref().is_absolute() {
                return Err(err(
                    p.span().start,
                    format!(
                        "hook socket `{}` must be an absolute path",
                        p.get_ref().display()
                    ),
                ));
            }
            hooks.socket = p.into_inner();
        }
        if let Some(f) = &raw.hooks.fail {
            match f.get_ref().as_str() {
                "open" => {}
                "closed" => hooks.fail_closed = true,
                other => {
                    return Err(err(
                        f.span().start,
                        format!("`fail` = `{other}`: expected `open` or `closed`"),
                    ));
                }
            }
        }
        if let Some(ms) = &raw.hooks.timeout_ms {
            if !(10..=60_000).contains(ms.get_ref()) {
                return Err(err(
                    ms.span().start,
                    format!(
                        "`timeout_ms` = `{}` must be between 10 and 60000",
                        ms.get_ref()
                    ),
                ));
            }
            hooks.timeout_ms = *ms.get_ref();
        }
        let default_dry_run = match &raw.response.default_mode {
            None => true,
            Some(m) => match m.get_ref().as_str() {
                "dry_run" => true,
                "enforce" => false,
                other => {
                    return Err(err(
                        m.span().start,
                        format!("unknown response mode `{other}`; expected `enforce` or `dry_run`"),
                    ));
                }
            },
        };
        let response = ResponseConfig {
            enabled: raw.response.enabled.unwrap_or(true),
            default_dry_run,
        };
        let retention_age = match &raw.store.max_age {
            None => Some(DEFAULT_MAX_AGE),
            Some(v) if v.get_ref().eq_ignore_ascii_case("off") => None,
            Some(v) => match agent_store::query::parse_duration(v.get_ref().trim()) {
                Some(ns) if ns > 0 => Some(std::time::Duration::from_nanos(ns as u64)),
                _ => {
                    return Err(err(
                        v.span().start,
                        format!(
                            "`max_age` = `{}` is not a duration like `30d`, `12h` or `off`",
                            v.get_ref()
                        ),
                    ));
                }
            },
        };
        let retention_bytes = match &raw.store.max_bytes {
            None => None,
            Some(v) => {
                let n = match v.get_ref() {
                    ByteSize::Int(n) => Some(*n),
                    ByteSize::Text(t) => parse_bytes(t),
                };
                match n {
                    Some(n) if n >= 1 << 20 => Some(n),
                    _ => {
                        return Err(err(
                            v.span().start,
                            "`max_bytes` must be at least 1M: a number of bytes or `500M`, `10G`"
                                .to_owned(),
                        ));
                    }
                }
            }
        };
        let store_backlog = match &raw.store.backlog {
            None => None,
            Some(v) => match match v.get_ref() {
                ByteSize::Int(n) => Some(*n),
                ByteSize::Text(t) => parse_bytes(t),
            } {
                Some(n) if (1 << 20..=256 << 20).contains(&n) => Some(n),
                _ => {
                    return Err(err(
                        v.span().start,
                        "`backlog` must be between 1M and 256M: a number of bytes or `64M`"
                            .to_owned(),
                    ));
                }
            },
        };
        let low_space = match &raw.store.low_space {
            None => Some(crate::lowspace::DEFAULT),
            Some(v) => {
                let bad = || {
                    err(
                        v.span().start,
                        "`low_space` must be `off`, a number of bytes or `512M` (at least 1M), or a percentage from `1%` to `50%`".to_owned(),
                    )
                };
                match v.get_ref() {
                    ByteSize::Text(t) if t.trim() == "off" => None,
                    ByteSize::Text(t) if t.trim().ends_with('%') => {
                        match t.trim().trim_end_matches('%').parse::<u8>() {
                            Ok(p) if (1..=50).contains(&p) => {
                                Some(crate::lowspace::Threshold::Percent(p))
                            }
                            _ => return Err(bad()),
                        }
                    }
                    b => match match b {
                        ByteSize::Int(n) => Some(*n),
                        ByteSize::Text(t) => parse_bytes(t),
                    } {
                        Some(n) if n >= 1 << 20 => Some(crate::lowspace::Threshold::Bytes(n)),
                        _ => return Err(bad()),
                    },
                }
            }
        };
        let fail_closed = match &raw.protect.fail_closed {
            None => agent_common::FAIL_CLOSED_OFF,
            Some(v) => match v.get_ref().as_str() {
                "off" => agent_common::FAIL_CLOSED_OFF,
                "freeze" => agent_common::FAIL_CLOSED_FREEZE,
                "kill" => agent_common::FAIL_CLOSED_KILL,
                other => {
                    return Err(err(
                        v.span().start,
                        format!("`fail_closed` = `{other}` must be `off`, `freeze` or `kill`"),
                    ));
                }
            },
        };
        let fail_closed_after_secs = match &raw.protect.fail_closed_after_secs {
            None => 30,
            Some(v) if (2..=86_400).contains(v.get_ref()) => *v.get_ref(),
            Some(v) => {
                return Err(err(
                    v.span().start,
                    format!(
                        "`fail_closed_after_secs` = `{}` must be between 2 and 86400",
                        v.get_ref()
                    ),
                ));
            }
        };
        let mut nats_outputs: Vec<agent_fleet::NatsConfig> = Vec::new();
        let mut webhook_outputs: Vec<crate::webhook::WebhookConfig> = Vec::new();
        let mut syslog_outputs: Vec<crate::syslog::SyslogConfig> = Vec::new();
        for (i, out) in raw.output.into_iter().enumerate() {
            let at = nth_output_header(text, i);
            let n = match out {
                RawOutput::Nats(n) => n,
                RawOutput::Webhook(w) => {
                    w.target().map_err(|e| err(at, e))?;
                    if webhook_outputs.iter().any(|o| o.name == w.name) {
                        return Err(err(
                            at,
                            format!(
                                "two webhook `[[output]]` are named `{}`; give each a `name`",
                                w.name
                            ),
                        ));
                    }
                    webhook_outputs.push(w);
                    continue;
                }
                RawOutput::Syslog(o) => {
                    o.check().map_err(|e| err(at, e))?;
                    if webhook_outputs.iter().any(|w| w.name == o.name)
                        || syslog_outputs.iter().any(|w| w.name == o.name)
                    {
                        return Err(err(
                            at,
                            format!(
                                "two `[[output]]` are named `{}`; give each a `name`",
                                o.name
                            ),
                        ));
                    }
                    syslog_outputs.push(o);
                    continue;
                }
            };
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
        let egress = crate::egress::parse(raw.egress, &err)?;
        let metrics_listen = match &raw.metrics.listen {
            None => None,
            Some(v) => match v.get_ref().parse::<std::net::SocketAddr>() {
                Ok(a) if a.ip().is_loopback() => Some(a),
                Ok(_) => {
                    return Err(err(
                        v.span().start,
                        format!(
                            "`listen` = `{}` is not a loopback address: `/metrics` has no authentication; listen on 127.0.0.1 or ::1 and put a proxy in front",
                            v.get_ref()
                        ),
                    ));
                }
                Err(_) => {
                    return Err(err(
                        v.span().start,
                        format!(
                            "`listen` = `{}` is not `IP:PORT` like `127.0.0.1:9464`",
                            v.get_ref().escape_debug()
                        ),
                    ));
                }
            },
        };
        Ok(Config {
            egress,
            metrics_listen,
            tls_uprobes: raw.intent.tls.unwrap_or(true),
            webhook_outputs,
            syslog_outputs,
            hooks,
            origin: origin.to_owned(),
            response,
            agents,
            ringbuf_bytes,
            flow_report_secs,
            host: raw.daemon.host,
            redact_patterns,
            daemon_user: raw.daemon.user.map(Spanned::into_inner),
            read_gid,
            mark,
            retention_age,
            retention_bytes,
            store_backlog,
            low_space,
            nats_outputs,
            fail_closed,
            fail_closed_after_secs,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Errors point at the bad value, not at an earlier comment or key that mentions it.
    #[test]
    fn errors_point_at_the_value_not_a_comment() {
        let cases: &[(&str, &str)] = &[
            (
                "# ringbuf_bytes = 1000 is too small\n[daemon]\nringbuf_bytes = 1000\n",
                "c:3:17: ",
            ),
            (
                "# comm \"abcdefghijklmnopq\" is long\n[[agent]]\nname = \"a\"\ncomm = [\"ok\", \"abcdefghijklmnopq\"]\n",
                "c:4:15: ",
            ),
            ("# user: see below\n[daemon]\nuser = \"a:b\"\n", "c:3:8: "),
            (
                "# [[agent]] name = \"b c\"\n[[agent]]\nname = \"b c\"\ncomm = [\"x\"]\n",
                "c:3:8: ",
            ),
            ("# mark = \"rel\"\n[daemon]\nmark = \"rel\"\n", "c:3:8: "),
            (
                "[redact]\n# \"(\" would be bad\nextra_patterns = [\"ok\", \"(\"]\n",
                "c:3:25: ",
            ),
            ("[store]\nmax_age = \"forever\"\n", "c:2:11: "),
            ("[store]\nmax_bytes = \"12Q\"\n", "c:2:13: "),
            ("[store]\nbacklog = \"1K\"\n", "c:2:11: "),
            ("[metrics]\nlisten = \"0.0.0.0:9464\"\n", "c:2:10: "),
            ("[metrics]\nlisten = \"localhost\"\n", "c:2:10: "),
            ("[store]\nlow_space = \"70%\"\n", "c:2:13: "),
            ("[store]\nlow_space = 1000\n", "c:2:13: "),
        ];
        for (text, at) in cases {
            let e = Config::parse("c", text).unwrap_err().to_string();
            assert!(e.starts_with(at), "{text:?}: {e}");
        }
    }

    #[test]
    fn retention_comes_from_the_store_section() {
        let c = Config::parse("c", "").unwrap();
        assert_eq!(c.retention_age, Some(DEFAULT_MAX_AGE));
        assert_eq!(c.retention_bytes, None);
        let c = Config::parse("c", "[store]\nmax_age = \"12h\"\nmax_bytes = \"10G\"\n").unwrap();
        assert_eq!(
            c.retention_age,
            Some(std::time::Duration::from_secs(12 * 3600))
        );
        assert_eq!(c.retention_bytes, Some(10 << 30));
        let c = Config::parse("c", "[store]\nmax_age = \"off\"\nmax_bytes = 2097152\n").unwrap();
        assert_eq!(c.retention_age, None);
        assert_eq!(c.retention_bytes, Some(2 << 20));
        assert!(Config::parse("c", "[store]\nmax_bytes = 10\n").is_err());
        assert!(Config::parse("c", "[store]\nmax_days = 10\n").is_err());
    }

    #[test]
    fn metrics_are_off_unless_listen_names_a_loopback_address() {
        assert_eq!(Config::parse("c", "").unwrap().metrics_listen, None);
        let c = Config::parse("c", "[metrics]\nlisten = \"127.0.0.1:9464\"\n").unwrap();
        assert_eq!(c.metrics_listen, Some("127.0.0.1:9464".parse().unwrap()));
        let e = Config::parse("c", "[metrics]\nlisten = \"10.0.0.1:9464\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("not a loopback address"), "{e}");
    }

    #[test]
    fn response_section_kill_switch_and_mode() {
        let c = Config::parse("c.toml", "").unwrap();
        assert_eq!(c.response, ResponseConfig::default());
        assert!(c.response.default_dry_run, "dry run is the default");
        let c = Config::parse(
            "c.toml",
            "[response]\nenabled = false\ndefault_mode = \"enforce\"\n",
        )
        .unwrap();
        assert!(!c.response.enabled);
        assert!(!c.response.default_dry_run);
        let e = Config::parse("c.toml", "[response]\ndefault_mode = \"kill\"\n").unwrap_err();
        assert!(e.to_string().starts_with("c.toml:2:"), "{e}");
        assert!(e.to_string().contains("`kill`"), "{e}");
    }

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
    fn metadata_only_is_per_agent_and_checked() {
        let c = Config::parse(
            "c.toml",
            "[[agent]]\nname = \"a\"\ncomm = [\"a\"]\nmetadata_only = true\n\n[[agent]]\nname = \"b\"\ncomm = [\"b\"]\n",
        )
        .unwrap();
        assert!(c.agents[0].metadata_only);
        assert!(!c.agents[1].metadata_only, "off unless asked for");
        let e = Config::parse(
            "c.toml",
            "[[agent]]\nname = \"a\"\ncomm = [\"a\"]\nmetadata_only = \"yes\"\n",
        )
        .unwrap_err()
        .to_string();
        assert!(e.starts_with("c.toml:4:"), "{e}");
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
    fn intent_tls_switch_defaults_on() {
        assert!(Config::parse("c", "").unwrap().tls_uprobes);
        assert!(
            !Config::parse("c", "[intent]\ntls = false\n")
                .unwrap()
                .tls_uprobes
        );
        let e = Config::parse("c", "[intent]\ntls = \"no\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("c:2:"), "{e}");
    }

    #[test]
    fn read_group_is_a_gid_or_a_group_name() {
        let c = Config::parse("c", "[daemon]\nread_group = \"4321\"\n").unwrap();
        assert_eq!(c.read_gid, Some(4321));
        let c = Config::parse("c", "[daemon]\nread_group = \"root\"\n").unwrap();
        assert_eq!(c.read_gid, Some(0));
        assert_eq!(Config::parse("c", "").unwrap().read_gid, None);
        let e = Config::parse("c", "[daemon]\nread_group = \"no-such-group-here\"\n")
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("c:2:14") && e.contains("no-such-group-here"),
            "{e}"
        );
    }

    #[test]
    fn hooks_section_is_validated() {
        let c = Config::parse(
            "c",
            "[hooks]\nsocket = \"/tmp/h.sock\"\nfail = \"closed\"\ntimeout_ms = 500\n",
        )
        .unwrap();
        assert_eq!(
            c.hooks,
            HooksConfig {
                socket: "/tmp/h.sock".into(),
                fail_closed: true,
                timeout_ms: 500
            }
        );
        assert_eq!(
            Config::parse("c", "").unwrap().hooks,
            HooksConfig::default()
        );
        let e = Config::parse("c.toml", "[hooks]\nfail = \"maybe\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("c.toml:2:8: ") && e.contains("maybe"), "{e}");
        assert!(Config::parse("c", "[hooks]\nsocket = \"rel.sock\"\n").is_err());
        assert!(Config::parse("c", "[hooks]\ntimeout_ms = 0\n").is_err());
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

    /// `[protect]` fail-closed: the three modes, the default, and bad values named with their
    /// place.
    #[test]
    fn fail_closed_is_validated() {
        let c = Config::parse("c", "").unwrap();
        assert_eq!(c.fail_closed, agent_common::FAIL_CLOSED_OFF);
        assert_eq!(c.fail_closed_after_secs, 30);
        let c = Config::parse(
            "c",
            "[protect]\nfail_closed = \"freeze\"\nfail_closed_after_secs = 5\n",
        )
        .unwrap();
        assert_eq!(c.fail_closed, agent_common::FAIL_CLOSED_FREEZE);
        assert_eq!(c.fail_closed_after_secs, 5);
        let e = Config::parse("c", "[protect]\nfail_closed = \"explode\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("c:2:15") && e.contains("`explode`"), "{e}");
        let e = Config::parse("c", "[protect]\nfail_closed_after_secs = 0\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("between 2 and 86400"), "{e}");
        assert!(Config::parse("c", "[protect]\nfail_open = 1\n").is_err());
    }
}
