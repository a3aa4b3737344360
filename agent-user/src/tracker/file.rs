//! File events: `file.open` from an open record, and the path operations (unlink, rename,
//! chmod, chown, link, symlink, mkdir, truncate, write, exec mappings, extended attributes) from
//! a path record.

use agent_common::{
    ATIME_NOW, ATIME_OMIT, FD_OP, MTIME_NOW, MTIME_OMIT, OPEN_DAEMON, OpenRecord, PathOpRecord,
    RecordKind, VIA_IO_URING,
};
use agent_model::decode::{Header, KPath};
use agent_model::linux::{file_caps, file_type, open_flag_names, user_dev, xattr_syscall};
use agent_model::{BStr, Event, File, Op, Timestamp};

use super::process::markers;

/// `file.via` of a file record: how the agent asked for the operation.
fn file_via(flags: u32) -> Option<String> {
    Some(
        if flags & VIA_IO_URING != 0 {
            "io_uring"
        } else {
            "syscall"
        }
        .into(),
    )
}

/// `FMODE_CREATED` in `file.f_mode` (`include/linux/fs.h`, since 4.19): the open created the
/// file. A macro, not in BTF; the corpus test checks it on the running kernel (a file the session
/// creates and reads back raises no secret-read alert, only through this marker).
const FMODE_CREATED: u32 = 1 << 20;

/// `file.open`.
pub fn open(ev: &mut Event, body: OpenRecord, path: KPath) {
    // The kernel keeps neither the creation flags nor O_CLOEXEC (an fd flag) in f_flags.
    let flags = body.f_flags | (body.req_flags & (0o100 | 0o200 | 0o400 | 0o1000 | 0o2000000));
    ev.file = Some(File {
        path: path.path,
        path_truncated: path.truncated,
        dev: Some(user_dev(body.dev)),
        ino: Some(body.ino),
        access: Some(
            match flags & 3 {
                0 => "read",
                1 => "write",
                _ => "read_write",
            }
            .into(),
        ),
        flags: open_flag_names(flags),
        r#type: file_type(body.i_mode),
        mode: Some(body.i_mode & 0o7777),
        fd: Some(body.fd),
        via: file_via(body.flags),
        markers: if body.f_mode & FMODE_CREATED != 0 {
            vec!["created".into()]
        } else {
            Vec::new()
        },
        ..Default::default()
    });
    if body.flags & OPEN_DAEMON != 0 {
        // The kernel judged the file the daemon's (see agent-ebpf `daemon_file`).
        ev.target = Some(agent_model::Target {
            pid: std::process::id(),
            relation: "daemon".into(),
            exe: std::env::current_exe()
                .map(|p| BStr(p.into_os_string().into_encoded_bytes()))
                .unwrap_or_default(),
        });
    }
}

/// The path operations: one record shape, the kind says which fields apply.
pub fn path_op(
    ev: &mut Event,
    h: &Header,
    body: PathOpRecord,
    dir: KPath,
    name: BStr,
    dir2: KPath,
    name2: BStr,
) {
    let fd_op = body.flags & FD_OP != 0;
    let path = if fd_op {
        dir.path.clone()
    } else {
        dir.resolve(&name, body.name_skip)
    };
    // Names that started with a magic link the kernel resolved stay as passed.
    let path_arg = (body.name_skip != 0).then(|| name.clone());
    let (target, target_arg) = match h.kind {
        RecordKind::Rename | RecordKind::Link => (
            Some(dir2.resolve(&name2, body.name2_skip)),
            (body.name2_skip != 0).then(|| name2.clone()),
        ),
        RecordKind::Symlink => (Some(name2.clone()), None),
        _ => (None, None),
    };
    let mut f = File {
        path,
        target,
        path_arg,
        target_arg,
        path_truncated: dir.truncated,
        via: file_via(body.flags),
        ..Default::default()
    };
    if fd_op {
        f.ino = Some(body.ino);
        f.markers = markers((body.flags >> 8) & 0xff);
    }
    match h.kind {
        RecordKind::Chmod | RecordKind::Mkdir => f.mode = Some(body.arg0 as u32 & 0o7777),
        RecordKind::Chown => {
            f.owner_uid = (body.arg0 as u32 != u32::MAX).then_some(body.arg0 as u32);
            f.owner_gid = (body.arg1 as u32 != u32::MAX).then_some(body.arg1 as u32);
        }
        RecordKind::Truncate | RecordKind::Write => f.size = Some(body.arg0),
        RecordKind::Utime => {
            let time = |t: u64, now: u32, omit: u32| -> String {
                if body.flags & now != 0 {
                    "now".into()
                } else if body.flags & omit != 0 {
                    "omit".into()
                } else {
                    Timestamp(t as i64).to_rfc3339()
                }
            };
            f.atime = Some(time(body.arg0, ATIME_NOW, ATIME_OMIT));
            f.mtime = Some(time(body.arg1, MTIME_NOW, MTIME_OMIT));
        }
        RecordKind::Xattr => {
            f.size = Some(body.arg0 & 0xffff_ffff);
            let caps = if name2.0 == b"security.capability" {
                file_caps(body.arg1, (body.arg0 >> 32) as u32)
            } else {
                Vec::new()
            };
            ev.op = Some(Op {
                name: xattr_syscall((body.op_flags >> 8) & 0xf).into(),
                object: Some(name2),
                flags: caps,
                ..Default::default()
            });
        }
        _ => {}
    }
    ev.file = Some(f);
}
