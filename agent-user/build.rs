//! Builds the eBPF programs (`agent-ebpf`) for the bpf target with the nightly toolchain and
//! bpf-linker (installed by `cargo xtask setup`), and places the object in OUT_DIR.
use anyhow::{Context as _, anyhow};

fn main() -> anyhow::Result<()> {
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
