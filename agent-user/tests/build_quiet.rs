//! The build script drops the eBPF build's progress lines on success (they used to be ~54
//! `warning: agent-user@0.1.0: Compiling …` lines on every build) and keeps directives and real
//! diagnostics.

#[path = "../build/quiet.rs"]
mod quiet;

#[test]
fn progress_lines_are_dropped_directives_and_diagnostics_kept() {
    for l in [
        "cargo:warning=   Compiling agent-ebpf v0.1.0 (/w/agent-ebpf)",
        "cargo:warning=    Finished `release` profile [optimized] target(s) in 39.0s",
        "cargo:warning=   Compiling core v0.0.0 (/r/library/core)",
        "cargo:warning=",
    ] {
        assert!(!quiet::keep(l), "{l} should be dropped");
    }
    for l in [
        "cargo:rerun-if-changed=/w/agent-ebpf",
        "cargo:rerun-if-env-changed=AYA_BUILD_SKIP",
        "cargo:warning=warning: unused variable: `x`",
        "cargo:warning=error[E0425]: cannot find value `y` in this scope",
        "cargo:warning=AYA_BUILD_SKIP=1; skipping eBPF build",
    ] {
        assert!(quiet::keep(l), "{l} should be kept");
    }
}
