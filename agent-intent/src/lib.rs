//! Agent intent: what an AI agent said to its model and to its MCP servers, parsed from bytes.
//!
//! The daemon captures an agent's model traffic as TLS plaintext (uprobes on `SSL_write` and
//! `SSL_read`) and its MCP stdio pipes; this crate turns those bytes into typed, bounded values:
//! [`http`] reassembles HTTP/1.1 and HTTP/2 (with [`hpack`]) per connection, [`sse`] decodes
//! event streams incrementally, [`api`] recognises the Anthropic Messages, OpenAI Chat
//! Completions, OpenAI Responses and Gemini APIs and extracts model, prompts, offered tools,
//! chosen tool calls and token usage, and [`mcp`] pairs JSON-RPC `tools/call` requests with their
//! results. [`IntentTracker`] ties the first three together per connection.
//!
//! Every byte here comes from a process that may be hostile, so the crate is pure (no IO, no
//! clock, no async), never panics on input, and bounds every buffer, table and list by
//! [`Limits`]; each time a bound bites, a [`Stats`] counter goes up. Text that leaves the crate
//! is an excerpt: redacted by the daemon's hook and cut (see [`excerpt`]), or absent in
//! metadata-only mode.
#![forbid(unsafe_code)]

pub mod api;
pub mod excerpt;
pub mod hpack;
pub mod http;
pub mod limits;
pub mod mcp;
pub mod sse;
pub mod tracker;

pub use api::{LlmRequest, LlmResponse, Provider, ToolCall, Usage};
pub use excerpt::{ExcerptPolicy, Redact};
pub use http::{Connection, Direction, HttpEvent};
pub use limits::{Limits, Stats};
pub use mcp::{McpEvent, McpSession};
pub use tracker::{IntentEvent, IntentTracker};
