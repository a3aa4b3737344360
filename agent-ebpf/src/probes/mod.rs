//! The eBPF programs, one file per probe family (kunai's `probes/`): each file holds the
//! programs of its family and the record builders that produce its records.
//!
//! `filter` is the `sys_exit` tracepoint every syscall passes through and the `Sys` argument
//! reader its tail-called handlers share; the handlers live with their family (`file`, `net`,
//! `privs`, `bpf`, `xattr`). `io_uring` reuses the builders of `file` and `net`, `signal` those of `privs`, and
//! `flow` the address reader of `net`; `tls` (uprobes on OpenSSL) uses only the shared builders; no family imports one that imports it back.

mod bpf;
mod egress;
mod file;
mod filter;
mod flow;
mod io_uring;
mod net;
mod privs;
mod process;
mod signal;
mod tls;
mod xattr;
