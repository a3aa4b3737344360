#![no_main]
//! MCP stdio JSON-RPC: 0xfe-separated pieces alternate client and server.
use agent_intent::excerpt::{Excerpter, no_redaction};
use agent_intent::mcp::{McpDirection, McpSession};
use agent_intent::{ExcerptPolicy, Limits, Stats};
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let policy = ExcerptPolicy::default();
    let ex = Excerpter { policy: &policy, redact: &no_redaction };
    let limits = Limits { max_mcp_line: 4096, max_mcp_pending: 8, ..Limits::default() };
    let mut stats = Stats::default();
    let mut s = McpSession::new();
    for (i, piece) in data.split(|&b| b == 0xfe).enumerate() {
        let dir = if i % 2 == 0 { McpDirection::ClientToServer } else { McpDirection::ServerToClient };
        s.feed(dir, piece, &ex, &limits, &mut stats);
    }
});
