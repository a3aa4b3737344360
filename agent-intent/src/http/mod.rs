//! Stream reassembly: plaintext chunks of one TLS connection in, HTTP messages out.
//!
//! The daemon captures `SSL_write` (the agent's requests) and `SSL_read` (the server's
//! responses) per connection and feeds each chunk, in order, to one [`Connection`] with its
//! [`Direction`]. The connection works out whether it carries HTTP/1.1 or HTTP/2 from the first
//! request bytes (the HTTP/2 client preface), then hands the bytes to [`h1`] or [`h2`], which
//! pair each request with its response (FIFO for HTTP/1.1, stream id for HTTP/2) under a common
//! `stream` number. Bodies are kept up to `max_body`; `text/event-stream` response bodies are
//! not kept at all but decoded incrementally into [`HttpEvent::Sse`] events, so an endless
//! stream costs only the SSE decoder's bounded buffers.

pub mod h1;
pub mod h2;

use serde::Serialize;

use crate::limits::{Limits, Stats};
use crate::sse::{SseDecoder, SseEvent};

/// Which way a chunk went: `Request` for `SSL_write` (client to server), `Response` for
/// `SSL_read`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum Direction {
    Request,
    Response,
}

/// The head of a request.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RequestHead {
    pub method: String,
    pub path: String,
    /// `:authority` or `Host`.
    pub authority: String,
    /// Lowercase names.
    pub headers: Vec<(String, String)>,
}

impl RequestHead {
    pub fn header(&self, name: &str) -> Option<&str> {
        header(&self.headers, name)
    }
}

/// The head of a response.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ResponseHead {
    pub status: u16,
    pub headers: Vec<(String, String)>,
}

impl ResponseHead {
    pub fn header(&self, name: &str) -> Option<&str> {
        header(&self.headers, name)
    }

    pub fn is_event_stream(&self) -> bool {
        self.header("content-type").is_some_and(|c| {
            c.trim_start()
                .to_ascii_lowercase()
                .starts_with("text/event-stream")
        })
    }
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// A message body, kept up to `max_body` bytes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Body {
    #[serde(skip)]
    pub bytes: Vec<u8>,
    /// Bytes seen, kept or not.
    pub total: u64,
    pub truncated: bool,
}

impl Body {
    fn push(&mut self, data: &[u8], limits: &Limits, stats: &mut Stats) {
        self.total += data.len() as u64;
        let room = limits.max_body.saturating_sub(self.bytes.len());
        if data.len() > room && !self.truncated {
            self.truncated = true;
            stats.body_truncated += 1;
        }
        self.bytes.extend_from_slice(&data[..data.len().min(room)]);
    }
}

/// What reassembly yields. `stream` pairs a request with its response: the HTTP/2 stream id, or
/// for HTTP/1.1 the request's position on the connection.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum HttpEvent {
    /// A complete request.
    Request {
        stream: u64,
        head: RequestHead,
        body: Body,
    },
    /// A response head (before its body).
    ResponseHead { stream: u64, head: ResponseHead },
    /// One event of a `text/event-stream` response body.
    Sse { stream: u64, event: SseEvent },
    /// The end of a response: `body` is empty for event streams; `aborted` when the stream was
    /// reset or the connection ended before the body did.
    ResponseEnd {
        stream: u64,
        body: Body,
        aborted: bool,
    },
}

/// A response body being received: kept bytes or an SSE decoder.
#[derive(Debug)]
pub(crate) enum BodySink {
    Bytes(Body),
    Sse(Box<SseDecoder>, u64),
}

impl BodySink {
    pub(crate) fn for_response(head: &ResponseHead) -> Self {
        if head.is_event_stream() {
            Self::Sse(Box::default(), 0)
        } else {
            Self::Bytes(Body::default())
        }
    }

    pub(crate) fn push(
        &mut self,
        stream: u64,
        data: &[u8],
        limits: &Limits,
        stats: &mut Stats,
        out: &mut Vec<HttpEvent>,
    ) {
        match self {
            Self::Bytes(b) => b.push(data, limits, stats),
            Self::Sse(d, total) => {
                *total += data.len() as u64;
                let mut events = Vec::new();
                d.feed(data, limits, stats, &mut events);
                out.extend(
                    events
                        .into_iter()
                        .map(|event| HttpEvent::Sse { stream, event }),
                );
            }
        }
    }

    pub(crate) fn finish(self) -> Body {
        match self {
            Self::Bytes(b) => b,
            Self::Sse(_, total) => Body {
                bytes: Vec::new(),
                total,
                truncated: false,
            },
        }
    }
}

/// The HTTP/2 client connection preface (RFC 9113 §3.4).
pub const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

enum Proto {
    /// Not known yet: the first request bytes (at most the preface's length) and the response
    /// bytes seen so far (bounded) wait here.
    Undecided(Vec<u8>, Vec<u8>),
    H1(Box<h1::Http1>),
    H2(Box<h2::Http2>),
}

/// One TLS connection's plaintext, both directions.
pub struct Connection {
    proto: Proto,
}

impl Default for Connection {
    fn default() -> Self {
        Self::new()
    }
}

impl Connection {
    pub fn new() -> Self {
        Self {
            proto: Proto::Undecided(Vec::new(), Vec::new()),
        }
    }

    /// Feeds one captured chunk; completed messages and events are appended to `out`.
    pub fn feed(
        &mut self,
        dir: Direction,
        bytes: &[u8],
        limits: &Limits,
        stats: &mut Stats,
        out: &mut Vec<HttpEvent>,
    ) {
        stats.bytes_in += bytes.len() as u64;
        if let Proto::Undecided(req, resp) = &mut self.proto {
            match dir {
                Direction::Response
                    if !resp.starts_with(b"HTTP/") && !bytes.starts_with(b"HTTP/") =>
                {
                    let room = limits.max_buffer.saturating_sub(resp.len());
                    let take = bytes.len().min(room);
                    stats.buffer_overflow_bytes += (bytes.len() - take) as u64;
                    resp.extend_from_slice(&bytes[..take]);
                    return;
                }
                Direction::Response => {
                    // A response head before any request: HTTP/1.1 (requests were missed).
                    let (req, resp) = (std::mem::take(req), std::mem::take(resp));
                    self.proto = Proto::H1(Box::default());
                    self.feed_proto(Direction::Request, &req, limits, stats, out);
                    self.feed_proto(Direction::Response, &resp, limits, stats, out);
                }
                Direction::Request => {
                    // Decide once the first bytes match the preface or cannot.
                    let need = H2_PREFACE.len() - req.len().min(H2_PREFACE.len());
                    let n = bytes.len().min(need);
                    req.extend_from_slice(&bytes[..n]);
                    let bytes = &bytes[n..];
                    let m = req.len();
                    if req[..] == H2_PREFACE[..m] && m < H2_PREFACE.len() {
                        return;
                    }
                    let h2 = req[..] == H2_PREFACE[..];
                    let (req, resp) = (std::mem::take(req), std::mem::take(resp));
                    self.proto = if h2 {
                        Proto::H2(Box::new(h2::Http2::new(limits)))
                    } else {
                        Proto::H1(Box::default())
                    };
                    self.feed_proto(Direction::Request, &req, limits, stats, out);
                    self.feed_proto(Direction::Request, bytes, limits, stats, out);
                    self.feed_proto(Direction::Response, &resp, limits, stats, out);
                    return;
                }
            }
        }
        self.feed_proto(dir, bytes, limits, stats, out);
    }

    fn feed_proto(
        &mut self,
        dir: Direction,
        bytes: &[u8],
        limits: &Limits,
        stats: &mut Stats,
        out: &mut Vec<HttpEvent>,
    ) {
        match &mut self.proto {
            Proto::Undecided(..) => {}
            Proto::H1(h) => h.feed(dir, bytes, limits, stats, out),
            Proto::H2(h) => h.feed(dir, bytes, limits, stats, out),
        }
    }

    /// The connection closed: ends a response delimited by close and aborts the rest.
    pub fn close(&mut self, limits: &Limits, stats: &mut Stats, out: &mut Vec<HttpEvent>) {
        match &mut self.proto {
            Proto::Undecided(..) => {}
            Proto::H1(h) => h.close(limits, stats, out),
            Proto::H2(h) => h.close(out),
        }
    }

    /// True once the connection is known to carry HTTP/2.
    pub fn is_http2(&self) -> bool {
        matches!(self.proto, Proto::H2(_))
    }

    /// Bytes held in buffers right now (for memory-bound assertions).
    pub fn buffered(&self) -> usize {
        match &self.proto {
            Proto::Undecided(q, p) => q.len() + p.len(),
            Proto::H1(h) => h.buffered(),
            Proto::H2(h) => h.buffered(),
        }
    }
}
