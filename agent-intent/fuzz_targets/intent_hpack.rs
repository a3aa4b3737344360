#![no_main]
//! HPACK: arbitrary header blocks against one decoder (the table carries over between blocks).
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let mut d = agent_intent::hpack::Decoder::new(4096);
    for block in data.split(|&b| b == 0xfe) {
        let _ = d.decode(block, 16 << 10);
        assert!(d.table_size() <= 4096);
    }
});
