//! HTTP/1.1 message framing (RFC 9112) for both directions of one connection.
//!
//! Each direction keeps only what it cannot consume yet (a partial head, a partial chunk-size
//! line), never a whole body: body bytes go straight to the message's bounded [`BodySink`].
//! Responses are paired with requests in order through a bounded queue (pipelining included),
//! which also tells a response to a `HEAD` that it has no body. A head that is too long or does
//! not parse is counted and the direction resynchronises at the next thing that looks like a
//! message start, since a lost capture chunk must not blind the rest of the connection.

use std::collections::VecDeque;

use super::{Body, BodySink, Direction, HttpEvent, RequestHead, ResponseHead};
use crate::limits::{Limits, Stats};

const METHODS: [&[u8]; 9] = [
    b"GET ",
    b"POST ",
    b"PUT ",
    b"DELETE ",
    b"PATCH ",
    b"HEAD ",
    b"OPTIONS ",
    b"CONNECT ",
    b"TRACE ",
];
/// Longest chunk-size line (with extensions) accepted.
const MAX_CHUNK_LINE: usize = 1024;

#[derive(Debug, Default)]
enum Framing {
    /// Waiting for a head.
    #[default]
    Head,
    Length(u64),
    Chunked(Chunk),
    UntilClose,
    /// Lost: looking for the next message start.
    Resync,
    /// The connection switched protocols (101): nothing more is HTTP/1.1.
    Opaque,
}

#[derive(Debug, Clone, Copy)]
enum Chunk {
    Size,
    Data(u64),
    DataEnd,
    Trailers,
}

/// The message a direction is receiving.
#[derive(Debug)]
enum Current {
    Request(u64, RequestHead, Body),
    Response(u64, BodySink),
}

#[derive(Debug, Default)]
struct Side {
    buf: Vec<u8>,
    framing: Framing,
    current: Option<Current>,
}

/// Requests waiting for their response: stream number and whether it was `HEAD`.
#[derive(Debug, Default)]
pub struct Http1 {
    req: Side,
    resp: Side,
    next_stream: u64,
    pending: VecDeque<(u64, bool)>,
}

impl Http1 {
    pub fn buffered(&self) -> usize {
        self.req.buf.len() + self.resp.buf.len()
    }

    pub fn feed(
        &mut self,
        dir: Direction,
        mut bytes: &[u8],
        limits: &Limits,
        stats: &mut Stats,
        out: &mut Vec<HttpEvent>,
    ) {
        // Take at most what fits in the buffer, parse, repeat: buffered bytes stay under
        // `max_buffer` however large the chunk.
        let cap = limits
            .max_buffer
            .max(limits.max_head + 4)
            .max(MAX_CHUNK_LINE + 2);
        while !bytes.is_empty() {
            let side = self.side(dir);
            let room = cap - side.buf.len().min(cap);
            let take = bytes.len().min(room.max(1));
            side.buf.extend_from_slice(&bytes[..take]);
            bytes = &bytes[take..];
            self.parse(dir, limits, stats, out);
            let side = self.side(dir);
            if side.buf.len() >= cap {
                // Nothing parsable in a full buffer: drop it and resynchronise.
                stats.buffer_overflow_bytes += side.buf.len() as u64;
                stats.http1_malformed += 1;
                side.buf.clear();
                side.framing = Framing::Resync;
            }
        }
    }

    fn side(&mut self, dir: Direction) -> &mut Side {
        match dir {
            Direction::Request => &mut self.req,
            Direction::Response => &mut self.resp,
        }
    }

    fn parse(
        &mut self,
        dir: Direction,
        limits: &Limits,
        stats: &mut Stats,
        out: &mut Vec<HttpEvent>,
    ) {
        let mut pos = 0usize;
        loop {
            let side = match dir {
                Direction::Request => &mut self.req,
                Direction::Response => &mut self.resp,
            };
            let rest = &side.buf[pos..];
            if rest.is_empty() {
                break;
            }
            match side.framing {
                Framing::Opaque => {
                    pos = side.buf.len();
                    break;
                }
                Framing::Resync => match find_start(rest, dir) {
                    Some(i) => {
                        pos += i;
                        stats.http1_resyncs += 1;
                        side.framing = Framing::Head;
                    }
                    None => {
                        // Keep a short tail: a message start may straddle two chunks.
                        pos += rest.len().saturating_sub(16);
                        break;
                    }
                },
                Framing::Head => {
                    // Tolerate stray line ends between messages.
                    if rest[0] == b'\r' || rest[0] == b'\n' {
                        pos += 1;
                        continue;
                    }
                    let Some((head_len, used)) = find_head_end(rest) else {
                        if rest.len() > limits.max_head {
                            stats.http1_malformed += 1;
                            side.framing = Framing::Resync;
                            pos += 1;
                            continue;
                        }
                        break;
                    };
                    if head_len > limits.max_head {
                        stats.http1_malformed += 1;
                        side.framing = Framing::Resync;
                        pos += 1;
                        continue;
                    }
                    let head = rest[..head_len].to_vec();
                    pos += used;
                    if self.start_message(dir, &head, limits, stats, out).is_err() {
                        stats.http1_malformed += 1;
                        self.side(dir).framing = Framing::Resync;
                    }
                }
                Framing::Length(n) => {
                    let take = (n.min(rest.len() as u64)) as usize;
                    let data = rest[..take].to_vec();
                    pos += take;
                    self.body(dir, &data, limits, stats, out);
                    let side = self.side(dir);
                    if n == take as u64 {
                        self.end_message(dir, stats, out);
                    } else {
                        side.framing = Framing::Length(n - take as u64);
                    }
                }
                Framing::UntilClose => {
                    let data = rest.to_vec();
                    pos += data.len();
                    self.body(dir, &data, limits, stats, out);
                }
                Framing::Chunked(state) => match state {
                    Chunk::Size => {
                        let Some(nl) = rest.iter().position(|&b| b == b'\n') else {
                            if rest.len() > MAX_CHUNK_LINE {
                                stats.http1_malformed += 1;
                                side.framing = Framing::Resync;
                            }
                            break;
                        };
                        let line = &rest[..nl];
                        let size = parse_chunk_size(line);
                        pos += nl + 1;
                        match size {
                            Some(0) => side.framing = Framing::Chunked(Chunk::Trailers),
                            Some(n) => side.framing = Framing::Chunked(Chunk::Data(n)),
                            None => {
                                stats.http1_malformed += 1;
                                side.framing = Framing::Resync;
                            }
                        }
                    }
                    Chunk::Data(n) => {
                        let take = (n.min(rest.len() as u64)) as usize;
                        let data = rest[..take].to_vec();
                        pos += take;
                        side.framing = if n == take as u64 {
                            Framing::Chunked(Chunk::DataEnd)
                        } else {
                            Framing::Chunked(Chunk::Data(n - take as u64))
                        };
                        self.body(dir, &data, limits, stats, out);
                    }
                    Chunk::DataEnd => {
                        if rest.starts_with(b"\r\n") {
                            pos += 2;
                        } else if rest.starts_with(b"\n") {
                            pos += 1;
                        } else if rest == b"\r" {
                            break;
                        } else {
                            stats.http1_malformed += 1;
                            side.framing = Framing::Resync;
                            continue;
                        }
                        side.framing = Framing::Chunked(Chunk::Size);
                    }
                    Chunk::Trailers => {
                        let Some(nl) = rest.iter().position(|&b| b == b'\n') else {
                            if rest.len() > limits.max_head {
                                stats.http1_malformed += 1;
                                side.framing = Framing::Resync;
                            }
                            break;
                        };
                        let empty = rest[..nl].iter().all(|&b| b == b'\r');
                        pos += nl + 1;
                        if empty {
                            self.end_message(dir, stats, out);
                        }
                    }
                },
            }
        }
        let side = self.side(dir);
        side.buf.drain(..pos.min(side.buf.len()));
    }

    fn start_message(
        &mut self,
        dir: Direction,
        head: &[u8],
        limits: &Limits,
        stats: &mut Stats,
        out: &mut Vec<HttpEvent>,
    ) -> Result<(), ()> {
        let text = lossy(head, stats);
        let mut lines = text.split('\n').map(|l| l.strip_suffix('\r').unwrap_or(l));
        let first = lines.next().ok_or(())?;
        let mut headers = Vec::new();
        let mut size = 0usize;
        for line in lines {
            let (k, v) = line.split_once(':').ok_or(())?;
            let k = k.trim();
            if k.is_empty() || k.contains(' ') {
                return Err(());
            }
            size += k.len() + v.len() + 32;
            if size > limits.max_header_list {
                stats.header_list_truncated += 1;
                break;
            }
            headers.push((k.to_ascii_lowercase(), v.trim().to_owned()));
        }
        let get = |name: &str| {
            headers
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.as_str())
        };
        let chunked =
            get("transfer-encoding").is_some_and(|t| t.to_ascii_lowercase().contains("chunked"));
        let length = match get("content-length") {
            Some(v) => Some(v.parse::<u64>().map_err(|_| ())?),
            None => None,
        };
        match dir {
            Direction::Request => {
                let mut parts = first.split(' ');
                let method = parts.next().ok_or(())?;
                let path = parts.next().ok_or(())?;
                let version = parts.next().ok_or(())?;
                if !version.starts_with("HTTP/1.") || method.is_empty() || parts.next().is_some() {
                    return Err(());
                }
                let stream = self.next_stream;
                self.next_stream += 1;
                if self.pending.len() < limits.max_streams {
                    self.pending.push_back((stream, method == "HEAD"));
                } else {
                    stats.too_many_streams += 1;
                }
                let head = RequestHead {
                    method: method.to_owned(),
                    path: path.to_owned(),
                    authority: get("host").unwrap_or_default().to_owned(),
                    headers,
                };
                self.req.framing = if chunked {
                    Framing::Chunked(Chunk::Size)
                } else {
                    Framing::Length(length.unwrap_or(0))
                };
                self.req.current = Some(Current::Request(stream, head, Body::default()));
                if matches!(self.req.framing, Framing::Length(0)) {
                    self.end_message(dir, stats, out);
                }
            }
            Direction::Response => {
                let mut parts = first.splitn(3, ' ');
                let version = parts.next().ok_or(())?;
                let status: u16 = parts.next().ok_or(())?.parse().map_err(|_| ())?;
                if !version.starts_with("HTTP/1.") || !(100..1000).contains(&status) {
                    return Err(());
                }
                if status == 101 {
                    self.req.framing = Framing::Opaque;
                    self.resp.framing = Framing::Opaque;
                    return Ok(());
                }
                if status < 200 {
                    return Ok(()); // informational: the real response follows
                }
                let (stream, was_head) = self.pending.pop_front().unwrap_or((u64::MAX, false));
                let head = ResponseHead { status, headers };
                let no_body = was_head || status == 204 || status == 304;
                self.resp.framing = if no_body {
                    Framing::Length(0)
                } else if chunked {
                    Framing::Chunked(Chunk::Size)
                } else if let Some(n) = length {
                    Framing::Length(n)
                } else {
                    Framing::UntilClose
                };
                let sink = BodySink::for_response(&head);
                out.push(HttpEvent::ResponseHead { stream, head });
                self.resp.current = Some(Current::Response(stream, sink));
                if matches!(self.resp.framing, Framing::Length(0)) {
                    self.end_message(dir, stats, out);
                }
            }
        }
        Ok(())
    }

    fn body(
        &mut self,
        dir: Direction,
        data: &[u8],
        limits: &Limits,
        stats: &mut Stats,
        out: &mut Vec<HttpEvent>,
    ) {
        match &mut self.side(dir).current {
            Some(Current::Request(_, _, body)) => body.push(data, limits, stats),
            Some(Current::Response(stream, sink)) => sink.push(*stream, data, limits, stats, out),
            None => {}
        }
    }

    fn end_message(&mut self, dir: Direction, stats: &mut Stats, out: &mut Vec<HttpEvent>) {
        let side = self.side(dir);
        side.framing = Framing::Head;
        match side.current.take() {
            Some(Current::Request(stream, head, body)) => {
                stats.http_requests += 1;
                out.push(HttpEvent::Request { stream, head, body });
            }
            Some(Current::Response(stream, sink)) => {
                stats.http_responses += 1;
                out.push(HttpEvent::ResponseEnd {
                    stream,
                    body: sink.finish(),
                    aborted: false,
                });
            }
            None => {}
        }
    }

    /// The connection closed: a close-delimited response ends, anything else is aborted.
    pub fn close(&mut self, _limits: &Limits, stats: &mut Stats, out: &mut Vec<HttpEvent>) {
        if matches!(self.resp.framing, Framing::UntilClose) {
            self.end_message(Direction::Response, stats, out);
        } else if let Some(Current::Response(stream, sink)) = self.resp.current.take() {
            out.push(HttpEvent::ResponseEnd {
                stream,
                body: sink.finish(),
                aborted: true,
            });
        }
        self.req.current = None;
        self.req.buf.clear();
        self.resp.buf.clear();
        self.pending.clear();
    }
}

/// The end of the head: (head length without the blank line, bytes to consume).
fn find_head_end(b: &[u8]) -> Option<(usize, usize)> {
    let mut i = 0;
    while let Some(off) = b[i..].iter().position(|&c| c == b'\n') {
        let nl = i + off;
        let after = &b[nl + 1..];
        if after.starts_with(b"\r\n") {
            return Some((
                nl.saturating_sub(usize::from(nl > 0 && b[nl - 1] == b'\r')),
                nl + 3,
            ));
        }
        if after.starts_with(b"\n") {
            return Some((
                nl.saturating_sub(usize::from(nl > 0 && b[nl - 1] == b'\r')),
                nl + 2,
            ));
        }
        i = nl + 1;
    }
    None
}

/// Where the next plausible message start is, at a line start.
fn find_start(b: &[u8], dir: Direction) -> Option<usize> {
    let is_start = |s: &[u8]| match dir {
        Direction::Request => METHODS.iter().any(|m| s.starts_with(m)),
        Direction::Response => s.starts_with(b"HTTP/1."),
    };
    if is_start(b) {
        return Some(0);
    }
    b.iter()
        .enumerate()
        .filter(|(_, c)| **c == b'\n')
        .map(|(i, _)| i + 1)
        .find(|&i| is_start(&b[i..]))
}

fn parse_chunk_size(line: &[u8]) -> Option<u64> {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let hex = line.split(|&c| c == b';').next()?;
    let hex = std::str::from_utf8(hex).ok()?.trim();
    if hex.is_empty() || hex.len() > 15 {
        return None;
    }
    u64::from_str_radix(hex, 16).ok()
}

fn lossy(b: &[u8], stats: &mut Stats) -> String {
    match std::str::from_utf8(b) {
        Ok(s) => s.to_owned(),
        Err(_) => {
            stats.invalid_utf8 += 1;
            String::from_utf8_lossy(b).into_owned()
        }
    }
}
