//! DNS answers a session received, parsed with strict bounds: the question name and the IPv4
//! and IPv6 addresses the answer gives for it (following CNAME records from the question name
//! only), each with its TTL.
//!
//! The bytes come from a session process (`RECORD_DNS_ANSWER`, the first bytes of a datagram
//! from port 53), so they are hostile: every read is checked, compression pointers may only
//! point backwards and are followed a bounded number of times, and anything odd rejects the
//! whole message rather than guessing. Pure: no IO, tested without root.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// At most this many answer records are read.
const MAX_ANSWERS: usize = 64;
/// At most this many names in one CNAME chain.
const MAX_CHAIN: usize = 8;

/// The useful part of a DNS response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// The question name, lowercase, without the final dot.
    pub name: String,
    /// Addresses given for the name (directly or through CNAMEs), with their TTL in seconds.
    pub addrs: Vec<(IpAddr, u32)>,
}

fn be16(m: &[u8], at: usize) -> Result<u16, String> {
    m.get(at..at + 2)
        .map(|b| u16::from_be_bytes([b[0], b[1]]))
        .ok_or_else(|| format!("dns message cut at byte {at}"))
}

fn be32(m: &[u8], at: usize) -> Result<u32, String> {
    m.get(at..at + 4)
        .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
        .ok_or_else(|| format!("dns message cut at byte {at}"))
}

/// The name at `at` (lowercase) and the offset just past it in the record.
fn name(m: &[u8], mut at: usize) -> Result<(String, usize), String> {
    let mut out = String::new();
    let mut end = None;
    let mut jumps = 0;
    loop {
        let len = *m
            .get(at)
            .ok_or_else(|| format!("dns name cut at byte {at}"))? as usize;
        match len & 0xc0 {
            0 if len == 0 => {
                return Ok((out, end.unwrap_or(at + 1)));
            }
            0 => {
                let label = m
                    .get(at + 1..at + 1 + len)
                    .ok_or_else(|| format!("dns label cut at byte {at}"))?;
                if !label
                    .iter()
                    .all(|b| b.is_ascii_alphanumeric() || *b == b'-' || *b == b'_')
                {
                    return Err(format!(
                        "dns label at byte {at} has a byte outside [A-Za-z0-9_-]"
                    ));
                }
                if !out.is_empty() {
                    out.push('.');
                }
                out.extend(label.iter().map(|b| b.to_ascii_lowercase() as char));
                if out.len() > 253 {
                    return Err("dns name longer than 253 bytes".into());
                }
                at += 1 + len;
            }
            0xc0 => {
                let ptr = (be16(m, at)? & 0x3fff) as usize;
                if ptr >= at {
                    return Err(format!("dns pointer at byte {at} does not point backwards"));
                }
                jumps += 1;
                if jumps > 16 {
                    return Err("dns name with too many pointers".into());
                }
                end.get_or_insert(at + 2);
                at = ptr;
            }
            _ => {
                return Err(format!(
                    "dns label type {len:#x} at byte {at} is not supported"
                ));
            }
        }
    }
}

/// Parse a DNS response. `Err` names what is wrong and where.
pub fn parse(m: &[u8]) -> Result<Answer, String> {
    let flags = be16(m, 2)?;
    if flags & 0x8000 == 0 {
        return Err("not a dns response (QR is 0)".into());
    }
    if flags & 0x000f != 0 {
        return Err(format!("dns response code {}", flags & 0xf));
    }
    if be16(m, 4)? != 1 {
        return Err("dns response without exactly one question".into());
    }
    let ancount = be16(m, 6)? as usize;
    let (qname, mut at) = name(m, 12)?;
    at += 4; // qtype, qclass
    let mut chain = vec![qname.clone()];
    let mut addrs = Vec::new();
    for _ in 0..ancount.min(MAX_ANSWERS) {
        let (owner, p) = name(m, at)?;
        let rtype = be16(m, p)?;
        let class = be16(m, p + 2)?;
        let ttl = be32(m, p + 4)?;
        let rdlen = be16(m, p + 8)? as usize;
        let rdata = p + 10;
        let data = m
            .get(rdata..rdata + rdlen)
            .ok_or_else(|| format!("dns record data cut at byte {rdata}"))?;
        at = rdata + rdlen;
        if class != 1 || !chain.contains(&owner) {
            continue;
        }
        match (rtype, data.len()) {
            (1, 4) => addrs.push((
                IpAddr::V4(Ipv4Addr::new(data[0], data[1], data[2], data[3])),
                ttl,
            )),
            (28, 16) => {
                let mut a = [0u8; 16];
                a.copy_from_slice(data);
                addrs.push((IpAddr::V6(Ipv6Addr::from(a)), ttl));
            }
            (1, _) | (28, _) => return Err(format!("dns address record of {rdlen} bytes")),
            (5, _) => {
                let (target, _) = name(m, rdata)?;
                if chain.len() < MAX_CHAIN && !chain.contains(&target) {
                    chain.push(target);
                }
            }
            _ => {}
        }
    }
    Ok(Answer { name: qname, addrs })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn qname(n: &str) -> Vec<u8> {
        let mut v = Vec::new();
        for l in n.split('.') {
            v.push(l.len() as u8);
            v.extend_from_slice(l.as_bytes());
        }
        v.push(0);
        v
    }

    /// A response to `name` with `answers` (owner as a pointer to the question or a full name,
    /// type, data).
    fn response(name: &str, answers: &[(Option<&str>, u16, Vec<u8>)]) -> Vec<u8> {
        let mut m = vec![
            0x12,
            0x34,
            0x81,
            0x80,
            0,
            1,
            0,
            answers.len() as u8,
            0,
            0,
            0,
            0,
        ];
        m.extend(qname(name));
        m.extend([0, 1, 0, 1]);
        for (owner, t, data) in answers {
            match owner {
                None => m.extend([0xc0, 12]),
                Some(o) => m.extend(qname(o)),
            }
            m.extend(t.to_be_bytes());
            m.extend([0, 1, 0, 0, 0, 60]);
            m.extend((data.len() as u16).to_be_bytes());
            m.extend(data);
        }
        m
    }

    #[test]
    fn addresses_of_the_question_and_of_its_cname_chain_only() {
        let m = response(
            "API.Example.test",
            &[
                (None, 5, qname("edge.cdn.test")),
                (Some("edge.cdn.test"), 1, vec![10, 0, 0, 7]),
                (Some("other.test"), 1, vec![10, 0, 0, 8]),
                (
                    None,
                    28,
                    vec![0x20, 1, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1],
                ),
            ],
        );
        let a = parse(&m).unwrap();
        assert_eq!(a.name, "api.example.test");
        assert_eq!(
            a.addrs,
            vec![
                ("10.0.0.7".parse().unwrap(), 60),
                ("2001:db8::1".parse().unwrap(), 60)
            ]
        );
    }

    #[test]
    fn hostile_messages_are_refused_with_the_place() {
        let good = response("a.test", &[(None, 1, vec![1, 2, 3, 4])]);
        // Every truncation is an error, never a panic.
        for n in 0..good.len() {
            assert!(parse(&good[..n]).is_err(), "cut at {n}");
        }
        // A pointer to itself.
        let mut m = good.clone();
        let at = 12 + qname("a.test").len() + 4;
        m[at + 1] = at as u8;
        assert!(parse(&m).unwrap_err().contains("backwards"));
        // A query, not a response.
        let mut q = good.clone();
        q[2] = 0x01;
        assert!(parse(&q).unwrap_err().contains("QR"));
        // An A record of the wrong size.
        let bad = response("a.test", &[(None, 1, vec![1, 2, 3])]);
        assert!(parse(&bad).unwrap_err().contains("3 bytes"));
        // NXDOMAIN.
        let mut nx = good;
        nx[3] = 0x83;
        assert!(parse(&nx).unwrap_err().contains("code 3"));
    }
}
