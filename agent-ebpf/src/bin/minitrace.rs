//! A minimal ring-buffer open tracer, used only by `cargo xtask bench sensor` as the yardstick
//! the sensor is compared against (issue: "≥ 0.8× a minimal ring-buffer tracer").
//!
//! `mini_openat` is what a hand-written opensnoop does: on `syscalls:sys_enter_openat`, keep
//! processes whose comm equals `TARGET_COMM`, and put pid, tgid, time, comm and the path string
//! from the syscall argument into a ring buffer. `empty_sys_exit` does nothing at all on the raw
//! `sys_exit` tracepoint: attached alone, it measures the cost of the hook family itself (the
//! syscall slow path it forces on every task), which is the floor for any syscall-exit sensor.
//! Neither is part of the product.
#![no_std]
#![no_main]

use aya_ebpf::{
    helpers::{
        bpf_get_current_comm, bpf_get_current_pid_tgid, bpf_ktime_get_boot_ns,
        bpf_probe_read_user_str_bytes,
    },
    macros::{map, raw_tracepoint, tracepoint},
    maps::RingBuf,
    programs::{RawTracePointContext, TracePointContext},
};

/// The comm to trace (set by the loader).
#[unsafe(no_mangle)]
static TARGET_COMM: [u8; 16] = [0; 16];
/// Offset of `filename` in the tracepoint record (the loader reads it from the format file).
#[unsafe(no_mangle)]
static FILENAME_OFF: u64 = 24;

#[map(name = "MINI_EVENTS")]
static MINI_EVENTS: RingBuf = RingBuf::with_byte_size(8 * 1024 * 1024, 0);

/// One open, as the bench's reader decodes it.
#[repr(C)]
pub struct MiniOpen {
    pub ts: u64,
    pub pid: u32,
    pub tgid: u32,
    pub comm: [u8; 16],
    pub path: [u8; 256],
}

#[tracepoint(category = "syscalls", name = "sys_enter_openat")]
pub fn mini_openat(ctx: TracePointContext) -> u32 {
    let Ok(comm) = bpf_get_current_comm() else {
        return 0;
    };
    // SAFETY: read-only globals set before load.
    let (want, off) = unsafe {
        (
            core::ptr::read_volatile(&TARGET_COMM),
            core::ptr::read_volatile(&FILENAME_OFF),
        )
    };
    if comm != want {
        return 0;
    }
    // SAFETY: the offset comes from the tracepoint's format file; a bad read yields an error.
    let Ok(filename) = (unsafe { ctx.read_at::<u64>((off & 0xff) as usize) }) else {
        return 0;
    };
    let Some(mut e) = MINI_EVENTS.reserve::<MiniOpen>(0) else {
        return 0;
    };
    let ptr = e.as_mut_ptr();
    let id = bpf_get_current_pid_tgid();
    // SAFETY: `ptr` is a reserved, exclusively owned ring-buffer slot of the right size.
    unsafe {
        (*ptr).ts = bpf_ktime_get_boot_ns();
        (*ptr).pid = id as u32;
        (*ptr).tgid = (id >> 32) as u32;
        (*ptr).comm = comm;
        if bpf_probe_read_user_str_bytes(filename as *const u8, &mut (*ptr).path).is_err() {
            (*ptr).path[0] = 0;
        }
    }
    e.submit(0);
    0
}

#[raw_tracepoint(tracepoint = "sys_exit")]
pub fn empty_sys_exit(_ctx: RawTracePointContext) -> i32 {
    0
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 4] = *b"GPL\0";
