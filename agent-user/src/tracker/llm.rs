//! TLS plaintext records in, `llm.request` / `llm.response` events out (issue #16).
//!
//! The kernel sends the bytes of each `SSL_write`/`SSL_read` of a session process as
//! `TlsData` records ([`agent_common::TlsRecord`]); this module feeds them to the bounded
//! parsers of `agent-intent` ([`IntentTracker`]) per connection and turns what they recognise
//! into [`Llm`] payloads. A connection is the `SSL *` of one process (`tgid`, pointer), so two
//! processes reusing an address never share a stream. Bytes the kernel counted but did not copy
//! (past `TLS_MAX_CAPTURE` per call) are fed as spaces, which keeps HTTP framing in step: the
//! body that held them is then cut or unparsable and its event says `incomplete`, counted in
//! [`LlmCapture::gap_bytes`]. Excerpts pass the daemon's argv redactor.

use std::collections::{BTreeMap, HashMap};

use agent_common::{TLS_DIR_READ, TlsRecord};
use agent_intent::{
    Direction, ExcerptPolicy, IntentEvent, IntentTracker, Limits, LlmRequest, LlmResponse, Provider,
};
use agent_model::{BStr, Llm};

use crate::redact::Redactor;

/// Spaces fed for bytes the kernel did not copy, a slice at a time.
const FILL: [u8; 4096] = [b' '; 4096];
/// A gap larger than this is not filled: the connection is dropped instead (its HTTP state
/// could not be trusted, and filling would cost time proportional to a hostile length).
const MAX_GAP: u64 = 16 << 20;

/// Connection names kept at most (the parser's own bound is smaller).
const NAMES_MAX: usize = 4096;

/// What one record produced: (tgid of the process, kind, payload).
pub struct LlmOut {
    pub request: bool,
    pub llm: Llm,
}

/// Per-daemon state of the TLS decoders.
pub struct LlmCapture {
    tracker: IntentTracker,
    /// Connection key -> (tgid, `SSL *`), to name a connection in events.
    names: HashMap<u64, (u32, u64)>,
    /// Bytes counted by the kernel but not copied (filled with spaces or dropped).
    pub gap_bytes: u64,
    /// Connections dropped because a gap was too large.
    pub gaps_dropped: u64,
    /// TLS records fed (for `status`).
    records: u64,
    /// Requests and responses parsed, by provider name.
    requests: BTreeMap<String, u64>,
    responses: BTreeMap<String, u64>,
}

fn provider_name(p: Option<Provider>) -> String {
    match p {
        Some(Provider::Anthropic) => "anthropic",
        Some(Provider::OpenAiChat) => "open_ai_chat",
        Some(Provider::OpenAiResponses) => "open_ai_responses",
        Some(Provider::Gemini) => "gemini",
        None => "unknown",
    }
    .to_owned()
}

impl LlmCapture {
    pub fn new(redactor: Redactor, policy: ExcerptPolicy) -> LlmCapture {
        let redact = move |t: &str| redactor.redact_text(t).0;
        LlmCapture {
            tracker: IntentTracker::new(Limits::default(), policy, Box::new(redact)),
            names: HashMap::new(),
            gap_bytes: 0,
            gaps_dropped: 0,
            records: 0,
            requests: BTreeMap::new(),
            responses: BTreeMap::new(),
        }
    }

    /// The counters of `status` (`None` before the first TLS record).
    pub fn status(&self) -> Option<agent_api::IntentStatus> {
        if self.records == 0 {
            return None;
        }
        let s = self.tracker.stats();
        let parser = serde_json::to_value(s)
            .ok()
            .and_then(|v| v.as_object().cloned())
            .map(|m| {
                m.into_iter()
                    .filter_map(|(k, v)| v.as_u64().filter(|n| *n > 0).map(|n| (k, n)))
                    .collect()
            })
            .unwrap_or_default();
        Some(agent_api::IntentStatus {
            tls_records: self.records,
            tls_bytes: s.bytes_in,
            requests: self.requests.clone(),
            responses: self.responses.clone(),
            parse_failures: s.http1_malformed
                + s.h2_frame_errors
                + s.hpack_errors
                + s.json_errors
                + s.mcp_malformed,
            bytes_dropped: s.buffer_overflow_bytes + self.gap_bytes,
            parser,
        })
    }

    /// Parser counters (bounds that bit, malformed input), for `status`.
    pub fn stats(&self) -> &agent_intent::Stats {
        self.tracker.stats()
    }

    fn key(tgid: u32, ssl: u64) -> u64 {
        // FNV-style mix: a stable id for (process, SSL *).
        (ssl ^ (u64::from(tgid) << 48 | u64::from(tgid))).wrapping_mul(0x100_0000_01b3)
    }

    /// Feed one chunk of one call.
    pub fn feed(&mut self, tgid: u32, body: &TlsRecord, data: &[u8]) -> Vec<LlmOut> {
        self.records += 1;
        let conn = Self::key(tgid, body.conn);
        if self.names.len() >= NAMES_MAX && !self.names.contains_key(&conn) {
            // The parser evicts its oldest connections at its own bound; keep this map in step.
            let live = self.tracker.connections();
            if live < self.names.len() {
                self.names.clear();
            }
        }
        self.names.insert(conn, (tgid, body.conn));
        let dir = if body.dir == TLS_DIR_READ {
            Direction::Response
        } else {
            Direction::Request
        };
        let mut evs = self.tracker.feed(conn, dir, data);
        // The last chunk of a call: account for what was not copied.
        let end = u64::from(body.offset) + u64::from(body.captured);
        // The kernel stops after TLS_MAX_CAPTURE bytes of a call: the record that ends there
        // is the call's last, and the rest of its `len` is a gap.
        if end < body.len && end >= agent_common::TLS_MAX_CAPTURE as u64 {
            let mut gap = body.len - end;
            self.gap_bytes += gap;
            if gap > MAX_GAP {
                self.gaps_dropped += 1;
                evs.extend(self.tracker.close(conn));
                self.names.remove(&conn);
            } else {
                while gap > 0 {
                    let n = gap.min(FILL.len() as u64) as usize;
                    evs.extend(self.tracker.feed(conn, dir, &FILL[..n]));
                    gap -= n as u64;
                }
            }
        }
        evs.into_iter().map(|e| self.convert(e)).collect()
    }

    /// The process exited: its connections end (a response read until close ends here) and
    /// their state is dropped.
    pub fn exited(&mut self, tgid: u32) -> Vec<LlmOut> {
        let conns: Vec<u64> = self
            .names
            .iter()
            .filter(|(_, (t, _))| *t == tgid)
            .map(|(c, _)| *c)
            .collect();
        let mut out = Vec::new();
        for c in conns {
            let evs = self.tracker.close(c);
            out.extend(evs.into_iter().map(|e| self.convert(e)));
            self.names.remove(&c);
        }
        out
    }

    fn conn_name(&self, conn: u64, stream: u64) -> String {
        match self.names.get(&conn) {
            Some((_, ssl)) => format!("{ssl:x}:{stream}"),
            None => format!("{conn:x}:{stream}"),
        }
    }

    fn convert(&mut self, e: IntentEvent) -> LlmOut {
        let (map, p) = match &e {
            IntentEvent::Request { request, .. } => (&mut self.requests, request.provider),
            IntentEvent::Response { response, .. } => (&mut self.responses, response.provider),
        };
        *map.entry(provider_name(p)).or_default() += 1;
        match e {
            IntentEvent::Request {
                conn,
                stream,
                request,
            } => LlmOut {
                request: true,
                llm: request_llm(request, self.conn_name(conn, stream)),
            },
            IntentEvent::Response {
                conn,
                stream,
                response,
            } => LlmOut {
                request: false,
                llm: response_llm(response, self.conn_name(conn, stream)),
            },
        }
    }
}

/// The privacy switch (`metadata_only` on the agent): keep the provider, model, host, path,
/// tool names and ids, tokens, stop reason, status, sizes and the connection; drop every text
/// that came from the agent or the model (prompt, system prompt, response text, tool input,
/// and the API's error message, which may quote the request).
pub fn keep_metadata(l: &mut Llm) {
    l.excerpt = None;
    l.system = None;
    l.error = None;
}

fn request_llm(r: LlmRequest, conn: String) -> Llm {
    Llm {
        provider: provider_name(r.provider),
        model: r.model,
        host: r.host,
        path: r.path,
        tools: r.tools_offered,
        excerpt: r.prompt_excerpt.map(BStr::from),
        system: r.system_excerpt.map(BStr::from),
        bytes: Some(r.body_bytes),
        conn: Some(conn),
        incomplete: r.incomplete,
        ..Llm::default()
    }
}

fn response_llm(r: LlmResponse, conn: String) -> Llm {
    let excerpt = r
        .text_excerpt
        .clone()
        .or_else(|| r.tool_calls.iter().find_map(|c| c.input_excerpt.clone()));
    Llm {
        provider: provider_name(r.provider),
        model: r.model,
        tool_calls: r.tool_calls.iter().map(|c| c.name.clone()).collect(),
        tool_call_ids: r.tool_calls.iter().map(|c| c.id.clone()).collect(),
        input_tokens: r.usage.input_tokens,
        output_tokens: r.usage.output_tokens,
        stop_reason: r.stop_reason,
        status: Some(r.status),
        excerpt: excerpt.map(BStr::from),
        error: r.error,
        bytes: Some(r.text_bytes),
        conn: Some(conn),
        incomplete: r.incomplete,
        ..Llm::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(conn: u64, dir: u32, data: &[u8]) -> TlsRecord {
        TlsRecord {
            conn,
            len: data.len() as u64,
            captured: data.len() as u32,
            offset: 0,
            dir,
            _pad: 0,
        }
    }

    #[test]
    fn an_anthropic_stream_gives_a_request_and_a_response_with_the_tool_call() {
        let mut c = LlmCapture::new(Redactor::defaults(), ExcerptPolicy::default());
        let body = br#"{"model":"claude-t","max_tokens":10,"stream":true,"tools":[{"name":"Bash","input_schema":{}}],"messages":[{"role":"user","content":"list files --password=hunter2"}]}"#;
        let req = format!(
            "POST /v1/messages HTTP/1.1\r\nHost: api.test\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        let mut out = c.feed(7, &rec(1, 0, req.as_bytes()), req.as_bytes());
        out.extend(c.feed(7, &rec(1, 0, body), body));
        assert_eq!(out.len(), 1);
        assert!(out[0].request);
        assert_eq!(out[0].llm.model.as_deref(), Some("claude-t"));
        assert_eq!(out[0].llm.tools, vec!["Bash".to_string()]);
        let ex = out[0]
            .llm
            .excerpt
            .as_ref()
            .unwrap()
            .to_str_lossy()
            .into_owned();
        assert!(
            !ex.contains("hunter2"),
            "the prompt excerpt is redacted: {ex}"
        );
        let sse = concat!(
            "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"m\",\"model\":\"claude-t\",\"usage\":{\"input_tokens\":12,\"output_tokens\":1}}}\n\n",
            "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"tool_use\",\"id\":\"toolu_1\",\"name\":\"Bash\",\"input\":{}}}\n\n",
            "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"{\\\"command\\\":\\\"ls\\\"}\"}}\n\n",
            "event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\n",
            "event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"tool_use\"},\"usage\":{\"output_tokens\":7}}\n\n",
            "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n",
        );
        let resp = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nContent-Length: {}\r\n\r\n{sse}",
            sse.len()
        );
        let out = c.feed(7, &rec(1, 1, resp.as_bytes()), resp.as_bytes());
        assert_eq!(out.len(), 1, "one response");
        let l = &out[0].llm;
        assert!(!out[0].request);
        assert_eq!(l.tool_calls, vec!["Bash".to_string()]);
        assert_eq!(l.input_tokens, Some(12));
        assert_eq!(l.output_tokens, Some(7));
        assert_eq!(l.stop_reason.as_deref(), Some("tool_use"));
    }

    #[test]
    fn status_counts_records_exchanges_per_api_failures_and_dropped_bytes() {
        let mut c = LlmCapture::new(Redactor::defaults(), ExcerptPolicy::default());
        assert_eq!(c.status(), None, "nothing seen yet");
        let body = br#"{"model":"m","messages":[{"role":"user","content":"hi"}]}"#;
        let req = format!(
            "POST /v1/chat/completions HTTP/1.1\r\nHost: h\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        let mut all = req.into_bytes();
        all.extend_from_slice(body);
        assert_eq!(c.feed(9, &rec(3, 0, &all), &all).len(), 1);
        // A response whose JSON body is garbage: parsed as an exchange, counted as a failure.
        let resp =
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 5\r\n\r\n{nope";
        assert_eq!(c.feed(9, &rec(3, 1, resp), resp).len(), 1);
        let st = c.status().expect("records seen");
        assert_eq!(st.tls_records, 2);
        assert_eq!(st.tls_bytes, (all.len() + resp.len()) as u64);
        assert_eq!(st.requests.get("open_ai_chat"), Some(&1));
        assert_eq!(st.responses.get("open_ai_chat"), Some(&1));
        assert_eq!(st.requests.get("anthropic"), None);
        assert_eq!(st.parse_failures, 1, "{st:?}");
        assert_eq!(st.parser.get("json_errors"), Some(&1));
        assert_eq!(st.parser.get("http_requests"), Some(&1));
        assert!(!st.parser.contains_key("hpack_errors"), "zeros left out");
        assert_eq!(st.bytes_dropped, 0);
        // A call the kernel copied only in part: the rest is dropped bytes.
        let r = TlsRecord {
            conn: 4,
            len: agent_common::TLS_MAX_CAPTURE as u64 + 100,
            captured: agent_common::TLS_CHUNK as u32,
            offset: (agent_common::TLS_MAX_CAPTURE - agent_common::TLS_CHUNK) as u32,
            dir: 0,
            _pad: 0,
        };
        c.feed(9, &r, &[b'x'; agent_common::TLS_CHUNK]);
        assert_eq!(c.status().unwrap().bytes_dropped, 100);
    }

    #[test]
    fn a_response_read_until_close_ends_when_its_process_exits() {
        let mut c = LlmCapture::new(Redactor::defaults(), ExcerptPolicy::default());
        let body = br#"{"model":"m","messages":[{"role":"user","content":"hi"}]}"#;
        let req = format!(
            "POST /v1/chat/completions HTTP/1.1\r\nHost: h\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        let mut all = req.into_bytes();
        all.extend_from_slice(body);
        assert_eq!(c.feed(9, &rec(3, 0, &all), &all).len(), 1);
        let resp = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n{\"model\":\"m\",\"choices\":[{\"message\":{\"content\":\"yo\"},\"finish_reason\":\"stop\"}],\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":1}}";
        assert!(
            c.feed(9, &rec(3, 1, resp), resp).is_empty(),
            "no length: open"
        );
        assert!(c.exited(8).is_empty(), "another process");
        let out = c.exited(9);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].llm.input_tokens, Some(3));
        assert_eq!(out[0].llm.stop_reason.as_deref(), Some("stop"));
        assert!(c.exited(9).is_empty(), "state dropped");
    }

    #[test]
    fn bytes_the_kernel_did_not_copy_keep_the_framing_and_mark_the_body_incomplete() {
        let mut c = LlmCapture::new(Redactor::defaults(), ExcerptPolicy::default());
        let big = vec![b'x'; agent_common::TLS_MAX_CAPTURE + 5000];
        let body = format!(
            r#"{{"model":"m","messages":[{{"role":"user","content":"{}"}}]}}"#,
            String::from_utf8_lossy(&big)
        );
        let head = format!(
            "POST /v1/chat/completions HTTP/1.1\r\nHost: h\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        let mut out = c.feed(1, &rec(2, 0, head.as_bytes()), head.as_bytes());
        // The kernel copies TLS_MAX_CHUNKS chunks of the body call, then stops.
        let b = body.as_bytes();
        for i in 0..agent_common::TLS_MAX_CHUNKS {
            let off = i * agent_common::TLS_CHUNK;
            let r = TlsRecord {
                conn: 2,
                len: b.len() as u64,
                captured: agent_common::TLS_CHUNK as u32,
                offset: off as u32,
                dir: 0,
                _pad: 0,
            };
            out.extend(c.feed(1, &r, &b[off..off + agent_common::TLS_CHUNK]));
        }
        assert_eq!(out.len(), 1, "the request still ends where its length says");
        assert!(out[0].llm.incomplete);
        assert_eq!(out[0].llm.bytes, Some(b.len() as u64));
        assert_eq!(
            c.gap_bytes,
            (b.len() - agent_common::TLS_MAX_CAPTURE) as u64
        );
    }
}
