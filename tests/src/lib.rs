//! Helpers for the end-to-end tests: find the built binary, start a daemon, run workloads.
