//! `[[output]] type = "webhook"`: every alert POSTed as one Falco-shaped JSON object
//! (`rules::falco_json`: `time`, `rule`, `priority`, `output`, `output_fields`, `tags`, …), the
//! way Falco's `http_output` and Falcosidekick take them.
//!
//! It ships from the durable spool with a persisted cursor (`spoolout`), so an alert is sent at
//! least once even across a receiver outage or a daemon restart: a failed POST (connection
//! refused, timeout, any status but 2xx) is retried with backoff. Each request carries
//! `X-Agentwatch-Id` (the alert id, `#count` for a folded alert's re-emits) so a receiver can
//! drop duplicates.
//!
//! HTTP/1.1 over plain TCP only (`http://`), written here in a few lines rather than with an
//! HTTP client crate: for TLS, point it at a local forwarder. Secrets never sit in the config:
//! headers come from a file (`headers_file`, `Name: value` lines, not readable by others) or
//! from environment variables (`headers_env`, header name → variable name), read at start.

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use agent_model::Alert;
use agent_store::Store;
use serde::Deserialize;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use crate::spoolout::{AlertSink, OutputHandle, SpoolOutput};

/// Longest response head read.
const MAX_RESPONSE_HEAD: usize = 16 * 1024;

fn default_name() -> String {
    "webhook".into()
}
fn default_timeout() -> u64 {
    5000
}

/// One webhook output of the daemon config (the `type` key is read by the config).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    /// Names the output in `status` and its cursor file.
    #[serde(default = "default_name")]
    pub name: String,
    /// `http://host:port/path`.
    pub url: String,
    /// A file of `Name: value` header lines (e.g. `Authorization: Bearer ...`), mode 0600.
    #[serde(default)]
    pub headers_file: Option<PathBuf>,
    /// Header name → environment variable holding its value.
    #[serde(default)]
    pub headers_env: BTreeMap<String, String>,
    /// Per request: connect, send and read the answer.
    #[serde(default = "default_timeout")]
    pub timeout_ms: u64,
}

/// Where to POST: host and port to connect to, `Host` header, request path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    pub connect: String,
    pub host: String,
    pub path: String,
}

fn token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

impl WebhookConfig {
    /// The URL, checked.
    pub fn target(&self) -> Result<Target, String> {
        let rest = self.url.strip_prefix("http://").ok_or_else(|| {
            format!(
                "webhook `url` = `{}` must start with `http://` (for TLS, use a local forwarder)",
                self.url.escape_debug()
            )
        })?;
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        let bad = |what: &str| format!("webhook `url` = `{}`: {what}", self.url.escape_debug());
        if authority.is_empty() || authority.contains('@') {
            return Err(bad("needs a host (and no user info)"));
        }
        if path.bytes().any(|b| b <= b' ' || b == 0x7f) {
            return Err(bad("the path has spaces or control characters"));
        }
        let connect = if authority.starts_with('[') {
            match authority.rsplit_once("]:") {
                Some(_) => authority.to_owned(),
                None => format!("{authority}:80"),
            }
        } else {
            match authority.rsplit_once(':') {
                Some((h, p)) if !h.is_empty() && p.parse::<u16>().is_ok() => authority.to_owned(),
                Some(_) => return Err(bad("the port is not a number")),
                None => format!("{authority}:80"),
            }
        };
        if !(1..=60_000).contains(&self.timeout_ms) {
            return Err("webhook `timeout_ms` must be between 1 and 60000".into());
        }
        crate::spoolout::check_name("webhook", &self.name)?;
        Ok(Target {
            connect,
            host: authority.to_owned(),
            path: path.to_owned(),
        })
    }

    /// The extra headers, from the file and the environment.
    pub fn headers(&self) -> Result<Vec<(String, String)>, String> {
        let mut out = Vec::new();
        if let Some(p) = &self.headers_file {
            out.extend(read_headers_file(p)?);
        }
        for (name, var) in &self.headers_env {
            let v = std::env::var(var).map_err(|_| {
                format!("webhook header `{name}`: environment variable `{var}` is not set")
            })?;
            out.push(checked_header(
                name,
                v.trim(),
                &format!("`headers_env` `{name}`"),
            )?);
        }
        Ok(out)
    }
}

fn checked_header(name: &str, value: &str, at: &str) -> Result<(String, String), String> {
    if !token(name) {
        return Err(format!(
            "{at}: `{}` is not a header name",
            name.escape_debug()
        ));
    }
    if value.bytes().any(|b| (b < b' ' && b != b'\t') || b == 0x7f) {
        return Err(format!(
            "{at}: the value of `{name}` has control characters"
        ));
    }
    Ok((name.to_owned(), value.to_owned()))
}

fn read_headers_file(p: &Path) -> Result<Vec<(String, String)>, String> {
    let meta = std::fs::metadata(p)
        .map_err(|e| format!("webhook `headers_file` `{}`: {e}", p.display()))?;
    if meta.mode() & 0o004 != 0 {
        return Err(format!(
            "webhook `headers_file` `{}` is readable by every user; run `chmod o-r` on it",
            p.display()
        ));
    }
    if meta.len() > 64 * 1024 {
        return Err(format!(
            "webhook `headers_file` `{}` is over 64 KiB",
            p.display()
        ));
    }
    let text = std::fs::read_to_string(p)
        .map_err(|e| format!("webhook `headers_file` `{}`: {e}", p.display()))?;
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let at = format!("{}:{}", p.display(), i + 1);
        if line.trim().is_empty() || line.trim_start().starts_with('#') {
            continue;
        }
        let (n, v) = line
            .split_once(':')
            .ok_or_else(|| format!("{at}: expected `Name: value`"))?;
        out.push(checked_header(n.trim(), v.trim(), &at)?);
    }
    Ok(out)
}

/// One webhook output: the sink of a [`SpoolOutput`].
pub struct Webhook {
    cfg: WebhookConfig,
    target: Target,
    headers: Vec<(String, String)>,
}

impl AlertSink for Webhook {
    async fn send(&mut self, id: &str, alert: &Alert) -> Result<(), String> {
        self.post(id, &rules::falco_json(alert)).await
    }
}

impl Webhook {
    /// Check the config, read the headers and the cursor.
    pub fn new(
        cfg: WebhookConfig,
        store: Arc<Store>,
        data_dir: &Path,
    ) -> Result<(SpoolOutput<Webhook>, OutputHandle), String> {
        let target = cfg.target()?;
        let headers = cfg.headers()?;
        let (name, url) = (cfg.name.clone(), cfg.url.clone());
        let sink = Webhook {
            cfg,
            target,
            headers,
        };
        SpoolOutput::new(&name, "webhook", vec![url], sink, store, data_dir)
    }

    /// One POST; `Ok` for a 2xx answer.
    async fn post(&self, id: &str, body: &str) -> Result<(), String> {
        let timeout = Duration::from_millis(self.cfg.timeout_ms);
        tokio::time::timeout(timeout, self.exchange(id, body))
            .await
            .map_err(|_| format!("no answer from `{}` within {timeout:?}", self.cfg.url))?
    }

    async fn exchange(&self, id: &str, body: &str) -> Result<(), String> {
        let mut s = tokio::net::TcpStream::connect(&self.target.connect)
            .await
            .map_err(|e| format!("cannot connect to `{}`: {e}", self.target.connect))?;
        let mut head = format!(
            "POST {} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nX-Agentwatch-Id: {id}\r\nUser-Agent: agentwatch/{}\r\nConnection: close\r\n",
            self.target.path,
            self.target.host,
            body.len(),
            env!("CARGO_PKG_VERSION"),
        );
        for (n, v) in &self.headers {
            head.push_str(&format!("{n}: {v}\r\n"));
        }
        head.push_str("\r\n");
        let io = |e: std::io::Error| format!("`{}`: {e}", self.cfg.url);
        s.write_all(head.as_bytes()).await.map_err(io)?;
        s.write_all(body.as_bytes()).await.map_err(io)?;
        let mut buf = Vec::new();
        let mut chunk = [0u8; 1024];
        while !buf.windows(2).any(|w| w == b"\r\n") {
            let n = s.read(&mut chunk).await.map_err(io)?;
            if n == 0 || buf.len() > MAX_RESPONSE_HEAD {
                return Err(format!("`{}` closed without an HTTP status", self.cfg.url));
            }
            buf.extend_from_slice(&chunk[..n]);
        }
        let line = String::from_utf8_lossy(&buf);
        let line = line.lines().next().unwrap_or_default();
        let code = line.split(' ').nth(1).unwrap_or_default();
        if code.len() == 3 && code.starts_with('2') {
            Ok(())
        } else {
            Err(format!(
                "`{}` answered `{}`",
                self.cfg.url,
                line.escape_debug()
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(url: &str) -> WebhookConfig {
        WebhookConfig {
            name: "w".into(),
            url: url.into(),
            headers_file: None,
            headers_env: BTreeMap::new(),
            timeout_ms: 1000,
        }
    }

    #[test]
    fn urls_are_checked() {
        let t = cfg("http://127.0.0.1:8080/hook?x=1").target().unwrap();
        assert_eq!(t.connect, "127.0.0.1:8080");
        assert_eq!(t.path, "/hook?x=1");
        assert_eq!(
            cfg("http://siem.local").target().unwrap().connect,
            "siem.local:80"
        );
        assert_eq!(cfg("http://[::1]:9/").target().unwrap().connect, "[::1]:9");
        for bad in [
            "https://x/",
            "http://",
            "http://a:b/",
            "http://u@x/",
            "http://x/a b",
        ] {
            assert!(cfg(bad).target().is_err(), "{bad}");
        }
    }

    #[test]
    fn header_files_must_be_private_and_well_formed() {
        use std::os::unix::fs::PermissionsExt as _;
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("h");
        std::fs::write(&p, "# auth\nAuthorization: Bearer abc\n").unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
        let mut c = cfg("http://x/");
        c.headers_file = Some(p.clone());
        assert_eq!(
            c.headers().unwrap(),
            [("Authorization".to_owned(), "Bearer abc".to_owned())]
        );
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(c.headers().unwrap_err().contains("readable by every user"));
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
        std::fs::write(&p, "Bad Name: x\n").unwrap();
        assert!(
            c.headers()
                .unwrap_err()
                .contains(":1: `Bad Name` is not a header name")
        );
        c.headers_file = None;
        c.headers_env
            .insert("X-Token".into(), "AW_TEST_SURELY_UNSET_VAR".into());
        assert!(c.headers().unwrap_err().contains("is not set"));
    }
}
