//! MCP over stdio: newline-delimited JSON-RPC 2.0, with `tools/call` requests paired to their
//! responses.
//!
//! One [`McpSession`] per MCP server process: the daemon feeds what the client wrote to the
//! server's stdin ([`McpDirection::ClientToServer`]) and what the server wrote back. Lines are
//! bounded (`max_mcp_line`; the rest of an overlong line is dropped up to its newline), and so
//! is the set of calls waiting for a response (`max_mcp_pending`, oldest forgotten first). Ids
//! are compared as JSON text, so `1` and `"1"` stay distinct as JSON-RPC requires. A
//! `notifications/cancelled` ends the matching call.

use std::collections::VecDeque;

use serde::Serialize;
use serde_json::Value;

use crate::excerpt::Excerpter;
use crate::limits::{Limits, Stats};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum McpDirection {
    ClientToServer,
    ServerToClient,
}

/// How a tool call ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum McpOutcome {
    /// A `result`; `is_error` is the tool's own `isError` flag.
    Result {
        is_error: bool,
        excerpt: Option<String>,
        bytes: u64,
    },
    /// A JSON-RPC `error`.
    Error { code: i64, message: Option<String> },
    /// The client cancelled it.
    Cancelled,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum McpEvent {
    ToolCallStarted {
        id: String,
        name: String,
        arguments_excerpt: Option<String>,
        arguments_bytes: u64,
    },
    ToolCallFinished {
        id: String,
        name: String,
        outcome: McpOutcome,
    },
}

#[derive(Debug, Default)]
struct Lines {
    buf: Vec<u8>,
    cut: bool,
}

/// One MCP stdio session.
#[derive(Debug, Default)]
pub struct McpSession {
    lines: [Lines; 2],
    pending: VecDeque<(String, String)>,
}

impl McpSession {
    pub fn new() -> Self {
        Self::default()
    }

    /// Bytes held (partial lines and pending calls).
    pub fn buffered(&self) -> usize {
        self.lines.iter().map(|l| l.buf.len()).sum::<usize>()
            + self
                .pending
                .iter()
                .map(|(a, b)| a.len() + b.len())
                .sum::<usize>()
    }

    pub fn feed(
        &mut self,
        dir: McpDirection,
        bytes: &[u8],
        ex: &Excerpter<'_>,
        limits: &Limits,
        stats: &mut Stats,
    ) -> Vec<McpEvent> {
        stats.bytes_in += bytes.len() as u64;
        let mut out = Vec::new();
        let i = dir as usize;
        for part in bytes.split_inclusive(|&b| b == b'\n') {
            let (data, end) = match part.strip_suffix(b"\n") {
                Some(d) => (d, true),
                None => (part, false),
            };
            let l = &mut self.lines[i];
            if !l.cut {
                let room = limits.max_mcp_line.saturating_sub(l.buf.len());
                if data.len() > room {
                    l.cut = true;
                    l.buf.clear();
                    stats.mcp_lines_cut += 1;
                } else {
                    l.buf.extend_from_slice(data);
                }
            }
            if end {
                let l = &mut self.lines[i];
                let line = std::mem::take(&mut l.buf);
                let was_cut = std::mem::take(&mut l.cut);
                if !was_cut && !line.iter().all(u8::is_ascii_whitespace) {
                    self.line(dir, &line, ex, limits, stats, &mut out);
                }
            }
        }
        out
    }

    fn line(
        &mut self,
        dir: McpDirection,
        line: &[u8],
        ex: &Excerpter<'_>,
        limits: &Limits,
        stats: &mut Stats,
        out: &mut Vec<McpEvent>,
    ) {
        let Ok(v) = serde_json::from_slice::<Value>(line) else {
            stats.mcp_malformed += 1;
            return;
        };
        match v {
            Value::Array(batch) => batch
                .iter()
                .for_each(|m| self.message(dir, m, ex, limits, stats, out)),
            m => self.message(dir, &m, ex, limits, stats, out),
        }
    }

    fn message(
        &mut self,
        dir: McpDirection,
        m: &Value,
        ex: &Excerpter<'_>,
        limits: &Limits,
        stats: &mut Stats,
        out: &mut Vec<McpEvent>,
    ) {
        if m.get("jsonrpc").and_then(Value::as_str) != Some("2.0") {
            stats.mcp_malformed += 1;
            return;
        }
        stats.mcp_messages += 1;
        let method = m.get("method").and_then(Value::as_str);
        let id = m.get("id").filter(|i| !i.is_null()).map(Value::to_string);
        match (dir, method, id) {
            (McpDirection::ClientToServer, Some("tools/call"), Some(id)) => {
                let params = &m["params"];
                let name = params["name"].as_str().unwrap_or_default();
                let name = crate::excerpt::cut(name, 256).to_owned();
                let args = params
                    .get("arguments")
                    .map(Value::to_string)
                    .unwrap_or_default();
                if self.pending.len() >= limits.max_mcp_pending.max(1) {
                    self.pending.pop_front();
                    stats.mcp_pending_evicted += 1;
                }
                self.pending.push_back((id.clone(), name.clone()));
                out.push(McpEvent::ToolCallStarted {
                    id,
                    name,
                    arguments_excerpt: ex.excerpt(&args, stats),
                    arguments_bytes: args.len() as u64,
                });
            }
            (McpDirection::ClientToServer, Some("notifications/cancelled"), None) => {
                let id = m["params"]
                    .get("requestId")
                    .map(Value::to_string)
                    .unwrap_or_default();
                if let Some((id, name)) = self.take(&id) {
                    out.push(McpEvent::ToolCallFinished {
                        id,
                        name,
                        outcome: McpOutcome::Cancelled,
                    });
                }
            }
            (McpDirection::ServerToClient, None, Some(id)) => {
                let Some((id, name)) = self.take(&id) else {
                    stats.mcp_unmatched_responses += 1;
                    return;
                };
                let outcome = if let Some(e) = m.get("error") {
                    McpOutcome::Error {
                        code: e["code"].as_i64().unwrap_or(0),
                        message: e["message"].as_str().and_then(|s| ex.excerpt(s, stats)),
                    }
                } else {
                    let r = &m["result"];
                    let mut text = String::new();
                    for c in r["content"].as_array().into_iter().flatten() {
                        if let Some(t) = c["text"].as_str() {
                            crate::api::append(&mut text, t, ex.policy.window());
                        }
                    }
                    let whole = r.to_string();
                    if text.is_empty() {
                        text = crate::excerpt::cut(&whole, ex.policy.window()).to_owned();
                    }
                    stats.mcp_tool_calls += 1;
                    McpOutcome::Result {
                        is_error: r["isError"].as_bool().unwrap_or(false),
                        excerpt: ex.excerpt(&text, stats),
                        bytes: whole.len() as u64,
                    }
                };
                out.push(McpEvent::ToolCallFinished { id, name, outcome });
            }
            _ => {}
        }
    }

    fn take(&mut self, id: &str) -> Option<(String, String)> {
        let i = self.pending.iter().position(|(p, _)| p == id)?;
        self.pending.remove(i)
    }
}
