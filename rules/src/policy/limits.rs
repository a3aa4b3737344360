//! The limits a policy must stay within, in one place so that the checks, the compiler, the file
//! reader (which stops reading one byte past [`MAX_FILE_BYTES`]) and the tests all agree.
//!
//! Each limit bounds what a hostile or broken policy could cost: memory while loading, time per
//! event (regex size, nesting) or state kept per session (thresholds, windows, steps).

/// Largest policy file accepted.
pub const MAX_FILE_BYTES: usize = 1 << 20;
/// Largest policy (all files together).
pub const MAX_TOTAL_BYTES: usize = 16 << 20;
/// Longest line accepted in a policy file.
pub const MAX_LINE_BYTES: usize = 16 * 1024;
/// Most rules in a policy.
pub const MAX_RULES: usize = 10_000;
/// Deepest nesting of `all` / `any` / `not` (macros count as one level each).
pub const MAX_DEPTH: usize = 32;
/// Largest `threshold` of a windowed rule (it bounds the state kept per session).
pub const MAX_THRESHOLD: i64 = 10_000;
/// Longest window (`within`, dedup `window`).
pub const MAX_WINDOW_NS: i64 = 24 * 3600 * 1_000_000_000;
/// Compiled size limit of one regex.
pub const MAX_REGEX_BYTES: usize = 1 << 20;
/// Most steps of a sequence.
pub const MAX_STEPS: usize = 8;
/// Default de-duplication window.
pub const DEFAULT_DEDUP_NS: i64 = 60 * 1_000_000_000;
/// Largest `threshold` of a `sum` window (the sum is kept in 64 slices, whatever the threshold).
pub const MAX_SUM_THRESHOLD: i64 = 1 << 50;
/// Most chains kept per joined sequence step and session (the oldest is dropped beyond).
pub const MAX_JOIN_KEYS: usize = 64;
