//! `[[output]] type = "nats"`: where and how a daemon ships, validated before anything starts,
//! and the subject names it ships on.

use std::path::PathBuf;

use serde::Deserialize;

use crate::FleetError;

fn default_name() -> String {
    "nats".into()
}
fn default_prefix() -> String {
    "agentwatch".into()
}
fn default_events_stream() -> String {
    "AGENTWATCH_EVENTS".into()
}
fn default_alerts_stream() -> String {
    "AGENTWATCH_ALERTS".into()
}
fn default_replicas() -> usize {
    1
}
fn default_dup_window() -> u64 {
    120
}
fn default_batch() -> usize {
    1024
}
fn yes() -> bool {
    true
}

/// One NATS output of the daemon config (the `type` key is read by the daemon's config).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NatsConfig {
    /// Names the output in `status` and its cursor file (`<data-dir>/fleet/<name>.cursor`).
    #[serde(default = "default_name")]
    pub name: String,
    /// `nats://host:port` (or `tls://`) URLs of the cluster's nodes; the client learns the rest.
    pub servers: Vec<String>,
    /// Token authentication.
    #[serde(default)]
    pub token: Option<String>,
    /// A `.creds` file (user JWT and NKey seed), as `nsc` writes it.
    #[serde(default)]
    pub credentials: Option<PathBuf>,
    /// A PEM file of CA certificates to trust; setting it requires TLS.
    #[serde(default)]
    pub tls_ca: Option<PathBuf>,
    /// Require TLS even without `tls_ca`.
    #[serde(default)]
    pub tls: bool,
    /// First subject token: subjects are `<prefix>.<host>.events.<kind>` and
    /// `<prefix>.<host>.alerts.<severity>`.
    #[serde(default = "default_prefix")]
    pub subject_prefix: String,
    /// Streams created if missing (shared by every host of the fleet).
    #[serde(default = "default_events_stream")]
    pub events_stream: String,
    #[serde(default = "default_alerts_stream")]
    pub alerts_stream: String,
    /// Replicas of the streams it creates (1, or 3 / 5 on a cluster).
    #[serde(default = "default_replicas")]
    pub replicas: usize,
    /// The streams' duplicate window: a message id seen within it is stored once.
    #[serde(default = "default_dup_window")]
    pub duplicate_window_secs: u64,
    /// Ship events (`false`: alerts only).
    #[serde(default = "yes")]
    pub events: bool,
    /// Ship alerts.
    #[serde(default = "yes")]
    pub alerts: bool,
    /// Messages in flight per batch.
    #[serde(default = "default_batch")]
    pub batch: usize,
}

fn subject_token_ok(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_graphic() && !matches!(b, b'.' | b'*' | b'>'))
}

fn stream_name_ok(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 255
        && s.bytes()
            .all(|b| b.is_ascii_graphic() && !matches!(b, b'.' | b'*' | b'>' | b'/' | b'\\'))
}

impl NatsConfig {
    /// Check every value; the message names the key and the value in backticks.
    pub fn validate(&self) -> Result<(), FleetError> {
        let bad = |m: String| Err(FleetError::Config(m));
        if self.servers.is_empty() {
            return bad("`servers` is empty; name at least one `nats://host:port`".into());
        }
        for s in &self.servers {
            if let Err(e) = s.parse::<async_nats::ServerAddr>() {
                return bad(format!("`servers` entry `{s}` is not a server URL: {e}"));
            }
        }
        if self.token.is_some() && self.credentials.is_some() {
            return bad("give `token` or `credentials`, not both".into());
        }
        if !subject_token_ok(&self.name) || self.name.contains('/') {
            return bad(format!(
                "`name` = `{}` must be one word without `.`, `*`, `>`, `/` or spaces",
                self.name
            ));
        }
        for part in self.subject_prefix.split('.') {
            if !subject_token_ok(part) {
                return bad(format!(
                    "`subject_prefix` = `{}` is not a subject prefix (dot-separated words without `*`, `>` or spaces)",
                    self.subject_prefix
                ));
            }
        }
        for (key, v) in [
            ("events_stream", &self.events_stream),
            ("alerts_stream", &self.alerts_stream),
        ] {
            if !stream_name_ok(v) {
                return bad(format!("`{key}` = `{v}` is not a stream name"));
            }
        }
        if self.events_stream == self.alerts_stream {
            return bad("`events_stream` and `alerts_stream` must differ".into());
        }
        if !(1..=5).contains(&self.replicas) {
            return bad(format!("`replicas` = `{}` must be 1 to 5", self.replicas));
        }
        if !(1..=65_536).contains(&self.batch) {
            return bad(format!("`batch` = `{}` must be 1 to 65536", self.batch));
        }
        if self.duplicate_window_secs == 0 {
            return bad("`duplicate_window_secs` must be at least 1".into());
        }
        Ok(())
    }

    /// Connection options from the credentials and TLS keys (the caller adds the rest).
    pub(crate) async fn connect_options(&self) -> Result<async_nats::ConnectOptions, String> {
        let mut opts = match &self.credentials {
            Some(p) => async_nats::ConnectOptions::with_credentials_file(p)
                .await
                .map_err(|e| format!("cannot read credentials `{}`: {e}", p.display()))?,
            None => async_nats::ConnectOptions::new(),
        };
        if let Some(t) = &self.token {
            opts = opts.token(t.clone());
        }
        if let Some(ca) = &self.tls_ca {
            opts = opts.add_root_certificates(ca.clone()).require_tls(true);
        } else if self.tls {
            opts = opts.require_tls(true);
        }
        Ok(opts)
    }

    /// A client-side configuration (`search --fleet`): servers, authentication and prefix;
    /// every other key keeps its default. Checked like a daemon's output.
    pub fn client(
        servers: Vec<String>,
        token: Option<String>,
        credentials: Option<PathBuf>,
        subject_prefix: &str,
    ) -> Result<NatsConfig, FleetError> {
        let cfg = NatsConfig {
            name: default_name(),
            servers,
            token,
            credentials,
            tls_ca: None,
            tls: false,
            subject_prefix: subject_prefix.to_owned(),
            events_stream: default_events_stream(),
            alerts_stream: default_alerts_stream(),
            replicas: default_replicas(),
            duplicate_window_secs: default_dup_window(),
            events: true,
            alerts: true,
            batch: default_batch(),
        };
        cfg.validate()?;
        Ok(cfg)
    }

    /// The subject every host's daemon answers fleet searches on.
    pub fn search_subject(&self) -> String {
        format!("{}.search", self.subject_prefix)
    }

    /// The subject only `host`'s daemon answers fleet searches on.
    pub fn host_search_subject(&self, host: &str) -> String {
        format!("{}.{host}.search", self.subject_prefix)
    }

    /// The subject of an event of kind `kind` (a dotted name such as `file.open`) from `host`.
    pub fn event_subject(&self, host: &str, kind: &str) -> String {
        format!("{}.{host}.events.{kind}", self.subject_prefix)
    }

    /// The subject of an alert of severity `severity` from `host`.
    pub fn alert_subject(&self, host: &str, severity: &str) -> String {
        format!("{}.{host}.alerts.{severity}", self.subject_prefix)
    }
}

/// A host name as one subject token: `.`, `*`, `>`, spaces and control bytes become `_`.
pub fn sanitize_token(s: &str) -> String {
    let t: String = s
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() && !matches!(c, '.' | '*' | '>') {
                c
            } else {
                '_'
            }
        })
        .collect();
    if t.is_empty() { "_".into() } else { t }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(extra: &str) -> Result<NatsConfig, String> {
        let text = format!("servers = [\"nats://127.0.0.1:4222\"]\n{extra}");
        let c: NatsConfig = toml::from_str(&text).map_err(|e| e.to_string())?;
        c.validate().map_err(|e| e.to_string())?;
        Ok(c)
    }

    #[test]
    fn defaults_and_subjects() {
        let c = cfg("").unwrap();
        assert_eq!(
            c.event_subject("h1", "file.open"),
            "agentwatch.h1.events.file.open"
        );
        assert_eq!(c.alert_subject("h1", "high"), "agentwatch.h1.alerts.high");
        assert_eq!(c.replicas, 1);
        assert_eq!(sanitize_token("web-1.corp.example"), "web-1_corp_example");
        assert_eq!(sanitize_token("a b>*"), "a_b__");
    }

    #[test]
    fn bad_values_are_named() {
        for (extra, want) in [
            ("replicas = 7", "`replicas` = `7`"),
            ("subject_prefix = \"a.*\"", "`subject_prefix` = `a.*`"),
            ("events_stream = \"a.b\"", "`events_stream` = `a.b`"),
            ("token = \"t\"\ncredentials = \"/x\"", "not both"),
            ("bogus = 1", "unknown field `bogus`"),
            ("name = \"../x\"", "`name` = `../x`"),
        ] {
            let e = cfg(extra).unwrap_err();
            assert!(e.contains(want), "{extra}: {e}");
        }
        let e: NatsConfig = toml::from_str("servers = [\"::bad url::\"]").unwrap();
        assert!(
            e.validate()
                .unwrap_err()
                .to_string()
                .contains("::bad url::")
        );
    }
}
