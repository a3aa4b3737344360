//! Prints the README field and kind tables: `cargo run -p agent-model --example readme_tables`.
fn main() {
    print!(
        "{}@@@{}",
        agent_model::fields::fields_markdown(),
        agent_model::fields::kinds_markdown()
    );
}
