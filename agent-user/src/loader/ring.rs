//! The ring buffer consumer, with the consumer position written only when told.
//!
//! aya's `RingBuf` gives the kernel a record's space back as soon as the item is dropped, so a
//! daemon killed between reading a record and making its events durable loses it. This
//! consumer reads records from a local position instead and moves the kernel's consumer
//! position only in [`Ring::commit`], which the sensor thread calls once the store reports the
//! records' events durable: a `kill -9` leaves every record the store does not hold in the
//! (pinned) ring, and the next daemon reads them again. A record is named by its position,
//! which only grows over the ring's life (it survives the daemon with the pinned map), so the
//! next daemon can tell records it re-reads from new ones. The layout is the kernel's
//! (`kernel/bpf/ringbuf.c`, read as libbpf's `ringbuf.c` does): a consumer page mapped read and
//! write, then the producer page and the data pages, mapped read-only, the data twice in a row
//! so a record that wraps reads as one slice.

use std::os::fd::{AsFd as _, AsRawFd as _, RawFd};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use anyhow::{Result, anyhow};
use aya::maps::MapData;

/// The kernel's record header: length with these two flag bits, then the page offset.
const BUSY_BIT: u32 = 1 << 31;
const DISCARD_BIT: u32 = 1 << 30;
const HDR_SZ: u64 = 8;

/// One mapping, unmapped on drop.
struct Mapping {
    ptr: *mut libc::c_void,
    len: usize,
}

impl Mapping {
    fn new(fd: RawFd, len: usize, prot: libc::c_int, offset: usize) -> Result<Mapping> {
        // SAFETY: a fresh shared mapping of the map's fd; the kernel checks length and offset.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                prot,
                libc::MAP_SHARED,
                fd,
                offset as libc::off_t,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(anyhow!(std::io::Error::last_os_error()).context(format!(
                "mapping the ring buffer ({len} bytes at {offset}) failed"
            )));
        }
        Ok(Mapping { ptr, len })
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly what `new` mapped.
        unsafe { libc::munmap(self.ptr, self.len) };
    }
}

/// A ring buffer map read from a local position, committed on acknowledgement.
pub struct Ring {
    map: MapData,
    consumer: Mapping,
    producer: Mapping,
    page: usize,
    mask: u64,
    /// Where the next record is read.
    read: u64,
    /// The consumer position last written to the kernel.
    committed: u64,
}

// SAFETY: the mappings are owned by this value and only touched through `&mut self` (or read
// atomically through `&self`); moving it to the sensor thread is what it is made for.
unsafe impl Send for Ring {}

impl Ring {
    /// Map `map` (a `BPF_MAP_TYPE_RINGBUF`) and start reading at its consumer position.
    pub fn new(map: MapData) -> Result<Ring> {
        // SAFETY: sysconf has no preconditions.
        let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as usize;
        let size = map.info()?.max_entries() as usize;
        if !size.is_power_of_two() || size < page {
            return Err(anyhow!(
                "ring buffer size `{size}` is not a power of two pages"
            ));
        }
        let fd = map.fd().as_fd().as_raw_fd();
        let consumer = Mapping::new(fd, page, libc::PROT_READ | libc::PROT_WRITE, 0)?;
        let producer = Mapping::new(fd, page + 2 * size, libc::PROT_READ, page)?;
        let mut ring = Ring {
            map,
            consumer,
            producer,
            page,
            mask: size as u64 - 1,
            read: 0,
            committed: 0,
        };
        ring.committed = ring.consumer_word().load(Ordering::Acquire);
        ring.read = ring.committed;
        Ok(ring)
    }

    fn consumer_word(&self) -> &AtomicU64 {
        // SAFETY: the consumer page is mapped, page aligned, and starts with the kernel's u64
        // consumer position, which only this process writes.
        unsafe { &*(self.consumer.ptr as *const AtomicU64) }
    }

    /// The kernel's producer position (bytes ever reserved).
    pub fn producer_pos(&self) -> u64 {
        // SAFETY: the producer page is mapped and starts with the kernel's u64 position.
        unsafe { &*(self.producer.ptr as *const AtomicU64) }.load(Ordering::Acquire)
    }

    /// Where the next record will be read.
    pub fn read_pos(&self) -> u64 {
        self.read
    }

    /// The consumer position the kernel has (everything before it may be overwritten).
    pub fn committed(&self) -> u64 {
        self.committed
    }

    /// Records read and not yet committed.
    pub fn unacked(&self) -> bool {
        self.read > self.committed
    }

    /// The next record and its position, or `None` when none is complete. The slice stays
    /// valid until the position is committed (the kernel does not reuse uncommitted space).
    pub fn next_record(&mut self) -> Option<(u64, &[u8])> {
        loop {
            if self.read >= self.producer_pos() {
                return None;
            }
            let off = (self.read & self.mask) as usize;
            // SAFETY: `off` is within the first copy of the data pages (masked), and a header is
            // 8-byte aligned; the kernel writes the length word atomically.
            let hdr = unsafe {
                &*((self.producer.ptr as *const u8).add(self.page + off) as *const AtomicU32)
            }
            .load(Ordering::Acquire);
            if hdr & BUSY_BIT != 0 {
                return None;
            }
            let len = u64::from(hdr & !(BUSY_BIT | DISCARD_BIT));
            let pos = self.read;
            let total = (len + HDR_SZ).div_ceil(8) * 8;
            if len > self.mask {
                // Not a header the kernel wrote: stop rather than read past the data.
                tracing::error!(pos, len, "corrupt ring buffer record header");
                return None;
            }
            self.read += total;
            if hdr & DISCARD_BIT != 0 {
                continue;
            }
            let start = self.page + off + HDR_SZ as usize;
            // SAFETY: the data pages are mapped twice in a row, so `len` (< the ring size) bytes
            // from any offset in the first copy are mapped; the record is complete (not busy)
            // and its space is not reused before it is committed.
            let data = unsafe {
                std::slice::from_raw_parts(
                    (self.producer.ptr as *const u8).add(start),
                    len as usize,
                )
            };
            return Some((pos, data));
        }
    }

    /// Give the kernel back the space before `pos` (a record boundary already read).
    pub fn commit(&mut self, pos: u64) {
        let pos = pos.min(self.read);
        if pos > self.committed {
            self.consumer_word().store(pos, Ordering::Release);
            std::sync::atomic::fence(Ordering::SeqCst);
            self.committed = pos;
        }
    }

    /// The map's fd, for `poll`.
    pub fn as_raw_fd(&self) -> RawFd {
        self.map.fd().as_fd().as_raw_fd()
    }

    /// The ring's kernel map id (stable while the map, pinned, outlives daemons).
    pub fn map_id(&self) -> u32 {
        self.map.info().map(|i| i.id()).unwrap_or(0)
    }
}
