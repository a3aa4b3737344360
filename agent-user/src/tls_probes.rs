//! Attaching the TLS plaintext uprobes (issue #16): `SSL_write`, `SSL_read`, `SSL_write_ex` and
//! `SSL_read_ex` in the system `libssl.so.3` at start, and in every executable a session execs
//! that exports them (node bundles OpenSSL and exports its symbols), the first time it does.
//!
//! Uprobes attach through the perf_event uprobe PMU by file and offset (no tracefs needed), so
//! they fire in every process that maps the file; the programs (`agent-ebpf/src/probes/tls.rs`)
//! return at once for processes outside sessions. Symbols are read from the ELF's dynamic
//! symbol table here, once per file (`object`), and attached by file offset, so a large
//! executable is read once, not once per symbol. Files are remembered by device and inode,
//! those without the symbols too, so a binary is inspected once per daemon.
//!
//! Each link is a bpf link whose id the loader adds to `OWN_IDS` (a bpf() command reaching it
//! is a tamper event). With pinning, links are pinned as `tls_<dev>_<inode>_<symbol>_<program>`
//! ([`link_name`]), so the probes outlive the daemon; a later daemon attaching the same file
//! replaces the pin, and keeps (adopts) the pins of files it did not attach again.

use std::collections::HashSet;
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result, anyhow};
use aya::Ebpf;
use aya::programs::{UProbe, links::FdLink, uprobe::UProbeAttachLocation, uprobe::UProbeScope};

use crate::sockaddr::PinLink;
use object::{Object as _, ObjectSection as _, ObjectSymbol as _};

/// (symbol, entry program, return program).
const PROBES: &[(&str, &str, &str)] = &[
    ("SSL_write", "tls_write", "tls_ret"),
    ("SSL_read", "tls_read", "tls_ret"),
    ("SSL_write_ex", "tls_write_ex", "tls_ret_ex"),
    ("SSL_read_ex", "tls_read_ex", "tls_ret_ex"),
];

/// Programs of the family, loaded once.
const PROGRAMS: &[&str] = &[
    "tls_write",
    "tls_read",
    "tls_write_ex",
    "tls_read_ex",
    "tls_ret",
    "tls_ret_ex",
];

/// Executables larger than this are not inspected (their symbols would be read into memory).
const MAX_ELF: u64 = 512 << 20;

/// Load the uprobe programs (before the daemon records its own program ids).
pub fn load(ebpf: &mut Ebpf) -> Result<()> {
    for name in PROGRAMS {
        let p: &mut UProbe = ebpf
            .program_mut(name)
            .ok_or_else(|| anyhow!("program `{name}` missing from the object"))?
            .try_into()?;
        p.load()
            .with_context(|| format!("the kernel refused uprobe `{name}`"))?;
    }
    Ok(())
}

/// The system `libssl.so.3`, from the dynamic linker's cache (`ldconfig -p`), else the usual
/// directories.
pub fn system_libssl() -> Option<PathBuf> {
    if let Ok(out) = std::process::Command::new("ldconfig").arg("-p").output() {
        let text = String::from_utf8_lossy(&out.stdout);
        for line in text.lines() {
            let line = line.trim();
            if line.starts_with("libssl.so.3 ")
                && line.contains("x86-64")
                && let Some((_, p)) = line.rsplit_once("=> ")
            {
                return Some(PathBuf::from(p.trim()));
            }
        }
    }
    [
        "/lib/x86_64-linux-gnu/libssl.so.3",
        "/usr/lib/x86_64-linux-gnu/libssl.so.3",
        "/usr/lib64/libssl.so.3",
        "/usr/lib/libssl.so.3",
    ]
    .iter()
    .map(PathBuf::from)
    .find(|p| p.exists())
}

/// Executables that bundle OpenSSL and export its symbols, found on `PATH` (`node`, `nodejs`),
/// canonicalized.
pub fn bundled_on_path() -> Vec<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_else(|| "/usr/local/bin:/usr/bin:/bin".into());
    let mut out: Vec<PathBuf> = Vec::new();
    for name in ["node", "nodejs"] {
        if let Some(p) = std::env::split_paths(&path)
            .map(|d| d.join(name))
            .find(|p| p.is_file())
            .and_then(|p| std::fs::canonicalize(p).ok())
            && !out.contains(&p)
        {
            out.push(p);
        }
    }
    out
}

/// File offsets of the exported `SSL_*` functions of an ELF file (empty when it has none).
pub fn ssl_offsets(path: &Path) -> Result<Vec<(&'static str, u64)>> {
    let md = std::fs::metadata(path).with_context(|| format!("`{}`", path.display()))?;
    if !md.is_file() || md.len() > MAX_ELF {
        return Ok(Vec::new());
    }
    let data = std::fs::read(path).with_context(|| format!("cannot read `{}`", path.display()))?;
    let Ok(file) = object::File::parse(&*data) else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    for sym in file.dynamic_symbols() {
        if !sym.is_definition() {
            continue;
        }
        let Ok(name) = sym.name() else { continue };
        let Some((want, _, _)) = PROBES.iter().find(|(s, _, _)| *s == name) else {
            continue;
        };
        let Some(idx) = sym.section_index() else {
            continue;
        };
        let Ok(sec) = file.section_by_index(idx) else {
            continue;
        };
        let Some((sec_off, _)) = sec.file_range() else {
            continue;
        };
        if let Ok(UProbeAttachLocation::AbsoluteOffset(off)) =
            UProbeAttachLocation::from_virtual_address(sym.address(), sec.address(), sec_off)
            && !out.iter().any(|(n, _)| n == want)
        {
            out.push((*want, off));
        }
    }
    Ok(out)
}

/// Files inspected and attached.
#[derive(Default)]
pub struct TlsProbes {
    /// (dev, ino) of every file inspected, with or without the symbols.
    seen: HashSet<(u64, u64)>,
    /// Files with probes attached, for `status`.
    pub attached: Vec<String>,
    /// Attach failures (logged once per file).
    pub failures: u64,
    /// The links, when they are not pinned (dropping one detaches its probe).
    links: Vec<FdLink>,
}

/// The pin name of the link of `program` on `symbol` of the file with `dev` and `ino`.
pub fn link_name(dev: u64, ino: u64, symbol: &str, program: &str) -> String {
    format!("tls_{dev:x}_{ino:x}_{symbol}_{program}")
}

/// The device and inode of a file from a [`link_name`] (`None`: not a TLS link name).
pub fn parse_link_name(name: &str) -> Option<(u64, u64)> {
    let mut it = name.strip_prefix("tls_")?.splitn(3, '_');
    let dev = u64::from_str_radix(it.next()?, 16).ok()?;
    let ino = u64::from_str_radix(it.next()?, 16).ok()?;
    it.next()?;
    Some((dev, ino))
}

impl TlsProbes {
    /// Remember a file whose probes an earlier daemon attached and pinned (they stay).
    pub fn adopt_file(&mut self, dev: u64, ino: u64) {
        self.seen.insert((dev, ino));
    }

    /// Attach to `path` if it exports the `SSL_*` functions and was not inspected yet, each
    /// link pinned by `pin` when given. Returns the ids of the links attached.
    pub fn attach_file(
        &mut self,
        ebpf: &mut Ebpf,
        path: &Path,
        pin: Option<PinLink<'_>>,
    ) -> Vec<u32> {
        let Ok(md) = std::fs::metadata(path) else {
            return Vec::new();
        };
        if !self.seen.insert((md.dev(), md.ino())) {
            return Vec::new();
        }
        let offsets = match ssl_offsets(path) {
            Ok(o) => o,
            Err(e) => {
                tracing::debug!(path = %path.display(), error = %e, "not inspected for SSL symbols");
                return Vec::new();
            }
        };
        if !offsets.iter().any(|(s, _)| *s == "SSL_write") {
            return Vec::new();
        }
        let mut ids = Vec::new();
        for (sym, off) in &offsets {
            let Some((_, entry, ret)) = PROBES.iter().find(|(s, _, _)| s == sym) else {
                continue;
            };
            for prog in [entry, ret] {
                let name = link_name(md.dev(), md.ino(), sym, prog);
                let r = ebpf
                    .program_mut(prog)
                    .ok_or_else(|| anyhow!("program `{prog}` missing"))
                    .and_then(|p| <&mut UProbe>::try_from(p).map_err(Into::into))
                    .and_then(|p| {
                        let id = p.attach(*off, path, UProbeScope::AllProcesses)?;
                        let link: FdLink = p
                            .take_link(id)?
                            .try_into()
                            .context("the uprobe is not attached by a bpf link")?;
                        let link_id = link.info()?.id();
                        match pin {
                            Some(pin) => pin(&name, link)?,
                            None => self.links.push(link),
                        }
                        Ok(link_id)
                    });
                match r {
                    Ok(id) => ids.push(id),
                    Err(e) => {
                        self.failures += 1;
                        tracing::warn!(path = %path.display(), symbol = sym, program = prog, error = %format!("{e:#}"), "TLS uprobe not attached");
                    }
                }
            }
        }
        if !ids.is_empty() {
            tracing::info!(path = %path.display(), probes = ids.len(), "TLS uprobes attached");
            self.attached.push(path.display().to_string());
        }
        ids
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The regression this protects: the symbols are found in the dynamic table of the system
    /// libssl (skips where there is none).
    #[test]
    fn the_system_libssl_exports_the_four_functions() {
        let Some(p) = system_libssl() else {
            eprintln!("skipped: no libssl.so.3 on this host");
            return;
        };
        let offs = ssl_offsets(&p).unwrap();
        for s in ["SSL_write", "SSL_read", "SSL_write_ex", "SSL_read_ex"] {
            assert!(
                offs.iter().any(|(n, o)| *n == s && *o > 0),
                "{s} in {offs:?}"
            );
        }
    }

    #[test]
    fn link_names_round_trip_and_others_are_refused() {
        let n = link_name(0x803, 1234, "SSL_write_ex", "tls_ret_ex");
        assert_eq!(parse_link_name(&n), Some((0x803, 1234)));
        assert_eq!(parse_link_name("sys_exit"), None);
        assert_eq!(parse_link_name("tls_zz_1_a"), None);
        assert_eq!(parse_link_name("tls_1_2"), None);
    }

    #[test]
    fn a_file_without_the_symbols_has_no_offsets() {
        assert!(ssl_offsets(Path::new("/bin/sh")).unwrap().is_empty());
    }
}
