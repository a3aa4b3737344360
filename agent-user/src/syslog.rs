//! `[[output]] type = "syslog"`: every alert as one RFC 5424 message, over UDP (RFC 5426), TCP
//! with octet-counting framing (RFC 6587) or a local unix socket (`/dev/log`, datagram, else
//! stream with a newline after each message).
//!
//! Shipped from the durable spool with a cursor like the webhook (`spoolout`), so a TCP or unix
//! receiver that is down gets the alerts once it is back; UDP has no acknowledgement and a
//! datagram sent is a datagram delivered as far as the daemon can tell. The message:
//! `<PRI>1 TIME HOST agentwatch PID RULE [agentwatch@32473 id=.. rule=.. severity=.. session=..
//! agent=.. count=.. tags=..] SUMMARY`: PRI from `facility` (default `authpriv`) and the alert's
//! severity (critical 2, high 3, medium 4, low 5, info 6), MSGID the rule id, and the alert's
//! rendered output as MSG. Every header field is cut to its RFC length and printable ASCII; SD
//! values escape `"`, `\` and `]`; the message is cut at 4 KiB on a character boundary (and
//! control characters become spaces) so an agent-chosen path cannot forge a second record.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use agent_model::{Alert, Severity};
use agent_store::Store;
use serde::Deserialize;
use tokio::io::AsyncWriteExt as _;

use crate::spoolout::{AlertSink, OutputHandle, SpoolOutput};

/// Longest MSG part, in bytes.
pub const MAX_MSG: usize = 4096;
/// The SD-ID: `name@<private enterprise number>`; 32473 is the number RFC 5612 reserves for
/// documentation and examples.
const SD_ID: &str = "agentwatch@32473";

fn default_name() -> String {
    "syslog".into()
}
fn default_facility() -> String {
    "authpriv".into()
}
fn default_timeout() -> u64 {
    5000
}

/// One syslog output of the daemon config (the `type` key is read by the config).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SyslogConfig {
    /// Names the output in `status` and its cursor file.
    #[serde(default = "default_name")]
    pub name: String,
    /// `udp://HOST:PORT`, `tcp://HOST:PORT` or `unix:///PATH`.
    pub address: String,
    /// `kern`, `user`, `daemon`, `auth`, `authpriv`, `local0` .. `local7`, ...
    #[serde(default = "default_facility")]
    pub facility: String,
    /// Per message: connect and send.
    #[serde(default = "default_timeout")]
    pub timeout_ms: u64,
}

/// Where messages go.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Transport {
    Udp(String),
    Tcp(String),
    Unix(PathBuf),
}

const FACILITIES: [(&str, u8); 20] = [
    ("kern", 0),
    ("user", 1),
    ("mail", 2),
    ("daemon", 3),
    ("auth", 4),
    ("syslog", 5),
    ("lpr", 6),
    ("news", 7),
    ("uucp", 8),
    ("cron", 9),
    ("authpriv", 10),
    ("ftp", 11),
    ("local0", 16),
    ("local1", 17),
    ("local2", 18),
    ("local3", 19),
    ("local4", 20),
    ("local5", 21),
    ("local6", 22),
    ("local7", 23),
];

impl SyslogConfig {
    /// The address and facility, checked.
    pub fn check(&self) -> Result<(Transport, u8), String> {
        crate::spoolout::check_name("syslog", &self.name)?;
        let bad = |what: &str| {
            format!(
                "syslog `address` = `{}`: {what}",
                self.address.escape_debug()
            )
        };
        let transport = if let Some(p) = self.address.strip_prefix("unix://") {
            if !p.starts_with('/') {
                return Err(bad("needs an absolute path, e.g. `unix:///dev/log`"));
            }
            Transport::Unix(PathBuf::from(p))
        } else {
            let (scheme, hp) = self.address.split_once("://").ok_or_else(|| {
                bad("expected `udp://HOST:PORT`, `tcp://HOST:PORT` or `unix:///PATH`")
            })?;
            let port_ok = hp
                .rsplit_once(':')
                .is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok_and(|p| p > 0));
            if !port_ok || hp.contains(['/', '@']) {
                return Err(bad("needs HOST:PORT with a port number"));
            }
            match scheme {
                "udp" => Transport::Udp(hp.to_owned()),
                "tcp" => Transport::Tcp(hp.to_owned()),
                _ => return Err(bad("the scheme must be `udp`, `tcp` or `unix`")),
            }
        };
        let facility = FACILITIES
            .iter()
            .find(|(n, _)| *n == self.facility)
            .map(|(_, f)| *f)
            .ok_or_else(|| {
                format!(
                    "syslog `facility` = `{}` is not one of {}",
                    self.facility.escape_debug(),
                    FACILITIES.map(|(n, _)| n).join(", ")
                )
            })?;
        if !(1..=60_000).contains(&self.timeout_ms) {
            return Err("syslog `timeout_ms` must be between 1 and 60000".into());
        }
        Ok((transport, facility))
    }
}

/// RFC 5424 severity of an alert.
fn severity_code(s: Severity) -> u8 {
    match s {
        Severity::Critical => 2,
        Severity::High => 3,
        Severity::Medium => 4,
        Severity::Low => 5,
        Severity::Info => 6,
    }
}

/// A header field: printable US-ASCII only, at most `max` bytes, `-` when empty.
fn header_field(s: &str, max: usize) -> String {
    let out: String = s
        .chars()
        .filter(|c| c.is_ascii_graphic())
        .take(max)
        .collect();
    if out.is_empty() { "-".into() } else { out }
}

/// An SD-PARAM value: `"`, `\` and `]` escaped, control characters as spaces.
fn sd_value(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars().take(512) {
        match c {
            '"' | '\\' | ']' => {
                out.push('\\');
                out.push(c);
            }
            c if c.is_control() => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

/// RFC 5424 TIMESTAMP: UTC, at most 6 fractional digits.
fn timestamp(t: agent_model::Timestamp) -> String {
    let s = t.to_rfc3339();
    let s = s.strip_suffix('Z').unwrap_or(&s);
    match s.split_once('.') {
        Some((sec, frac)) => format!("{sec}.{}Z", &frac[..frac.len().min(6)]),
        None => format!("{s}Z"),
    }
}

/// One alert as an RFC 5424 message (no framing).
pub fn format(a: &Alert, id: &str, facility: u8, pid: u32) -> String {
    let pri = u16::from(facility) * 8 + u16::from(severity_code(a.severity));
    let session = a.session.as_ref().map_or("", |s| s.id.as_str());
    let agent = a.agent.as_ref().map_or("", |x| x.name.as_str());
    let mut msg: String = String::from_utf8_lossy(a.summary.as_bytes())
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if msg.len() > MAX_MSG {
        let mut cut = MAX_MSG;
        while !msg.is_char_boundary(cut) {
            cut -= 1;
        }
        msg.truncate(cut);
    }
    format!(
        "<{pri}>1 {} {} agentwatch {pid} {} [{SD_ID} id=\"{}\" rule=\"{}\" severity=\"{}\" session=\"{}\" agent=\"{}\" count=\"{}\" tags=\"{}\"] {msg}",
        timestamp(a.time),
        header_field(&a.host, 255),
        header_field(&a.rule, 32),
        sd_value(id),
        sd_value(&a.rule),
        a.severity.name(),
        sd_value(session),
        sd_value(agent),
        a.count,
        sd_value(&a.tags.join(",")),
    )
}

enum Conn {
    Udp(tokio::net::UdpSocket),
    Tcp(tokio::net::TcpStream),
    UnixDgram(tokio::net::UnixDatagram),
    UnixStream(tokio::net::UnixStream),
}

/// One syslog output: the sink of a [`SpoolOutput`].
pub struct Syslog {
    cfg: SyslogConfig,
    transport: Transport,
    facility: u8,
    pid: u32,
    conn: Option<Conn>,
}

impl Syslog {
    /// Check the config and read the cursor.
    pub fn new(
        cfg: SyslogConfig,
        store: Arc<Store>,
        data_dir: &std::path::Path,
    ) -> Result<(SpoolOutput<Syslog>, OutputHandle), String> {
        let (transport, facility) = cfg.check()?;
        let (name, address) = (cfg.name.clone(), cfg.address.clone());
        let sink = Syslog {
            cfg,
            transport,
            facility,
            pid: std::process::id(),
            conn: None,
        };
        SpoolOutput::new(&name, "syslog", vec![address], sink, store, data_dir)
    }

    async fn connect(&self) -> Result<Conn, String> {
        let e = |e: std::io::Error| format!("cannot connect to `{}`: {e}", self.cfg.address);
        Ok(match &self.transport {
            Transport::Udp(hp) => {
                let addr = tokio::net::lookup_host(hp)
                    .await
                    .map_err(e)?
                    .next()
                    .ok_or_else(|| format!("`{hp}` has no address"))?;
                let bind = if addr.is_ipv4() {
                    "0.0.0.0:0"
                } else {
                    "[::]:0"
                };
                let s = tokio::net::UdpSocket::bind(bind).await.map_err(e)?;
                s.connect(addr).await.map_err(e)?;
                Conn::Udp(s)
            }
            Transport::Tcp(hp) => Conn::Tcp(tokio::net::TcpStream::connect(hp).await.map_err(e)?),
            Transport::Unix(p) => {
                let d = tokio::net::UnixDatagram::unbound().map_err(e)?;
                match d.connect(p) {
                    Ok(()) => Conn::UnixDgram(d),
                    Err(err) if err.raw_os_error() == Some(libc::EPROTOTYPE) => {
                        Conn::UnixStream(tokio::net::UnixStream::connect(p).await.map_err(e)?)
                    }
                    Err(err) => return Err(e(err)),
                }
            }
        })
    }

    async fn deliver(&mut self, msg: &str) -> Result<(), String> {
        if self.conn.is_none() {
            self.conn = Some(self.connect().await?);
        }
        let io = |e: std::io::Error| format!("`{}`: {e}", self.cfg.address);
        let r = match self.conn.as_mut() {
            Some(Conn::Udp(s)) => s.send(msg.as_bytes()).await.map(|_| ()),
            Some(Conn::UnixDgram(s)) => s.send(msg.as_bytes()).await.map(|_| ()),
            Some(Conn::Tcp(s)) => s.write_all(format!("{} {msg}", msg.len()).as_bytes()).await,
            Some(Conn::UnixStream(s)) => s.write_all(format!("{msg}\n").as_bytes()).await,
            None => Ok(()),
        };
        if r.is_err() {
            // Reconnect on the next try.
            self.conn = None;
        }
        r.map_err(io)
    }
}

impl AlertSink for Syslog {
    async fn send(&mut self, id: &str, alert: &Alert) -> Result<(), String> {
        let msg = format(alert, id, self.facility, self.pid);
        let timeout = Duration::from_millis(self.cfg.timeout_ms);
        match tokio::time::timeout(timeout, self.deliver(&msg)).await {
            Ok(r) => r,
            Err(_) => {
                self.conn = None;
                Err(format!(
                    "`{}` took no message within {timeout:?}",
                    self.cfg.address
                ))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(address: &str, facility: &str) -> SyslogConfig {
        SyslogConfig {
            name: "s".into(),
            address: address.into(),
            facility: facility.into(),
            timeout_ms: 1000,
        }
    }

    #[test]
    fn addresses_and_facilities_are_checked() {
        assert_eq!(
            cfg("udp://127.0.0.1:514", "authpriv").check().unwrap(),
            (Transport::Udp("127.0.0.1:514".into()), 10)
        );
        assert_eq!(
            cfg("tcp://[::1]:6514", "local3").check().unwrap(),
            (Transport::Tcp("[::1]:6514".into()), 19)
        );
        assert_eq!(
            cfg("unix:///dev/log", "auth").check().unwrap(),
            (Transport::Unix("/dev/log".into()), 4)
        );
        for bad in [
            "udp://host",
            "udp://:514",
            "tcp://h:0",
            "http://h:1",
            "unix://rel/log",
            "127.0.0.1:514",
        ] {
            assert!(cfg(bad, "auth").check().is_err(), "{bad}");
        }
        let e = cfg("udp://h:1", "local9").check().unwrap_err();
        assert!(e.contains("local9") && e.contains("authpriv"), "{e}");
    }

    #[test]
    fn a_message_is_rfc5424_and_hostile_text_cannot_forge_a_record() {
        let a = Alert {
            id: "a-1".into(),
            time: agent_model::Timestamp(1_765_000_000_123_456_789),
            host: "web 1\n".into(),
            rule: "cred.read".into(),
            severity: Severity::High,
            summary: "read /tmp/x\"]\n<13>1 forged".as_bytes().to_vec().into(),
            count: 2,
            tags: vec!["T1552".into()],
            ..Default::default()
        };
        let m = format(&a, "a-1#2", 10, 42);
        assert!(
            m.starts_with("<83>1 2025-12-06T05:46:40.123456Z web1 agentwatch 42 cred.read [agentwatch@32473 id=\"a-1#2\" rule=\"cred.read\" severity=\"high\""),
            "{m}"
        );
        assert!(m.contains("tags=\"T1552\"] "), "{m}");
        assert!(!m.contains('\n'), "{m}");
        assert!(m.ends_with("read /tmp/x\"] <13>1 forged"), "{m}");
        let long = Alert {
            summary: "é".repeat(5000).into_bytes().into(),
            ..a
        };
        let m = format(&long, "x", 1, 1);
        let msg = m.rsplit_once("] ").unwrap().1;
        assert!(
            msg.len() <= MAX_MSG && msg.chars().all(|c| c == 'é'),
            "{}",
            msg.len()
        );
    }
}
