//! The kernel record decoder takes bytes from the ring buffer: a bug in the sensor or a
//! corrupted ring must give an error, never a panic or an unbounded allocation.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(rec) = agent_model::decode::decode(data) {
        // Whatever decoded must be self-consistent enough to reach its header.
        let _ = rec.header();
    }
});
