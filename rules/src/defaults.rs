//! The shipped default policy, embedded so the daemon works without the source tree.
//!
//! Apart from `lib.rs` so that the crate root only declares modules and re-exports, and so that
//! tests inside the crate can use the default policy without importing the root.

use crate::policy::Source;

/// The shipped default policy files, embedded so the daemon works without the source tree.
pub const DEFAULT_POLICY: &[(&str, &str)] = &[
    (
        "credentials.toml",
        include_str!("../policy/credentials.toml"),
    ),
    (
        "exfiltration.toml",
        include_str!("../policy/exfiltration.toml"),
    ),
    ("discovery.toml", include_str!("../policy/discovery.toml")),
    ("privilege.toml", include_str!("../policy/privilege.toml")),
    (
        "persistence.toml",
        include_str!("../policy/persistence.toml"),
    ),
    ("evasion.toml", include_str!("../policy/evasion.toml")),
    ("delegation.toml", include_str!("../policy/delegation.toml")),
    ("intent.toml", include_str!("../policy/intent.toml")),
    ("lists.toml", include_str!("../policy/lists.toml")),
    ("monitor.toml", include_str!("../policy/monitor.toml")),
];

/// The default policy as sources (names like `<default>/credentials.toml`).
pub fn default_sources() -> Vec<Source> {
    let mut v: Vec<Source> = DEFAULT_POLICY
        .iter()
        .map(|(n, t)| Source::from_text(format!("<default>/{n}"), *t))
        .collect();
    v.sort_by(|a, b| a.name.cmp(&b.name));
    v
}
