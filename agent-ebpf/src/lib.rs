//! Host-side stub so that `agent-user` can name this crate as a build dependency; the programs
//! live in `main.rs` and its modules (`probes/`, one file per probe family), built for the bpf
//! target by aya-build.
#![no_std]
