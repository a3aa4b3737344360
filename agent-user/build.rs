//! Builds the eBPF programs (`agent-ebpf`) for the bpf target with the nightly toolchain and
//! bpf-linker (installed by `cargo xtask setup`), and places the object in OUT_DIR.
//!
//! aya-build runs in a child copy of this script so that its output can be filtered: on success
//! only cargo directives and real diagnostics are kept (see `build/quiet.rs`); on failure the
//! whole output is shown.
use std::io::Write as _;
use std::process::{Command, Stdio};

use anyhow::{Context as _, anyhow, bail};

#[path = "build/quiet.rs"]
mod quiet;

const CHILD: &str = "AGENTWATCH_EBPF_BUILD_CHILD";

fn main() -> anyhow::Result<()> {
    if std::env::var_os(CHILD).is_some() {
        return build();
    }
    let exe = std::env::current_exe().context("locating the build script")?;
    let out = Command::new(exe)
        .env(CHILD, "1")
        .stdin(Stdio::null())
        .output()
        .context("running the eBPF build")?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let mut w = std::io::stdout().lock();
    if out.status.success() {
        for line in stdout.lines().filter(|l| quiet::keep(l)) {
            writeln!(w, "{line}")?;
        }
        std::io::stderr().write_all(&out.stderr)?;
        return Ok(());
    }
    w.write_all(&out.stdout)?;
    std::io::stderr().write_all(&out.stderr)?;
    bail!(
        "building the eBPF programs failed ({}); its full output is above",
        out.status
    )
}

fn build() -> anyhow::Result<()> {
    let meta = cargo_metadata()?;
    let root = meta
        .join("agent-ebpf")
        .to_str()
        .ok_or_else(|| anyhow!("non-UTF-8 workspace path"))?
        .to_owned();
    aya_build::build_ebpf(
        [aya_build::Package {
            name: "agent-ebpf",
            root_dir: &root,
            ..Default::default()
        }],
        aya_build::Toolchain::default(),
    )
    .context("building the eBPF programs failed; run `cargo xtask setup` first")
}

fn cargo_metadata() -> anyhow::Result<std::path::PathBuf> {
    let dir = std::env::var("CARGO_MANIFEST_DIR").context("CARGO_MANIFEST_DIR not set")?;
    std::path::Path::new(&dir)
        .parent()
        .map(|p| p.to_path_buf())
        .ok_or_else(|| anyhow!("agent-user has no parent directory"))
}
