//! Prints the README detection table from `tests/corpus/attacks.toml`:
//! `cargo run --release -p tests --example corpus_table`.
fn main() -> Result<(), String> {
    print!(
        "{}",
        tests::corpus::table_markdown(&tests::corpus::attacks()?)
    );
    Ok(())
}
