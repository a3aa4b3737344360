//! bpf() at syscall exit (`h_bpf`): every command, with the object it reached and whether that
//! object is agentwatch's own.
//!
//! The object is named by the command's attribute: an id (`*_GET_FD_BY_ID`, `*_GET_NEXT_ID`)
//! or a descriptor (map element operations, `OBJ_GET_INFO_BY_FD`, detach, link update, ...),
//! whose file is a bpf anon inode (`bpf-map`, `bpf-prog`, `bpf_link`) holding the object in
//! `private_data`. Its id is looked up in `OWN_IDS`, which the daemon filled with its own
//! programs, maps and links: a match marks the record `BPF_OWN`. Session processes are reported
//! for every command; processes outside sessions (the filter passes their bpf() calls here with
//! a zero session) only when they reach agentwatch's own objects.

use crate::{
    maps::{ERRORS, OWN_IDS, config, off},
    probes::{filter::Sys, privs::emit_sys},
    read::{file_of_fd, rd, rdp, read_user},
    record::bump,
};
use agent_common::{
    BPF_OWN, OBJ_LINK, OBJ_MAP, OBJ_PROG, RecordKind, SysRecord, TAMPER, TARGET_DAEMON,
};
use aya_ebpf::{macros::btf_tracepoint, programs::BtfTracePointContext};

// bpf() commands (UAPI `enum bpf_cmd`).
const MAP_LOOKUP_ELEM: u64 = 1;
const MAP_UPDATE_ELEM: u64 = 2;
const MAP_DELETE_ELEM: u64 = 3;
const MAP_GET_NEXT_KEY: u64 = 4;
const PROG_LOAD: u64 = 5;
const OBJ_PIN: u64 = 6;
const OBJ_GET: u64 = 7;
const PROG_ATTACH: u64 = 8;
const PROG_DETACH: u64 = 9;
const PROG_TEST_RUN: u64 = 10;
const PROG_GET_NEXT_ID: u64 = 11;
const MAP_GET_NEXT_ID: u64 = 12;
const PROG_GET_FD_BY_ID: u64 = 13;
const MAP_GET_FD_BY_ID: u64 = 14;
const OBJ_GET_INFO_BY_FD: u64 = 15;
const MAP_LOOKUP_AND_DELETE_ELEM: u64 = 21;
const MAP_FREEZE: u64 = 22;
const MAP_LOOKUP_BATCH: u64 = 24;
const MAP_DELETE_BATCH: u64 = 27;
const LINK_CREATE: u64 = 28;
const LINK_UPDATE: u64 = 29;
const LINK_GET_FD_BY_ID: u64 = 30;
const LINK_GET_NEXT_ID: u64 = 31;
const ITER_CREATE: u64 = 33;
const LINK_DETACH: u64 = 34;
const PROG_BIND_MAP: u64 = 35;

/// Where the object of a command is named.
enum Obj {
    None,
    /// An id of this `OBJ_*` type in the attribute's first word.
    Id(u64),
    /// The next id a `*_GET_NEXT_ID` returned (the attribute's second word).
    NextId(u64),
    /// A descriptor in the attribute at this byte offset.
    Fd(usize),
    /// The descriptor the command returned.
    Ret,
}

/// The `OBJ_*` type of a bpf descriptor's file, from the anon inode's name, and its object.
#[inline(always)]
fn bpf_object(fd: i64) -> Option<(u64, *const u8)> {
    let file = file_of_fd(fd).ok()?;
    let dentry = rdp(file, off!(file_path) + off!(path_dentry)).ok()?;
    let name = rdp(dentry, off!(dentry_name) + off!(qstr_name)).ok()?;
    let head: [u8; 8] = rd(name, 0).ok()?;
    let t = match &head {
        b"bpf-map\0" => OBJ_MAP,
        b"bpf-prog" => OBJ_PROG,
        // `bpf_link` for a link as created, `bpf-link` for one opened again (by id, or from a
        // pin with BPF_OBJ_GET: `bpf_link_new_fd`).
        b"bpf_link" | b"bpf-link" => OBJ_LINK,
        _ => return None,
    };
    Some((t, rdp(file, off!(file_private_data)).ok()?))
}

/// The id of a bpf object of type `t`.
#[inline(always)]
fn object_id(t: u64, obj: *const u8) -> u32 {
    match t {
        OBJ_MAP => rd(obj, off!(bpf_map_id)).unwrap_or(0),
        OBJ_LINK => rd(obj, off!(bpf_link_id)).unwrap_or(0),
        _ => {
            let aux = rdp(obj, off!(bpf_prog_aux)).unwrap_or(core::ptr::null());
            rd(aux, off!(bpf_prog_aux_id)).unwrap_or(0)
        }
    }
}

#[btf_tracepoint(function = "sys_exit")]
pub fn h_bpf(ctx: BtfTracePointContext) -> i32 {
    let Some(x) = Sys::load(&ctx) else { return 0 };
    let cmd = x.arg(0);
    let attr = x.arg(1) as *const u8;
    let outside = x.s.session_id == 0;
    let obj = match cmd {
        PROG_GET_FD_BY_ID => Obj::Id(OBJ_PROG),
        MAP_GET_FD_BY_ID => Obj::Id(OBJ_MAP),
        LINK_GET_FD_BY_ID => Obj::Id(OBJ_LINK),
        PROG_GET_NEXT_ID => Obj::NextId(OBJ_PROG),
        MAP_GET_NEXT_ID => Obj::NextId(OBJ_MAP),
        LINK_GET_NEXT_ID => Obj::NextId(OBJ_LINK),
        // map_fd (element operations, freeze), bpf_fd (info), link_fd (update, detach, iter),
        // prog_fd (test run, bind, link create), target_fd (attach, detach): the first word.
        MAP_LOOKUP_ELEM
        | MAP_UPDATE_ELEM
        | MAP_DELETE_ELEM
        | MAP_GET_NEXT_KEY
        | MAP_LOOKUP_AND_DELETE_ELEM
        | MAP_FREEZE
        | OBJ_GET_INFO_BY_FD
        | LINK_UPDATE
        | LINK_DETACH
        | ITER_CREATE
        | PROG_TEST_RUN
        | PROG_BIND_MAP
        | LINK_CREATE => Obj::Fd(0),
        // attach_bpf_fd: the program attached or detached.
        PROG_ATTACH | PROG_DETACH => Obj::Fd(4),
        OBJ_PIN => Obj::Fd(8),
        // The batch operations: `batch.map_fd` follows four pointers and a count.
        MAP_LOOKUP_BATCH..=MAP_DELETE_BATCH => Obj::Fd(36),
        OBJ_GET => Obj::Ret,
        _ => Obj::None,
    };
    let (t, id) = match obj {
        Obj::Id(t) => (t, read_user::<u32>(attr, 0)),
        Obj::NextId(t) if x.ret == 0 => (t, read_user::<u32>(attr, 4)),
        Obj::NextId(t) => (t, read_user::<u32>(attr, 0)),
        Obj::Fd(at) => {
            let fd = read_user::<u32>(attr, at & 63) as i32 as i64;
            match bpf_object(fd) {
                Some((t, o)) => (t, object_id(t, o)),
                None => (0, 0),
            }
        }
        Obj::Ret if x.ret >= 0 => match bpf_object(x.ret) {
            Some((t, o)) => (t, object_id(t, o)),
            None => (0, 0),
        },
        _ => (0, 0),
    };
    // SAFETY: the value is only tested for presence.
    let own = t != 0 && id != 0 && unsafe { OWN_IDS.get(t << 32 | id as u64) }.is_some();
    if outside && !own {
        return 0;
    }
    let mut b = SysRecord {
        op: cmd as u32,
        ret: x.ret,
        arg1: id as u64,
        arg2: t,
        ..SysRecord::default()
    };
    if own {
        b.flags |= BPF_OWN;
        b.target = TARGET_DAEMON;
        b.target_tgid = config!(daemon_tgid);
    }
    if outside {
        b.flags |= TAMPER;
    }
    if cmd == PROG_LOAD {
        // bpf_attr: prog_type @0, prog_name @48.
        b.arg0 = read_user::<u32>(attr, 0) as u64;
        b.fstype = read_user(attr, 48);
    }
    if emit_sys(&x.s, RecordKind::Bpf, b, 0, 0, -1).is_err() {
        bump(&ERRORS, RecordKind::Bpf);
    }
    0
}
