//! The agentwatch terminal UI. Filled by the TUI issue.
#![forbid(unsafe_code)]
