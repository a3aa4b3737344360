//! Process events: the fields of `process.exec` and `process.exit` (`process.fork` adds nothing
//! past the common process fields), and the exe markers shared with file events.

use agent_common::{
    EXE_DELETED, EXE_MEMFD, EXE_STDIN_INET, EXE_STDOUT_INET, EXE_WRITABLE_DIR, ExecRecord,
    ExitRecord,
};
use agent_model::decode::{Header, KPath};
use agent_model::{BStr, Event, Exit};

/// `process.exec`: effective ids, the file name as passed, exe markers. Returns the effective
/// ids when a setuid/setgid binary changed them, for the `priv.change` event that follows.
pub fn exec(
    ev: &mut Event,
    h: &Header,
    body: ExecRecord,
    filename: BStr,
    exe: &KPath,
) -> Option<(u32, u32)> {
    ev.process.euid = Some(body.euid);
    ev.process.egid = Some(body.egid);
    ev.process.filename = filename;
    let mut m = markers(body.markers);
    let base = exe
        .path
        .as_bytes()
        .rsplit(|b| *b == b'/')
        .next()
        .unwrap_or(&[]);
    if base.starts_with(b"ld-linux") || base.starts_with(b"ld-musl") || base == b"ld.so" {
        m.push("ld_loader".into());
    }
    ev.process.exec_markers = m;
    // A setuid/setgid binary changed the effective ids at exec (sudo, su, pkexec).
    (body.euid != h.uid || body.egid != h.gid).then_some((body.euid, body.egid))
}

/// `process.exit`: the exit code, or the signal that ended the process.
pub fn exit(ev: &mut Event, body: ExitRecord) {
    let code = body.exit_code;
    let sig = (code & 0x7f) as i32;
    ev.exit = Some(if sig == 0 {
        Exit {
            code: Some(((code >> 8) & 0xff) as i32),
            ..Default::default()
        }
    } else {
        Exit {
            signal: Some(sig),
            core_dumped: code & 0x80 != 0,
            ..Default::default()
        }
    });
}

/// Names of the exe markers (`EXE_*` bits) the kernel set.
pub fn markers(m: u32) -> Vec<String> {
    let mut v = Vec::new();
    if m & EXE_MEMFD != 0 {
        v.push("memfd".into());
    }
    if m & EXE_DELETED != 0 {
        v.push("deleted".into());
    }
    if m & EXE_WRITABLE_DIR != 0 {
        v.push("writable_dir".into());
    }
    if m & EXE_STDIN_INET != 0 {
        v.push("stdin_inet".into());
    }
    if m & EXE_STDOUT_INET != 0 {
        v.push("stdout_inet".into());
    }
    v
}
