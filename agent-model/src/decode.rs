//! Checked decoding of kernel records (`agent_common`) into typed, owned values.
//!
//! Every length is bounds-checked against the record; kinds go through `TryFrom<u32>`; nothing
//! is transmuted. A malformed record yields a [`DecodeError`], never a panic (see the proptest).

use agent_common::{
    ExecRecord, ExitRecord, FlowCountsRecord, ForkRecord, HEADER_LEN, NAME_IS_PATH, OpenRecord,
    PathOpRecord, RecordHeader, RecordKind, SockRecord, SysRecord, TLS_CHUNK, TlsRecord,
};

use crate::bstr::BStr;

/// Why a record could not be decoded.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DecodeError {
    #[error("record of {len} bytes is shorter than its {need}-byte header/body")]
    Short { len: usize, need: usize },
    #[error("unknown record kind `{0}`")]
    UnknownKind(u32),
    #[error("field `{field}` claims {claimed} bytes past the end of a {len}-byte record")]
    Overrun {
        field: &'static str,
        claimed: usize,
        len: usize,
    },
}

/// Common header, decoded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Header {
    pub kind: RecordKind,
    pub ktime_ns: u64,
    pub session_id: u64,
    pub start_ns: u64,
    pub pid: u32,
    pub tgid: u32,
    pub ppid: u32,
    pub agent_id: u32,
    pub uid: u32,
    pub gid: u32,
    pub comm: BStr,
}

/// A decoded kernel record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Record {
    Exec {
        hdr: Header,
        body: ExecRecord,
        exe: KPath,
        cwd: KPath,
        filename: BStr,
        argv: Vec<BStr>,
    },
    Exit {
        hdr: Header,
        body: ExitRecord,
    },
    Fork {
        hdr: Header,
        body: ForkRecord,
    },
    Open {
        hdr: Header,
        body: OpenRecord,
        path: KPath,
    },
    PathOp {
        hdr: Header,
        body: PathOpRecord,
        dir: KPath,
        name: BStr,
        dir2: KPath,
        name2: BStr,
    },
    Sock {
        hdr: Header,
        body: SockRecord,
        unix_path: BStr,
        /// First bytes of a DNS query (sends to port 53 only).
        payload: Vec<u8>,
        /// Byte counters (net.flow records only).
        flow: Option<FlowCountsRecord>,
    },
    Sys {
        hdr: Header,
        body: SysRecord,
        /// A user string, or a kernel path when the body says so.
        name: BStr,
        name2: BStr,
    },
    /// TLS plaintext an agent wrote or read (one chunk of one `SSL_*` call).
    Tls {
        hdr: Header,
        body: TlsRecord,
        data: Vec<u8>,
    },
}

impl Record {
    pub fn header(&self) -> &Header {
        match self {
            Record::Exec { hdr, .. }
            | Record::Exit { hdr, .. }
            | Record::Fork { hdr, .. }
            | Record::Open { hdr, .. }
            | Record::PathOp { hdr, .. }
            | Record::Sock { hdr, .. }
            | Record::Sys { hdr, .. }
            | Record::Tls { hdr, .. } => hdr,
        }
    }
}

/// A path as walked by the kernel, already put in order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KPath {
    pub path: BStr,
    pub truncated: bool,
}

impl KPath {
    /// Rebuild an absolute path from dentry names sent leaf first, each NUL-terminated.
    pub fn from_components(raw: &[u8], truncated: bool) -> KPath {
        let mut comps: Vec<&[u8]> = raw
            .split(|b| *b == 0)
            .filter(|c| !c.is_empty() && *c != b"/")
            .collect();
        comps.reverse();
        let mut out = Vec::with_capacity(raw.len() + 4);
        if truncated {
            out.extend_from_slice(b"...");
        }
        for c in comps {
            out.push(b'/');
            out.extend_from_slice(c);
        }
        if out.is_empty() {
            out.push(b'/');
        }
        KPath {
            path: BStr(out),
            truncated,
        }
    }

    /// Join a user-supplied name onto this directory unless the name is absolute.
    pub fn join(&self, name: &BStr) -> BStr {
        if name.0.first() == Some(&b'/') || self.path.is_empty() {
            return name.clone();
        }
        let mut out = self.path.0.clone();
        if out.last() != Some(&b'/') {
            out.push(b'/');
        }
        out.extend_from_slice(&name.0);
        BStr(out)
    }
}

impl KPath {
    /// The path of a name the kernel sent with this directory: joined onto it, or, when a magic
    /// link at its head was resolved into this directory (`skip` bytes, see
    /// `agent_common::PathOpRecord`), the rest of the name joined onto it (the directory itself
    /// when nothing follows the link).
    pub fn resolve(&self, name: &BStr, skip: u32) -> BStr {
        if skip == 0 {
            return self.join(name);
        }
        let rest = name.0.get(skip as usize..).unwrap_or(&[]);
        let start = rest.iter().position(|b| *b != b'/').unwrap_or(rest.len());
        let rest = &rest[start..];
        if rest.is_empty() {
            return self.path.clone();
        }
        let mut out = self.path.0.clone();
        if out.last() != Some(&b'/') {
            out.push(b'/');
        }
        out.extend_from_slice(rest);
        BStr(out)
    }
}

fn read_pod<T: agent_common::Plain>(buf: &[u8], at: usize) -> Result<T, DecodeError> {
    agent_common::read_plain(buf, at).ok_or(DecodeError::Short {
        len: buf.len(),
        need: at + std::mem::size_of::<T>(),
    })
}

struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, field: &'static str, n: u32) -> Result<&'a [u8], DecodeError> {
        let n = n as usize;
        let end = self.pos.checked_add(n).filter(|e| *e <= self.buf.len());
        match end {
            Some(end) => {
                let s = &self.buf[self.pos..end];
                self.pos = end;
                Ok(s)
            }
            None => Err(DecodeError::Overrun {
                field,
                claimed: n,
                len: self.buf.len(),
            }),
        }
    }
}

fn trim_nul(b: &[u8]) -> &[u8] {
    match b.iter().position(|c| *c == 0) {
        Some(i) => &b[..i],
        None => b,
    }
}

/// Decode one ring-buffer record.
pub fn decode(buf: &[u8]) -> Result<Record, DecodeError> {
    let h: RecordHeader = read_pod(buf, 0)?;
    let kind = RecordKind::try_from(h.kind).map_err(|e| DecodeError::UnknownKind(e.0))?;
    let len = (h.len as usize).min(buf.len());
    let buf = &buf[..len];
    let hdr = Header {
        kind,
        ktime_ns: h.ktime_ns,
        session_id: h.session_id,
        start_ns: h.start_ns,
        pid: h.pid,
        tgid: h.tgid,
        ppid: h.ppid,
        agent_id: h.agent_id,
        uid: h.uid,
        gid: h.gid,
        comm: BStr(trim_nul(&h.comm).to_vec()),
    };
    let at = HEADER_LEN;
    Ok(match kind {
        RecordKind::Exec => {
            let body: ExecRecord = read_pod(buf, at)?;
            let mut c = Cursor {
                buf,
                pos: at + std::mem::size_of::<ExecRecord>(),
            };
            let exe = c.take("exe", body.exe_len)?;
            let cwd = c.take("cwd", body.cwd_len)?;
            let filename = c.take("filename", body.filename_len)?;
            let argv = c.take("argv", body.argv_len)?;
            let mut args: Vec<BStr> = argv.split(|b| *b == 0).map(BStr::from).collect();
            // argv ends with a NUL, which leaves one empty tail element.
            if args.last().is_some_and(|a| a.is_empty()) {
                args.pop();
            }
            Record::Exec {
                exe: KPath::from_components(exe, body.flags & agent_common::PATH_TRUNCATED != 0),
                cwd: KPath::from_components(cwd, body.flags & agent_common::PATH2_TRUNCATED != 0),
                filename: BStr(trim_nul(filename).to_vec()),
                argv: args,
                hdr,
                body,
            }
        }
        RecordKind::Exit => Record::Exit {
            body: read_pod(buf, at)?,
            hdr,
        },
        RecordKind::Fork => Record::Fork {
            body: read_pod(buf, at)?,
            hdr,
        },
        RecordKind::Open => {
            let body: OpenRecord = read_pod(buf, at)?;
            let mut c = Cursor {
                buf,
                pos: at + std::mem::size_of::<OpenRecord>(),
            };
            let path = c.take("path", body.path_len)?;
            Record::Open {
                path: KPath::from_components(path, body.flags & agent_common::PATH_TRUNCATED != 0),
                hdr,
                body,
            }
        }
        RecordKind::Unlink
        | RecordKind::Rename
        | RecordKind::Chmod
        | RecordKind::Chown
        | RecordKind::Link
        | RecordKind::Symlink
        | RecordKind::Mkdir
        | RecordKind::Truncate
        | RecordKind::Write
        | RecordKind::Utime
        | RecordKind::Xattr
        | RecordKind::MmapExec => {
            let body: PathOpRecord = read_pod(buf, at)?;
            let mut c = Cursor {
                buf,
                pos: at + std::mem::size_of::<PathOpRecord>(),
            };
            let dir = c.take("dir", body.dir_len)?;
            let name = c.take("name", body.name_len)?;
            let dir2 = c.take("dir2", body.dir2_len)?;
            let name2 = c.take("name2", body.name2_len)?;
            Record::PathOp {
                dir: KPath::from_components(dir, body.flags & agent_common::PATH_TRUNCATED != 0),
                name: BStr(trim_nul(name).to_vec()),
                dir2: KPath::from_components(dir2, body.flags & agent_common::PATH2_TRUNCATED != 0),
                name2: BStr(trim_nul(name2).to_vec()),
                hdr,
                body,
            }
        }
        RecordKind::Connect | RecordKind::Accept | RecordKind::Listen | RecordKind::Send => {
            let body: SockRecord = read_pod(buf, at)?;
            let mut c = Cursor {
                buf,
                pos: at + std::mem::size_of::<SockRecord>(),
            };
            let up = c.take("unix_path", body.unix_path_len)?;
            let payload = c.take("payload", body.payload_len)?;
            Record::Sock {
                unix_path: BStr(up.to_vec()),
                payload: payload.to_vec(),
                hdr,
                body,
                flow: None,
            }
        }
        RecordKind::Flow => {
            let body: SockRecord = read_pod(buf, at)?;
            let flow: FlowCountsRecord = read_pod(buf, at + std::mem::size_of::<SockRecord>())?;
            Record::Sock {
                unix_path: BStr::default(),
                payload: Vec::new(),
                hdr,
                body,
                flow: Some(flow),
            }
        }
        RecordKind::TlsData => {
            let body: TlsRecord = read_pod(buf, at)?;
            if body.captured as usize > TLS_CHUNK || u64::from(body.captured) > body.len {
                return Err(DecodeError::Overrun {
                    field: "tls.captured",
                    claimed: body.captured as usize,
                    len: buf.len(),
                });
            }
            let mut c = Cursor {
                buf,
                pos: at + std::mem::size_of::<TlsRecord>(),
            };
            let data = c.take("tls.data", body.captured)?.to_vec();
            Record::Tls { hdr, body, data }
        }
        RecordKind::PrivChange
        | RecordKind::Ptrace
        | RecordKind::Bpf
        | RecordKind::Module
        | RecordKind::Mount
        | RecordKind::Namespace
        | RecordKind::Memfd
        | RecordKind::Signal => {
            let body: SysRecord = read_pod(buf, at)?;
            let mut c = Cursor {
                buf,
                pos: at + std::mem::size_of::<SysRecord>(),
            };
            let n1 = c.take("name", body.name_len)?;
            let n2 = c.take("name2", body.name2_len)?;
            let name = if body.flags & NAME_IS_PATH != 0 {
                KPath::from_components(n1, false).path
            } else {
                BStr(trim_nul(n1).to_vec())
            };
            Record::Sys {
                name,
                name2: BStr(trim_nul(n2).to_vec()),
                hdr,
                body,
            }
        }
    })
}

/// Encode a record the way the kernel does (used by tests and fuzzing; never on the hot path).
pub fn encode(hdr: &RecordHeader, body: &[u8], tail: &[u8]) -> Vec<u8> {
    let mut h = *hdr;
    h.len = (HEADER_LEN + body.len() + tail.len()) as u32;
    let mut out = Vec::with_capacity(h.len as usize);
    out.extend_from_slice(agent_common::plain_bytes(&h));
    out.extend_from_slice(body);
    out.extend_from_slice(tail);
    out
}

/// Bytes of a body struct (for tests and `encode`).
pub fn body_bytes<T: agent_common::Plain>(b: &T) -> Vec<u8> {
    agent_common::plain_bytes(b).to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn path_components_are_reversed_and_joined() {
        let p = KPath::from_components(b"id_rsa\0.ssh\0alice\0home\0", false);
        assert_eq!(p.path, BStr::from("/home/alice/.ssh/id_rsa"));
        assert_eq!(KPath::from_components(b"", false).path, BStr::from("/"));
        let t = KPath::from_components(b"c\0b\0", true);
        assert_eq!(t.path, BStr::from(".../b/c"));
    }

    #[test]
    fn a_resolved_magic_link_is_replaced_by_its_directory() {
        let home = KPath::from_components(b"alice\0home\0", false);
        let name = BStr::from("/proc/self/fd/13/.bashrc.tmp.1.ab");
        assert_eq!(
            home.resolve(&name, 17),
            BStr::from("/home/alice/.bashrc.tmp.1.ab")
        );
        assert_eq!(
            home.resolve(&BStr::from("/dev/fd/3"), 9),
            BStr::from("/home/alice")
        );
        assert_eq!(
            home.resolve(&BStr::from("/dev/fd/3//x"), 10),
            BStr::from("/home/alice/x")
        );
        // Not resolved: joined as passed (an absolute name stays as it is).
        assert_eq!(
            home.resolve(&BStr::from("x"), 0),
            BStr::from("/home/alice/x")
        );
        assert_eq!(home.resolve(&name, 0), name);
        // A skip past the end (a hostile record) leaves the directory.
        assert_eq!(
            home.resolve(&BStr::from("ab"), 99),
            BStr::from("/home/alice")
        );
    }

    #[test]
    fn exec_record_round_trips() {
        let hdr = RecordHeader {
            kind: RecordKind::Exec as u32,
            tgid: 42,
            pid: 42,
            comm: *b"bash\0\0\0\0\0\0\0\0\0\0\0\0",
            ..Default::default()
        };
        let tail = b"bash\0bin\0usr\0tmp\0/bin/bash\0bash\0-c\0echo hi\0";
        let body = ExecRecord {
            exe_len: 13,
            cwd_len: 4,
            filename_len: 10,
            argv_len: 16,
            ..Default::default()
        };
        let rec = encode(&hdr, &body_bytes(&body), tail);
        match decode(&rec).unwrap() {
            Record::Exec {
                hdr,
                exe,
                cwd,
                filename,
                argv,
                ..
            } => {
                assert_eq!(hdr.comm, BStr::from("bash"));
                assert_eq!(exe.path, BStr::from("/usr/bin/bash"));
                assert_eq!(cwd.path, BStr::from("/tmp"));
                assert_eq!(filename, BStr::from("/bin/bash"));
                assert_eq!(
                    argv,
                    vec![BStr::from("bash"), BStr::from("-c"), BStr::from("echo hi")]
                );
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn overrun_and_unknown_kind_are_errors() {
        let hdr = RecordHeader {
            kind: RecordKind::Open as u32,
            ..Default::default()
        };
        let body = OpenRecord {
            path_len: 9999,
            ..Default::default()
        };
        let rec = encode(&hdr, &body_bytes(&body), b"x\0");
        assert!(matches!(decode(&rec), Err(DecodeError::Overrun { .. })));
        let bad = RecordHeader {
            kind: 77,
            ..Default::default()
        };
        assert_eq!(
            decode(&encode(&bad, &[], &[])),
            Err(DecodeError::UnknownKind(77))
        );
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
            let _ = decode(&bytes);
        }

        #[test]
        fn arbitrary_bodies_never_panic(kind in prop::sample::select(vec![1u32,2,3,10,11,12,13,14,15,16,17,18,19,20,21,22,23,25,26,27,30,31,32,33,34,35,36,37]),
                                        tail in proptest::collection::vec(any::<u8>(), 0..400)) {
            let hdr = RecordHeader { kind, ..Default::default() };
            let rec = encode(&hdr, &[], &tail);
            let _ = decode(&rec);
        }
    }
}

/// The first question of a DNS query (`qname`, `qtype`) from a bounded copy of a UDP payload;
/// `None` when it is not a well-formed query.
pub fn dns_question(p: &[u8]) -> Option<(BStr, u16)> {
    if p.len() < 12 {
        return None;
    }
    let flags = u16::from_be_bytes([p[2], p[3]]);
    let qdcount = u16::from_be_bytes([p[4], p[5]]);
    if flags & 0x8000 != 0 || qdcount == 0 {
        return None; // a response, or no question
    }
    let mut i = 12;
    let mut name = Vec::new();
    for _ in 0..128 {
        let len = *p.get(i)? as usize;
        i += 1;
        if len == 0 {
            let qtype = u16::from_be_bytes([*p.get(i)?, *p.get(i + 1)?]);
            if name.is_empty() {
                name.push(b'.');
            }
            return Some((BStr(name), qtype));
        }
        if len > 63 {
            return None; // compression pointers do not appear in a query's first name
        }
        if !name.is_empty() {
            name.push(b'.');
        }
        name.extend_from_slice(p.get(i..i + len)?);
        i += len;
    }
    None
}

/// DNS type names for the common question types.
pub fn dns_type_name(t: u16) -> String {
    match t {
        1 => "A".into(),
        2 => "NS".into(),
        5 => "CNAME".into(),
        6 => "SOA".into(),
        12 => "PTR".into(),
        15 => "MX".into(),
        16 => "TXT".into(),
        28 => "AAAA".into(),
        33 => "SRV".into(),
        64 => "SVCB".into(),
        65 => "HTTPS".into(),
        255 => "ANY".into(),
        n => n.to_string(),
    }
}

#[cfg(test)]
mod dns_tests {
    use super::*;
    use proptest::prelude::*;

    fn query(name: &str, qtype: u16) -> Vec<u8> {
        let mut q = vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
        for l in name.split('.') {
            q.push(l.len() as u8);
            q.extend_from_slice(l.as_bytes());
        }
        q.push(0);
        q.extend_from_slice(&qtype.to_be_bytes());
        q.extend_from_slice(&1u16.to_be_bytes());
        q
    }

    #[test]
    fn parses_a_query_and_rejects_responses() {
        let q = query("aGVsbG8.exfil.example.com", 16);
        assert_eq!(
            dns_question(&q),
            Some((BStr::from("aGVsbG8.exfil.example.com"), 16))
        );
        let mut r = q.clone();
        r[2] |= 0x80;
        assert_eq!(dns_question(&r), None);
        assert_eq!(dns_question(&q[..20]), None, "truncated");
        assert_eq!(dns_type_name(28), "AAAA");
    }

    proptest! {
        #[test]
        fn never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
            let _ = dns_question(&bytes);
        }
    }
}
