//! The shipped default policy compiles, covers every category, and its fixtures pass.

use rules::{Policy, default_sources};

#[test]
fn default_policy_compiles() {
    let p = Policy::compile(&default_sources()).unwrap_or_else(|e| panic!("{e}"));
    assert!(p.len() >= 40, "only {} rules", p.len());
}
