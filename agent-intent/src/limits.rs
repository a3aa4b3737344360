//! The bounds every decoder honours and the counters it bumps when one is hit.
//!
//! The bytes parsed here come from an agent that may be adversarial, so nothing grows without a
//! cap: each limit below bounds one buffer or table, and every time a cap cuts, drops or rejects
//! something the matching [`Stats`] counter goes up instead of a panic or an error that would
//! stop the whole connection. The daemon exposes [`Stats`] as is.

use serde::Serialize;

/// Caps on buffered bytes, tracked objects and excerpts. [`Limits::default`] suits a daemon
/// watching a few dozen agent sessions; every field can be lowered for tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Bytes buffered per connection direction while waiting for the end of a header section
    /// or an HTTP/2 frame.
    pub max_buffer: usize,
    /// Longest HTTP/1.1 head (request or status line plus headers).
    pub max_head: usize,
    /// Largest HTTP/2 header block (HEADERS plus CONTINUATION fragments), compressed.
    pub max_header_block: usize,
    /// Most decoded header bytes kept per message (name + value + 32 each, as RFC 7541 counts).
    pub max_header_list: usize,
    /// Largest HPACK dynamic table a peer may ask for with a size update.
    pub hpack_max_table_size: usize,
    /// Body bytes kept per message; the rest is counted and dropped.
    pub max_body: usize,
    /// Longest SSE line and largest SSE event `data`.
    pub max_sse_line: usize,
    /// Largest SSE event data (all `data:` lines joined).
    pub max_sse_event: usize,
    /// HTTP/2 streams tracked at once per connection; HTTP/1.1 requests waiting for a response.
    pub max_streams: usize,
    /// Connections tracked at once by an [`crate::IntentTracker`].
    pub max_connections: usize,
    /// Tool calls kept per model response.
    pub max_tool_calls: usize,
    /// Tool names kept per model request.
    pub max_tools_offered: usize,
    /// Longest MCP JSON-RPC line.
    pub max_mcp_line: usize,
    /// MCP `tools/call` requests waiting for their response.
    pub max_mcp_pending: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_buffer: 1 << 20,
            max_head: 64 << 10,
            max_header_block: 64 << 10,
            max_header_list: 64 << 10,
            hpack_max_table_size: 64 << 10,
            max_body: 8 << 20,
            max_sse_line: 1 << 20,
            max_sse_event: 1 << 20,
            max_streams: 128,
            max_connections: 1024,
            max_tool_calls: 64,
            max_tools_offered: 256,
            max_mcp_line: 4 << 20,
            max_mcp_pending: 256,
        }
    }
}

/// What the decoders saw and what they cut. Every field only grows; a non-zero value in one of
/// the lower groups means some input was malformed, hostile or larger than a limit.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Stats {
    /// Plaintext bytes fed in.
    pub bytes_in: u64,
    /// HTTP requests and responses decoded completely.
    pub http_requests: u64,
    pub http_responses: u64,
    /// SSE events decoded.
    pub sse_events: u64,
    /// Model API requests and responses recognised and parsed.
    pub llm_requests: u64,
    pub llm_responses: u64,
    /// MCP messages parsed and `tools/call` pairs completed.
    pub mcp_messages: u64,
    pub mcp_tool_calls: u64,

    /// Bytes dropped because a connection direction buffered more than `max_buffer`.
    pub buffer_overflow_bytes: u64,
    /// HTTP/1.1 heads over `max_head` or unparsable; the direction then resynchronises.
    pub http1_malformed: u64,
    /// Times an HTTP/1.1 direction found a new message start after garbage.
    pub http1_resyncs: u64,
    /// Bodies cut at `max_body`.
    pub body_truncated: u64,
    /// HTTP/2 frames that broke the protocol (bad length, stream 0 where forbidden, bad padding,
    /// CONTINUATION out of place, missing preface); the direction stops being parsed.
    pub h2_frame_errors: u64,
    /// HTTP/2 header blocks over `max_header_block`.
    pub h2_header_block_too_large: u64,
    /// HPACK decoding errors (index out of range, integer overflow, table size over the cap,
    /// bad Huffman code or padding, truncated string); the direction stops being parsed.
    pub hpack_errors: u64,
    /// Header lists cut at `max_header_list`.
    pub header_list_truncated: u64,
    /// Streams reset by RST_STREAM or dropped by GOAWAY before their response ended.
    pub h2_streams_reset: u64,
    /// New streams or pending requests ignored because `max_streams` were already tracked.
    pub too_many_streams: u64,
    /// Connections evicted because `max_connections` were tracked.
    pub connections_evicted: u64,
    /// Text decoded lossily because it was not UTF-8.
    pub invalid_utf8: u64,
    /// SSE lines cut at `max_sse_line`, SSE events cut at `max_sse_event`.
    pub sse_lines_cut: u64,
    pub sse_events_cut: u64,
    /// Bodies or SSE data that were not the JSON the API promises.
    pub json_errors: u64,
    /// Excerpts cut at the excerpt byte limit.
    pub excerpts_cut: u64,
    /// Tool calls or offered tool names dropped at `max_tool_calls` / `max_tools_offered`.
    pub tool_calls_dropped: u64,
    pub tools_offered_dropped: u64,
    /// MCP lines over `max_mcp_line`, or not JSON-RPC.
    pub mcp_lines_cut: u64,
    pub mcp_malformed: u64,
    /// MCP calls forgotten because `max_mcp_pending` were waiting; responses with no request.
    pub mcp_pending_evicted: u64,
    pub mcp_unmatched_responses: u64,
}
