//! Linux user-space ABI numbers that several probe families share (address families, protocol
//! numbers, file type bits, errno values, the `AT_FDCWD` marker).
//!
//! These are fixed by the UAPI headers, not by kernel struct layout, so unlike member offsets
//! they are constants here rather than values read from BTF. Numbers that only one probe family
//! uses live in that family's file; syscall numbers live in `syscalls`.

/// `dirfd` value meaning "relative to the current directory".
pub(crate) const AT_FDCWD: i64 = -100;
pub(crate) const EINPROGRESS: i64 = 115;
pub(crate) const AF_UNIX: u16 = 1;
pub(crate) const AF_INET: u16 = 2;
pub(crate) const AF_INET6: u16 = 10;
pub(crate) const IPPROTO_TCP: u16 = 6;
pub(crate) const IPPROTO_UDP: u16 = 17;
pub(crate) const S_IFMT: u32 = 0o170000;
pub(crate) const S_IFSOCK: u32 = 0o140000;
pub(crate) const S_IFREG: u32 = 0o100000;
