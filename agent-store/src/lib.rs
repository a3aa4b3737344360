//! The agentwatch store: append-only spool then tantivy index. Filled by the history issue.
#![forbid(unsafe_code)]
