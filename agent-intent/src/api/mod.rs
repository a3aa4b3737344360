//! Model API parsing: which provider a request goes to, and what it and its response say.
//!
//! [`Provider::detect`] recognises the API from the request path (and host); the provider
//! modules read the JSON shapes of each API into the provider-neutral [`LlmRequest`] and
//! [`LlmResponse`]. A response is built the same way whether it came as one JSON body or as a
//! stream of SSE events: both feed a [`ResponseAcc`], which keeps bounded windows of text and
//! tool input (`ExcerptPolicy::window`) and at most `max_tool_calls` calls, and only at the end
//! turns them into redacted excerpts. Bodies that are not the JSON the API promises are counted
//! (`json_errors`) and give a response with what could be read (status, sizes).

pub mod anthropic;
pub mod gemini;
pub mod openai;

use serde::Serialize;
use serde_json::Value;

use crate::excerpt::{Excerpter, TextAcc};
use crate::http::RequestHead;
use crate::limits::{Limits, Stats};
use crate::sse::SseEvent;

/// The model APIs recognised.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Provider {
    /// Anthropic Messages (`/v1/messages`), what Claude Code calls.
    Anthropic,
    /// OpenAI Chat Completions (`/v1/chat/completions`), also most OpenAI-compatible servers.
    OpenAiChat,
    /// OpenAI Responses (`/v1/responses`), what Codex calls.
    OpenAiResponses,
    /// Gemini `generateContent` / `streamGenerateContent`.
    Gemini,
}

impl Provider {
    /// The API a request path goes to (query string ignored); `host` is used only to tell
    /// Gemini paths apart.
    pub fn detect(path: &str, host: &str) -> Option<Self> {
        let route = path.split('?').next().unwrap_or_default();
        if route.ends_with(":generateContent") || route.ends_with(":streamGenerateContent") {
            return Some(Self::Gemini);
        }
        if host.contains("generativelanguage.googleapis.com") && route.contains("/models/") {
            return Some(Self::Gemini);
        }
        if route.ends_with("/v1/messages") || route == "/messages" {
            return Some(Self::Anthropic);
        }
        if route.ends_with("/chat/completions") {
            return Some(Self::OpenAiChat);
        }
        if route.ends_with("/v1/responses")
            || route.ends_with("/backend-api/codex/responses")
            || route == "/responses"
        {
            return Some(Self::OpenAiResponses);
        }
        None
    }
}

/// What an agent asked its model.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct LlmRequest {
    pub provider: Option<Provider>,
    pub path: String,
    pub host: String,
    pub model: Option<String>,
    pub system_excerpt: Option<String>,
    /// The last user text in the conversation.
    pub prompt_excerpt: Option<String>,
    /// Names of the tools the model may call.
    pub tools_offered: Vec<String>,
    /// Ids of tool results sent back to the model after the last user text.
    pub tool_results: Vec<String>,
    pub max_tokens: Option<u64>,
    pub stream: bool,
    /// Messages (or input items / contents) in the conversation.
    pub messages: u64,
    pub body_bytes: u64,
    /// The body was cut at `max_body` or was not JSON: the fields above may be missing.
    pub incomplete: bool,
}

/// One tool call the model decided on.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ToolCall {
    pub id: String,
    pub name: String,
    pub input_excerpt: Option<String>,
    pub input_bytes: u64,
}

/// Token counts as the API reported them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Usage {
    pub input_tokens: Option<u64>,
    pub output_tokens: Option<u64>,
    pub cache_read_tokens: Option<u64>,
    pub cache_creation_tokens: Option<u64>,
    pub reasoning_tokens: Option<u64>,
    pub total_tokens: Option<u64>,
}

/// What the model answered.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct LlmResponse {
    pub provider: Option<Provider>,
    pub status: u16,
    pub id: Option<String>,
    pub model: Option<String>,
    pub tool_calls: Vec<ToolCall>,
    pub text_excerpt: Option<String>,
    pub text_bytes: u64,
    pub usage: Usage,
    pub stop_reason: Option<String>,
    /// An API error message (excerpt), from an error body or an `error` event.
    pub error: Option<String>,
    /// The body or stream ended early, was cut, or did not parse.
    pub incomplete: bool,
}

/// Parses a request body for `provider`.
pub fn parse_request(
    provider: Provider,
    head: &RequestHead,
    body: &[u8],
    truncated: bool,
    ex: &Excerpter<'_>,
    limits: &Limits,
    stats: &mut Stats,
) -> LlmRequest {
    let mut req = LlmRequest {
        provider: Some(provider),
        path: head.path.clone(),
        host: head.authority.clone(),
        body_bytes: body.len() as u64,
        incomplete: truncated,
        ..LlmRequest::default()
    };
    let v: Value = match serde_json::from_slice(body) {
        Ok(v) => v,
        Err(_) => {
            stats.json_errors += 1;
            req.incomplete = true;
            return req;
        }
    };
    let mut b = RequestBuilder {
        window: ex.policy.window(),
        ..RequestBuilder::default()
    };
    match provider {
        Provider::Anthropic => anthropic::request(&v, &mut b),
        Provider::OpenAiChat => openai::chat_request(&v, &mut b),
        Provider::OpenAiResponses => openai::responses_request(&v, &mut b),
        Provider::Gemini => gemini::request(&head.path, &v, &mut b),
    }
    stats.llm_requests += 1;
    req.model = b.model;
    req.system_excerpt = ex.excerpt(&b.system, stats);
    req.prompt_excerpt = ex.excerpt(&b.prompt, stats);
    let (tools, dropped) = bounded(b.tools, limits.max_tools_offered);
    stats.tools_offered_dropped += dropped;
    req.tools_offered = tools;
    let (results, dropped) = bounded(b.tool_results, limits.max_tool_calls);
    stats.tool_calls_dropped += dropped;
    req.tool_results = results;
    req.max_tokens = b.max_tokens;
    req.stream = b.stream;
    req.messages = b.messages;
    req
}

fn bounded(mut v: Vec<String>, max: usize) -> (Vec<String>, u64) {
    let dropped = v.len().saturating_sub(max) as u64;
    v.truncate(max);
    (v, dropped)
}

/// What provider modules fill from a request body.
#[derive(Debug, Default)]
pub struct RequestBuilder {
    pub model: Option<String>,
    pub system: String,
    pub prompt: String,
    pub tools: Vec<String>,
    pub tool_results: Vec<String>,
    pub max_tokens: Option<u64>,
    pub stream: bool,
    pub messages: u64,
    /// Bytes of system and prompt text kept before excerpting.
    pub window: usize,
}

/// A tool call being assembled.
#[derive(Debug, Default)]
pub struct CallAcc {
    pub key: u64,
    pub id: String,
    pub name: String,
    pub input: TextAcc,
}

/// A response being assembled from a body or from stream events.
#[derive(Debug)]
pub struct ResponseAcc {
    pub provider: Provider,
    pub status: u16,
    pub id: Option<String>,
    pub model: Option<String>,
    pub text: TextAcc,
    pub calls: Vec<CallAcc>,
    pub usage: Usage,
    pub stop_reason: Option<String>,
    pub error: Option<String>,
    pub done: bool,
    pub bad: bool,
    window: usize,
    max_calls: usize,
}

impl ResponseAcc {
    pub fn new(provider: Provider, status: u16, window: usize, limits: &Limits) -> Self {
        Self {
            provider,
            status,
            id: None,
            model: None,
            text: TextAcc::default(),
            calls: Vec::new(),
            usage: Usage::default(),
            stop_reason: None,
            error: None,
            done: false,
            bad: false,
            window,
            max_calls: limits.max_tool_calls,
        }
    }

    pub fn window(&self) -> usize {
        self.window
    }

    pub fn push_text(&mut self, s: &str) {
        let w = self.window;
        self.text.push(s, w);
    }

    /// The call with `key` (stream index), created if new; `None` past `max_tool_calls`.
    pub fn call(&mut self, key: u64, stats: &mut Stats) -> Option<&mut CallAcc> {
        if let Some(i) = self.calls.iter().position(|c| c.key == key) {
            return self.calls.get_mut(i);
        }
        if self.calls.len() >= self.max_calls {
            stats.tool_calls_dropped += 1;
            return None;
        }
        self.calls.push(CallAcc {
            key,
            ..CallAcc::default()
        });
        self.calls.last_mut()
    }

    /// A call with no stream index (whole-body responses): a fresh key.
    pub fn new_call(&mut self, stats: &mut Stats) -> Option<&mut CallAcc> {
        let key = u64::MAX - self.calls.len() as u64;
        self.call(key, stats)
    }

    pub fn push_input(call: &mut CallAcc, s: &str, window: usize) {
        call.input.push(s, window);
    }

    /// Feeds one SSE event of this provider's stream.
    pub fn event(&mut self, ev: &SseEvent, stats: &mut Stats) {
        if ev.data.trim() == "[DONE]" {
            self.done = true;
            return;
        }
        let Ok(v) = serde_json::from_str::<Value>(&ev.data) else {
            stats.json_errors += 1;
            self.bad = true;
            return;
        };
        match self.provider {
            Provider::Anthropic => anthropic::stream_event(self, &ev.event, &v, stats),
            Provider::OpenAiChat => openai::chat_chunk(self, &v, stats),
            Provider::OpenAiResponses => openai::responses_event(self, &v, stats),
            Provider::Gemini => gemini::response(self, &v, stats),
        }
    }

    /// Feeds a whole (non-streamed) body.
    pub fn body(&mut self, body: &[u8], truncated: bool, stats: &mut Stats) {
        if truncated {
            self.bad = true;
        }
        let Ok(v) = serde_json::from_slice::<Value>(body) else {
            if !body.is_empty() {
                stats.json_errors += 1;
            }
            self.bad = true;
            return;
        };
        if let Some(e) = v.get("error") {
            self.error = Some(
                str_of(e, "message")
                    .or_else(|| e.as_str().map(str::to_owned))
                    .unwrap_or_else(|| e.to_string()),
            );
        }
        match self.provider {
            Provider::Anthropic => anthropic::response(self, &v, stats),
            Provider::OpenAiChat => openai::chat_response(self, &v, stats),
            Provider::OpenAiResponses => openai::responses_response(self, &v, stats),
            Provider::Gemini => match v.as_array() {
                // streamGenerateContent without `alt=sse` answers a JSON array of chunks.
                Some(chunks) => chunks.iter().for_each(|c| gemini::response(self, c, stats)),
                None => gemini::response(self, &v, stats),
            },
        }
        self.done = true;
    }

    /// The response, with redacted, bounded excerpts.
    pub fn finish(self, complete: bool, ex: &Excerpter<'_>, stats: &mut Stats) -> LlmResponse {
        stats.llm_responses += 1;
        let tool_calls = self
            .calls
            .into_iter()
            .map(|c| ToolCall {
                input_excerpt: ex.excerpt(&c.input.text, stats),
                input_bytes: c.input.bytes,
                id: c.id,
                name: c.name,
            })
            .collect();
        let error = self.error.as_deref().and_then(|e| {
            // An error message is metadata enough to keep even in metadata-only mode, but it
            // still goes through redaction and the cut.
            let strict = Excerpter {
                policy: &crate::excerpt::ExcerptPolicy {
                    metadata_only: false,
                    ..ex.policy.clone()
                },
                redact: ex.redact,
            };
            strict.excerpt(e, stats)
        });
        LlmResponse {
            provider: Some(self.provider),
            status: self.status,
            id: self.id,
            model: self.model,
            tool_calls,
            text_excerpt: ex.excerpt(&self.text.text, stats),
            text_bytes: self.text.bytes,
            usage: self.usage,
            stop_reason: self.stop_reason,
            error,
            incomplete: !complete || self.bad || !self.done,
        }
    }
}

pub(crate) fn str_of(v: &Value, key: &str) -> Option<String> {
    v.get(key).and_then(Value::as_str).map(str::to_owned)
}

pub(crate) fn u64_of(v: &Value, key: &str) -> Option<u64> {
    v.get(key).and_then(Value::as_u64)
}

/// Text of a content value that is a string or an array of `{type, text}` blocks.
pub(crate) fn text_blocks(v: &Value, out: &mut String, window: usize) {
    match v {
        Value::String(s) => append(out, s, window),
        Value::Array(items) => {
            for it in items {
                if let Some(t) = it.get("text").and_then(Value::as_str) {
                    append(out, t, window);
                }
            }
        }
        _ => {}
    }
}

/// Appends `s` to `out` with a newline separator, keeping `out` under `window` bytes.
pub(crate) fn append(out: &mut String, s: &str, window: usize) {
    if !out.is_empty() && out.len() < window {
        out.push('\n');
    }
    let room = window.saturating_sub(out.len());
    out.push_str(crate::excerpt::cut(s, room));
}

/// JSON as compact text (tool arguments given as objects).
pub(crate) fn json_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}
