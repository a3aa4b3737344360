//! The query language parser takes text typed by an analyst or sent over the socket (and values
//! copied from agent-controlled events): any input gives a parse tree or an error with a column.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(q) = std::str::from_utf8(data) {
        let _ = agent_store::query::parse(q);
        let _ = agent_store::parse_time_bound(q);
    }
});
