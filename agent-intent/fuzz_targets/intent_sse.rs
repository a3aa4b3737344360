#![no_main]
//! SSE: arbitrary bytes in arbitrary pieces.
use agent_intent::{Limits, Stats, sse::SseDecoder};
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let limits = Limits { max_sse_line: 256, max_sse_event: 1024, ..Limits::default() };
    let mut d = SseDecoder::new();
    let mut stats = Stats::default();
    let mut out = Vec::new();
    for piece in data.chunks(7) {
        d.feed(piece, &limits, &mut stats, &mut out);
    }
    assert!(d.buffered() <= 8192);
});
