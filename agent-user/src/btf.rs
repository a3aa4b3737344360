//! Minimal reader of the kernel's BTF (`/sys/kernel/btf/vmlinux`) that resolves struct member
//! offsets by name, so the eBPF programs never carry offsets compiled for one kernel.
//!
//! Only what offset resolution needs is parsed: type kinds and their member lists. Members inside
//! anonymous structs and unions are found through them, as C code names them.

use std::collections::HashMap;

use agent_common::Offsets;
use anyhow::{Context as _, Result, anyhow, bail};

const KIND_STRUCT: u32 = 4;
const KIND_UNION: u32 = 5;
const KIND_TYPEDEF: u32 = 8;
const KIND_VOLATILE: u32 = 9;
const KIND_CONST: u32 = 10;
const KIND_RESTRICT: u32 = 11;
const KIND_TYPE_TAG: u32 = 18;

#[derive(Clone, Debug)]
struct Member {
    name: u32,
    ty: u32,
    bit_offset: u32,
}

#[derive(Clone, Debug)]
struct Type {
    name: u32,
    kind: u32,
    /// size, or referenced type for modifiers and typedefs
    size_or_type: u32,
    members: Vec<Member>,
}

/// Parsed BTF types and strings.
pub struct Btf {
    types: Vec<Type>,
    strings: Vec<u8>,
    by_name: HashMap<String, Vec<u32>>,
}

fn u32_at(b: &[u8], at: usize) -> Result<u32> {
    b.get(at..at + 4)
        .map(|s| u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
        .ok_or_else(|| anyhow!("btf truncated at byte {at}"))
}

impl Btf {
    /// Parse the running kernel's BTF.
    pub fn from_sys() -> Result<Btf> {
        let path = "/sys/kernel/btf/vmlinux";
        let data = std::fs::read(path).with_context(|| {
            format!("cannot read `{path}`: the kernel needs CONFIG_DEBUG_INFO_BTF=y")
        })?;
        Btf::parse(&data).with_context(|| format!("cannot parse `{path}`"))
    }

    pub fn parse(data: &[u8]) -> Result<Btf> {
        let magic = u16::from_le_bytes([data[0], data[1]]);
        if magic != 0xeb9f {
            bail!("bad BTF magic `{magic:#x}` (only little-endian BTF is supported)");
        }
        let hdr_len = u32_at(data, 4)? as usize;
        let type_off = u32_at(data, 8)? as usize;
        let type_len = u32_at(data, 12)? as usize;
        let str_off = u32_at(data, 16)? as usize;
        let str_len = u32_at(data, 20)? as usize;
        let tstart = hdr_len + type_off;
        let tdata = data
            .get(tstart..tstart + type_len)
            .ok_or_else(|| anyhow!("type section out of bounds"))?;
        let sstart = hdr_len + str_off;
        let strings = data
            .get(sstart..sstart + str_len)
            .ok_or_else(|| anyhow!("string section out of bounds"))?
            .to_vec();
        // Type id 0 is `void`.
        let mut types = vec![Type {
            name: 0,
            kind: 0,
            size_or_type: 0,
            members: vec![],
        }];
        let mut at = 0usize;
        while at + 12 <= tdata.len() {
            let name = u32_at(tdata, at)?;
            let info = u32_at(tdata, at + 4)?;
            let size_or_type = u32_at(tdata, at + 8)?;
            at += 12;
            let vlen = (info & 0xffff) as usize;
            let kind = (info >> 24) & 0x1f;
            let kind_flag = info >> 31 == 1;
            let mut members = Vec::new();
            match kind {
                1 => at += 4,  // INT
                3 => at += 12, // ARRAY
                KIND_STRUCT | KIND_UNION => {
                    for i in 0..vlen {
                        let m = at + i * 12;
                        let off = u32_at(tdata, m + 8)?;
                        members.push(Member {
                            name: u32_at(tdata, m)?,
                            ty: u32_at(tdata, m + 4)?,
                            bit_offset: if kind_flag { off & 0xff_ffff } else { off },
                        });
                    }
                    at += vlen * 12;
                }
                6 => at += vlen * 8,   // ENUM
                13 => at += vlen * 8,  // FUNC_PROTO
                14 => at += 4,         // VAR
                15 => at += vlen * 12, // DATASEC
                17 => at += 4,         // DECL_TAG
                19 => at += vlen * 12, // ENUM64
                _ => {}                // PTR, FWD, modifiers, FUNC, FLOAT, TYPE_TAG
            }
            types.push(Type {
                name,
                kind,
                size_or_type,
                members,
            });
        }
        let mut btf = Btf {
            types,
            strings,
            by_name: HashMap::new(),
        };
        for (id, t) in btf.types.iter().enumerate() {
            if (t.kind == KIND_STRUCT || t.kind == KIND_UNION) && t.name != 0 {
                let n = btf.str(t.name).to_owned();
                btf.by_name.entry(n).or_default().push(id as u32);
            }
        }
        Ok(btf)
    }

    fn str(&self, off: u32) -> &str {
        let s = self.strings.get(off as usize..).unwrap_or(&[]);
        let end = s.iter().position(|b| *b == 0).unwrap_or(s.len());
        std::str::from_utf8(&s[..end]).unwrap_or("")
    }

    /// Follow typedefs and qualifiers.
    fn resolve(&self, mut id: u32) -> u32 {
        for _ in 0..32 {
            let Some(t) = self.types.get(id as usize) else {
                return id;
            };
            match t.kind {
                KIND_TYPEDEF | KIND_VOLATILE | KIND_CONST | KIND_RESTRICT | KIND_TYPE_TAG => {
                    id = t.size_or_type
                }
                _ => return id,
            }
        }
        id
    }

    /// Bit offset of `name` inside type `id`, looking through anonymous members.
    fn find_member(&self, id: u32, name: &str) -> Option<(u32, u32)> {
        let t = self.types.get(self.resolve(id) as usize)?;
        for m in &t.members {
            if m.name != 0 && self.str(m.name) == name {
                return Some((m.bit_offset, m.ty));
            }
        }
        for m in &t.members {
            if m.name == 0
                && let Some((off, ty)) = self.find_member(m.ty, name)
            {
                return Some((m.bit_offset + off, ty));
            }
        }
        None
    }

    /// Byte offset of a dotted member path (`f_path.dentry`) in struct `strukt`.
    pub fn offset(&self, strukt: &str, path: &str) -> Result<u32> {
        let ids = self
            .by_name
            .get(strukt)
            .ok_or_else(|| anyhow!("kernel BTF has no struct `{strukt}`"))?;
        // Prefer the complete definition.
        let id = *ids
            .iter()
            .max_by_key(|i| self.types[**i as usize].members.len())
            .ok_or_else(|| anyhow!("kernel BTF has no struct `{strukt}`"))?;
        let mut cur = id;
        let mut bits = 0u32;
        for part in path.split('.') {
            let (off, ty) = self
                .find_member(cur, part)
                .ok_or_else(|| anyhow!("kernel BTF has no member `{strukt}.{path}`"))?;
            bits += off;
            cur = ty;
        }
        if !bits.is_multiple_of(8) {
            bail!("member `{strukt}.{path}` is a bitfield");
        }
        Ok(bits / 8)
    }
}

/// Resolve every offset the eBPF programs use.
pub fn offsets(btf: &Btf) -> Result<Offsets> {
    let o = |s: &str, p: &str| btf.offset(s, p);
    Ok(Offsets {
        task_pid: o("task_struct", "pid")?,
        task_tgid: o("task_struct", "tgid")?,
        task_real_parent: o("task_struct", "real_parent")?,
        task_group_leader: o("task_struct", "group_leader")?,
        task_start_boottime: o("task_struct", "start_boottime")?,
        task_comm: o("task_struct", "comm")?,
        task_mm: o("task_struct", "mm")?,
        task_fs: o("task_struct", "fs")?,
        task_files: o("task_struct", "files")?,
        task_cred: o("task_struct", "cred")?,
        task_exit_code: o("task_struct", "exit_code")?,
        mm_arg_start: o("mm_struct", "arg_start")?,
        mm_arg_end: o("mm_struct", "arg_end")?,
        bprm_file: o("linux_binprm", "file")?,
        bprm_filename: o("linux_binprm", "filename")?,
        file_path: o("file", "f_path")?,
        file_inode: o("file", "f_inode")?,
        file_flags: o("file", "f_flags")?,
        file_mode: o("file", "f_mode")?,
        file_private_data: o("file", "private_data")?,
        path_mnt: o("path", "mnt")?,
        path_dentry: o("path", "dentry")?,
        dentry_parent: o("dentry", "d_parent")?,
        dentry_name: o("dentry", "d_name")?,
        dentry_inode: o("dentry", "d_inode")?,
        qstr_name: o("qstr", "name")?,
        qstr_len: o("qstr", "len")?,
        vfsmount_root: o("vfsmount", "mnt_root")?,
        mount_mnt: o("mount", "mnt")?,
        mount_parent: o("mount", "mnt_parent")?,
        mount_mountpoint: o("mount", "mnt_mountpoint")?,
        inode_ino: o("inode", "i_ino")?,
        inode_sb: o("inode", "i_sb")?,
        inode_mode: o("inode", "i_mode")?,
        sb_dev: o("super_block", "s_dev")?,
        fs_pwd: o("fs_struct", "pwd")?,
        files_fdt: o("files_struct", "fdt")?,
        fdt_max_fds: o("fdtable", "max_fds")?,
        fdt_fd: o("fdtable", "fd")?,
        cred_uid: o("cred", "uid")?,
        cred_gid: o("cred", "gid")?,
        cred_euid: o("cred", "euid")?,
        cred_egid: o("cred", "egid")?,
        cred_cap_effective: o("cred", "cap_effective")?,
        inode_nlink: o("inode", "i_nlink")?,
        inode_uid: o("inode", "i_uid")?,
        regs_di: o("pt_regs", "di")?,
        regs_si: o("pt_regs", "si")?,
        regs_dx: o("pt_regs", "dx")?,
        regs_r10: o("pt_regs", "r10")?,
        regs_r8: o("pt_regs", "r8")?,
        regs_orig_ax: o("pt_regs", "orig_ax")?,
        regs_bx: o("pt_regs", "bx")?,
        regs_cx: o("pt_regs", "cx")?,
        regs_bp: o("pt_regs", "bp")?,
        task_ti_status: o("task_struct", "thread_info")? + o("thread_info", "status")?,
        socket_sk: o("socket", "sk")?,
        socket_type: o("socket", "type")?,
        sk_family: o("sock", "__sk_common.skc_family")?,
        sk_daddr: o("sock", "__sk_common.skc_daddr")?,
        sk_rcv_saddr: o("sock", "__sk_common.skc_rcv_saddr")?,
        sk_dport: o("sock", "__sk_common.skc_dport")?,
        sk_num: o("sock", "__sk_common.skc_num")?,
        sk_v6_daddr: o("sock", "__sk_common.skc_v6_daddr")?,
        sk_v6_rcv_saddr: o("sock", "__sk_common.skc_v6_rcv_saddr")?,
        sk_protocol: o("sock", "sk_protocol")?,
        unix_addr: o("unix_sock", "addr")?,
        unix_peer: o("unix_sock", "peer")?,
        unix_address_len: o("unix_address", "len")?,
        unix_address_name: o("unix_address", "name")?,
        iokiocb_file: o("io_kiocb", "file")?,
        iokiocb_opcode: o("io_kiocb", "opcode")?,
        cqe_res: o("io_uring_cqe", "res")?,
        ioreq_open_flags: o("io_kiocb", "cmd")? + o("io_open", "how.flags")?,
        iokiocb_cmd: o("io_kiocb", "cmd")?,
        io_unlink_dfd: o("io_unlink", "dfd")?,
        io_unlink_flags: o("io_unlink", "flags")?,
        io_unlink_filename: o("io_unlink", "filename")?,
        io_mkdir_dfd: o("io_mkdir", "dfd")?,
        io_mkdir_mode: o("io_mkdir", "mode")?,
        io_mkdir_filename: o("io_mkdir", "filename")?,
        io_rename_old_dfd: o("io_rename", "old_dfd")?,
        io_rename_new_dfd: o("io_rename", "new_dfd")?,
        io_rename_oldpath: o("io_rename", "oldpath")?,
        io_rename_newpath: o("io_rename", "newpath")?,
        io_rename_flags: o("io_rename", "flags")?,
        io_link_old_dfd: o("io_link", "old_dfd")?,
        io_link_new_dfd: o("io_link", "new_dfd")?,
        io_link_oldpath: o("io_link", "oldpath")?,
        io_link_newpath: o("io_link", "newpath")?,
        io_link_flags: o("io_link", "flags")?,
        filename_name: o("filename", "name")?,
        iokiocb_flags: o("io_kiocb", "flags")?,
        iokiocb_fd: o("io_kiocb", "cqe.fd")?,
        iokiocb_async_data: o("io_kiocb", "async_data")?,
        io_amsg_name: o("io_async_msghdr", "msg.msg_name")?,
        io_sr_buf: o("io_sr_msg", "buf")?,
        io_sr_len: o("io_sr_msg", "len")?,
        fs_root: o("fs_struct", "root")?,
        bpf_map_id: o("bpf_map", "id")?,
        bpf_prog_aux: o("bpf_prog", "aux")?,
        bpf_prog_aux_id: o("bpf_prog_aux", "id")?,
        bpf_link_id: o("bpf_link", "id")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_members_of_the_running_kernel_when_btf_exists() {
        let Ok(btf) = Btf::from_sys() else {
            eprintln!("skipped: no /sys/kernel/btf/vmlinux on this machine");
            return;
        };
        let o = offsets(&btf).expect("all offsets resolve");
        // Members through anonymous unions resolve to the same place as their siblings.
        assert_eq!(btf.offset("qstr", "hash_len").unwrap(), 0);
        assert!(o.qstr_name >= 8);
        assert!(o.task_tgid > 0 && o.task_pid > 0 && o.task_tgid != o.task_pid);
        assert!(btf.offset("task_struct", "no_such_member").is_err());
        assert!(btf.offset("no_such_struct", "x").is_err());
    }
}
