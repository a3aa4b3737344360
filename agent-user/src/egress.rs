//! Egress policy: which destinations an agent's sessions may connect and send to.
//!
//! ```toml
//! [[egress]]
//! name = "claude-net"                 # optional; shown in events as `egress:NAME`
//! agent = ["claude"]                  # agent names, or ["*"] for every agent
//! allow = ["127.0.0.0/8", "10.1.2.3:443", "::1", "[2001:db8::/32]:443", ":53",
//!          "api.anthropic.com:443"]
//! mode = "enforce"                    # or "dry_run"; default: `[response] default_mode`
//! ```
//!
//! An allow entry is an IPv4 address or CIDR with an optional `:port`, an IPv6 address or CIDR
//! (in brackets when a port follows), `:port` alone (any address), or a host name with an
//! optional port. Host names are resolved by the daemon ([`Resolver`], again every
//! [`REFRESH`]) into the same allow-list. The kernel side is `agent-ebpf/src/probes/egress.rs`;
//! the maps are filled by `source/egress.rs`. This module only parses and plans: no IO but the
//! resolver thread.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr, ToSocketAddrs as _};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use agent_common::{EGRESS_KEY_FIXED_BITS, EgressKey};
use serde::Deserialize;
use toml::Spanned;

use crate::config::ConfigError;

/// How often host names are resolved again.
pub const REFRESH: Duration = Duration::from_secs(30);

/// At most this many policies (the kernel keeps the policy number in 16 bits).
pub const MAX_POLICIES: usize = 1024;

/// `[[egress]]` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawEgress {
    name: Option<Spanned<String>>,
    agent: Spanned<Vec<Spanned<String>>>,
    allow: Vec<Spanned<String>>,
    mode: Option<Spanned<String>>,
}

/// An allowed destination.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Allow {
    /// An address block in IPv6 space (IPv4 is IPv4-mapped, its prefix + 96), and a port (0:
    /// any).
    Net {
        addr: [u8; 16],
        prefix: u8,
        port: u16,
    },
    /// A host name, resolved by the daemon, and a port (0: any).
    Host { name: String, port: u16 },
}

/// One validated `[[egress]]` table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EgressPolicy {
    /// `name`, or `egress#N` (N: its position, from 1).
    pub name: String,
    /// Agent names; `*` matches every agent.
    pub agents: Vec<String>,
    pub allow: Vec<Allow>,
    /// `None`: `[response] default_mode`.
    pub dry_run: Option<bool>,
}

impl EgressPolicy {
    pub fn applies_to(&self, agent: &str) -> bool {
        self.agents.iter().any(|a| a == "*" || a == agent)
    }

    /// Whether an address entry (not a host name) allows `addr` (IPv6 space, IPv4-mapped) on
    /// `port`.
    pub fn allows_net(&self, addr: [u8; 16], port: u16) -> bool {
        self.allow.iter().any(|a| match a {
            Allow::Net {
                addr: net,
                prefix,
                port: p,
            } => {
                (*p == 0 || *p == port)
                    && trie_key(0, *net, *prefix, 0).1.addr == trie_key(0, addr, *prefix, 0).1.addr
            }
            Allow::Host { .. } => false,
        })
    }
}

fn port(s: &str) -> Result<u16, String> {
    match s.parse::<u16>() {
        Ok(p) if p > 0 => Ok(p),
        _ => Err(format!("port `{s}` must be a number from 1 to 65535")),
    }
}

fn v4_mapped(a: std::net::Ipv4Addr) -> [u8; 16] {
    a.to_ipv6_mapped().octets()
}

/// `addr` or `addr/prefix` (IPv4 or IPv6) as a block in IPv6 space.
fn cidr(s: &str) -> Result<([u8; 16], u8), String> {
    let (a, p) = match s.split_once('/') {
        Some((a, p)) => (a, Some(p)),
        None => (s, None),
    };
    let ip: IpAddr = a
        .parse()
        .map_err(|_| format!("`{a}` is not an IPv4 or IPv6 address"))?;
    let (bytes, max, base) = match ip {
        IpAddr::V4(v4) => (v4_mapped(v4), 32, 96),
        IpAddr::V6(v6) => (v6.octets(), 128, 0),
    };
    let prefix = match p {
        None => max,
        Some(p) => match p.parse::<u8>() {
            Ok(n) if n <= max => n,
            _ => return Err(format!("prefix `/{p}` of `{s}` must be 0 to {max}")),
        },
    };
    Ok((bytes, base + prefix))
}

fn host_name_ok(h: &str) -> bool {
    !h.is_empty()
        && h.len() <= 253
        && h.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !l.starts_with('-')
        })
}

/// One allow-list entry.
pub fn parse_allow(s: &str) -> Result<Allow, String> {
    let s = s.trim();
    if s.is_empty() {
        return Err("an empty allow entry".into());
    }
    // `:443` / `*:443`: any address on that port.
    if let Some(p) = s
        .strip_prefix(':')
        .or_else(|| s.strip_prefix("*:"))
        .filter(|p| !p.contains(':'))
    {
        return Ok(Allow::Net {
            addr: [0; 16],
            prefix: 0,
            port: port(p)?,
        });
    }
    if s == "*" {
        return Err("`*` would allow everything; drop the `[[egress]]` table instead".into());
    }
    // `[v6 or v6/n]:port`.
    if let Some(rest) = s.strip_prefix('[') {
        let (inner, p) = rest
            .split_once("]:")
            .ok_or_else(|| format!("`{s}`: expected `[IPv6]:port`"))?;
        let (addr, prefix) = cidr(inner)?;
        return Ok(Allow::Net {
            addr,
            prefix,
            port: port(p)?,
        });
    }
    // More than one `:` is an IPv6 address or block, without a port.
    if s.matches(':').count() > 1 {
        let (addr, prefix) = cidr(s)?;
        return Ok(Allow::Net {
            addr,
            prefix,
            port: 0,
        });
    }
    let (what, p) = match s.split_once(':') {
        Some((w, p)) => (w, port(p)?),
        None => (s, 0),
    };
    let looks_numeric = what
        .bytes()
        .all(|b| b.is_ascii_digit() || b == b'.' || b == b'/');
    if looks_numeric {
        let (addr, prefix) = cidr(what)?;
        return Ok(Allow::Net {
            addr,
            prefix,
            port: p,
        });
    }
    if !host_name_ok(what) {
        return Err(format!(
            "`{what}` is neither an address, a CIDR block nor a host name"
        ));
    }
    Ok(Allow::Host {
        name: what.to_ascii_lowercase(),
        port: p,
    })
}

/// Validate the `[[egress]]` tables; `err` places a message at a byte offset of the config.
pub fn parse(
    raw: Vec<RawEgress>,
    err: &dyn Fn(usize, String) -> ConfigError,
) -> Result<Vec<EgressPolicy>, ConfigError> {
    if raw.len() > MAX_POLICIES {
        return Err(err(
            0,
            format!("at most {MAX_POLICIES} `[[egress]]` tables"),
        ));
    }
    let mut out: Vec<EgressPolicy> = Vec::new();
    for (i, r) in raw.into_iter().enumerate() {
        let name = match r.name {
            Some(n) => {
                if n.get_ref().is_empty() || n.get_ref().contains(char::is_whitespace) {
                    return Err(err(
                        n.span().start,
                        format!(
                            "egress name `{}` must be non-empty, without spaces",
                            n.get_ref()
                        ),
                    ));
                }
                if out.iter().any(|p| p.name == *n.get_ref()) {
                    return Err(err(
                        n.span().start,
                        format!("duplicate egress name `{}`", n.get_ref()),
                    ));
                }
                n.into_inner()
            }
            None => format!("egress#{}", i + 1),
        };
        let agent_at = r.agent.span().start;
        let agents: Vec<String> = r
            .agent
            .into_inner()
            .into_iter()
            .map(|a| a.into_inner())
            .collect();
        if agents.is_empty() || agents.iter().any(String::is_empty) {
            return Err(err(
                agent_at,
                format!(
                    "egress `{name}`: `agent` must list agent names, or `[\"*\"]` for every agent"
                ),
            ));
        }
        let mut allow = Vec::new();
        for a in r.allow {
            let parsed = parse_allow(a.get_ref())
                .map_err(|e| err(a.span().start, format!("egress `{name}`: {e}")))?;
            allow.push(parsed);
        }
        let dry_run = match &r.mode {
            None => None,
            Some(m) => match m.get_ref().as_str() {
                "enforce" => Some(false),
                "dry_run" => Some(true),
                other => {
                    return Err(err(
                        m.span().start,
                        format!("unknown egress mode `{other}`; expected `enforce` or `dry_run`"),
                    ));
                }
            },
        };
        out.push(EgressPolicy {
            name,
            agents,
            allow,
            dry_run,
        });
    }
    Ok(out)
}

/// The trie key of `addr/prefix` (IPv6 space) and `port` in policy number `policy`.
pub fn trie_key(policy: u32, addr: [u8; 16], prefix: u8, port: u16) -> (u32, EgressKey) {
    // Bits past the prefix are cleared so that equal blocks give equal keys.
    let mut a = addr;
    for (i, b) in a.iter_mut().enumerate() {
        let keep = (prefix as i32 - 8 * i as i32).clamp(0, 8) as u32;
        *b &= (0xffu16 << (8 - keep)) as u8;
    }
    (
        EGRESS_KEY_FIXED_BITS + prefix as u32,
        EgressKey {
            policy: policy.to_be_bytes(),
            port: port.to_be_bytes(),
            _pad: [0; 2],
            addr: a,
        },
    )
}

/// The trie entries of policy number `policy` (1-based), host names looked up in `resolved`.
pub fn trie_entries(
    policy: u32,
    p: &EgressPolicy,
    resolved: &HashMap<String, Vec<IpAddr>>,
    out: &mut Vec<(u32, EgressKey)>,
) {
    for a in &p.allow {
        match a {
            Allow::Net { addr, prefix, port } => out.push(trie_key(policy, *addr, *prefix, *port)),
            Allow::Host { name, port } => {
                for ip in resolved.get(name).into_iter().flatten() {
                    let addr = match ip {
                        IpAddr::V4(v4) => v4_mapped(*v4),
                        IpAddr::V6(v6) => v6.octets(),
                    };
                    out.push(trie_key(policy, addr, 128, *port));
                }
            }
        }
    }
}

/// The address of an egress record (IPv4-mapped for IPv4) as it is shown.
pub fn shown_addr(addr: [u8; 16]) -> IpAddr {
    let v6 = Ipv6Addr::from(addr);
    match v6.to_ipv4_mapped() {
        Some(v4) => IpAddr::V4(v4),
        None => IpAddr::V6(v6),
    }
}

/// Host names resolved off the sensor thread: a thread resolves every name now and every
/// [`REFRESH`], and bumps a generation when an answer changed.
pub struct Resolver {
    shared: Arc<Mutex<(u64, Resolved)>>,
}

/// Host name → its addresses.
pub type Resolved = HashMap<String, Vec<IpAddr>>;

impl Resolver {
    /// Start resolving `names` (nothing is started when there are none).
    pub fn start(names: Vec<String>) -> Resolver {
        let shared = Arc::new(Mutex::new((0u64, HashMap::new())));
        if !names.is_empty() {
            let s = Arc::clone(&shared);
            let spawned = std::thread::Builder::new()
                .name("egress-dns".into())
                .spawn(move || {
                    loop {
                        let mut now: HashMap<String, Vec<IpAddr>> = HashMap::new();
                        for n in &names {
                            match (n.as_str(), 0).to_socket_addrs() {
                                Ok(it) => {
                                    let mut ips: Vec<IpAddr> = it.map(|a| a.ip()).collect();
                                    ips.sort();
                                    ips.dedup();
                                    now.insert(n.clone(), ips);
                                }
                                Err(e) => {
                                    tracing::warn!(host = %n, error = %e, "egress host name not resolved");
                                }
                            }
                        }
                        {
                            let Ok(mut g) = s.lock() else { return };
                            // A name that fails to resolve keeps its last addresses.
                            let mut merged = g.1.clone();
                            merged.extend(now);
                            if merged != g.1 {
                                g.1 = merged;
                                g.0 += 1;
                            }
                        }
                        if Arc::strong_count(&s) == 1 {
                            return;
                        }
                        std::thread::sleep(REFRESH);
                    }
                });
            if let Err(e) = spawned {
                tracing::error!(error = %e, "cannot start the egress resolver: host names stay unresolved");
            }
        }
        Resolver { shared }
    }

    /// The generation and the current answers.
    pub fn snapshot(&self) -> (u64, Resolved) {
        match self.shared.lock() {
            Ok(g) => (g.0, g.1.clone()),
            Err(_) => (0, HashMap::new()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allow_entries_parse_into_blocks_ports_and_hosts() {
        let net = |s: &str| match parse_allow(s).unwrap() {
            Allow::Net { addr, prefix, port } => (shown_addr(addr), prefix, port),
            h => panic!("{s}: {h:?}"),
        };
        assert_eq!(net("127.0.0.0/8"), ("127.0.0.0".parse().unwrap(), 104, 0));
        assert_eq!(net("10.1.2.3:443"), ("10.1.2.3".parse().unwrap(), 128, 443));
        assert_eq!(net("::1"), ("::1".parse().unwrap(), 128, 0));
        assert_eq!(
            net("[2001:db8::/32]:443"),
            ("2001:db8::".parse().unwrap(), 32, 443)
        );
        assert_eq!(net(":53"), ("::".parse().unwrap(), 0, 53));
        assert_eq!(
            parse_allow("API.anthropic.com:443").unwrap(),
            Allow::Host {
                name: "api.anthropic.com".into(),
                port: 443
            }
        );
        for bad in [
            "10.0.0.0/33",
            "10.0.0.300",
            "10.1.2.3:0",
            "10.1.2.3:99999",
            "::1/129",
            "exa mple.com",
            "*",
            "",
            "[::1]",
        ] {
            assert!(parse_allow(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn trie_keys_clear_the_bits_past_the_prefix() {
        let Allow::Net { addr, prefix, port } = parse_allow("10.1.2.3/8").unwrap() else {
            panic!()
        };
        let (bits, k) = trie_key(7, addr, prefix, port);
        assert_eq!(bits, 64 + 104);
        assert_eq!(k.policy, [0, 0, 0, 7]);
        assert_eq!(&k.addr[10..], &[0xff, 0xff, 10, 0, 0, 0]);
    }

    #[test]
    fn bad_entries_and_modes_are_named_with_file_line_col() {
        for (entry, want) in [
            ("\"10.0.0.0/33\"", "prefix `/33`"),
            ("\"10.1.2.3:0\"", "port `0`"),
            ("\"not a host\"", "neither an address"),
        ] {
            let text =
                format!("[[egress]]\nagent = [\"x\"]\nallow = [\n  \"::1\",\n  {entry},\n]\n");
            let e = crate::config::Config::parse("c.toml", &text).unwrap_err();
            let shown = e.to_string();
            assert!(
                shown.starts_with("c.toml:5:3:") && shown.contains(want),
                "{shown}"
            );
        }
        let e = crate::config::Config::parse(
            "c.toml",
            "[[egress]]\nagent = [\"x\"]\nallow = []\nmode = \"block\"\n",
        )
        .unwrap_err();
        assert!(e.to_string().starts_with("c.toml:4:8:"), "{e}");
        let e = crate::config::Config::parse("c.toml", "[[egress]]\nagent = []\nallow = []\n")
            .unwrap_err();
        assert!(e.to_string().starts_with("c.toml:2:9:"), "{e}");
        let c = crate::config::Config::parse(
            "c.toml",
            "[[egress]]\nagent = [\"*\"]\nallow = [\"::1\"]\n",
        )
        .unwrap();
        assert_eq!(c.egress[0].name, "egress#1");
        assert!(c.egress[0].applies_to("anything") && c.egress[0].dry_run.is_none());
    }
}
