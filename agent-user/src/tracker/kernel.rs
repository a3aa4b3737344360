//! Privilege and kernel events from the syscall record: `priv.change`, `process.ptrace`,
//! `process.signal`, `kernel.bpf`, `fs.mount`, `process.namespace`, `process.memfd`,
//! `kernel.module`. The names of the numbers come from `agent_model::linux`.

use agent_common::{
    BPF_OWN, OBJ_LINK, OBJ_MAP, OBJ_PROG, RecordKind, SysRecord, TARGET_DAEMON,
    TARGET_OTHER_SESSION, TARGET_SAME_SESSION,
};
use agent_model::decode::Header;
use agent_model::linux::{
    BPF_PROG_LOAD, bpf_cmd_name, bpf_prog_type, memfd_flags, ns_file_name, ns_flags, ptrace_name,
    signal_name, syscall_name,
};
use agent_model::{BStr, Event, Op, Priv, Target};

use super::table::ProcTable;

/// The syscall record's fields, by kind; `procs` names the target of a ptrace or a signal.
pub fn sys(
    ev: &mut Event,
    h: &Header,
    body: SysRecord,
    name: BStr,
    name2: BStr,
    procs: &ProcTable,
) {
    let relation = |t: u32| -> String {
        if t & TARGET_DAEMON != 0 {
            "daemon"
        } else if t & TARGET_SAME_SESSION != 0 {
            "same_session"
        } else if t & TARGET_OTHER_SESSION != 0 {
            "other_session"
        } else {
            "outside"
        }
        .into()
    };
    let mut op = Op {
        name: syscall_name(body.op).into(),
        ..Default::default()
    };
    let obj = |b: BStr| (!b.is_empty()).then_some(b);
    match h.kind {
        RecordKind::PrivChange => {
            ev.r#priv = Some(Priv {
                op: syscall_name(body.op).into(),
                uid: body.arg0 as u32,
                euid: (body.arg0 >> 32) as u32,
                gid: body.arg1 as u32,
                egid: (body.arg1 >> 32) as u32,
                caps: Some(format!("{:x}", body.arg2)),
            });
        }
        RecordKind::Ptrace => {
            op.name = ptrace_name(body.op).into();
            ev.target = Some(target(procs, body.target_tgid, relation(body.target)));
            ev.op = Some(op);
        }
        RecordKind::Signal => {
            op.name = signal_name(body.op as i32);
            op.signal = Some(body.op as i32);
            op.result = Some(body.ret);
            ev.target = Some(target(procs, body.target_tgid, relation(body.target)));
            ev.op = Some(op);
        }
        RecordKind::Bpf => {
            op.name = bpf_cmd_name(body.op);
            op.r#type = match body.arg2 {
                _ if body.op == BPF_PROG_LOAD => Some(bpf_prog_type(body.arg0 as u32)),
                OBJ_PROG => Some("prog".into()),
                OBJ_MAP => Some("map".into()),
                OBJ_LINK => Some("link".into()),
                _ => None,
            };
            op.object_id = (body.arg1 != 0).then_some(body.arg1);
            if body.flags & BPF_OWN != 0 {
                ev.target = Some(target(procs, body.target_tgid, relation(body.target)));
            }
            let n: Vec<u8> = body
                .fstype
                .iter()
                .copied()
                .take_while(|b| *b != 0)
                .collect();
            op.object = obj(BStr(n));
            op.result = Some(body.ret);
            ev.op = Some(op);
        }
        RecordKind::Mount => {
            let t: Vec<u8> = body
                .fstype
                .iter()
                .copied()
                .take_while(|b| *b != 0)
                .collect();
            op.r#type = (!t.is_empty()).then(|| String::from_utf8_lossy(&t).into_owned());
            op.object = obj(name);
            op.target_path = obj(name2);
            ev.op = Some(op);
        }
        RecordKind::Namespace => {
            op.flags = ns_flags(body.arg0);
            // An nsfs file has no stored name: the kernel shows `uts:[inode]`.
            let name = if (name.is_empty() || name.as_bytes() == b"/") && body.arg1 != 0 {
                ns_file_name(body.arg0, body.arg1)
                    .map(BStr::from)
                    .unwrap_or(name)
            } else {
                name
            };
            op.object = obj(name);
            ev.op = Some(op);
        }
        RecordKind::Memfd => {
            op.flags = memfd_flags(body.arg0);
            op.object = obj(name);
            ev.op = Some(op);
        }
        RecordKind::Module => {
            // Attempts are reported too: the result says whether the kernel loaded it.
            op.object = obj(name);
            op.result = Some(body.ret);
            ev.op = Some(op);
        }
        _ => {
            op.object = obj(name);
            ev.op = Some(op);
        }
    }
}

/// The process a ptrace or a signal aims at: its exe from the table, else from /proc.
fn target(procs: &ProcTable, tgid: u32, relation: String) -> Target {
    let exe = procs
        .by_tgid(tgid)
        .map(|p| p.exe.clone())
        .filter(|e| !e.is_empty())
        .or_else(|| {
            std::fs::read_link(format!("/proc/{tgid}/exe"))
                .ok()
                .map(|p| BStr(p.as_os_str().as_encoded_bytes().to_vec()))
        })
        .unwrap_or_default();
    Target {
        pid: tgid,
        relation,
        exe,
    }
}
