//! Per-connection glue: plaintext chunks in, model requests and responses out.
//!
//! [`IntentTracker`] owns one [`Connection`] per TLS connection id the daemon gives it (at most
//! `max_connections`; the oldest is evicted and counted), runs reassembly, and for each request
//! whose path names a model API parses it ([`api::parse_request`]) and keeps a
//! [`ResponseAcc`] for its stream until the response ends, feeding it the response's SSE events
//! or body. Requests to anything else are ignored. Both halves come out as [`IntentEvent`]s
//! carrying the connection and stream, which is what the daemon joins on.

use std::collections::{HashMap, VecDeque};

use serde::Serialize;

use crate::api::{self, LlmRequest, LlmResponse, Provider, ResponseAcc};
use crate::excerpt::{ExcerptPolicy, Excerpter, Redact};
use crate::http::{Connection, Direction, HttpEvent};
use crate::limits::{Limits, Stats};

/// A model exchange seen on a connection.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum IntentEvent {
    Request {
        conn: u64,
        stream: u64,
        request: LlmRequest,
    },
    Response {
        conn: u64,
        stream: u64,
        response: LlmResponse,
    },
}

struct Exchange {
    provider: Provider,
    acc: Option<ResponseAcc>,
}

#[derive(Default)]
struct ConnState {
    http: Connection,
    exchanges: HashMap<u64, Exchange>,
}

/// Tracks the model traffic of many connections.
pub struct IntentTracker {
    limits: Limits,
    policy: ExcerptPolicy,
    redact: Box<dyn Redact + Send>,
    conns: HashMap<u64, ConnState>,
    order: VecDeque<u64>,
    stats: Stats,
}

impl IntentTracker {
    pub fn new(limits: Limits, policy: ExcerptPolicy, redact: Box<dyn Redact + Send>) -> Self {
        Self {
            limits,
            policy,
            redact,
            conns: HashMap::new(),
            order: VecDeque::new(),
            stats: Stats::default(),
        }
    }

    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// Connections tracked now.
    pub fn connections(&self) -> usize {
        self.conns.len()
    }

    /// Bytes buffered across all connections (for memory-bound assertions).
    pub fn buffered(&self) -> usize {
        self.conns.values().map(|c| c.http.buffered()).sum()
    }

    /// Feeds a chunk captured on connection `conn`.
    pub fn feed(&mut self, conn: u64, dir: Direction, bytes: &[u8]) -> Vec<IntentEvent> {
        if !self.conns.contains_key(&conn) {
            while self.conns.len() >= self.limits.max_connections.max(1) {
                let Some(old) = self.order.pop_front() else {
                    break;
                };
                if self.conns.remove(&old).is_some() {
                    self.stats.connections_evicted += 1;
                }
            }
            self.conns.insert(conn, ConnState::default());
            self.order.push_back(conn);
        }
        let mut http = Vec::new();
        if let Some(c) = self.conns.get_mut(&conn) {
            c.http
                .feed(dir, bytes, &self.limits, &mut self.stats, &mut http);
        }
        self.handle(conn, http)
    }

    /// The connection closed: pending responses end (incomplete) and its state is dropped.
    pub fn close(&mut self, conn: u64) -> Vec<IntentEvent> {
        let mut http = Vec::new();
        if let Some(c) = self.conns.get_mut(&conn) {
            c.http.close(&self.limits, &mut self.stats, &mut http);
        }
        let out = self.handle(conn, http);
        self.conns.remove(&conn);
        self.order.retain(|c| *c != conn);
        out
    }

    fn handle(&mut self, conn: u64, http: Vec<HttpEvent>) -> Vec<IntentEvent> {
        let mut out = Vec::new();
        let Some(state) = self.conns.get_mut(&conn) else {
            return out;
        };
        let ex = Excerpter {
            policy: &self.policy,
            redact: &*self.redact,
        };
        let window = self.policy.window();
        for ev in http {
            match ev {
                HttpEvent::Request { stream, head, body } => {
                    let Some(provider) = Provider::detect(&head.path, &head.authority) else {
                        continue;
                    };
                    let encoded = head
                        .header("content-encoding")
                        .is_some_and(|e| !e.eq_ignore_ascii_case("identity"));
                    let mut request = if encoded {
                        // Compressed request bodies (e.g. zstd) are not decoded here.
                        LlmRequest {
                            provider: Some(provider),
                            path: head.path.clone(),
                            host: head.authority.clone(),
                            body_bytes: body.total,
                            incomplete: true,
                            ..LlmRequest::default()
                        }
                    } else {
                        api::parse_request(
                            provider,
                            &head,
                            &body.bytes,
                            body.truncated,
                            &ex,
                            &self.limits,
                            &mut self.stats,
                        )
                    };
                    request.body_bytes = body.total;
                    if state.exchanges.len() < self.limits.max_streams {
                        state.exchanges.insert(
                            stream,
                            Exchange {
                                provider,
                                acc: None,
                            },
                        );
                    } else {
                        self.stats.too_many_streams += 1;
                    }
                    out.push(IntentEvent::Request {
                        conn,
                        stream,
                        request,
                    });
                }
                HttpEvent::ResponseHead { stream, head } => {
                    if let Some(x) = state.exchanges.get_mut(&stream) {
                        x.acc = Some(ResponseAcc::new(
                            x.provider,
                            head.status,
                            window,
                            &self.limits,
                        ));
                    }
                }
                HttpEvent::Sse { stream, event } => {
                    if let Some(acc) = state
                        .exchanges
                        .get_mut(&stream)
                        .and_then(|x| x.acc.as_mut())
                    {
                        acc.event(&event, &mut self.stats);
                    }
                }
                HttpEvent::ResponseEnd {
                    stream,
                    body,
                    aborted,
                } => {
                    let Some(x) = state.exchanges.remove(&stream) else {
                        continue;
                    };
                    let Some(mut acc) = x.acc else {
                        continue;
                    };
                    if !body.bytes.is_empty() {
                        acc.body(&body.bytes, body.truncated, &mut self.stats);
                    }
                    let response = acc.finish(!aborted, &ex, &mut self.stats);
                    out.push(IntentEvent::Response {
                        conn,
                        stream,
                        response,
                    });
                }
            }
        }
        out
    }
}
