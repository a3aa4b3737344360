//! The agentwatch policy language (TOML) and its engine. Filled by the policy issue.
#![forbid(unsafe_code)]
