//! Network events: connect, accept, listen, send, DNS queries and flow reports, all from one
//! socket record shape.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use agent_common::{FLOW_CLOSE, FLOW_EXIT, FlowCountsRecord, RecordKind, SockRecord, VIA_IO_URING};
use agent_model::decode::{Header, dns_question, dns_type_name};
use agent_model::linux::protocol_name;
use agent_model::{BStr, Dns, Event, Net};

/// The socket record's fields: the DNS question of a query to port 53, addresses and ports by
/// family, byte counts and the flow state of a flow report.
pub fn sock(
    ev: &mut Event,
    h: &Header,
    body: SockRecord,
    unix_path: BStr,
    payload: Vec<u8>,
    flow: Option<FlowCountsRecord>,
) {
    if let Some((qname, qtype)) = (body.dport == 53).then(|| dns_question(&payload)).flatten() {
        ev.dns = Some(Dns {
            qname,
            qtype: dns_type_name(qtype),
        });
    }
    let ip = |b: [u8; 16], v6: bool| -> IpAddr {
        if v6 {
            IpAddr::V6(Ipv6Addr::from(b))
        } else {
            IpAddr::V4(Ipv4Addr::new(b[0], b[1], b[2], b[3]))
        }
    };
    let mut net = Net {
        protocol: Some(protocol_name(body.protocol, body.sock_type)),
        bytes: match flow {
            Some(f) => Some(f.sent),
            None => (h.kind == RecordKind::Send).then_some(body.bytes as u64),
        },
        bytes_received: flow.map(|f| f.received),
        flow_state: flow.map(|f| {
            match f.state {
                FLOW_CLOSE => "close",
                FLOW_EXIT => "exit",
                _ => "update",
            }
            .to_owned()
        }),
        flow_ms: flow.map(|f| h.ktime_ns.saturating_sub(f.first_ns) / 1_000_000),
        via: flow.is_none().then(|| {
            if body.flags & VIA_IO_URING != 0 {
                "io_uring"
            } else if body.fd < 0 {
                "tcp_state"
            } else {
                "syscall"
            }
            .into()
        }),
        ..Default::default()
    };
    match body.family {
        2 | 10 => {
            let v6 = body.family == 10;
            net.family = if v6 { "ipv6" } else { "ipv4" }.into();
            net.src_ip = Some(ip(body.saddr, v6));
            net.src_port = Some(body.sport);
            if h.kind != RecordKind::Listen {
                net.dst_ip = Some(ip(body.daddr, v6));
                net.dst_port = Some(body.dport);
            }
        }
        1 => {
            net.family = "unix".into();
            let mut p = unix_path.0;
            while p.last() == Some(&0) && p.len() > 1 {
                p.pop();
            }
            if p.first() == Some(&0) {
                p[0] = b'@';
            }
            if !p.is_empty() {
                net.unix_path = Some(BStr(p));
            }
        }
        f => net.family = f.to_string(),
    }
    ev.net = Some(net);
}
