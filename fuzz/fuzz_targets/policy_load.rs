//! The policy loader takes rule files that a reload picks up from disk (possibly half-written,
//! possibly written by an agent): any bytes give a compiled policy or `file:line:col` errors.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // Split the input into two files so cross-file checks (duplicate ids, lists defined in
    // another file) are reached too.
    let text = String::from_utf8_lossy(data);
    let mid = (text.len() / 2..=text.len())
        .find(|&i| text.is_char_boundary(i))
        .unwrap_or(text.len());
    let (a, b) = text.split_at(mid);
    let sources = [
        rules::Source::from_text("fuzz/a.toml", a),
        rules::Source::from_text("fuzz/b.toml", b),
    ];
    if let Ok(p) = rules::Policy::compile(&sources) {
        let _ = p.hash();
    }
});
