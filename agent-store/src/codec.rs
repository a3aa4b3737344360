//! One file because the encoder and the decoder must walk `Event` in the same order, field by
//! field: kept side by side, a field added to one and not the other is seen in review.
//!
//! The binary encoding of events in the spool (record type 4).
//!
//! Events are the bulk of the spool, and writing them as JSON cost more than the rest of an
//! append (RFC 3339 times, escaping, UTF-8 checks) and parsing them back cost the indexer more
//! than building the index document. This encoding is a plain field-by-field walk of
//! [`Event`]: byte strings are stored raw, so it is lossless, and the JSON the store hands out
//! (`StoredHit::json`, exports) is `serde_json` of the decoded event, the same bytes the JSON record
//! held. [`decode_event_into`] reuses the allocations of the event it fills, so the indexer
//! decodes without allocating.
//!
//! Both sides destructure every struct exhaustively: a field added to the model fails to compile
//! here until it is encoded, so nothing is ever dropped silently.
//!
//! ```text
//! payload  = version u8 (4), then the fields of Event in declaration order (still read:
//!            version 4 lacks `mcp` and the intent tail `tool_path`, `divergent` (written last,
//!            after `mcp`, when `intent` is present); version 3 lacks `llm` and the monitor's `downtime_ms` and `buffered`; version 2 lacks `intent` and `response`; version 1 also lacks the file's `path_arg`, `target_arg`,
//!            `atime`, `mtime` and `op.object_id`)
//! integers = LEB128 varints (signed ones zigzag); times = i64 little endian
//! bytes    = varint length, then the bytes (strings are UTF-8, checked on decode)
//! Option   = 0 (none) or 1 then the value;  Vec = varint count, then the values
//! bool     = 0 or 1;  kind = its stable numeric id;  IP = 4 or 6, then 4 or 16 bytes
//! ```

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use agent_model::{
    AgentRef, BStr, Dns, Event, Exit, File, Intent, Kind, KindField, Llm, Mcp, Monitor, Net, Op,
    Parent, Priv, Process, Response, SessionRef, Target, Timestamp,
};

/// Version byte at the start of every encoded event.
const VERSION: u8 = 5;

/// Why a payload did not decode.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct DecodeError;

type R = Result<(), DecodeError>;

/// Append the encoding of `e` to `buf`.
pub(crate) fn encode_event(buf: &mut Vec<u8>, e: &Event) {
    let Event {
        id,
        time,
        host,
        kind,
        agent,
        session,
        process,
        parent,
        ancestry,
        file,
        net,
        exit,
        monitor,
        dns,
        r#priv,
        target,
        op,
        intent,
        response,
        llm,
        mcp,
    } = e;
    let w = &mut Enc(buf);
    w.0.push(VERSION);
    w.str(id);
    w.time(*time);
    w.str(host);
    w.u(kind.0.id().into());
    w.opt(agent, |w, AgentRef { name }| w.str(name));
    w.opt(session, |w, SessionRef { id }| w.str(id));
    w.process(process);
    w.opt(parent, |w, Parent { pid, start, exe }| {
        w.u((*pid).into());
        w.opt(start, |w, t| w.time(*t));
        w.bstr(exe);
    });
    w.vec(ancestry, |w, a| w.bstr(a));
    w.opt(file, Enc::file);
    w.opt(net, Enc::net);
    w.opt(
        exit,
        |w,
         Exit {
             code,
             signal,
             core_dumped,
         }| {
            w.opt_i(code.map(i64::from));
            w.opt_i(signal.map(i64::from));
            w.bool(*core_dumped);
        },
    );
    w.opt(
        monitor,
        |w,
         Monitor {
             loss_kind,
             loss_count,
             message,
             downtime_ms,
             buffered,
         }| {
            w.opt(loss_kind, |w, v| w.str(v));
            w.opt_u(*loss_count);
            w.opt(message, |w, v| w.str(v));
            w.opt_u(*downtime_ms);
            w.opt_u(*buffered);
        },
    );
    w.opt(dns, |w, Dns { qname, qtype }| {
        w.bstr(qname);
        w.str(qtype);
    });
    w.opt(
        r#priv,
        |w,
         Priv {
             op,
             uid,
             euid,
             gid,
             egid,
             caps,
         }| {
            w.str(op);
            for v in [uid, euid, gid, egid] {
                w.u((*v).into());
            }
            w.opt(caps, |w, v| w.str(v));
        },
    );
    w.opt(target, |w, Target { pid, relation, exe }| {
        w.u((*pid).into());
        w.str(relation);
        w.bstr(exe);
    });
    w.opt(op, Enc::op);
    w.opt(intent, Enc::intent);
    w.opt(
        response,
        |w,
         Response {
             action,
             mode,
             by,
             result,
             note,
             processes,
         }| {
            for v in [action, mode, by, result, note] {
                w.str(v);
            }
            w.opt_u(*processes);
        },
    );
    w.opt(llm, Enc::llm);
    w.opt(mcp, Enc::mcp);
    if let Some(i) = intent {
        w.opt(&i.tool_path, |w, v| w.bstr(v));
        w.bool(i.divergent);
    }
}

struct Enc<'a>(&'a mut Vec<u8>);

impl Enc<'_> {
    fn u(&mut self, mut v: u64) {
        while v >= 0x80 {
            self.0.push(v as u8 | 0x80);
            v >>= 7;
        }
        self.0.push(v as u8);
    }

    fn i(&mut self, v: i64) {
        self.u(((v << 1) ^ (v >> 63)) as u64);
    }

    fn bytes(&mut self, b: &[u8]) {
        self.u(b.len() as u64);
        self.0.extend_from_slice(b);
    }

    fn str(&mut self, s: &str) {
        self.bytes(s.as_bytes());
    }

    fn bstr(&mut self, s: &BStr) {
        self.bytes(&s.0);
    }

    fn bool(&mut self, v: bool) {
        self.0.push(v.into());
    }

    fn time(&mut self, t: Timestamp) {
        self.0.extend_from_slice(&t.0.to_le_bytes());
    }

    fn ip(&mut self, ip: &IpAddr) {
        match ip {
            IpAddr::V4(v4) => {
                self.0.push(4);
                self.0.extend_from_slice(&v4.octets());
            }
            IpAddr::V6(v6) => {
                self.0.push(6);
                self.0.extend_from_slice(&v6.octets());
            }
        }
    }

    fn opt<T>(&mut self, v: &Option<T>, f: impl FnOnce(&mut Self, &T)) {
        match v {
            None => self.0.push(0),
            Some(v) => {
                self.0.push(1);
                f(self, v);
            }
        }
    }

    fn opt_u(&mut self, v: Option<u64>) {
        self.opt(&v, |w, v| w.u(*v));
    }

    fn opt_i(&mut self, v: Option<i64>) {
        self.opt(&v, |w, v| w.i(*v));
    }

    fn vec<T>(&mut self, v: &[T], mut f: impl FnMut(&mut Self, &T)) {
        self.u(v.len() as u64);
        for x in v {
            f(self, x);
        }
    }

    fn strs(&mut self, v: &[String]) {
        self.vec(v, |w, s| w.str(s));
    }

    fn process(&mut self, p: &Process) {
        let Process {
            pid,
            tid,
            start,
            exe,
            comm,
            uid,
            gid,
            euid,
            egid,
            args,
            cmdline,
            args_truncated,
            args_len,
            cwd,
            filename,
            exec_markers,
            args_redacted,
        } = p;
        self.u((*pid).into());
        self.u((*tid).into());
        self.time(*start);
        self.bstr(exe);
        self.bstr(comm);
        self.u((*uid).into());
        self.u((*gid).into());
        self.opt_u(euid.map(u64::from));
        self.opt_u(egid.map(u64::from));
        self.vec(args, |w, a| w.bstr(a));
        self.bstr(cmdline);
        self.bool(*args_truncated);
        self.opt_u(args_len.map(u64::from));
        self.bstr(cwd);
        self.bstr(filename);
        self.strs(exec_markers);
        self.bool(*args_redacted);
    }

    fn file(&mut self, f: &File) {
        let File {
            path,
            target,
            dev,
            ino,
            access,
            flags,
            r#type,
            mode,
            fd,
            via,
            path_truncated,
            owner_uid,
            owner_gid,
            size,
            markers,
            path_arg,
            target_arg,
            atime,
            mtime,
        } = f;
        self.bstr(path);
        self.opt(target, |w, v| w.bstr(v));
        self.opt_u(*dev);
        self.opt_u(*ino);
        self.opt(access, |w, v| w.str(v));
        self.strs(flags);
        self.opt(r#type, |w, v| w.str(v));
        self.opt_u(mode.map(u64::from));
        self.opt_i(fd.map(i64::from));
        self.opt(via, |w, v| w.str(v));
        self.bool(*path_truncated);
        self.opt_u(owner_uid.map(u64::from));
        self.opt_u(owner_gid.map(u64::from));
        self.opt_u(*size);
        self.strs(markers);
        self.opt(path_arg, |w, v| w.bstr(v));
        self.opt(target_arg, |w, v| w.bstr(v));
        self.opt(atime, |w, v| w.str(v));
        self.opt(mtime, |w, v| w.str(v));
    }

    fn net(&mut self, n: &Net) {
        let Net {
            family,
            protocol,
            src_ip,
            src_port,
            dst_ip,
            dst_port,
            unix_path,
            via,
            bytes,
            bytes_received,
            flow_state,
            flow_ms,
        } = n;
        self.str(family);
        self.opt(protocol, |w, v| w.str(v));
        self.opt(src_ip, Enc::ip);
        self.opt_u(src_port.map(u64::from));
        self.opt(dst_ip, Enc::ip);
        self.opt_u(dst_port.map(u64::from));
        self.opt(unix_path, |w, v| w.bstr(v));
        self.opt(via, |w, v| w.str(v));
        self.opt_u(*bytes);
        self.opt_u(*bytes_received);
        self.opt(flow_state, |w, v| w.str(v));
        self.opt_u(*flow_ms);
    }

    fn op(&mut self, o: &Op) {
        let Op {
            name,
            signal,
            flags,
            object,
            target_path,
            r#type,
            result,
            object_id,
        } = o;
        self.str(name);
        self.opt_i(signal.map(i64::from));
        self.strs(flags);
        self.opt(object, |w, v| w.bstr(v));
        self.opt(target_path, |w, v| w.bstr(v));
        self.opt(r#type, |w, v| w.str(v));
        self.opt_i(*result);
        self.opt_u(*object_id);
    }

    fn llm(&mut self, l: &Llm) {
        let Llm {
            provider,
            model,
            host,
            path,
            tools,
            tool_calls,
            tool_call_ids,
            input_tokens,
            output_tokens,
            stop_reason,
            status,
            excerpt,
            system,
            error,
            bytes,
            conn,
            incomplete,
        } = l;
        self.str(provider);
        self.opt(model, |w, v| w.str(v));
        self.str(host);
        self.str(path);
        for v in [tools, tool_calls, tool_call_ids] {
            self.strs(v);
        }
        self.opt_u(*input_tokens);
        self.opt_u(*output_tokens);
        self.opt(stop_reason, |w, v| w.str(v));
        self.opt_u(status.map(u64::from));
        self.opt(excerpt, |w, v| w.bstr(v));
        self.opt(system, |w, v| w.bstr(v));
        self.opt(error, |w, v| w.str(v));
        self.opt_u(*bytes);
        self.opt(conn, |w, v| w.str(v));
        self.bool(*incomplete);
    }

    fn mcp(&mut self, m: &Mcp) {
        let Mcp {
            server,
            tool,
            arguments,
            bytes,
        } = m;
        self.str(server);
        self.str(tool);
        self.opt(arguments, |w, v| w.bstr(v));
        self.opt_u(*bytes);
    }

    fn intent(&mut self, i: &Intent) {
        let Intent {
            hook,
            agent_session,
            tool_name,
            tool_call_id,
            tool_input,
            tool_output,
            tool_success,
            prompt,
            decision,
            reason,
            redacted,
            undeclared,
            // Written after `mcp` (version 5): see `encode_event`.
            tool_path: _,
            divergent: _,
        } = i;
        for v in [hook, agent_session, tool_name, tool_call_id] {
            self.opt(v, |w, v| w.str(v));
        }
        for v in [tool_input, tool_output] {
            self.opt(v, |w, v| w.bstr(v));
        }
        self.opt(tool_success, |w, v| w.bool(*v));
        self.opt(prompt, |w, v| w.bstr(v));
        self.opt(decision, |w, v| w.str(v));
        self.opt(reason, |w, v| w.str(v));
        self.bool(*redacted);
        self.bool(*undeclared);
    }
}

/// Decode an event into `e`, reusing its allocations. On error `e` holds a partial event.
pub(crate) fn decode_event_into(b: &[u8], e: &mut Event) -> R {
    let Event {
        id,
        time,
        host,
        kind,
        agent,
        session,
        process,
        parent,
        ancestry,
        file,
        net,
        exit,
        monitor,
        dns,
        r#priv,
        target,
        op,
        intent,
        response,
        llm,
        mcp,
    } = e;
    let r = &mut Dec { b, pos: 0, v: 0 };
    r.v = r.byte()?;
    if !(1..=VERSION).contains(&r.v) {
        return Err(DecodeError);
    }
    r.str(id)?;
    *time = r.time()?;
    r.str(host)?;
    *kind = KindField(Kind::from_id(r.u32()?).ok_or(DecodeError)?);
    r.opt(agent, |r, AgentRef { name }| r.str(name))?;
    r.opt(session, |r, SessionRef { id }| r.str(id))?;
    r.process(process)?;
    r.opt(parent, |r, Parent { pid, start, exe }| {
        *pid = r.u32()?;
        *start = r.opt_copy(Dec::time)?;
        r.bstr(exe)
    })?;
    r.vec(ancestry, Dec::bstr)?;
    r.opt(file, Dec::file)?;
    r.opt(net, Dec::net)?;
    r.opt(
        exit,
        |r,
         Exit {
             code,
             signal,
             core_dumped,
         }| {
            *code = r.opt_copy(Dec::i32)?;
            *signal = r.opt_copy(Dec::i32)?;
            *core_dumped = r.bool()?;
            Ok(())
        },
    )?;
    r.opt(
        monitor,
        |r,
         Monitor {
             loss_kind,
             loss_count,
             message,
             downtime_ms,
             buffered,
         }| {
            r.opt(loss_kind, Dec::str)?;
            *loss_count = r.opt_copy(Dec::u)?;
            r.opt(message, Dec::str)?;
            if r.v >= 4 {
                *downtime_ms = r.opt_copy(Dec::u)?;
                *buffered = r.opt_copy(Dec::u)?;
            }
            Ok(())
        },
    )?;
    r.opt(dns, |r, Dns { qname, qtype }| {
        r.bstr(qname)?;
        r.str(qtype)
    })?;
    r.opt(
        r#priv,
        |r,
         Priv {
             op,
             uid,
             euid,
             gid,
             egid,
             caps,
         }| {
            r.str(op)?;
            for v in [uid, euid, gid, egid] {
                *v = r.u32()?;
            }
            r.opt(caps, Dec::str)
        },
    )?;
    r.opt(target, |r, Target { pid, relation, exe }| {
        *pid = r.u32()?;
        r.str(relation)?;
        r.bstr(exe)
    })?;
    r.opt(op, Dec::op)?;
    if r.v >= 3 {
        r.opt(intent, Dec::intent)?;
        r.opt(
            response,
            |r,
             Response {
                 action,
                 mode,
                 by,
                 result,
                 note,
                 processes,
             }| {
                for v in [action, mode, by, result, note] {
                    r.str(v)?;
                }
                *processes = r.opt_copy(Dec::u)?;
                Ok(())
            },
        )?;
    } else {
        *intent = None;
        *response = None;
    }
    if r.v >= 4 {
        r.opt(llm, Dec::llm)?;
    } else {
        *llm = None;
    }
    if r.v >= 5 {
        r.opt(mcp, Dec::mcp)?;
        if let Some(i) = intent {
            r.opt(&mut i.tool_path, Dec::bstr)?;
            i.divergent = r.bool()?;
        }
    } else {
        *mcp = None;
    }
    if r.pos != b.len() {
        return Err(DecodeError);
    }
    Ok(())
}

/// Decode an event.
pub(crate) fn decode_event(b: &[u8]) -> Result<Event, DecodeError> {
    let mut e = Event::default();
    decode_event_into(b, &mut e)?;
    Ok(e)
}

struct Dec<'a> {
    b: &'a [u8],
    pos: usize,
    /// Version of the payload (fields added in a version are absent before it).
    v: u8,
}

impl<'a> Dec<'a> {
    fn byte(&mut self) -> Result<u8, DecodeError> {
        let v = *self.b.get(self.pos).ok_or(DecodeError)?;
        self.pos += 1;
        Ok(v)
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        let end = self.pos.checked_add(n).ok_or(DecodeError)?;
        let v = self.b.get(self.pos..end).ok_or(DecodeError)?;
        self.pos = end;
        Ok(v)
    }

    fn u(&mut self) -> Result<u64, DecodeError> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.byte()?;
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(DecodeError)
    }

    fn u32(&mut self) -> Result<u32, DecodeError> {
        u32::try_from(self.u()?).map_err(|_| DecodeError)
    }

    fn u16(&mut self) -> Result<u16, DecodeError> {
        u16::try_from(self.u()?).map_err(|_| DecodeError)
    }

    fn i(&mut self) -> Result<i64, DecodeError> {
        let v = self.u()?;
        Ok((v >> 1) as i64 ^ -((v & 1) as i64))
    }

    fn i32(&mut self) -> Result<i32, DecodeError> {
        i32::try_from(self.i()?).map_err(|_| DecodeError)
    }

    fn bool(&mut self) -> Result<bool, DecodeError> {
        match self.byte()? {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err(DecodeError),
        }
    }

    fn time(&mut self) -> Result<Timestamp, DecodeError> {
        let b = self.take(8)?;
        Ok(Timestamp(i64::from_le_bytes(
            b.try_into().map_err(|_| DecodeError)?,
        )))
    }

    fn bytes(&mut self) -> Result<&'a [u8], DecodeError> {
        let n = usize::try_from(self.u()?).map_err(|_| DecodeError)?;
        self.take(n)
    }

    fn str(&mut self, s: &mut String) -> R {
        let v = std::str::from_utf8(self.bytes()?).map_err(|_| DecodeError)?;
        s.clear();
        s.push_str(v);
        Ok(())
    }

    fn bstr(&mut self, s: &mut BStr) -> R {
        let v = self.bytes()?;
        s.0.clear();
        s.0.extend_from_slice(v);
        Ok(())
    }

    fn ip(&mut self) -> Result<IpAddr, DecodeError> {
        match self.byte()? {
            4 => {
                let b: [u8; 4] = self.take(4)?.try_into().map_err(|_| DecodeError)?;
                Ok(IpAddr::V4(Ipv4Addr::from(b)))
            }
            6 => {
                let b: [u8; 16] = self.take(16)?.try_into().map_err(|_| DecodeError)?;
                Ok(IpAddr::V6(Ipv6Addr::from(b)))
            }
            _ => Err(DecodeError),
        }
    }

    fn present(&mut self) -> Result<bool, DecodeError> {
        self.bool()
    }

    /// An option of a value with allocations, decoded in place when already present.
    fn opt<T: Default>(&mut self, o: &mut Option<T>, f: impl FnOnce(&mut Self, &mut T) -> R) -> R {
        if !self.present()? {
            *o = None;
            return Ok(());
        }
        f(self, o.get_or_insert_with(T::default))
    }

    fn opt_copy<T>(
        &mut self,
        f: impl FnOnce(&mut Self) -> Result<T, DecodeError>,
    ) -> Result<Option<T>, DecodeError> {
        if self.present()? {
            f(self).map(Some)
        } else {
            Ok(None)
        }
    }

    fn vec<T: Default>(&mut self, v: &mut Vec<T>, mut f: impl FnMut(&mut Self, &mut T) -> R) -> R {
        let n = usize::try_from(self.u()?).map_err(|_| DecodeError)?;
        // Every element takes at least one byte: a corrupt count cannot allocate much.
        if n > self.b.len() - self.pos {
            return Err(DecodeError);
        }
        v.truncate(n);
        v.resize_with(n, T::default);
        for x in v.iter_mut() {
            f(self, x)?;
        }
        Ok(())
    }

    fn process(&mut self, p: &mut Process) -> R {
        let Process {
            pid,
            tid,
            start,
            exe,
            comm,
            uid,
            gid,
            euid,
            egid,
            args,
            cmdline,
            args_truncated,
            args_len,
            cwd,
            filename,
            exec_markers,
            args_redacted,
        } = p;
        *pid = self.u32()?;
        *tid = self.u32()?;
        *start = self.time()?;
        self.bstr(exe)?;
        self.bstr(comm)?;
        *uid = self.u32()?;
        *gid = self.u32()?;
        *euid = self.opt_copy(Dec::u32)?;
        *egid = self.opt_copy(Dec::u32)?;
        self.vec(args, Dec::bstr)?;
        self.bstr(cmdline)?;
        *args_truncated = self.bool()?;
        *args_len = self.opt_copy(Dec::u32)?;
        self.bstr(cwd)?;
        self.bstr(filename)?;
        self.vec(exec_markers, Dec::str)?;
        *args_redacted = self.bool()?;
        Ok(())
    }

    fn file(&mut self, f: &mut File) -> R {
        let File {
            path,
            target,
            dev,
            ino,
            access,
            flags,
            r#type,
            mode,
            fd,
            via,
            path_truncated,
            owner_uid,
            owner_gid,
            size,
            markers,
            path_arg,
            target_arg,
            atime,
            mtime,
        } = f;
        self.bstr(path)?;
        self.opt(target, Dec::bstr)?;
        *dev = self.opt_copy(Dec::u)?;
        *ino = self.opt_copy(Dec::u)?;
        self.opt(access, Dec::str)?;
        self.vec(flags, Dec::str)?;
        self.opt(r#type, Dec::str)?;
        *mode = self.opt_copy(Dec::u32)?;
        *fd = self.opt_copy(Dec::i32)?;
        self.opt(via, Dec::str)?;
        *path_truncated = self.bool()?;
        *owner_uid = self.opt_copy(Dec::u32)?;
        *owner_gid = self.opt_copy(Dec::u32)?;
        *size = self.opt_copy(Dec::u)?;
        self.vec(markers, Dec::str)?;
        if self.v < 2 {
            (*path_arg, *target_arg, *atime, *mtime) = (None, None, None, None);
            return Ok(());
        }
        self.opt(path_arg, Dec::bstr)?;
        self.opt(target_arg, Dec::bstr)?;
        self.opt(atime, Dec::str)?;
        self.opt(mtime, Dec::str)
    }

    fn net(&mut self, n: &mut Net) -> R {
        let Net {
            family,
            protocol,
            src_ip,
            src_port,
            dst_ip,
            dst_port,
            unix_path,
            via,
            bytes,
            bytes_received,
            flow_state,
            flow_ms,
        } = n;
        self.str(family)?;
        self.opt(protocol, Dec::str)?;
        *src_ip = self.opt_copy(Dec::ip)?;
        *src_port = self.opt_copy(Dec::u16)?;
        *dst_ip = self.opt_copy(Dec::ip)?;
        *dst_port = self.opt_copy(Dec::u16)?;
        self.opt(unix_path, Dec::bstr)?;
        self.opt(via, Dec::str)?;
        *bytes = self.opt_copy(Dec::u)?;
        *bytes_received = self.opt_copy(Dec::u)?;
        self.opt(flow_state, Dec::str)?;
        *flow_ms = self.opt_copy(Dec::u)?;
        Ok(())
    }

    fn op(&mut self, o: &mut Op) -> R {
        let Op {
            name,
            signal,
            flags,
            object,
            target_path,
            r#type,
            result,
            object_id,
        } = o;
        self.str(name)?;
        *signal = self.opt_copy(Dec::i32)?;
        self.vec(flags, Dec::str)?;
        self.opt(object, Dec::bstr)?;
        self.opt(target_path, Dec::bstr)?;
        self.opt(r#type, Dec::str)?;
        *result = self.opt_copy(Dec::i)?;
        *object_id = if self.v < 2 {
            None
        } else {
            self.opt_copy(Dec::u)?
        };
        Ok(())
    }

    fn llm(&mut self, l: &mut Llm) -> R {
        let Llm {
            provider,
            model,
            host,
            path,
            tools,
            tool_calls,
            tool_call_ids,
            input_tokens,
            output_tokens,
            stop_reason,
            status,
            excerpt,
            system,
            error,
            bytes,
            conn,
            incomplete,
        } = l;
        self.str(provider)?;
        self.opt(model, Dec::str)?;
        self.str(host)?;
        self.str(path)?;
        for v in [tools, tool_calls, tool_call_ids] {
            self.vec(v, Dec::str)?;
        }
        *input_tokens = self.opt_copy(Dec::u)?;
        *output_tokens = self.opt_copy(Dec::u)?;
        self.opt(stop_reason, Dec::str)?;
        *status = self.opt_copy(Dec::u16)?;
        self.opt(excerpt, Dec::bstr)?;
        self.opt(system, Dec::bstr)?;
        self.opt(error, Dec::str)?;
        *bytes = self.opt_copy(Dec::u)?;
        self.opt(conn, Dec::str)?;
        *incomplete = self.bool()?;
        Ok(())
    }

    fn mcp(&mut self, m: &mut Mcp) -> R {
        let Mcp {
            server,
            tool,
            arguments,
            bytes,
        } = m;
        self.str(server)?;
        self.str(tool)?;
        self.opt(arguments, Dec::bstr)?;
        *bytes = self.opt_copy(Dec::u)?;
        Ok(())
    }

    fn intent(&mut self, i: &mut Intent) -> R {
        let Intent {
            hook,
            agent_session,
            tool_name,
            tool_call_id,
            tool_input,
            tool_output,
            tool_success,
            prompt,
            decision,
            reason,
            redacted,
            undeclared,
            // Read after `mcp` (version 5): see `decode_event_into`.
            tool_path,
            divergent,
        } = i;
        for v in [hook, agent_session, tool_name, tool_call_id] {
            self.opt(v, Dec::str)?;
        }
        for v in [tool_input, tool_output] {
            self.opt(v, Dec::bstr)?;
        }
        *tool_success = self.opt_copy(Dec::bool)?;
        self.opt(prompt, Dec::bstr)?;
        self.opt(decision, Dec::str)?;
        self.opt(reason, Dec::str)?;
        *redacted = self.bool()?;
        *undeclared = self.bool()?;
        *tool_path = None;
        *divergent = false;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn full_event() -> Event {
        Event {
            id: "i-1".into(),
            time: Timestamp(1_795_255_200_123_456_789),
            host: "h".into(),
            kind: KindField(Kind::FileRename),
            agent: Some(AgentRef {
                name: "claude".into(),
            }),
            session: Some(SessionRef {
                id: "00000000000000ab".into(),
            }),
            process: Process {
                pid: 7,
                tid: 8,
                start: Timestamp(-5),
                exe: BStr(b"/bin/\xff\xfesh".to_vec()),
                comm: BStr::from("sh"),
                uid: 1,
                gid: 2,
                euid: Some(0),
                egid: Some(u32::MAX),
                args: vec![BStr::from("sh"), BStr(vec![0, 0x80, b'"'])],
                cmdline: BStr::from("sh \"x\"\n"),
                args_truncated: true,
                args_len: Some(131_072),
                cwd: BStr::from("/tmp"),
                filename: BStr::from("./sh"),
                exec_markers: vec!["memfd".into()],
                args_redacted: true,
            },
            parent: Some(Parent {
                pid: 1,
                start: Some(Timestamp(i64::MIN)),
                exe: BStr::from("/sbin/init"),
            }),
            ancestry: vec![BStr::from("/sbin/init"), BStr::default()],
            file: Some(File {
                path: BStr::from("/a"),
                target: Some(BStr::from("/b")),
                dev: Some(u64::MAX),
                ino: Some(0),
                access: Some("write".into()),
                flags: vec!["O_CREAT".into()],
                r#type: Some("file".into()),
                mode: Some(0o4755),
                fd: Some(-1),
                via: Some("io_uring".into()),
                path_truncated: true,
                owner_uid: Some(3),
                owner_gid: Some(4),
                size: Some(5),
                markers: vec!["deleted".into()],
                path_arg: Some(BStr::from("/proc/self/fd/3/x")),
                target_arg: Some(BStr::from("/dev/fd/3/y")),
                atime: Some("now".into()),
                mtime: Some("omit".into()),
            }),
            net: Some(Net {
                family: "ipv6".into(),
                protocol: Some("udp".into()),
                src_ip: Some("::1".parse().unwrap()),
                src_port: Some(u16::MAX),
                dst_ip: Some("10.0.0.1".parse().unwrap()),
                dst_port: Some(53),
                unix_path: Some(BStr::from("@x")),
                via: Some("syscall".into()),
                bytes: Some(1),
                bytes_received: Some(2),
                flow_state: Some("close".into()),
                flow_ms: Some(3),
            }),
            exit: Some(Exit {
                code: Some(i32::MIN),
                signal: Some(9),
                core_dumped: true,
            }),
            monitor: Some(Monitor {
                loss_kind: Some("file.open".into()),
                loss_count: Some(12),
                message: Some("é".into()),
                downtime_ms: Some(12_345),
                buffered: Some(40),
            }),
            dns: Some(Dns {
                qname: BStr::from("example.com"),
                qtype: "TXT".into(),
            }),
            r#priv: Some(Priv {
                op: "setuid".into(),
                uid: 0,
                euid: 1,
                gid: 2,
                egid: 3,
                caps: Some("1ff".into()),
            }),
            target: Some(Target {
                pid: 9,
                relation: "daemon".into(),
                exe: BStr::from("/x"),
            }),
            op: Some(Op {
                name: "mount".into(),
                signal: Some(-2),
                flags: vec!["MS_BIND".into()],
                object: Some(BStr::from("memfd:x")),
                target_path: Some(BStr::from("/mnt")),
                r#type: Some("ext4".into()),
                result: Some(i64::MIN),
                object_id: Some(u64::MAX),
            }),
            intent: Some(Intent {
                hook: Some("PostToolUse".into()),
                agent_session: Some("s".into()),
                tool_name: Some("Bash".into()),
                tool_call_id: Some("toolu_1".into()),
                tool_input: Some(BStr(b"cat \xff".to_vec())),
                tool_output: Some(BStr::from("out")),
                tool_success: Some(false),
                prompt: Some(BStr::from("p")),
                decision: Some("deny".into()),
                reason: Some("r".into()),
                redacted: true,
                undeclared: true,
                tool_path: Some(BStr(b"/r\xff".to_vec())),
                divergent: true,
            }),
            response: Some(Response {
                action: "kill_session".into(),
                mode: "dry_run".into(),
                by: "rule:x".into(),
                result: "dry_run".into(),
                note: "n".into(),
                processes: Some(3),
            }),
            llm: Some(Llm {
                provider: "anthropic".into(),
                model: Some("claude-x".into()),
                host: "api.example".into(),
                path: "/v1/messages".into(),
                tools: vec!["Bash".into(), "Read".into()],
                tool_calls: vec!["Bash".into()],
                tool_call_ids: vec!["toolu_1".into()],
                input_tokens: Some(u64::MAX),
                output_tokens: Some(0),
                stop_reason: Some("tool_use".into()),
                status: Some(200),
                excerpt: Some(BStr(b"hi \xff".to_vec())),
                system: Some(BStr::from("sys")),
                error: Some("overloaded".into()),
                bytes: Some(7),
                conn: Some("7f00:1".into()),
                incomplete: true,
            }),
            mcp: Some(Mcp {
                server: "github".into(),
                tool: "search".into(),
                arguments: Some(BStr(b"{\"q\":\"\xff\"}".to_vec())),
                bytes: Some(u64::MAX),
            }),
        }
    }

    /// `e` as a version 4 writer saw it: no `mcp`, no intent tail.
    fn v4_view(mut e: Event) -> Event {
        e.mcp = None;
        if let Some(i) = &mut e.intent {
            i.tool_path = None;
            i.divergent = false;
        }
        e
    }

    /// Encode `e` (see [`v4_view`]) and drop the version 5 tail: the absent `mcp` byte and,
    /// with an intent, its absent `tool_path` and false `divergent`.
    fn encode_v4(e: &Event) -> Vec<u8> {
        let mut buf = Vec::new();
        encode_event(&mut buf, e);
        if e.intent.is_some() {
            assert_eq!(buf.pop(), Some(0), "divergent false is one 0 byte");
            assert_eq!(buf.pop(), Some(0), "an absent tool_path is one 0 byte");
        }
        assert_eq!(buf.pop(), Some(0), "an absent mcp is one 0 byte");
        buf
    }

    /// Version 4 records (written before `mcp` and the intent tail) still decode, and a
    /// version 5 record needs the tail.
    #[test]
    fn a_version_4_event_still_decodes() {
        let e = v4_view(full_event());
        let mut buf = encode_v4(&e);
        buf[0] = 4;
        assert_eq!(decode_event(&buf).unwrap(), e);
        buf[0] = VERSION;
        assert_eq!(
            decode_event(&buf),
            Err(DecodeError),
            "version 5 needs the tail"
        );
        // Decoding into a reused event clears what a previous version 5 record left.
        let mut reused = full_event();
        buf[0] = 4;
        decode_event_into(&buf, &mut reused).unwrap();
        assert_eq!(reused, e);
    }

    /// A version 3 monitor (loss kind, count, message) ends there and still decodes.
    #[test]
    fn a_version_3_monitor_still_decodes() {
        let e = Event {
            monitor: Some(Monitor {
                loss_kind: Some("file.open".into()),
                loss_count: Some(3),
                message: Some("m".into()),
                ..Default::default()
            }),
            ..full_event()
        };
        let e = Event {
            intent: None,
            response: None,
            llm: None,
            ..v4_view(e)
        };
        let v4 = encode_v4(&e);
        // The v4 monitor bytes end `... message, 0 (downtime), 0 (buffered)`; v3 lacks both
        // and the llm byte at the end.
        let m = [1u8, b'm'];
        let at = v4.windows(4).position(|w| w == [m[0], m[1], 0, 0]).unwrap() + 2;
        let mut v3 = v4.clone();
        v3.drain(at..at + 2);
        assert_eq!(v3.pop(), Some(0), "an absent llm is one 0 byte");
        v3[0] = 3;
        assert_eq!(decode_event(&v3).unwrap(), e);
    }

    /// Version 3 records (written before `llm` existed) end after `response` and still decode.
    #[test]
    fn a_version_3_event_still_decodes() {
        let mut e = v4_view(full_event());
        e.llm = None;
        // Its monitor has the 4+ fields `downtime_ms`/`buffered` inside: tested separately.
        e.monitor = None;
        let mut buf = encode_v4(&e);
        assert_eq!(buf.pop(), Some(0), "an absent llm is one 0 byte");
        buf[0] = 3;
        assert_eq!(decode_event(&buf).unwrap(), e);
        buf[0] = VERSION;
        assert_eq!(
            decode_event(&buf),
            Err(DecodeError),
            "version 4 needs the llm byte"
        );
    }

    /// Version 2 records (written before `intent` and `response` existed) end after `op` and
    /// still decode.
    #[test]
    fn a_version_2_event_still_decodes() {
        let mut e = v4_view(full_event());
        e.intent = None;
        e.response = None;
        e.llm = None;
        // Its monitor has the 4+ fields `downtime_ms`/`buffered` inside: tested separately.
        e.monitor = None;
        let mut buf = encode_v4(&e);
        assert_eq!(buf.pop(), Some(0), "an absent llm is one 0 byte");
        assert_eq!(buf.pop(), Some(0), "an absent response is one 0 byte");
        assert_eq!(buf.pop(), Some(0), "an absent intent is one 0 byte");
        buf[0] = 2;
        assert_eq!(decode_event(&buf).unwrap(), e);
        buf[0] = 3;
        assert_eq!(
            decode_event(&buf),
            Err(DecodeError),
            "version 3 needs the intent and response bytes"
        );
    }

    #[test]
    fn every_field_round_trips_and_json_is_unchanged() {
        for e in [full_event(), Event::default()] {
            let mut b = Vec::new();
            encode_event(&mut b, &e);
            let d = decode_event(&b).unwrap();
            assert_eq!(d, e);
            assert_eq!(d.to_json(), e.to_json());
        }
    }

    #[test]
    fn decoding_into_a_used_event_leaves_nothing_of_it() {
        // The indexer decodes every record into the same event: fields absent from the new
        // record must not survive from the previous one.
        let mut b = Vec::new();
        encode_event(&mut b, &Event::default());
        let mut e = full_event();
        decode_event_into(&b, &mut e).unwrap();
        assert_eq!(e, Event::default());
    }

    #[test]
    fn truncated_or_extended_payloads_are_rejected() {
        let mut b = Vec::new();
        encode_event(&mut b, &full_event());
        for n in 0..b.len() {
            assert_eq!(decode_event(&b[..n]), Err(DecodeError), "cut at {n}");
        }
        b.push(0);
        assert_eq!(decode_event(&b), Err(DecodeError));
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(b in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = decode_event(&b);
        }

        #[test]
        fn byte_strings_round_trip(
            path in proptest::collection::vec(any::<u8>(), 0..64),
            args in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..16), 0..4),
            pid: u32,
            time: i64,
        ) {
            let mut e = full_event();
            e.file.as_mut().unwrap().path = BStr(path);
            e.process.args = args.into_iter().map(BStr).collect();
            e.process.pid = pid;
            e.time = Timestamp(time);
            let mut b = Vec::new();
            encode_event(&mut b, &e);
            let d = decode_event(&b).unwrap();
            prop_assert_eq!(d.to_json(), e.to_json());
            prop_assert_eq!(d, e);
        }
    }
}
