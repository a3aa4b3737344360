//! Linux names for the numbers the kernel records carry: open flags, file types, protocols,
//! syscalls, ptrace requests, signals, bpf program types, namespace and memfd flags, and the
//! `dev_t` encoding.
//!
//! They live beside the record decoder because they describe the same kernel ABI; the daemon's
//! tracker only picks which table applies to which field. Pure tables, no IO.

/// Names of `open(2)` flags: the access mode first (`O_RDONLY`, `O_WRONLY`, `O_RDWR`), then
/// every known flag bit that is set.
pub fn open_flag_names(flags: u32) -> Vec<String> {
    const NAMES: &[(u32, &str)] = &[
        (0o100, "O_CREAT"),
        (0o200, "O_EXCL"),
        (0o400, "O_NOCTTY"),
        (0o1000, "O_TRUNC"),
        (0o2000, "O_APPEND"),
        (0o4000, "O_NONBLOCK"),
        (0o10000, "O_DSYNC"),
        (0o200000, "O_DIRECTORY"),
        (0o400000, "O_NOFOLLOW"),
        (0o1000000, "O_NOATIME"),
        (0o2000000, "O_CLOEXEC"),
        (0o10000000, "O_PATH"),
        (0o20000000, "O_TMPFILE_BIT"),
    ];
    let mut out = vec![
        match flags & 3 {
            0 => "O_RDONLY",
            1 => "O_WRONLY",
            _ => "O_RDWR",
        }
        .to_owned(),
    ];
    for (bit, name) in NAMES {
        if flags & bit != 0 {
            out.push((*name).to_owned());
        }
    }
    out
}

/// Kernel-internal `dev_t` (major << 20 | minor) to the encoding `stat(2)` reports.
pub fn user_dev(kdev: u32) -> u64 {
    let major = (kdev >> 20) as u64;
    let minor = (kdev & 0xfffff) as u64;
    ((major & 0xfff) << 8) | (minor & 0xff) | ((minor & !0xff) << 12) | ((major & !0xfff) << 32)
}

/// File type of an inode mode (`S_IFMT` bits): `file`, `dir`, `symlink`, … or none.
pub fn file_type(i_mode: u32) -> Option<String> {
    Some(
        match i_mode & 0o170000 {
            0o100000 => "file",
            0o040000 => "dir",
            0o120000 => "symlink",
            0o020000 => "char",
            0o060000 => "block",
            0o010000 => "fifo",
            0o140000 => "socket",
            _ => return None,
        }
        .to_owned(),
    )
}

/// Name of a socket protocol (`IPPROTO_*`), or of the socket type when the protocol is 0.
pub fn protocol_name(p: u16, sock_type: u16) -> String {
    match (p, sock_type) {
        (6, _) => "tcp".into(),
        (17, _) => "udp".into(),
        (1, _) => "icmp".into(),
        (58, _) => "icmpv6".into(),
        (136, _) => "udplite".into(),
        (0, 1) => "stream".into(),
        (0, 2) => "dgram".into(),
        (0, 5) => "seqpacket".into(),
        (0, 3) => "raw".into(),
        (n, _) => n.to_string(),
    }
}

/// x86_64 syscall name, for the syscalls the sensor reports through `SysRecord.op`.
pub fn syscall_name(nr: u32) -> &'static str {
    match nr {
        105 => "setuid",
        106 => "setgid",
        113 => "setreuid",
        114 => "setregid",
        117 => "setresuid",
        119 => "setresgid",
        126 => "capset",
        165 => "mount",
        429 => "move_mount",
        175 => "init_module",
        313 => "finit_module",
        272 => "unshare",
        308 => "setns",
        56 => "clone",
        435 => "clone3",
        319 => "memfd_create",
        311 => "process_vm_writev",
        321 => "bpf",
        _ => "syscall",
    }
}

/// `PTRACE_*` request name (and `process_vm_writev`, reported through the same record).
pub fn ptrace_name(req: u32) -> &'static str {
    match req {
        4 => "PTRACE_POKETEXT",
        5 => "PTRACE_POKEDATA",
        6 => "PTRACE_POKEUSER",
        13 => "PTRACE_SETREGS",
        16 => "PTRACE_ATTACH",
        0x4206 => "PTRACE_SEIZE",
        311 => "process_vm_writev",
        _ => "ptrace",
    }
}

/// Signal name (`SIGKILL`); real-time signals are `SIGRT<n>`.
pub fn signal_name(sig: i32) -> String {
    const N: [&str; 32] = [
        "0",
        "SIGHUP",
        "SIGINT",
        "SIGQUIT",
        "SIGILL",
        "SIGTRAP",
        "SIGABRT",
        "SIGBUS",
        "SIGFPE",
        "SIGKILL",
        "SIGUSR1",
        "SIGSEGV",
        "SIGUSR2",
        "SIGPIPE",
        "SIGALRM",
        "SIGTERM",
        "SIGSTKFLT",
        "SIGCHLD",
        "SIGCONT",
        "SIGSTOP",
        "SIGTSTP",
        "SIGTTIN",
        "SIGTTOU",
        "SIGURG",
        "SIGXCPU",
        "SIGXFSZ",
        "SIGVTALRM",
        "SIGPROF",
        "SIGWINCH",
        "SIGIO",
        "SIGPWR",
        "SIGSYS",
    ];
    N.get(sig as usize)
        .map_or_else(|| format!("SIGRT{sig}"), |s| (*s).to_owned())
}

/// `BPF_PROG_LOAD` in the UAPI's `enum bpf_cmd`.
pub const BPF_PROG_LOAD: u32 = 5;

/// A bpf() command by name (`bpf_map_get_fd_by_id`), as the UAPI's `enum bpf_cmd` spells it.
pub fn bpf_cmd_name(cmd: u32) -> String {
    const NAMES: [&str; 37] = [
        "map_create",
        "map_lookup_elem",
        "map_update_elem",
        "map_delete_elem",
        "map_get_next_key",
        "prog_load",
        "obj_pin",
        "obj_get",
        "prog_attach",
        "prog_detach",
        "prog_test_run",
        "prog_get_next_id",
        "map_get_next_id",
        "prog_get_fd_by_id",
        "map_get_fd_by_id",
        "obj_get_info_by_fd",
        "prog_query",
        "raw_tracepoint_open",
        "btf_load",
        "btf_get_fd_by_id",
        "task_fd_query",
        "map_lookup_and_delete_elem",
        "map_freeze",
        "btf_get_next_id",
        "map_lookup_batch",
        "map_lookup_and_delete_batch",
        "map_update_batch",
        "map_delete_batch",
        "link_create",
        "link_update",
        "link_get_fd_by_id",
        "link_get_next_id",
        "enable_stats",
        "iter_create",
        "link_detach",
        "prog_bind_map",
        "token_create",
    ];
    match NAMES.get(cmd as usize) {
        Some(n) => format!("bpf_{n}"),
        None => format!("bpf_{cmd}"),
    }
}

/// `BPF_PROG_TYPE_*` name in lower case, or the number when unknown.
pub fn bpf_prog_type(t: u32) -> String {
    match t {
        1 => "socket_filter".into(),
        2 => "kprobe".into(),
        3 => "sched_cls".into(),
        5 => "tracepoint".into(),
        6 => "xdp".into(),
        7 => "perf_event".into(),
        8 => "cgroup_skb".into(),
        17 => "raw_tracepoint".into(),
        26 => "tracing".into(),
        29 => "lsm".into(),
        n => n.to_string(),
    }
}

/// Names of the bits of `f` that a table knows.
fn flag_names(table: &[(u64, &str)], f: u64) -> Vec<String> {
    table
        .iter()
        .filter(|(b, _)| f & b != 0)
        .map(|(_, n)| (*n).to_owned())
        .collect()
}

/// `CLONE_NEW*` namespace flags, as `unshare(2)` and `setns(2)` take them.
const NS_FLAGS: &[(u64, &str)] = &[
    (0x0002_0000, "CLONE_NEWNS"),
    (0x0200_0000, "CLONE_NEWCGROUP"),
    (0x0400_0000, "CLONE_NEWUTS"),
    (0x0800_0000, "CLONE_NEWIPC"),
    (0x1000_0000, "CLONE_NEWUSER"),
    (0x2000_0000, "CLONE_NEWPID"),
    (0x4000_0000, "CLONE_NEWNET"),
    (0x80, "CLONE_NEWTIME"),
];

/// Names of the namespace flags set in `f`.
pub fn ns_flags(f: u64) -> Vec<String> {
    flag_names(NS_FLAGS, f)
}

/// The name the kernel gives a namespace file (`/proc/PID/ns/*` links): `uts:[4026531838]`.
pub fn ns_file_name(flags: u64, ino: u64) -> Option<String> {
    let ty = [
        (0x0400_0000, "uts"),
        (0x0800_0000, "ipc"),
        (0x4000_0000, "net"),
        (0x2000_0000, "pid"),
        (0x1000_0000, "user"),
        (0x0002_0000, "mnt"),
        (0x0200_0000, "cgroup"),
        (0x80, "time"),
    ]
    .iter()
    .find(|(b, _)| flags & b != 0)?
    .1;
    Some(format!("{ty}:[{ino}]"))
}

/// Names of the `memfd_create(2)` flags set in `f`.
pub fn memfd_flags(f: u64) -> Vec<String> {
    flag_names(
        &[
            (1, "MFD_CLOEXEC"),
            (2, "MFD_ALLOW_SEALING"),
            (4, "MFD_HUGETLB"),
            (8, "MFD_NOEXEC_SEAL"),
            (0x10, "MFD_EXEC"),
        ],
        f,
    )
}

/// Capability names by number (`capability.h`), `cap_chown` (0) to `cap_checkpoint_restore` (40).
const CAP_NAMES: [&str; 41] = [
    "cap_chown",
    "cap_dac_override",
    "cap_dac_read_search",
    "cap_fowner",
    "cap_fsetid",
    "cap_kill",
    "cap_setgid",
    "cap_setuid",
    "cap_setpcap",
    "cap_linux_immutable",
    "cap_net_bind_service",
    "cap_net_broadcast",
    "cap_net_admin",
    "cap_net_raw",
    "cap_ipc_lock",
    "cap_ipc_owner",
    "cap_sys_module",
    "cap_sys_rawio",
    "cap_sys_chroot",
    "cap_sys_ptrace",
    "cap_sys_pacct",
    "cap_sys_admin",
    "cap_sys_boot",
    "cap_sys_nice",
    "cap_sys_resource",
    "cap_sys_time",
    "cap_sys_tty_config",
    "cap_mknod",
    "cap_lease",
    "cap_audit_write",
    "cap_audit_control",
    "cap_setfcap",
    "cap_mac_override",
    "cap_mac_admin",
    "cap_syslog",
    "cap_wake_alarm",
    "cap_block_suspend",
    "cap_audit_read",
    "cap_perfmon",
    "cap_bpf",
    "cap_checkpoint_restore",
];

/// The capability names of a 64-bit set (bit N = capability N); unknown bits as `cap_N`.
pub fn cap_names(set: u64) -> Vec<String> {
    (0..64)
        .filter(|b| set & (1 << b) != 0)
        .map(|b| {
            CAP_NAMES
                .get(b as usize)
                .map_or_else(|| format!("cap_{b}"), |n| (*n).to_owned())
        })
        .collect()
}

/// What a `security.capability` value grants, from its head as the sensor reads it (`head`: the
/// first 8 bytes, `magic_etc` then the lower permitted word; `hi`: the upper permitted word):
/// the permitted capabilities by name, then `effective` when the effective bit is set. Empty
/// when the value is not a `vfs_cap_data` (revision 1, 2 or 3 in the magic's top byte).
pub fn file_caps(head: u64, hi: u32) -> Vec<String> {
    let magic = head as u32;
    if !matches!(magic >> 24, 1..=3) {
        return Vec::new();
    }
    let mut v = cap_names(((hi as u64) << 32) | (head >> 32));
    if magic & 1 != 0 {
        v.push("effective".into());
    }
    v
}

/// The syscall behind a `file.xattr` record (bits 8..12 of its `op_flags`).
pub fn xattr_syscall(variant: u32) -> &'static str {
    match variant {
        0 => "setxattr",
        1 => "lsetxattr",
        2 => "fsetxattr",
        3 => "setxattrat",
        _ => "unknown",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn open_flags_list_the_access_mode_first() {
        assert_eq!(open_flag_names(0), vec!["O_RDONLY"]);
        assert_eq!(
            open_flag_names(0o1 | 0o100 | 0o1000 | 0o2000000),
            vec!["O_WRONLY", "O_CREAT", "O_TRUNC", "O_CLOEXEC"]
        );
        assert_eq!(
            open_flag_names(0o2 | 0o200000),
            vec!["O_RDWR", "O_DIRECTORY"]
        );
    }

    #[test]
    fn dev_t_is_reencoded_as_stat_reports_it() {
        // 8:1 (sda1) and 259:65536, a minor past 8 bits.
        assert_eq!(user_dev((8 << 20) | 1), 0x801);
        assert_eq!(user_dev((259 << 20) | 65536), (259 << 8) | (65536 << 12));
    }

    #[test]
    fn file_types_from_the_mode() {
        assert_eq!(file_type(0o100644).as_deref(), Some("file"));
        assert_eq!(file_type(0o040755).as_deref(), Some("dir"));
        assert_eq!(file_type(0o140777).as_deref(), Some("socket"));
        assert_eq!(file_type(0o644), None);
    }

    #[test]
    fn protocols_fall_back_to_the_socket_type() {
        assert_eq!(protocol_name(6, 1), "tcp");
        assert_eq!(protocol_name(17, 2), "udp");
        assert_eq!(protocol_name(0, 1), "stream");
        assert_eq!(protocol_name(0, 5), "seqpacket");
        assert_eq!(protocol_name(99, 3), "99");
    }

    #[test]
    fn syscall_ptrace_and_bpf_names() {
        assert_eq!(syscall_name(105), "setuid");
        assert_eq!(syscall_name(321), "bpf");
        assert_eq!(syscall_name(0), "syscall");
        assert_eq!(ptrace_name(16), "PTRACE_ATTACH");
        assert_eq!(ptrace_name(0x4206), "PTRACE_SEIZE");
        assert_eq!(ptrace_name(9999), "ptrace");
        assert_eq!(bpf_prog_type(2), "kprobe");
        assert_eq!(bpf_prog_type(1000), "1000");
    }

    #[test]
    fn signal_names_and_realtime_signals() {
        assert_eq!(signal_name(9), "SIGKILL");
        assert_eq!(signal_name(15), "SIGTERM");
        assert_eq!(signal_name(31), "SIGSYS");
        assert_eq!(signal_name(34), "SIGRT34");
    }

    #[test]
    fn namespace_and_memfd_flags() {
        assert_eq!(
            ns_flags(0x0400_0000 | 0x4000_0000),
            vec!["CLONE_NEWUTS", "CLONE_NEWNET"]
        );
        assert!(ns_flags(0).is_empty());
        assert_eq!(
            ns_file_name(0x0400_0000, 4026531838).as_deref(),
            Some("uts:[4026531838]")
        );
        assert_eq!(ns_file_name(0, 1), None);
        assert_eq!(memfd_flags(1 | 8), vec!["MFD_CLOEXEC", "MFD_NOEXEC_SEAL"]);
    }
}
