//! Incremental `text/event-stream` decoder (WHATWG HTML "server-sent events", RFC 8895 media
//! type), bounded.
//!
//! Bytes arrive in whatever pieces TLS handed them over, so the decoder keeps the partial line
//! and the event being built between calls. Lines end at `\r\n`, `\n` or `\r` (a `\r\n` split
//! across two calls is still one line end). A line longer than `max_sse_line` is cut (the rest
//! of it is dropped up to its end) and an event whose data grows past `max_sse_event` keeps only
//! its first bytes; both are counted, so an endless line or event costs at most those bytes.

use serde::Serialize;

use crate::limits::{Limits, Stats};

/// One dispatched event: `event` is `"message"` when the stream named none.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SseEvent {
    pub event: String,
    pub data: String,
    pub id: Option<String>,
    /// The data was cut at `max_sse_event`.
    pub truncated: bool,
}

/// The decoder state for one event stream.
#[derive(Debug, Default)]
pub struct SseDecoder {
    line: Vec<u8>,
    line_cut: bool,
    after_cr: bool,
    started: bool,
    bom: usize,
    event: Option<String>,
    data: String,
    has_data: bool,
    data_cut: bool,
    id: Option<String>,
}

impl SseDecoder {
    pub fn new() -> Self {
        Self::default()
    }

    /// Bytes held between calls (partial line plus partial event); bounded by the limits.
    pub fn buffered(&self) -> usize {
        self.line.capacity() + self.data.capacity()
    }

    /// Feeds stream bytes, appending each event completed by them to `out`.
    pub fn feed(
        &mut self,
        mut bytes: &[u8],
        limits: &Limits,
        stats: &mut Stats,
        out: &mut Vec<SseEvent>,
    ) {
        // A leading UTF-8 BOM is not part of the first line, even when split across calls.
        const BOM: &[u8] = b"\xef\xbb\xbf";
        while !self.started {
            let Some((&b, rest)) = bytes.split_first() else {
                return;
            };
            if b == BOM[self.bom] {
                self.bom += 1;
                bytes = rest;
                if self.bom == BOM.len() {
                    self.started = true;
                }
            } else {
                self.started = true;
                let seen = self.bom;
                self.feed_bytes(&BOM[..seen], limits, stats, out);
            }
        }
        self.feed_bytes(bytes, limits, stats, out);
    }

    fn feed_bytes(
        &mut self,
        bytes: &[u8],
        limits: &Limits,
        stats: &mut Stats,
        out: &mut Vec<SseEvent>,
    ) {
        for &b in bytes {
            if self.after_cr {
                self.after_cr = false;
                if b == b'\n' {
                    continue;
                }
            }
            match b {
                b'\r' | b'\n' => {
                    self.after_cr = b == b'\r';
                    self.end_line(limits, stats, out);
                }
                _ if self.line.len() < limits.max_sse_line => self.line.push(b),
                _ => {
                    if !self.line_cut {
                        stats.sse_lines_cut += 1;
                        self.line_cut = true;
                    }
                }
            }
        }
    }

    fn end_line(&mut self, limits: &Limits, stats: &mut Stats, out: &mut Vec<SseEvent>) {
        let line = std::mem::take(&mut self.line);
        self.line_cut = false;
        if line.is_empty() {
            self.dispatch(stats, out);
            return;
        }
        if line[0] == b':' {
            return; // comment
        }
        let (name, value) = match line.iter().position(|&c| c == b':') {
            Some(i) => {
                let v = &line[i + 1..];
                (&line[..i], v.strip_prefix(b" ").unwrap_or(v))
            }
            None => (&line[..], &b""[..]),
        };
        match name {
            b"event" => self.event = Some(lossy(value, stats)),
            b"data" => {
                self.has_data = true;
                let v = lossy(value, stats);
                let room = limits.max_sse_event.saturating_sub(self.data.len());
                if v.len() < room {
                    self.data.push_str(&v);
                    self.data.push('\n');
                } else {
                    if !self.data_cut {
                        stats.sse_events_cut += 1;
                        self.data_cut = true;
                    }
                    self.data.push_str(crate::excerpt::cut(&v, room));
                }
            }
            b"id" if !value.contains(&0) => self.id = Some(lossy(value, stats)),
            _ => {}
        }
        // Keep the line buffer's allocation for the next line.
        self.line = line;
        self.line.clear();
        if self.line.capacity() > 64 << 10 {
            self.line.shrink_to(64 << 10);
        }
    }

    fn dispatch(&mut self, stats: &mut Stats, out: &mut Vec<SseEvent>) {
        let event = self.event.take();
        if !self.has_data {
            self.data_cut = false;
            return;
        }
        let mut data = std::mem::take(&mut self.data);
        if data.ends_with('\n') {
            data.pop();
        }
        stats.sse_events += 1;
        out.push(SseEvent {
            event: event.unwrap_or_else(|| "message".to_owned()),
            data,
            id: self.id.clone(),
            truncated: std::mem::take(&mut self.data_cut),
        });
        self.has_data = false;
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn run(chunks: &[&[u8]], limits: &Limits) -> (Vec<SseEvent>, Stats) {
        let mut d = SseDecoder::new();
        let mut stats = Stats::default();
        let mut out = Vec::new();
        for c in chunks {
            d.feed(c, limits, &mut stats, &mut out);
        }
        (out, stats)
    }

    #[test]
    fn anthropic_stream_as_model_api_writes_it() {
        let body = b"event: message_start\ndata: {\"type\":\"message_start\"}\n\n\
            event: ping\ndata: {\"type\": \"ping\"}\n\n: keep-alive comment\n\n\
            event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n";
        let (ev, stats) = run(&[body], &Limits::default());
        let names: Vec<_> = ev.iter().map(|e| e.event.as_str()).collect();
        assert_eq!(names, ["message_start", "ping", "message_stop"]);
        assert_eq!(ev[0].data, "{\"type\":\"message_start\"}");
        assert_eq!(stats.sse_events, 3);
    }

    #[test]
    fn multi_line_data_all_line_ends_and_split_crlf() {
        let (ev, _) = run(
            &[
                b"data: a\r",
                b"\ndata:b\rdata:  c\n\r\n",
                b"id: 7\nevent: x\ndata\n\n",
            ],
            &Limits::default(),
        );
        assert_eq!(ev.len(), 2);
        assert_eq!(ev[0].data, "a\nb\n c");
        assert_eq!(ev[0].event, "message");
        assert_eq!(ev[1].event, "x");
        assert_eq!(ev[1].data, "");
        assert_eq!(ev[1].id.as_deref(), Some("7"));
    }

    #[test]
    fn byte_by_byte_equals_whole() {
        let body = "\u{feff}event: e\ndata: héllo\r\ndata: wörld\r\n\r\n";
        let (whole, _) = run(&[body.as_bytes()], &Limits::default());
        let bytes: Vec<&[u8]> = body.as_bytes().chunks(1).collect();
        let (split, _) = run(&bytes, &Limits::default());
        assert_eq!(whole, split);
        assert_eq!(whole[0].data, "héllo\nwörld");
    }

    #[test]
    fn endless_line_and_event_stay_bounded() {
        let limits = Limits {
            max_sse_line: 100,
            max_sse_event: 1000,
            ..Limits::default()
        };
        let mut d = SseDecoder::new();
        let mut stats = Stats::default();
        let mut out = Vec::new();
        d.feed(b"data: ", &limits, &mut stats, &mut out);
        for _ in 0..10_000 {
            d.feed(&[b'x'; 1000], &limits, &mut stats, &mut out);
        }
        assert!(d.buffered() <= 4096, "buffered {}", d.buffered());
        assert_eq!(stats.sse_lines_cut, 1);
        // An endless event made of many short data lines.
        d.feed(b"\n", &limits, &mut stats, &mut out);
        for _ in 0..10_000 {
            d.feed(b"data: 0123456789\n", &limits, &mut stats, &mut out);
        }
        assert!(d.buffered() <= 4096, "buffered {}", d.buffered());
        d.feed(b"\n", &limits, &mut stats, &mut out);
        assert_eq!(out.len(), 1);
        assert!(out[0].truncated);
        assert!(out[0].data.len() <= 1000);
        assert_eq!(stats.sse_events_cut, 1);
    }

    #[test]
    fn invalid_utf8_is_lossy_and_counted() {
        let (ev, stats) = run(&[b"data: \xff\xfeok\n\n"], &Limits::default());
        assert_eq!(ev[0].data, "\u{fffd}\u{fffd}ok");
        assert_eq!(stats.invalid_utf8, 1);
    }
}
