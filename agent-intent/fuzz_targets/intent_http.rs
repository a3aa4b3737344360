#![no_main]
//! HTTP/1.1 and HTTP/2 reassembly plus the model API parsers: the first byte picks the protocol
//! (HTTP/2 gets the client preface), then each 0xfe-separated piece alternates direction.
use agent_intent::excerpt::no_redaction;
use agent_intent::{Direction, ExcerptPolicy, IntentTracker, Limits};
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Some((&first, rest)) = data.split_first() else { return };
    let limits = Limits { max_buffer: 32 << 10, max_body: 32 << 10, max_streams: 8, ..Limits::default() };
    let mut t = IntentTracker::new(limits, ExcerptPolicy::default(), Box::new(no_redaction));
    if first & 1 == 1 {
        t.feed(1, Direction::Request, agent_intent::http::H2_PREFACE);
    }
    for (i, piece) in rest.split(|&b| b == 0xfe).enumerate() {
        let dir = if i % 2 == 0 { Direction::Request } else { Direction::Response };
        t.feed(1, dir, piece);
    }
    t.close(1);
});
