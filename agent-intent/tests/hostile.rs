//! Hostile input: malformed HTTP/2 and HPACK, endless streams, gigantic bodies, invalid UTF-8,
//! and arbitrary bytes into every decoder. Nothing may panic and memory must stay bounded.

use agent_intent::excerpt::{Excerpter, no_redaction};
use agent_intent::hpack::{self, encode_int};
use agent_intent::http::h2::{frame, wire};
use agent_intent::mcp::McpDirection;
use agent_intent::sse::SseDecoder;
use agent_intent::{
    Connection, Direction, ExcerptPolicy, IntentTracker, Limits, McpSession, Stats,
};
use proptest::prelude::*;

fn small() -> Limits {
    Limits {
        max_buffer: 64 << 10,
        max_head: 8 << 10,
        max_header_block: 8 << 10,
        max_header_list: 8 << 10,
        hpack_max_table_size: 8 << 10,
        max_body: 32 << 10,
        max_sse_line: 4 << 10,
        max_sse_event: 16 << 10,
        max_streams: 8,
        max_connections: 4,
        max_tool_calls: 4,
        max_tools_offered: 4,
        max_mcp_line: 16 << 10,
        max_mcp_pending: 4,
    }
}

fn h2_client(frames: &[Vec<u8>]) -> Vec<u8> {
    let mut v = agent_intent::http::H2_PREFACE.to_vec();
    for f in frames {
        v.extend_from_slice(f);
    }
    v
}

fn run(conn: &mut Connection, dir: Direction, bytes: &[u8], stats: &mut Stats) -> usize {
    let mut out = Vec::new();
    conn.feed(dir, bytes, &small(), stats, &mut out);
    out.len()
}

fn req_block() -> Vec<u8> {
    hpack::encode_literals(&[(":method", "POST"), (":path", "/v1/messages")], true)
}

#[test]
fn hpack_errors_in_frames_are_counted_and_stop_the_direction() {
    // Index out of range, integer overflow, table size bomb, bad Huffman padding.
    let mut bomb = Vec::new();
    encode_int(&mut bomb, 0x20, 5, 1 << 26);
    let bad_huffman = vec![0x00, 0x81, 0x00, 0x81, 0x1f]; // name: 1 Huffman byte of zero padding
    for block in [
        vec![0xff, 0x80, 0x01],
        vec![0xff, 0xff, 0xff, 0xff, 0xff, 0x7f],
        bomb,
        bad_huffman,
    ] {
        let mut c = Connection::new();
        let mut stats = Stats::default();
        let bytes = h2_client(&[
            frame(
                wire::HEADERS,
                wire::END_HEADERS | wire::END_STREAM,
                1,
                &block,
            ),
            frame(
                wire::HEADERS,
                wire::END_HEADERS | wire::END_STREAM,
                3,
                &req_block(),
            ),
        ]);
        assert_eq!(run(&mut c, Direction::Request, &bytes, &mut stats), 0);
        assert_eq!(stats.hpack_errors, 1, "{block:02x?}");
    }
}

#[test]
fn malformed_frames_are_counted() {
    let cases: Vec<Vec<u8>> = vec![
        frame(wire::DATA, 0, 0, b"x"),                    // DATA on stream 0
        frame(wire::SETTINGS, 0, 0, &[1, 2, 3]),          // SETTINGS not a multiple of 6
        frame(wire::RST_STREAM, 0, 1, &[0, 0]),           // RST_STREAM of 2 bytes
        frame(wire::DATA, wire::PADDED, 1, &[200, 1, 2]), // padding longer than the frame
        frame(wire::CONTINUATION, wire::END_HEADERS, 1, &[0x82]), // CONTINUATION with no HEADERS
        frame(wire::WINDOW_UPDATE, 0, 0, &[0; 3]),
    ];
    for f in cases {
        let mut c = Connection::new();
        let mut stats = Stats::default();
        run(
            &mut c,
            Direction::Request,
            &h2_client(std::slice::from_ref(&f)),
            &mut stats,
        );
        assert_eq!(stats.h2_frame_errors, 1, "{f:02x?}");
    }
    // A HEADERS then a DATA frame on another stream before CONTINUATION.
    let mut c = Connection::new();
    let mut stats = Stats::default();
    run(
        &mut c,
        Direction::Request,
        &h2_client(&[
            frame(wire::HEADERS, 0, 1, &req_block()),
            frame(wire::DATA, 0, 3, b"x"),
        ]),
        &mut stats,
    );
    assert_eq!(stats.h2_frame_errors, 1);
    // A near-preface is not HTTP/2; as HTTP/1.1 its request line is malformed.
    let mut c = Connection::new();
    let mut stats = Stats::default();
    run(
        &mut c,
        Direction::Request,
        b"PRI * HTTP/2.0\r\n\r\nXX\r\n\r\n",
        &mut stats,
    );
    assert!(!c.is_http2());
    assert_eq!(stats.http1_malformed, 1);
}

#[test]
fn endless_continuation_and_oversize_frames_stay_bounded() {
    let mut c = Connection::new();
    let mut stats = Stats::default();
    run(
        &mut c,
        Direction::Request,
        &h2_client(&[frame(wire::HEADERS, 0, 1, &[0x82])]),
        &mut stats,
    );
    for _ in 0..1000 {
        run(
            &mut c,
            Direction::Request,
            &frame(wire::CONTINUATION, 0, 1, &[0x40; 1000]),
            &mut stats,
        );
        assert!(c.buffered() <= 16 << 10);
    }
    assert_eq!(stats.h2_header_block_too_large, 1);
    // A 16 MiB DATA frame is skipped, not buffered.
    let mut c = Connection::new();
    let mut stats = Stats::default();
    run(
        &mut c,
        Direction::Request,
        &h2_client(&[frame(wire::HEADERS, wire::END_HEADERS, 1, &req_block())]),
        &mut stats,
    );
    let mut hdr = frame(wire::DATA, 0, 1, &[]);
    hdr[0..3].copy_from_slice(&[0xff, 0xff, 0xff]);
    run(&mut c, Direction::Request, &hdr, &mut stats);
    for _ in 0..256 {
        run(&mut c, Direction::Request, &[b'x'; 65536], &mut stats);
        assert!(c.buffered() <= 64 << 10);
    }
    assert_eq!(stats.body_truncated, 1);
    assert_eq!(stats.h2_frame_errors, 0);
}

#[test]
fn too_many_streams_and_rst_and_goaway() {
    let mut c = Connection::new();
    let mut stats = Stats::default();
    let mut frames = Vec::new();
    for id in (1..=41).step_by(2) {
        frames.push(frame(wire::HEADERS, wire::END_HEADERS, id, &req_block()));
    }
    run(&mut c, Direction::Request, &h2_client(&frames), &mut stats);
    assert_eq!(stats.too_many_streams, 21 - 8);
    let mut out = Vec::new();
    let mut resp = frame(wire::SETTINGS, 0, 0, &[]);
    resp.extend(frame(wire::HEADERS, wire::END_HEADERS, 1, &[0x88]));
    resp.extend(frame(wire::RST_STREAM, 0, 1, &[0, 0, 0, 8]));
    resp.extend(frame(wire::HEADERS, wire::END_HEADERS, 3, &[0x88]));
    resp.extend(frame(wire::GOAWAY, 0, 0, &[0, 0, 0, 1, 0, 0, 0, 0]));
    c.feed(Direction::Response, &resp, &small(), &mut stats, &mut out);
    let aborted = out
        .iter()
        .filter(|e| {
            matches!(
                e,
                agent_intent::HttpEvent::ResponseEnd { aborted: true, .. }
            )
        })
        .count();
    assert_eq!(aborted, 2);
    assert!(stats.h2_streams_reset >= 2);
}

#[test]
fn endless_sse_response_stays_bounded() {
    let mut t = IntentTracker::new(small(), ExcerptPolicy::default(), Box::new(no_redaction));
    let req = b"POST /v1/messages HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}";
    t.feed(1, Direction::Request, req);
    t.feed(
        1,
        Direction::Response,
        b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n\r\n",
    );
    t.feed(1, Direction::Response, b"event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n");
    let delta = b"event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"0123456789abcdef\"}}\n\n";
    for _ in 0..50_000 {
        t.feed(1, Direction::Response, delta);
    }
    // One endless line.
    for _ in 0..1000 {
        t.feed(1, Direction::Response, &[b'y'; 1024]);
    }
    assert!(t.buffered() <= 64 << 10, "{}", t.buffered());
    assert_eq!(t.stats().sse_lines_cut, 1);
    let ev = t.close(1);
    let agent_intent::IntentEvent::Response { response, .. } = &ev[0] else {
        panic!("{ev:?}")
    };
    assert_eq!(response.text_bytes, 16 * 50_000);
    assert!(response.text_excerpt.as_ref().unwrap().len() <= 2048);
    assert!(response.incomplete);
}

#[test]
fn gigantic_json_body_is_cut_and_counted() {
    let mut t = IntentTracker::new(small(), ExcerptPolicy::default(), Box::new(no_redaction));
    let body = format!(
        "{{\"model\":\"m\",\"messages\":[{{\"role\":\"user\",\"content\":\"{}\"}}]}}",
        "a".repeat(1 << 20)
    );
    let req = format!(
        "POST /v1/messages HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let ev: Vec<_> = req
        .as_bytes()
        .chunks(16384)
        .flat_map(|c| t.feed(1, Direction::Request, c))
        .collect();
    let agent_intent::IntentEvent::Request { request, .. } = &ev[0] else {
        panic!()
    };
    assert!(request.incomplete);
    assert_eq!(request.body_bytes, body.len() as u64);
    assert_eq!(t.stats().body_truncated, 1);
    assert_eq!(t.stats().json_errors, 1);
    assert!(t.buffered() <= 64 << 10);
}

#[test]
fn deeply_nested_json_does_not_overflow_the_stack() {
    let mut t = IntentTracker::new(
        Limits::default(),
        ExcerptPolicy::default(),
        Box::new(no_redaction),
    );
    let body = "[".repeat(100_000);
    let req = format!(
        "POST /v1/messages HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let ev = t.feed(1, Direction::Request, req.as_bytes());
    assert_eq!(ev.len(), 1);
    assert_eq!(t.stats().json_errors, 1);
}

#[test]
fn http1_garbage_then_a_valid_request_resyncs() {
    let mut c = Connection::new();
    let mut stats = Stats::default();
    let mut out = Vec::new();
    let limits = small();
    c.feed(
        Direction::Request,
        b"GET / HTTP/1.1\r\nbroken header line\r\n\r\n",
        &limits,
        &mut stats,
        &mut out,
    );
    c.feed(
        Direction::Request,
        &[0xffu8; 20_000],
        &limits,
        &mut stats,
        &mut out,
    );
    c.feed(
        Direction::Request,
        b"\r\nPOST /v1/messages HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\n\r\n{}",
        &limits,
        &mut stats,
        &mut out,
    );
    assert_eq!(stats.http1_malformed, 1);
    assert_eq!(stats.http1_resyncs, 1);
    assert!(
        matches!(&out[..], [agent_intent::HttpEvent::Request { head, .. }] if head.path == "/v1/messages")
    );
}

#[test]
fn connections_are_capped() {
    let mut t = IntentTracker::new(small(), ExcerptPolicy::default(), Box::new(no_redaction));
    for conn in 0..100 {
        t.feed(conn, Direction::Request, b"POST /v1/messages HTTP/1.1\r\n");
    }
    assert_eq!(t.connections(), 4);
    assert_eq!(t.stats().connections_evicted, 96);
}

#[test]
fn mcp_endless_line_and_pending_flood_stay_bounded() {
    let limits = small();
    let policy = ExcerptPolicy::default();
    let ex = Excerpter {
        policy: &policy,
        redact: &no_redaction,
    };
    let mut stats = Stats::default();
    let mut s = McpSession::new();
    for _ in 0..1000 {
        s.feed(
            McpDirection::ServerToClient,
            &[b'{'; 1024],
            &ex,
            &limits,
            &mut stats,
        );
    }
    assert!(s.buffered() <= 16 << 10);
    assert_eq!(stats.mcp_lines_cut, 1);
    for id in 0..100 {
        let line = format!(
            "{{\"jsonrpc\":\"2.0\",\"id\":{id},\"method\":\"tools/call\",\"params\":{{\"name\":\"t\"}}}}\n"
        );
        s.feed(
            McpDirection::ClientToServer,
            line.as_bytes(),
            &ex,
            &limits,
            &mut stats,
        );
    }
    assert_eq!(stats.mcp_pending_evicted, 96);
    s.feed(
        McpDirection::ClientToServer,
        b"\xff\xfe not json\n",
        &ex,
        &limits,
        &mut stats,
    );
    assert_eq!(stats.mcp_malformed, 1);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn hpack_never_panics(block in proptest::collection::vec(any::<u8>(), 0..512)) {
        let mut d = hpack::Decoder::new(4096);
        let _ = d.decode(&block, 4096);
        prop_assert!(d.table_size() <= 4096);
    }

    #[test]
    fn sse_never_panics(chunks in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..256), 0..16)) {
        let mut d = SseDecoder::new();
        let mut stats = Stats::default();
        let mut out = Vec::new();
        for c in &chunks {
            d.feed(c, &small(), &mut stats, &mut out);
        }
    }

    #[test]
    fn connections_never_panic(h2 in any::<bool>(), chunks in proptest::collection::vec((any::<bool>(), proptest::collection::vec(any::<u8>(), 0..512)), 0..16)) {
        let mut t = IntentTracker::new(small(), ExcerptPolicy::default(), Box::new(no_redaction));
        if h2 {
            t.feed(1, Direction::Request, agent_intent::http::H2_PREFACE);
        }
        for (req, c) in &chunks {
            t.feed(1, if *req { Direction::Request } else { Direction::Response }, c);
        }
        t.close(1);
        prop_assert!(t.buffered() <= 2 * (64 << 10));
    }

    #[test]
    fn mcp_never_panics(chunks in proptest::collection::vec((any::<bool>(), proptest::collection::vec(any::<u8>(), 0..256)), 0..16)) {
        let policy = ExcerptPolicy::default();
        let ex = Excerpter { policy: &policy, redact: &no_redaction };
        let mut stats = Stats::default();
        let mut s = McpSession::new();
        for (c2s, c) in &chunks {
            let dir = if *c2s { McpDirection::ClientToServer } else { McpDirection::ServerToClient };
            s.feed(dir, c, &ex, &small(), &mut stats);
        }
    }

    /// Structured-ish input: valid frame headers with random payloads reach deeper states.
    #[test]
    fn h2_random_frames_never_panic(frames in proptest::collection::vec((0u8..10, any::<u8>(), 0u32..8, proptest::collection::vec(any::<u8>(), 0..64)), 0..24)) {
        let mut c = Connection::new();
        let mut stats = Stats::default();
        let fs: Vec<Vec<u8>> = frames.iter().map(|(t, f, s, p)| frame(*t, *f, *s, p)).collect();
        run(&mut c, Direction::Request, &h2_client(&fs), &mut stats);
        run(&mut c, Direction::Response, &fs.concat(), &mut stats);
    }
}
