//! What the build script keeps of the eBPF build's output when that build succeeds.
//!
//! aya-build forwards every line the inner `cargo build` prints (`Compiling …`, `Finished …`)
//! as a `cargo:warning=`, so every build of agent-user used to repeat ~54 progress lines. The
//! build script runs aya-build in a child process and passes its output through [`keep`]: cargo
//! directives and real diagnostics stay, progress lines go. When the eBPF build fails the whole
//! output is shown. Shared with `agent-user/tests/build_quiet.rs` through `#[path]`.

/// Cargo's progress words (`cargo build` status lines start with one, right-aligned).
const PROGRESS: &[&str] = &[
    "Compiling",
    "Checking",
    "Finished",
    "Fresh",
    "Blocking",
    "Updating",
    "Locking",
    "Adding",
    "Downloading",
    "Downloaded",
    "Building",
    "Running",
    "Dirty",
];

/// Whether one stdout line of the successful child build script is kept.
pub fn keep(line: &str) -> bool {
    let Some(msg) = line.strip_prefix("cargo:warning=") else {
        // rerun-if-changed and other directives.
        return true;
    };
    let t = msg.trim_start();
    if t.is_empty() {
        return false;
    }
    let word = t.split_whitespace().next().unwrap_or("");
    !PROGRESS.contains(&word)
}
