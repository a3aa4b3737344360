//! End-to-end parsing of captured plaintext: what Claude Code, Codex and other clients send and
//! receive, over HTTP/1.1 and HTTP/2, split into arbitrary chunks, plus MCP stdio sessions.

use agent_intent::excerpt::{Excerpter, no_redaction};
use agent_intent::hpack;
use agent_intent::http::h2::{frame, wire};
use agent_intent::mcp::{McpDirection, McpOutcome};
use agent_intent::{
    Direction, ExcerptPolicy, IntentEvent, IntentTracker, Limits, McpEvent, McpSession, Provider,
    Stats,
};

fn tracker() -> IntentTracker {
    IntentTracker::new(
        Limits::default(),
        ExcerptPolicy::default(),
        Box::new(|s: &str| s.replace("sk-ant-api03-SECRET", "[REDACTED]")),
    )
}

fn feed_chunked(
    t: &mut IntentTracker,
    conn: u64,
    dir: Direction,
    bytes: &[u8],
    chunk: usize,
) -> Vec<IntentEvent> {
    bytes
        .chunks(chunk.max(1))
        .flat_map(|c| t.feed(conn, dir, c))
        .collect()
}

const CLAUDE_REQ_BODY: &str = r#"{"model":"claude-sonnet-4-5","max_tokens":32000,"stream":true,
"system":[{"type":"text","text":"You are Claude Code, Anthropic's official CLI for Claude."}],
"tools":[{"name":"Bash","description":"run","input_schema":{"type":"object"}},{"name":"Read","input_schema":{}}],
"messages":[{"role":"user","content":[{"type":"text","text":"list the files, my key is sk-ant-api03-SECRET"}]},
{"role":"assistant","content":[{"type":"tool_use","id":"toolu_awturn0x0","name":"Bash","input":{"command":"ls"}}]},
{"role":"user","content":[{"type":"tool_result","tool_use_id":"toolu_awturn0x0","content":"a\nb"}]}]}"#;

/// The SSE stream tests/src/bin/model_api.rs sends for a turn with one Bash call.
fn anthropic_sse() -> String {
    let ev = [
        (
            "message_start",
            r#"{"type":"message_start","message":{"id":"msg_awturn1","type":"message","role":"assistant","model":"claude-sonnet-4-5","content":[],"stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":10,"output_tokens":1,"cache_creation_input_tokens":0,"cache_read_input_tokens":7}}}"#,
        ),
        (
            "content_block_start",
            r#"{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}"#,
        ),
        (
            "content_block_delta",
            r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"I'll run it."}}"#,
        ),
        (
            "content_block_stop",
            r#"{"type":"content_block_stop","index":0}"#,
        ),
        (
            "content_block_start",
            r#"{"type":"content_block_start","index":1,"content_block":{"type":"tool_use","id":"toolu_awturn1x0","name":"Bash","input":{}}}"#,
        ),
        (
            "content_block_delta",
            r#"{"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"{\"command\":"}}"#,
        ),
        (
            "content_block_delta",
            r#"{"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"\"cat /etc/passwd\"}"}}"#,
        ),
        (
            "content_block_stop",
            r#"{"type":"content_block_stop","index":1}"#,
        ),
        (
            "message_delta",
            r#"{"type":"message_delta","delta":{"stop_reason":"tool_use","stop_sequence":null},"usage":{"output_tokens":5}}"#,
        ),
        ("message_stop", r#"{"type":"message_stop"}"#),
    ];
    ev.iter()
        .map(|(n, d)| format!("event: {n}\ndata: {d}\n\n"))
        .collect()
}

#[test]
fn claude_code_over_http1_with_sse_any_chunking() {
    let req = format!(
        "POST /v1/messages?beta=true HTTP/1.1\r\nHost: api.anthropic.com\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{}",
        CLAUDE_REQ_BODY.len(),
        CLAUDE_REQ_BODY
    );
    let sse = anthropic_sse();
    // The response is chunked, as a real server sends it.
    let mut resp = String::from(
        "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream; charset=utf-8\r\ntransfer-encoding: chunked\r\n\r\n",
    );
    for part in sse.as_bytes().chunks(100) {
        resp.push_str(&format!(
            "{:x};ext=1\r\n{}\r\n",
            part.len(),
            std::str::from_utf8(part).unwrap()
        ));
    }
    resp.push_str("0\r\n\r\n");
    for chunk in [1, 7, 64, 100_000] {
        let mut t = tracker();
        let mut ev = feed_chunked(&mut t, 1, Direction::Request, req.as_bytes(), chunk);
        ev.extend(feed_chunked(
            &mut t,
            1,
            Direction::Response,
            resp.as_bytes(),
            chunk,
        ));
        assert_eq!(ev.len(), 2, "chunk {chunk}: {ev:?}");
        let IntentEvent::Request {
            request,
            stream: s1,
            ..
        } = &ev[0]
        else {
            panic!()
        };
        assert_eq!(request.provider, Some(Provider::Anthropic));
        assert_eq!(request.model.as_deref(), Some("claude-sonnet-4-5"));
        assert_eq!(request.tools_offered, ["Bash", "Read"]);
        assert_eq!(request.tool_results, ["toolu_awturn0x0"]);
        assert_eq!(request.max_tokens, Some(32000));
        assert!(request.stream);
        assert_eq!(request.messages, 3);
        assert!(
            request
                .system_excerpt
                .as_deref()
                .unwrap()
                .starts_with("You are Claude Code")
        );
        // The prompt is the last user *text*; here the last user message has only a tool result.
        assert_eq!(request.prompt_excerpt, None);
        let IntentEvent::Response {
            response,
            stream: s2,
            ..
        } = &ev[1]
        else {
            panic!()
        };
        assert_eq!(s1, s2);
        assert_eq!(response.status, 200);
        assert_eq!(response.id.as_deref(), Some("msg_awturn1"));
        assert_eq!(response.tool_calls.len(), 1);
        assert_eq!(response.tool_calls[0].id, "toolu_awturn1x0");
        assert_eq!(response.tool_calls[0].name, "Bash");
        assert_eq!(
            response.tool_calls[0].input_excerpt.as_deref(),
            Some(r#"{"command":"cat /etc/passwd"}"#)
        );
        assert_eq!(response.text_excerpt.as_deref(), Some("I'll run it."));
        assert_eq!(response.usage.input_tokens, Some(10));
        assert_eq!(response.usage.output_tokens, Some(5));
        assert_eq!(response.usage.cache_read_tokens, Some(7));
        assert_eq!(response.stop_reason.as_deref(), Some("tool_use"));
        assert!(!response.incomplete);
        assert_eq!(t.stats().sse_events, 10);
    }
}

#[test]
fn prompt_is_redacted_and_metadata_only_drops_it() {
    let body = CLAUDE_REQ_BODY.replace(
        r#"{"role":"user","content":[{"type":"tool_result","tool_use_id":"toolu_awturn0x0","content":"a\nb"}]}"#,
        r#"{"role":"user","content":"again with sk-ant-api03-SECRET"}"#,
    );
    let req = format!(
        "POST /v1/messages HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let mut t = tracker();
    let ev = t.feed(1, Direction::Request, req.as_bytes());
    let IntentEvent::Request { request, .. } = &ev[0] else {
        panic!()
    };
    assert_eq!(
        request.prompt_excerpt.as_deref(),
        Some("again with [REDACTED]")
    );
    let mut t = IntentTracker::new(
        Limits::default(),
        ExcerptPolicy {
            max_bytes: 100,
            metadata_only: true,
        },
        Box::new(no_redaction),
    );
    let ev = t.feed(1, Direction::Request, req.as_bytes());
    let IntentEvent::Request { request, .. } = &ev[0] else {
        panic!()
    };
    assert_eq!(request.prompt_excerpt, None);
    assert_eq!(request.system_excerpt, None);
    assert_eq!(request.tools_offered, ["Bash", "Read"]);
    assert_eq!(request.model.as_deref(), Some("claude-sonnet-4-5"));
}

/// Codex's Responses API call over HTTP/2, headers Huffman-coded, SSE answer in DATA frames.
#[test]
fn codex_responses_over_http2() {
    let body = br#"{"model":"gpt-5-codex","instructions":"You are Codex.","stream":true,
"tools":[{"type":"function","name":"shell","parameters":{}},{"type":"custom","name":"apply_patch"}],
"input":[{"type":"message","role":"user","content":[{"type":"input_text","text":"fix the bug"}]},
{"type":"function_call","call_id":"call_awturn0x0","name":"shell","arguments":"{}"},
{"type":"function_call_output","call_id":"call_awturn0x0","output":"ok"}]}"#;
    let mut client = agent_intent::http::H2_PREFACE.to_vec();
    client.extend(frame(wire::SETTINGS, 0, 0, &[0, 4, 0, 0x10, 0, 0]));
    let block = hpack::encode_literals(
        &[
            (":method", "POST"),
            (":scheme", "https"),
            (":authority", "api.openai.com"),
            (":path", "/v1/responses"),
            ("content-type", "application/json"),
        ],
        true,
    );
    client.extend(frame(wire::HEADERS, wire::END_HEADERS, 1, &block));
    let (a, b) = body.split_at(100);
    client.extend(frame(wire::DATA, 0, 1, a));
    // Padded DATA frame: pad length 3, data, 3 zero bytes.
    let mut padded = vec![3u8];
    padded.extend_from_slice(b);
    padded.extend_from_slice(&[0, 0, 0]);
    client.extend(frame(
        wire::DATA,
        wire::END_STREAM | wire::PADDED,
        1,
        &padded,
    ));

    let events = [
        r#"{"type":"response.created","sequence_number":0,"response":{"id":"resp_awturn1","model":"gpt-5-codex","status":"in_progress","output":[]}}"#,
        r#"{"type":"response.output_item.added","sequence_number":1,"output_index":0,"item":{"type":"function_call","id":"fc_1","call_id":"call_awturn1x0","name":"shell","arguments":"","status":"in_progress"}}"#,
        r#"{"type":"response.function_call_arguments.delta","sequence_number":2,"output_index":0,"delta":"{\"command\":[\"rm\","}"#,
        r#"{"type":"response.function_call_arguments.delta","sequence_number":3,"output_index":0,"delta":"\"-rf\",\"/\"]}"}"#,
        r#"{"type":"response.output_item.added","sequence_number":4,"output_index":1,"item":{"type":"custom_tool_call","id":"ctc_1","call_id":"call_awturn1x1","name":"apply_patch","input":"*** Begin Patch","status":"completed"}}"#,
        r#"{"type":"response.output_text.delta","sequence_number":5,"output_index":2,"delta":"Done."}"#,
        r#"{"type":"response.completed","sequence_number":6,"response":{"id":"resp_awturn1","model":"gpt-5-codex","status":"completed","output":[],"usage":{"input_tokens":10,"input_tokens_details":{"cached_tokens":2},"output_tokens":5,"output_tokens_details":{"reasoning_tokens":3},"total_tokens":15}}}"#,
    ];
    let sse: String = events
        .iter()
        .map(|d| format!("event: x\ndata: {d}\n\n"))
        .collect();
    let mut server = frame(wire::SETTINGS, 0, 0, &[]);
    // RFC 7541 C.6-style response head: indexed :status 200, then a Huffman literal.
    let mut head = vec![0x88];
    head.extend(hpack::encode_literals(
        &[("content-type", "text/event-stream")],
        true,
    ));
    server.extend(frame(wire::HEADERS, 0, 1, &head[..2]));
    server.extend(frame(wire::CONTINUATION, wire::END_HEADERS, 1, &head[2..]));
    for part in sse.as_bytes().chunks(300) {
        server.extend(frame(wire::DATA, 0, 1, part));
    }
    server.extend(frame(wire::DATA, wire::END_STREAM, 1, &[]));

    for chunk in [3, 1000] {
        let mut t = tracker();
        let mut ev = feed_chunked(&mut t, 9, Direction::Request, &client, chunk);
        ev.extend(feed_chunked(&mut t, 9, Direction::Response, &server, chunk));
        assert_eq!(ev.len(), 2, "{ev:?} {:?}", t.stats());
        let IntentEvent::Request {
            request, stream, ..
        } = &ev[0]
        else {
            panic!()
        };
        assert_eq!(*stream, 1);
        assert_eq!(request.provider, Some(Provider::OpenAiResponses));
        assert_eq!(request.host, "api.openai.com");
        assert_eq!(request.tools_offered, ["shell", "apply_patch"]);
        assert_eq!(request.tool_results, ["call_awturn0x0"]);
        assert_eq!(request.prompt_excerpt.as_deref(), Some("fix the bug"));
        assert_eq!(request.system_excerpt.as_deref(), Some("You are Codex."));
        let IntentEvent::Response { response, .. } = &ev[1] else {
            panic!()
        };
        assert_eq!(response.model.as_deref(), Some("gpt-5-codex"));
        let calls: Vec<_> = response
            .tool_calls
            .iter()
            .map(|c| (c.id.as_str(), c.name.as_str(), c.input_excerpt.as_deref()))
            .collect();
        assert_eq!(
            calls,
            [
                (
                    "call_awturn1x0",
                    "shell",
                    Some(r#"{"command":["rm","-rf","/"]}"#)
                ),
                ("call_awturn1x1", "apply_patch", Some("*** Begin Patch")),
            ]
        );
        assert_eq!(response.text_excerpt.as_deref(), Some("Done."));
        assert_eq!(response.usage.total_tokens, Some(15));
        assert_eq!(response.usage.reasoning_tokens, Some(3));
        assert_eq!(response.usage.cache_read_tokens, Some(2));
        assert_eq!(response.stop_reason.as_deref(), Some("completed"));
        assert!(!response.incomplete);
    }
}

#[test]
fn openai_chat_stream_with_tool_call_deltas() {
    let body = r#"{"model":"gpt-4o","stream":true,"max_completion_tokens":100,"messages":[{"role":"system","content":"be brief"},{"role":"user","content":"weather?"}],"tools":[{"type":"function","function":{"name":"get_weather","parameters":{}}}]}"#;
    let req = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nHost: api.openai.com\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let chunks = [
        r#"{"id":"chatcmpl-1","object":"chat.completion.chunk","model":"gpt-4o","choices":[{"index":0,"delta":{"role":"assistant","tool_calls":[{"index":0,"id":"call_1","type":"function","function":{"name":"get_weather","arguments":""}}]},"finish_reason":null}]}"#,
        r#"{"id":"chatcmpl-1","object":"chat.completion.chunk","model":"gpt-4o","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"{\"city\":"}}]},"finish_reason":null}]}"#,
        r#"{"id":"chatcmpl-1","object":"chat.completion.chunk","model":"gpt-4o","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"\"Paris\"}"}}]},"finish_reason":"tool_calls"}]}"#,
        r#"{"id":"chatcmpl-1","object":"chat.completion.chunk","model":"gpt-4o","choices":[],"usage":{"prompt_tokens":20,"completion_tokens":8,"total_tokens":28}}"#,
        "[DONE]",
    ];
    let sse: String = chunks
        .iter()
        .map(|d| format!("data: {d}\r\n\r\n"))
        .collect();
    let resp = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nConnection: close\r\n\r\n{sse}"
    );
    let mut t = tracker();
    let mut ev = t.feed(2, Direction::Request, req.as_bytes());
    ev.extend(t.feed(2, Direction::Response, resp.as_bytes()));
    ev.extend(t.close(2));
    let IntentEvent::Request { request, .. } = &ev[0] else {
        panic!()
    };
    assert_eq!(request.provider, Some(Provider::OpenAiChat));
    assert_eq!(request.max_tokens, Some(100));
    assert_eq!(request.system_excerpt.as_deref(), Some("be brief"));
    assert_eq!(request.prompt_excerpt.as_deref(), Some("weather?"));
    assert_eq!(request.tools_offered, ["get_weather"]);
    let IntentEvent::Response { response, .. } = &ev[1] else {
        panic!("{ev:?}")
    };
    assert_eq!(response.tool_calls[0].name, "get_weather");
    assert_eq!(
        response.tool_calls[0].input_excerpt.as_deref(),
        Some(r#"{"city":"Paris"}"#)
    );
    assert_eq!(response.usage.input_tokens, Some(20));
    assert_eq!(response.stop_reason.as_deref(), Some("tool_calls"));
    assert!(!response.incomplete);
}

#[test]
fn gemini_generate_content_json_response() {
    let body = r#"{"contents":[{"role":"user","parts":[{"text":"read my ssh key"}]}],"systemInstruction":{"parts":[{"text":"You are Gemini CLI"}]},"tools":[{"functionDeclarations":[{"name":"read_file"},{"name":"run_shell_command"}]}],"generationConfig":{"maxOutputTokens":512}}"#;
    let req = format!(
        "POST /v1beta/models/gemini-2.5-pro:generateContent HTTP/1.1\r\nHost: generativelanguage.googleapis.com\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let rbody = r#"{"candidates":[{"content":{"role":"model","parts":[{"text":"Reading."},{"functionCall":{"name":"read_file","args":{"path":"~/.ssh/id_rsa"}}}]},"finishReason":"STOP"}],"usageMetadata":{"promptTokenCount":30,"candidatesTokenCount":9,"totalTokenCount":39,"thoughtsTokenCount":4},"modelVersion":"gemini-2.5-pro","responseId":"r1"}"#;
    let resp = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{rbody}",
        rbody.len()
    );
    let mut t = tracker();
    let mut ev = t.feed(3, Direction::Request, req.as_bytes());
    ev.extend(t.feed(3, Direction::Response, resp.as_bytes()));
    let IntentEvent::Request { request, .. } = &ev[0] else {
        panic!()
    };
    assert_eq!(request.provider, Some(Provider::Gemini));
    assert_eq!(request.model.as_deref(), Some("gemini-2.5-pro"));
    assert!(!request.stream);
    assert_eq!(request.tools_offered, ["read_file", "run_shell_command"]);
    assert_eq!(request.max_tokens, Some(512));
    let IntentEvent::Response { response, .. } = &ev[1] else {
        panic!()
    };
    assert_eq!(response.tool_calls[0].name, "read_file");
    assert_eq!(
        response.tool_calls[0].input_excerpt.as_deref(),
        Some(r#"{"path":"~/.ssh/id_rsa"}"#)
    );
    assert_eq!(response.usage.reasoning_tokens, Some(4));
    assert_eq!(response.text_excerpt.as_deref(), Some("Reading."));
    assert!(!response.incomplete);
}

#[test]
fn gemini_stream_sse() {
    let req = "POST /v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse HTTP/1.1\r\nHost: g\r\nContent-Length: 2\r\n\r\n{}";
    let sse = "data: {\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"Hel\"}]}}]}\r\n\r\n\
data: {\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"lo\"}]},\"finishReason\":\"STOP\"}],\"usageMetadata\":{\"promptTokenCount\":3}}\r\n\r\n";
    let resp = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nContent-Length: {}\r\n\r\n{sse}",
        sse.len()
    );
    let mut t = tracker();
    let mut ev = t.feed(4, Direction::Request, req.as_bytes());
    ev.extend(t.feed(4, Direction::Response, resp.as_bytes()));
    let IntentEvent::Request { request, .. } = &ev[0] else {
        panic!()
    };
    assert!(request.stream);
    let IntentEvent::Response { response, .. } = &ev[1] else {
        panic!("{ev:?}")
    };
    assert_eq!(response.text_excerpt.as_deref(), Some("Hello"));
    assert_eq!(response.usage.input_tokens, Some(3));
    assert!(!response.incomplete);
}

#[test]
fn non_model_traffic_is_ignored_and_errors_are_reported() {
    let mut t = tracker();
    let ev = t.feed(
        5,
        Direction::Request,
        b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n",
    );
    assert!(ev.is_empty());
    let body = r#"{"model":"m","messages":[]}"#;
    let req = format!(
        "POST /v1/messages HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let err = r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#;
    let resp = format!(
        "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\nHTTP/1.1 529 Overloaded\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{err}",
        err.len()
    );
    let mut ev = t.feed(5, Direction::Request, req.as_bytes());
    ev.extend(t.feed(5, Direction::Response, resp.as_bytes()));
    let IntentEvent::Response { response, .. } = ev.last().unwrap() else {
        panic!("{ev:?}")
    };
    assert_eq!(response.status, 529);
    assert_eq!(response.error.as_deref(), Some("Overloaded"));
}

#[test]
fn mcp_tools_call_pairs_with_result_error_and_cancel() {
    let policy = ExcerptPolicy::default();
    let ex = Excerpter {
        policy: &policy,
        redact: &no_redaction,
    };
    let limits = Limits::default();
    let mut stats = Stats::default();
    let mut s = McpSession::new();
    let c2s = concat!(
        r#"{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-06-18"}}"#,
        "\n",
        r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#,
        "\n",
        r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"read_file","arguments":{"path":"/etc/shadow"}}}"#,
        "\n",
        r#"{"jsonrpc":"2.0","id":"1","method":"tools/call","params":{"name":"exec","arguments":{"cmd":"id"}}}"#,
        "\n",
        r#"{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"slow","arguments":{}}}"#,
        "\n",
    );
    let mut ev = Vec::new();
    for part in c2s.as_bytes().chunks(13) {
        ev.extend(s.feed(McpDirection::ClientToServer, part, &ex, &limits, &mut stats));
    }
    assert_eq!(ev.len(), 3);
    assert_eq!(
        ev[0],
        McpEvent::ToolCallStarted {
            id: "1".into(),
            name: "read_file".into(),
            arguments_excerpt: Some(r#"{"path":"/etc/shadow"}"#.into()),
            arguments_bytes: 22
        }
    );
    let s2c = concat!(
        r#"{"jsonrpc":"2.0","id":"1","error":{"code":-32602,"message":"unknown tool"}}"#,
        "\n",
        r#"{"jsonrpc":"2.0","id":1,"result":{"content":[{"type":"text","text":"root:*:19000"}],"isError":false}}"#,
        "\n",
        r#"{"jsonrpc":"2.0","id":99,"result":{}}"#,
        "\n",
    );
    let ev = s.feed(
        McpDirection::ServerToClient,
        s2c.as_bytes(),
        &ex,
        &limits,
        &mut stats,
    );
    assert_eq!(
        ev,
        [
            McpEvent::ToolCallFinished {
                id: "\"1\"".into(),
                name: "exec".into(),
                outcome: McpOutcome::Error {
                    code: -32602,
                    message: Some("unknown tool".into())
                }
            },
            McpEvent::ToolCallFinished {
                id: "1".into(),
                name: "read_file".into(),
                outcome: McpOutcome::Result {
                    is_error: false,
                    excerpt: Some("root:*:19000".into()),
                    bytes: 67
                }
            },
        ]
    );
    assert_eq!(stats.mcp_unmatched_responses, 1);
    let ev = s.feed(McpDirection::ClientToServer, b"{\"jsonrpc\":\"2.0\",\"method\":\"notifications/cancelled\",\"params\":{\"requestId\":3}}\n", &ex, &limits, &mut stats);
    assert_eq!(
        ev,
        [McpEvent::ToolCallFinished {
            id: "3".into(),
            name: "slow".into(),
            outcome: McpOutcome::Cancelled
        }]
    );
}
