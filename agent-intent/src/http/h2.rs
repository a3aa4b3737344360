//! HTTP/2 framing (RFC 9113) for both directions of one connection, with HPACK.
//!
//! Each direction has its own frame buffer (one frame at most, capped at `max_buffer`) and its
//! own [`hpack::Decoder`], since each peer's encoder drives its own table. Streams are shared:
//! the request side opens them, the response side answers on the same id, and a bounded map
//! (`max_streams`) holds what is in flight. HEADERS + CONTINUATION are reassembled up to
//! `max_header_block`; PUSH_PROMISE blocks are decoded too (to keep the table in step) and
//! dropped. DATA larger than the frame cap is skipped without buffering. A protocol error or an
//! HPACK error makes that direction stop (the table is out of step from then on), counted in
//! [`Stats`]; the other direction keeps going.

use std::collections::BTreeMap;

use super::{Body, BodySink, Direction, H2_PREFACE, HttpEvent, RequestHead, ResponseHead};
use crate::hpack;
use crate::limits::{Limits, Stats};

const DATA: u8 = 0;
const HEADERS: u8 = 1;
const PRIORITY: u8 = 2;
const RST_STREAM: u8 = 3;
const SETTINGS: u8 = 4;
const PUSH_PROMISE: u8 = 5;
const PING: u8 = 6;
const GOAWAY: u8 = 7;
const WINDOW_UPDATE: u8 = 8;
const CONTINUATION: u8 = 9;

const END_STREAM: u8 = 0x1;
const END_HEADERS: u8 = 0x4;
const PADDED: u8 = 0x8;
const PRIORITY_FLAG: u8 = 0x20;

/// A header block being reassembled from HEADERS/PUSH_PROMISE + CONTINUATION.
#[derive(Debug)]
struct Block {
    stream: u32,
    bytes: Vec<u8>,
    end_stream: bool,
    push: bool,
}

#[derive(Debug)]
struct Side {
    buf: Vec<u8>,
    preface: bool,
    hpack: hpack::Decoder,
    block: Option<Block>,
    /// Payload bytes of an oversize DATA frame still to skip, and its stream.
    skip: (usize, u32),
    broken: bool,
}

#[derive(Debug, Default)]
struct Stream {
    request: Option<(RequestHead, Body)>,
    request_done: bool,
    response: Option<BodySink>,
}

/// One HTTP/2 connection.
#[derive(Debug)]
pub struct Http2 {
    req: Side,
    resp: Side,
    streams: BTreeMap<u32, Stream>,
}

impl Http2 {
    pub fn new(limits: &Limits) -> Self {
        let side = |preface| Side {
            buf: Vec::new(),
            preface,
            hpack: hpack::Decoder::new(limits.hpack_max_table_size),
            block: None,
            skip: (0, 0),
            broken: false,
        };
        Self {
            req: side(true),
            resp: side(false),
            streams: BTreeMap::new(),
        }
    }

    pub fn buffered(&self) -> usize {
        self.req.buf.len()
            + self.resp.buf.len()
            + self.req.block.as_ref().map_or(0, |b| b.bytes.len())
            + self.resp.block.as_ref().map_or(0, |b| b.bytes.len())
    }

    /// Streams in flight.
    pub fn streams(&self) -> usize {
        self.streams.len()
    }

    pub fn feed(
        &mut self,
        dir: Direction,
        mut bytes: &[u8],
        limits: &Limits,
        stats: &mut Stats,
        out: &mut Vec<HttpEvent>,
    ) {
        let frame_cap = limits.max_buffer.max(16_384 + 9);
        while !bytes.is_empty() {
            let side = self.side(dir);
            if side.broken {
                return;
            }
            if side.skip.0 > 0 {
                let n = side.skip.0.min(bytes.len());
                side.skip.0 -= n;
                bytes = &bytes[n..];
                continue;
            }
            if side.preface {
                let need = H2_PREFACE.len() - side.buf.len();
                let n = need.min(bytes.len());
                side.buf.extend_from_slice(&bytes[..n]);
                bytes = &bytes[n..];
                if side.buf[..] != H2_PREFACE[..side.buf.len()] {
                    stats.h2_frame_errors += 1;
                    side.broken = true;
                    side.buf.clear();
                    return;
                }
                if side.buf.len() == H2_PREFACE.len() {
                    side.preface = false;
                    side.buf.clear();
                }
                continue;
            }
            // Complete the 9-byte frame header first, then exactly one payload.
            let want = if side.buf.len() < 9 {
                9 - side.buf.len()
            } else {
                let len = frame_len(&side.buf);
                9 + len - side.buf.len()
            };
            let n = want.min(bytes.len());
            side.buf.extend_from_slice(&bytes[..n]);
            bytes = &bytes[n..];
            if side.buf.len() == 9 {
                let len = frame_len(&side.buf);
                if 9 + len > frame_cap {
                    let (ty, stream) = (side.buf[3], stream_id(&side.buf));
                    side.buf.clear();
                    if ty == DATA && stream != 0 {
                        // Too big to hold: skip it, the body is cut.
                        side.skip = (len, stream);
                        stats.body_truncated += 1;
                        continue;
                    }
                    stats.h2_frame_errors += 1;
                    side.broken = true;
                    return;
                }
            }
            if side.buf.len() >= 9 && side.buf.len() == 9 + frame_len(&side.buf) {
                let frame = std::mem::take(&mut side.buf);
                if let Err(e) = self.frame(dir, &frame, limits, stats, out) {
                    match e {
                        FrameError::Protocol => stats.h2_frame_errors += 1,
                        FrameError::Hpack => stats.hpack_errors += 1,
                        FrameError::BlockTooLarge => stats.h2_header_block_too_large += 1,
                    }
                    let side = self.side(dir);
                    side.broken = true;
                    side.block = None;
                    return;
                }
                // Reuse the allocation unless a large frame inflated it.
                let side = self.side(dir);
                if frame.capacity() <= 32 << 10 {
                    side.buf = frame;
                    side.buf.clear();
                }
            }
        }
    }

    fn side(&mut self, dir: Direction) -> &mut Side {
        match dir {
            Direction::Request => &mut self.req,
            Direction::Response => &mut self.resp,
        }
    }

    fn frame(
        &mut self,
        dir: Direction,
        frame: &[u8],
        limits: &Limits,
        stats: &mut Stats,
        out: &mut Vec<HttpEvent>,
    ) -> Result<(), FrameError> {
        let ty = frame[3];
        let flags = frame[4];
        let stream = stream_id(frame);
        let payload = &frame[9..];
        let side = self.side(dir);
        if let Some(block) = &side.block
            && (ty != CONTINUATION || block.stream != stream)
        {
            return Err(FrameError::Protocol);
        }
        match ty {
            DATA => {
                if stream == 0 {
                    return Err(FrameError::Protocol);
                }
                let data = unpad(payload, flags)?;
                self.data(
                    dir,
                    stream,
                    data,
                    flags & END_STREAM != 0,
                    limits,
                    stats,
                    out,
                );
            }
            HEADERS | PUSH_PROMISE => {
                if stream == 0 {
                    return Err(FrameError::Protocol);
                }
                let mut frag = unpad(payload, flags)?;
                if ty == HEADERS && flags & PRIORITY_FLAG != 0 {
                    frag = frag.get(5..).ok_or(FrameError::Protocol)?;
                }
                if ty == PUSH_PROMISE {
                    frag = frag.get(4..).ok_or(FrameError::Protocol)?;
                }
                if frag.len() > limits.max_header_block {
                    return Err(FrameError::BlockTooLarge);
                }
                let block = Block {
                    stream,
                    bytes: frag.to_vec(),
                    end_stream: ty == HEADERS && flags & END_STREAM != 0,
                    push: ty == PUSH_PROMISE,
                };
                if flags & END_HEADERS != 0 {
                    self.header_block(dir, block, limits, stats, out)?;
                } else {
                    self.side(dir).block = Some(block);
                }
            }
            CONTINUATION => {
                let Some(mut block) = side.block.take() else {
                    return Err(FrameError::Protocol);
                };
                if block.bytes.len() + payload.len() > limits.max_header_block {
                    return Err(FrameError::BlockTooLarge);
                }
                block.bytes.extend_from_slice(payload);
                if flags & END_HEADERS != 0 {
                    self.header_block(dir, block, limits, stats, out)?;
                } else {
                    self.side(dir).block = Some(block);
                }
            }
            PRIORITY if payload.len() != 5 || stream == 0 => return Err(FrameError::Protocol),
            RST_STREAM => {
                if payload.len() != 4 || stream == 0 {
                    return Err(FrameError::Protocol);
                }
                if let Some(s) = self.streams.remove(&stream) {
                    stats.h2_streams_reset += 1;
                    abort(u64::from(stream), s, out);
                }
            }
            SETTINGS => {
                let ack = flags & 0x1 != 0;
                if stream != 0 || !payload.len().is_multiple_of(6) || (ack && !payload.is_empty()) {
                    return Err(FrameError::Protocol);
                }
            }
            PING if payload.len() != 8 || stream != 0 => return Err(FrameError::Protocol),
            GOAWAY => {
                if payload.len() < 8 || stream != 0 {
                    return Err(FrameError::Protocol);
                }
                let last = stream_id(&[
                    0, 0, 0, 0, 0, payload[0], payload[1], payload[2], payload[3],
                ]);
                let dropped: Vec<u32> = self
                    .streams
                    .range(last.saturating_add(1)..)
                    .map(|(k, _)| *k)
                    .collect();
                for id in dropped {
                    if let Some(s) = self.streams.remove(&id) {
                        stats.h2_streams_reset += 1;
                        abort(u64::from(id), s, out);
                    }
                }
            }
            WINDOW_UPDATE if payload.len() != 4 => return Err(FrameError::Protocol),
            _ => {} // unknown frame types are ignored (RFC 9113 §4.1)
        }
        Ok(())
    }

    fn header_block(
        &mut self,
        dir: Direction,
        block: Block,
        limits: &Limits,
        stats: &mut Stats,
        out: &mut Vec<HttpEvent>,
    ) -> Result<(), FrameError> {
        let decoded = self
            .side(dir)
            .hpack
            .decode(&block.bytes, limits.max_header_list)
            .map_err(|_| FrameError::Hpack)?;
        if decoded.truncated {
            stats.header_list_truncated += 1;
        }
        if block.push {
            return Ok(());
        }
        let pseudo = |name: &str| -> Option<String> {
            decoded
                .fields
                .iter()
                .find(|(k, _)| k == name.as_bytes())
                .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
        };
        let method = pseudo(":method");
        let path = pseudo(":path");
        let authority = pseudo(":authority").or_else(|| pseudo("host"));
        let status = pseudo(":status");
        let mut headers = Vec::new();
        for (k, v) in &decoded.fields {
            if k.first() == Some(&b':') {
                continue;
            }
            if std::str::from_utf8(v).is_err() {
                stats.invalid_utf8 += 1;
            }
            headers.push((
                String::from_utf8_lossy(k).to_ascii_lowercase(),
                String::from_utf8_lossy(v).into_owned(),
            ));
        }
        let id = block.stream;
        if !self.streams.contains_key(&id) {
            if self.streams.len() >= limits.max_streams {
                stats.too_many_streams += 1;
                return Ok(());
            }
            self.streams.insert(id, Stream::default());
        }
        let Some(s) = self.streams.get_mut(&id) else {
            return Ok(());
        };
        match dir {
            Direction::Request => {
                if s.request.is_none() && !s.request_done {
                    let head = RequestHead {
                        method: method.unwrap_or_default(),
                        path: path.unwrap_or_default(),
                        authority: authority.unwrap_or_default(),
                        headers,
                    };
                    s.request = Some((head, Body::default()));
                }
                if block.end_stream {
                    self.end_request(id, stats, out);
                }
            }
            Direction::Response => {
                let code: u16 = status.and_then(|s| s.parse().ok()).unwrap_or(0);
                if s.response.is_none() {
                    if (100..200).contains(&code) {
                        return Ok(()); // informational
                    }
                    let head = ResponseHead {
                        status: code,
                        headers,
                    };
                    s.response = Some(BodySink::for_response(&head));
                    out.push(HttpEvent::ResponseHead {
                        stream: u64::from(id),
                        head,
                    });
                }
                if block.end_stream {
                    self.end_response(id, stats, out);
                }
            }
        }
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    fn data(
        &mut self,
        dir: Direction,
        id: u32,
        data: &[u8],
        end: bool,
        limits: &Limits,
        stats: &mut Stats,
        out: &mut Vec<HttpEvent>,
    ) {
        let Some(s) = self.streams.get_mut(&id) else {
            return;
        };
        match dir {
            Direction::Request => {
                if let Some((_, body)) = &mut s.request {
                    body.push(data, limits, stats);
                }
                if end {
                    self.end_request(id, stats, out);
                }
            }
            Direction::Response => {
                if let Some(sink) = &mut s.response {
                    sink.push(u64::from(id), data, limits, stats, out);
                }
                if end {
                    self.end_response(id, stats, out);
                }
            }
        }
    }

    fn end_request(&mut self, id: u32, stats: &mut Stats, out: &mut Vec<HttpEvent>) {
        if let Some(s) = self.streams.get_mut(&id)
            && let Some((head, body)) = s.request.take()
        {
            s.request_done = true;
            stats.http_requests += 1;
            out.push(HttpEvent::Request {
                stream: u64::from(id),
                head,
                body,
            });
        }
    }

    fn end_response(&mut self, id: u32, stats: &mut Stats, out: &mut Vec<HttpEvent>) {
        if let Some(s) = self.streams.remove(&id)
            && let Some(sink) = s.response
        {
            stats.http_responses += 1;
            out.push(HttpEvent::ResponseEnd {
                stream: u64::from(id),
                body: sink.finish(),
                aborted: false,
            });
        }
    }

    /// The connection closed: every stream still open is aborted.
    pub fn close(&mut self, out: &mut Vec<HttpEvent>) {
        for (id, s) in std::mem::take(&mut self.streams) {
            abort(u64::from(id), s, out);
        }
    }
}

fn abort(id: u64, s: Stream, out: &mut Vec<HttpEvent>) {
    if let Some(sink) = s.response {
        out.push(HttpEvent::ResponseEnd {
            stream: id,
            body: sink.finish(),
            aborted: true,
        });
    }
}

enum FrameError {
    Protocol,
    Hpack,
    BlockTooLarge,
}

fn frame_len(h: &[u8]) -> usize {
    (usize::from(h[0]) << 16) | (usize::from(h[1]) << 8) | usize::from(h[2])
}

fn stream_id(h: &[u8]) -> u32 {
    u32::from_be_bytes([h[5], h[6], h[7], h[8]]) & 0x7fff_ffff
}

/// Strips the padding of a PADDED frame; padding that does not fit is a protocol error.
fn unpad(payload: &[u8], flags: u8) -> Result<&[u8], FrameError> {
    if flags & PADDED == 0 {
        return Ok(payload);
    }
    let (&pad, rest) = payload.split_first().ok_or(FrameError::Protocol)?;
    let pad = usize::from(pad);
    if pad > rest.len() {
        return Err(FrameError::Protocol);
    }
    Ok(&rest[..rest.len() - pad])
}

/// Builds one frame; for tests and fuzz seeds.
pub fn frame(ty: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = payload.len();
    let mut f = vec![(len >> 16) as u8, (len >> 8) as u8, len as u8, ty, flags];
    f.extend_from_slice(&(stream & 0x7fff_ffff).to_be_bytes());
    f.extend_from_slice(payload);
    f
}

/// Frame type and flag values, for building frames in tests.
pub mod wire {
    pub const DATA: u8 = super::DATA;
    pub const HEADERS: u8 = super::HEADERS;
    pub const RST_STREAM: u8 = super::RST_STREAM;
    pub const SETTINGS: u8 = super::SETTINGS;
    pub const GOAWAY: u8 = super::GOAWAY;
    pub const CONTINUATION: u8 = super::CONTINUATION;
    pub const WINDOW_UPDATE: u8 = super::WINDOW_UPDATE;
    pub const END_STREAM: u8 = super::END_STREAM;
    pub const END_HEADERS: u8 = super::END_HEADERS;
    pub const PADDED: u8 = super::PADDED;
}
