//! agentwatch eBPF sensor.
//!
//! Tracepoint-family programs only (they load everywhere agentwatch runs; LSM and fentry may be
//! refused): sched tracepoints follow exec/fork/exit, the BTF `sys_exit` tracepoint reads the
//! kernel objects a syscall produced (the opened `struct file` through the fd table, the socket
//! behind a descriptor), `inet_sock_set_state` sees TCP connects and listens from any path, and
//! `io_uring_submit_req` with `io_uring_complete` cover io_uring-issued opens, connects,
//! accepts, path operations and UDP sends.
//!
//! Filtering happens here: every program first looks the current thread group up in `SESSIONS`
//! and returns at once when it is not part of an agent session. Sessions are inherited at fork,
//! so setsid, double fork and reparenting do not lose a descendant. Struct member offsets come
//! from BTF at load time through the `CONFIG` global; nothing is hard-coded for one kernel.
//! Records are assembled in a per-CPU scratch buffer and copied to the ring buffer; a failed
//! copy is counted per kind in `LOSS`, never dropped silently.
//!
//! Layout: `maps` holds every map and the `CONFIG` global; `read` the kernel and user memory
//! readers and path walks; `record` the scratch buffer, the header and the ring output;
//! `syscalls` and `abi` the ABI numbers; `probes` one file per probe family (kunai's shape), each
//! with its programs and the record builders of its family.
#![no_std]
#![no_main]
// `atomic_xadd` compiles to the BPF atomic add; core's AtomicU64 has no fetch_add on this target.
#![allow(internal_features)]
#![feature(core_intrinsics)]
// STYLE.md: every `unsafe` block says why it is sound.
#![deny(clippy::undocumented_unsafe_blocks)]

mod abi;
mod maps;
mod probes;
mod read;
mod record;
mod syscalls;

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 4] = *b"GPL\0";
