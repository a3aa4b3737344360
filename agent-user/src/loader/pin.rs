//! Pinning: the sensor outlives its daemon.
//!
//! Every map of the eBPF object and every attached link is pinned in bpffs under
//! `<bpffs>/agentwatch/<hash of the canonical data dir>/` (one directory per daemon instance,
//! since tests run several at once). A daemon killed with SIGKILL leaves them: the programs keep
//! running, sessions keep being tracked in `SESSIONS`, records wait in the pinned ring. The next
//! daemon on the same data dir finds the pins and adopts them: the loader reuses the pinned maps
//! (`EbpfLoader::map_pin_path`), this module drains what the ring buffered while no daemon ran,
//! the fresh programs are attached before the old links are unpinned (no blind window), and the
//! downtime and the counts go into `monitor.start`. A clean stop removes the directory, which
//! detaches everything. Kept apart from `loader` so attaching stays one list of programs.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result, bail};

/// Where bpffs is mounted when the host has none.
const DEFAULT_BPFFS: &str = "/sys/fs/bpf";

/// The pin directory of one daemon instance.
#[derive(Debug, Clone)]
pub struct PinDir {
    pub dir: PathBuf,
    /// The directory held pins of an earlier daemon when this one started.
    pub adopting: bool,
}

/// FNV-1a, 64 bits, of the canonical data dir: the directory name (the test helpers compute
/// the same to clean up after a daemon they killed).
pub fn data_dir_hash(data_dir: &Path) -> String {
    use std::os::unix::ffi::OsStrExt as _;
    let canon = std::fs::canonicalize(data_dir).unwrap_or_else(|_| data_dir.to_path_buf());
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in canon.as_os_str().as_bytes() {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{h:016x}")
}

/// The mount point of a bpf filesystem, from `/proc/self/mountinfo`.
fn find_bpffs() -> Option<PathBuf> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    info.lines().find_map(|l| {
        let (left, right) = l.split_once(" - ")?;
        if right.split(' ').next()? != "bpf" {
            return None;
        }
        Some(PathBuf::from(left.split(' ').nth(4)?))
    })
}

/// The bpffs mount, mounted at `/sys/fs/bpf` if there is none.
pub fn bpffs() -> Result<PathBuf> {
    if let Some(p) = find_bpffs() {
        return Ok(p);
    }
    std::fs::create_dir_all(DEFAULT_BPFFS)
        .with_context(|| format!("cannot create `{DEFAULT_BPFFS}`"))?;
    let c = |s: &str| std::ffi::CString::new(s).expect("no NUL");
    let (src, target, fstype) = (c("bpffs"), c(DEFAULT_BPFFS), c("bpf"));
    // SAFETY: the strings are NUL-terminated and alive for the call; no data argument.
    let r = unsafe {
        libc::mount(
            src.as_ptr(),
            target.as_ptr(),
            fstype.as_ptr(),
            0,
            std::ptr::null(),
        )
    };
    if r != 0 {
        let e = std::io::Error::last_os_error();
        // Another daemon may have mounted it meanwhile.
        if let Some(p) = find_bpffs() {
            return Ok(p);
        }
        bail!("cannot mount bpffs at `{DEFAULT_BPFFS}`: {e}");
    }
    Ok(PathBuf::from(DEFAULT_BPFFS))
}

impl PinDir {
    /// The pin directory for `data_dir`, created if missing.
    pub fn for_data_dir(data_dir: &Path) -> Result<PinDir> {
        let dir = bpffs()?.join("agentwatch").join(data_dir_hash(data_dir));
        let adopting = dir.join(agent_common::MAP_SESSIONS).exists();
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create pin directory `{}`", dir.display()))?;
        Ok(PinDir { dir, adopting })
    }

    /// The pid of a daemon that pinned these maps and still runs (another daemon on the same
    /// data dir): adopting its pins would blind it.
    pub fn live_owner(&self) -> Option<u32> {
        let m = aya::maps::MapData::from_pin(self.map(agent_common::MAP_GUARD)).ok()?;
        let g: aya::maps::Array<_, u64> =
            aya::maps::Array::try_from(aya::maps::Map::Array(m)).ok()?;
        let pid = u32::try_from(g.get(&agent_common::GUARD_DAEMON_TGID, 0).ok()?).ok()?;
        if pid == 0 || pid == std::process::id() {
            return None;
        }
        let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).ok()?;
        (comm.trim_end() == "agentwatch").then_some(pid)
    }

    /// Tell the pinned programs, before anything else, that this daemon's bpf() calls are its
    /// own (`GUARD_DAEMON_TGID`); answers the previous daemon's last heartbeat (0: none).
    pub fn announce(&self) -> Result<u64> {
        let m = aya::maps::MapData::from_pin(self.map(agent_common::MAP_GUARD))
            .context("cannot open the pinned `GUARD` map")?;
        let mut g: aya::maps::Array<_, u64> = aya::maps::Array::try_from(aya::maps::Map::Array(m))?;
        let beat = g.get(&agent_common::GUARD_HEARTBEAT, 0).unwrap_or(0);
        g.set(
            agent_common::GUARD_DAEMON_TGID,
            u64::from(std::process::id()),
            0,
        )?;
        Ok(beat)
    }

    /// The pin path of map `name`.
    pub fn map(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    fn link(&self, name: &str) -> PathBuf {
        self.dir.join(format!("link_{name}"))
    }

    /// Pin the link of program `name`, replacing an earlier daemon's: the new link is attached
    /// already, so unpinning the old one (which detaches its program) leaves no gap.
    pub fn pin_link(&self, name: &str, link: aya::programs::links::FdLink) -> Result<()> {
        let path = self.link(name);
        let _ = std::fs::remove_file(&path);
        link.pin(&path)
            .with_context(|| format!("cannot pin link `{}`", path.display()))?;
        Ok(())
    }

    /// Remove every pin: the programs detach once the daemon's own handles close.
    pub fn remove(&self) {
        Self::remove_dir(&self.dir);
    }

    /// [`PinDir::remove`] by path.
    pub fn remove_dir(dir: &Path) {
        let _ = std::fs::remove_dir_all(dir);
    }

    /// Unpin links of programs this daemon did not attach (an earlier version's, or egress no
    /// longer configured). TLS uprobe links (`tls_*`) are kept: they are adopted.
    pub fn drop_stale_links(&self, attached: &[&str]) {
        for (name, path) in self.links() {
            if !name.starts_with("tls_") && !attached.contains(&name.as_str()) {
                tracing::info!(link = %name, "unpinned the link of a program this daemon does not attach");
                let _ = std::fs::remove_file(path);
            }
        }
    }

    /// The pinned links: (name without the `link_` prefix, pin path).
    pub fn links(&self) -> Vec<(String, PathBuf)> {
        std::fs::read_dir(&self.dir)
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                Some((name.strip_prefix("link_")?.to_owned(), e.path()))
            })
            .collect()
    }
}

/// The names of every map of an eBPF object (sections such as `.rodata` excluded).
pub fn map_names(object: &[u8]) -> Result<Vec<String>> {
    let obj = aya_obj::Object::parse(object).context("cannot parse the eBPF object")?;
    Ok(obj
        .maps
        .keys()
        .filter(|n| !n.starts_with('.'))
        .cloned()
        .collect())
}

/// What an adopting daemon found in the pinned ring.
#[derive(Debug, Default, Clone)]
pub struct Adopted {
    /// Time since the previous daemon's last heartbeat, in ns.
    pub downtime_ns: u64,
    /// Records the ring held when this daemon took it over (drained first), with their ring
    /// positions.
    pub backlog: Vec<(u64, Vec<u8>)>,
    /// Bytes the ring held then.
    pub buffered_bytes: u64,
    /// Records the kernel dropped (ring full) since the previous daemon's last tick.
    pub lost: u64,
}

/// Read the records an adopted ring held (`pending` bytes): what the sensor buffered while no
/// daemon ran, each with its ring position. Nothing is committed: the records stay in the ring
/// until the store holds their events.
pub fn drain(ring: &mut super::ring::Ring, pending: u64) -> Vec<(u64, Vec<u8>)> {
    let end = ring.read_pos().saturating_add(pending);
    let mut backlog = Vec::new();
    while ring.read_pos() < end {
        let Some((pos, item)) = ring.next_record() else {
            break;
        };
        backlog.push((pos, item.to_vec()));
    }
    backlog
}

/// `CLOCK_MONOTONIC` in ns: the clock of `bpf_ktime_get_ns`.
pub fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// Remove every entry of hash map `name` (an adopted map still holds the earlier daemon's),
/// whatever its key type: `BPF_MAP_GET_NEXT_KEY` from no key, then `BPF_MAP_DELETE_ELEM`.
pub(crate) fn clear_hash(ebpf: &mut aya::Ebpf, name: &str) {
    use std::os::fd::{AsFd as _, AsRawFd as _};
    let Some(aya::maps::Map::HashMap(m)) = ebpf.map(name) else {
        return;
    };
    let fd = m.fd().as_fd().as_raw_fd() as u32;
    #[repr(C)]
    struct Attr {
        map_fd: u32,
        pad: u32,
        key: u64,
        next: u64,
        flags: u64,
    }
    let mut next = [0u8; 256];
    for _ in 0..100_000 {
        let attr = Attr {
            map_fd: fd,
            pad: 0,
            key: 0,
            next: next.as_mut_ptr() as u64,
            flags: 0,
        };
        // SAFETY: BPF_MAP_GET_NEXT_KEY (4) with no key writes the first key (at most the map's
        // key size, under 256 bytes) into `next`; both alive for the call.
        let r = unsafe {
            libc::syscall(
                libc::SYS_bpf,
                4,
                &attr as *const Attr,
                std::mem::size_of::<Attr>(),
            )
        };
        if r != 0 {
            return;
        }
        let del = Attr {
            map_fd: fd,
            pad: 0,
            key: next.as_ptr() as u64,
            next: 0,
            flags: 0,
        };
        // SAFETY: BPF_MAP_DELETE_ELEM (3) reads the key from `next`, alive for the call.
        let r = unsafe {
            libc::syscall(
                libc::SYS_bpf,
                3,
                &del as *const Attr,
                std::mem::size_of::<Attr>(),
            )
        };
        if r != 0 {
            return;
        }
    }
}

/// How long the daemon's loop may make no progress before the heartbeat stops: a hung daemon
/// is a gone daemon for fail-closed, a loop busy with one slow fsync is not.
pub const STALL_LIMIT_NS: u64 = 30_000_000_000;

/// Write the fail-closed heartbeat (`GUARD_HEARTBEAT`) from a thread of its own every 100 ms,
/// while the daemon's loop ticked (`progress`, monotonic ns) within `STALL_LIMIT_NS`. A loop that
/// blocks for a few seconds on the store would otherwise look like a dead daemon to the kernel's
/// fail-closed check and to the next daemon's downtime. The thread ends with the process.
pub fn spawn_heartbeat(
    guard: std::os::fd::OwnedFd,
    progress: std::sync::Arc<std::sync::atomic::AtomicU64>,
) -> Result<()> {
    use std::sync::atomic::Ordering;
    let map = aya::maps::MapData::from_fd(guard).context("cannot reopen the GUARD map")?;
    let mut guard: aya::maps::Array<aya::maps::MapData, u64> =
        aya::maps::Array::try_from(aya::maps::Map::Array(map))
            .context("the GUARD map is not an array")?;
    std::thread::Builder::new()
        .name("heartbeat".into())
        .spawn(move || {
            loop {
                let now = monotonic_ns();
                if now.saturating_sub(progress.load(Ordering::Relaxed)) < STALL_LIMIT_NS {
                    let _ = guard.set(agent_common::GUARD_HEARTBEAT, now, 0);
                }
                std::thread::sleep(std::time::Duration::from_millis(100));
            }
        })
        .context("cannot start the heartbeat thread")?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_is_stable_and_distinct() {
        assert_eq!(
            data_dir_hash(Path::new("/nonexistent/a")),
            data_dir_hash(Path::new("/nonexistent/a"))
        );
        assert_ne!(
            data_dir_hash(Path::new("/nonexistent/a")),
            data_dir_hash(Path::new("/nonexistent/b"))
        );
        assert_eq!(data_dir_hash(Path::new("/nonexistent/a")).len(), 16);
    }
}
