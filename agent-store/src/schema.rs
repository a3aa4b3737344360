// Over 800 lines: one index spec and one document rule per catalogue field, which must stay side by side to stay in step.
//! The tantivy schema: one index field per dotted event field, named exactly like it, plus a few
//! internal fields (`_seq`, `_off`, `_text`). Bodies are not stored in the index: the spool holds
//! them, and `_seq`/`_off` point at the record.

use std::net::IpAddr;

use agent_model::{Alert, BStr, Event};
use tantivy::TantivyDocument;
use tantivy::schema::{
    FAST, Field, INDEXED, IndexRecordOption, IpAddrOptions, NumericOptions, Schema,
    TextFieldIndexing, TextOptions,
};
use tantivy::tokenizer::{LowerCaser, RemoveLongFilter, SimpleTokenizer, TextAnalyzer};

use crate::TriageEntry;

/// Schema version, recorded in every commit payload. A different version means a rebuild.
pub(crate) const SCHEMA_VERSION: u32 = 7;
/// Keyword values longer than this are indexed by their first bytes (the spool keeps them whole).
pub(crate) const MAX_KEYWORD: usize = 1024;
/// Name of the tokenizer of text fields.
pub(crate) const TEXT_TOKENIZER: &str = "aw_text";

/// How a field is indexed, which decides how a query value is matched.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FieldClass {
    /// Exact value (raw tokenizer); wildcards match the whole value.
    Keyword,
    /// Tokenized text with positions; values match words and phrases.
    Text,
    /// Unsigned integer.
    U64,
    /// Signed integer.
    I64,
    /// Time in ns since the epoch (i64).
    Time,
    /// IP address (v4 stored as v4-mapped v6).
    Ip,
    /// Boolean.
    Bool,
    /// `triage.state`: computed from triage records at query time.
    Triage,
}

/// A queryable field.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FieldSpec {
    pub name: &'static str,
    pub class: FieldClass,
    /// Has a fast column (aggregations, sorting).
    pub fast: bool,
}

const fn f(name: &'static str, class: FieldClass, fast: bool) -> FieldSpec {
    FieldSpec { name, class, fast }
}

use FieldClass as C;

/// Every queryable field. Names are the dotted JSON paths of events and alerts.
pub const SPECS: &[FieldSpec] = &[
    f("id", C::Keyword, false),
    f("time", C::Time, true),
    f("host", C::Keyword, true),
    f("kind", C::Keyword, true),
    f("agent.name", C::Keyword, true),
    f("session.id", C::Keyword, true),
    f("process.pid", C::U64, true),
    f("process.tid", C::U64, false),
    f("process.start", C::Time, false),
    f("process.exe", C::Keyword, true),
    f("process.comm", C::Keyword, true),
    f("process.uid", C::U64, false),
    f("process.gid", C::U64, false),
    f("process.euid", C::U64, false),
    f("process.egid", C::U64, false),
    f("process.args", C::Keyword, false),
    f("process.cmdline", C::Text, false),
    f("process.args_truncated", C::Bool, false),
    f("process.args_len", C::U64, false),
    f("process.cwd", C::Keyword, false),
    f("process.filename", C::Keyword, false),
    f("process.exec_markers", C::Keyword, false),
    f("process.args_redacted", C::Bool, false),
    f("parent.pid", C::U64, false),
    f("parent.start", C::Time, false),
    f("parent.exe", C::Keyword, false),
    f("ancestry", C::Keyword, false),
    f("file.path", C::Keyword, true),
    f("file.target", C::Keyword, false),
    f("file.path_arg", C::Keyword, false),
    f("file.target_arg", C::Keyword, false),
    f("file.dev", C::U64, false),
    f("file.ino", C::U64, false),
    f("file.access", C::Keyword, false),
    f("file.flags", C::Keyword, false),
    f("file.type", C::Keyword, false),
    f("file.mode", C::U64, false),
    f("file.fd", C::I64, false),
    f("file.via", C::Keyword, false),
    f("file.path_truncated", C::Bool, false),
    f("file.owner_uid", C::U64, false),
    f("file.owner_gid", C::U64, false),
    f("file.size", C::U64, false),
    f("file.markers", C::Keyword, false),
    f("file.atime", C::Keyword, false),
    f("file.mtime", C::Keyword, false),
    f("net.family", C::Keyword, false),
    f("net.protocol", C::Keyword, false),
    f("net.src_ip", C::Ip, false),
    f("net.src_port", C::U64, false),
    f("net.dst_ip", C::Ip, true),
    f("net.dst_port", C::U64, true),
    f("net.unix_path", C::Keyword, false),
    f("net.via", C::Keyword, false),
    f("net.bytes", C::U64, false),
    f("net.bytes_received", C::U64, false),
    f("net.flow_state", C::Keyword, false),
    f("net.flow_ms", C::U64, false),
    f("dns.qname", C::Keyword, true),
    f("dns.qtype", C::Keyword, false),
    f("dns.longest_label", C::U64, false),
    f("priv.op", C::Keyword, false),
    f("priv.uid", C::U64, false),
    f("priv.euid", C::U64, false),
    f("priv.gid", C::U64, false),
    f("priv.egid", C::U64, false),
    f("priv.caps", C::Keyword, false),
    f("target.pid", C::U64, false),
    f("target.relation", C::Keyword, false),
    f("target.exe", C::Keyword, false),
    f("op.name", C::Keyword, false),
    f("op.signal", C::I64, false),
    f("op.flags", C::Keyword, false),
    f("op.object", C::Keyword, false),
    f("op.target_path", C::Keyword, false),
    f("op.type", C::Keyword, false),
    f("op.result", C::I64, false),
    f("op.object_id", C::U64, false),
    f("exit.code", C::I64, false),
    f("exit.signal", C::I64, false),
    f("monitor.loss_kind", C::Keyword, false),
    f("monitor.loss_count", C::U64, false),
    f("monitor.message", C::Text, false),
    f("monitor.downtime_ms", C::U64, false),
    f("monitor.buffered", C::U64, false),
    f("intent.hook", C::Keyword, false),
    f("intent.agent_session", C::Keyword, false),
    f("intent.tool_name", C::Keyword, true),
    f("intent.tool_call_id", C::Keyword, true),
    f("intent.tool_input", C::Text, false),
    f("intent.tool_output", C::Text, false),
    f("intent.tool_success", C::Bool, false),
    f("intent.prompt", C::Text, false),
    f("intent.decision", C::Keyword, false),
    f("intent.reason", C::Text, false),
    f("intent.redacted", C::Bool, false),
    f("intent.undeclared", C::Bool, false),
    f("response.action", C::Keyword, false),
    f("response.mode", C::Keyword, false),
    f("response.by", C::Keyword, false),
    f("response.result", C::Text, false),
    f("response.note", C::Text, false),
    f("response.processes", C::U64, false),
    f("llm.provider", C::Keyword, false),
    f("llm.model", C::Keyword, true),
    f("llm.host", C::Keyword, false),
    f("llm.path", C::Keyword, false),
    f("llm.tools", C::Keyword, false),
    f("llm.tool_calls", C::Keyword, true),
    f("llm.tool_call_ids", C::Keyword, false),
    f("llm.input_tokens", C::U64, true),
    f("llm.output_tokens", C::U64, true),
    f("llm.stop_reason", C::Keyword, false),
    f("llm.status", C::U64, false),
    f("llm.excerpt", C::Text, false),
    f("llm.system", C::Text, false),
    f("llm.error", C::Text, false),
    f("llm.bytes", C::U64, false),
    f("llm.conn", C::Keyword, false),
    f("llm.incomplete", C::Bool, false),
    f("mcp.server", C::Keyword, true),
    f("mcp.tool", C::Keyword, true),
    f("mcp.arguments", C::Text, false),
    f("mcp.bytes", C::U64, false),
    f("intent.tool_path", C::Keyword, false),
    f("intent.divergent", C::Bool, false),
    // Alerts.
    f("rule", C::Keyword, true),
    f("severity", C::Keyword, true),
    f("summary", C::Text, false),
    f("tags", C::Keyword, false),
    f("event_ids", C::Keyword, false),
    f("count", C::U64, false),
    f("in_loss_window", C::Bool, false),
    // Triage records (internal) and the computed state of alerts.
    f("triage.alert_id", C::Keyword, false),
    f("triage.state", C::Triage, false),
];

const fn str_eq(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    let mut i = 0;
    while i < a.len() {
        if a[i] != b[i] {
            return false;
        }
        i += 1;
    }
    true
}

/// Position of `name` in [`SPECS`], at compile time.
pub(crate) const fn spec_index(name: &str) -> usize {
    let mut i = 0;
    while i < SPECS.len() {
        if str_eq(SPECS[i].name, name) {
            return i;
        }
        i += 1;
    }
    panic!("unknown field name");
}

/// The tantivy field of a literal field name, resolved at compile time.
macro_rules! fid {
    ($fields:expr, $name:literal) => {
        $fields.at(const { $crate::schema::spec_index($name) })
    };
}

/// Numeric fields kept only as columns (cheaper to write than postings); term queries on them
/// run as one-value ranges over the column.
pub(crate) const COLUMN_ONLY: &[&str] = &[
    "process.tid",
    "process.uid",
    "process.gid",
    "process.euid",
    "process.egid",
    "process.args_len",
    "parent.pid",
    "file.dev",
    "file.ino",
    "file.mode",
    "file.fd",
    "net.src_port",
    "exit.code",
    "exit.signal",
    "monitor.loss_count",
    "count",
];

/// Short names a responder types, mapped to the dotted field.
pub const ALIASES: &[(&str, &str)] = &[
    ("exe", "process.exe"),
    ("comm", "process.comm"),
    ("cmd", "process.cmdline"),
    ("cmdline", "process.cmdline"),
    ("args", "process.args"),
    ("arg", "process.args"),
    ("cwd", "process.cwd"),
    ("pid", "process.pid"),
    ("tid", "process.tid"),
    ("uid", "process.uid"),
    ("gid", "process.gid"),
    ("ppid", "parent.pid"),
    ("pexe", "parent.exe"),
    ("path", "file.path"),
    ("file", "file.path"),
    ("target", "file.target"),
    ("dst", "net.dst_ip"),
    ("ip", "net.dst_ip"),
    ("src", "net.src_ip"),
    ("port", "net.dst_port"),
    ("dport", "net.dst_port"),
    ("sport", "net.src_port"),
    ("proto", "net.protocol"),
    ("session", "session.id"),
    ("agent", "agent.name"),
    ("sev", "severity"),
    ("tag", "tags"),
    ("triage", "triage.state"),
    ("state", "triage.state"),
    ("type", "kind"),
];

/// Fields a bare word searches.
pub const DEFAULT_TEXT_FIELDS: &[&str] =
    &["_text", "process.cmdline", "summary", "monitor.message"];
/// Keyword fields a bare wildcard searches.
pub const DEFAULT_KEYWORD_FIELDS: &[&str] = &["file.path", "process.exe", "file.target", "rule"];

/// Resolve a field name or alias.
pub fn lookup(name: &str) -> Option<&'static FieldSpec> {
    let name = ALIASES
        .iter()
        .find(|(a, _)| *a == name)
        .map(|(_, t)| *t)
        .unwrap_or(name);
    SPECS.iter().find(|s| s.name == name)
}

/// The tokenizer of text fields: split on non-alphanumerics, drop tokens over 64 bytes, lowercase.
pub(crate) fn text_analyzer() -> TextAnalyzer {
    TextAnalyzer::builder(SimpleTokenizer::default())
        .filter(RemoveLongFilter::limit(64))
        .filter(LowerCaser)
        .build()
}

/// Field handles of the built schema.
#[derive(Clone)]
pub(crate) struct Fields {
    pub schema: Schema,
    pub seq: Field,
    pub off: Field,
    pub text: Field,
    pub by_spec: Vec<Option<Field>>,
}

impl Fields {
    /// The field at position `i` of [`SPECS`] (see [`spec_index`]).
    #[inline]
    pub fn at(&self, i: usize) -> Field {
        self.by_spec[i].unwrap_or_else(|| panic!("field `{}` is virtual", SPECS[i].name))
    }

    pub fn get(&self, name: &str) -> Field {
        let i = SPECS
            .iter()
            .position(|s| s.name == name)
            .unwrap_or_else(|| panic!("field `{name}` is not in SPECS"));
        self.by_spec[i].unwrap_or_else(|| panic!("field `{name}` is virtual"))
    }

    pub fn build() -> Fields {
        let mut b = Schema::builder();
        let keyword = TextOptions::default().set_indexing_options(
            TextFieldIndexing::default()
                .set_tokenizer("raw")
                .set_index_option(IndexRecordOption::Basic)
                .set_fieldnorms(false),
        );
        let text = TextOptions::default().set_indexing_options(
            TextFieldIndexing::default()
                .set_tokenizer(TEXT_TOKENIZER)
                .set_index_option(IndexRecordOption::WithFreqsAndPositions)
                .set_fieldnorms(false),
        );
        let mut by_spec = Vec::with_capacity(SPECS.len());
        for s in SPECS {
            let field = match s.class {
                C::Keyword => {
                    let opts = if s.fast {
                        keyword.clone().set_fast("raw")
                    } else {
                        keyword.clone()
                    };
                    Some(b.add_text_field(s.name, opts))
                }
                C::Text => Some(b.add_text_field(s.name, text.clone())),
                C::U64 | C::Time | C::I64 | C::Bool => {
                    // Time and fast numeric fields are scanned through their columns; the
                    // others are indexed for term and range queries.
                    let opts: NumericOptions =
                        if s.class == C::Time || COLUMN_ONLY.contains(&s.name) {
                            NumericOptions::from(FAST)
                        } else if s.fast {
                            NumericOptions::from(INDEXED | FAST)
                        } else {
                            NumericOptions::from(INDEXED)
                        };
                    Some(match s.class {
                        C::U64 => b.add_u64_field(s.name, opts),
                        C::Bool => b.add_bool_field(s.name, opts),
                        _ => b.add_i64_field(s.name, opts),
                    })
                }
                C::Ip => {
                    let opts = IpAddrOptions::default().set_indexed();
                    let opts = if s.fast { opts.set_fast() } else { opts };
                    Some(b.add_ip_addr_field(s.name, opts))
                }
                C::Triage => None,
            };
            by_spec.push(field);
        }
        let seq = b.add_u64_field("_seq", FAST);
        let off = b.add_u64_field("_off", FAST);
        let text_all = b.add_text_field("_text", text);
        Fields {
            schema: b.build(),
            seq,
            off,
            text: text_all,
            by_spec,
        }
    }

    /// The index document of an event.
    pub fn event_doc(&self, e: &Event, seq: u64, off: u64) -> TantivyDocument {
        let mut d = TantivyDocument::new();
        d.add_u64(self.seq, seq);
        d.add_u64(self.off, off);
        let kw = |d: &mut TantivyDocument, f: Field, v: &str| {
            d.add_text(f, clip(v));
        };
        let bkw = |d: &mut TantivyDocument, f: Field, v: &BStr| {
            if !v.is_empty() {
                d.add_text(f, clip(&v.to_str_lossy()));
            }
        };
        let u = |d: &mut TantivyDocument, f: Field, v: Option<u64>| {
            if let Some(v) = v {
                d.add_u64(f, v);
            }
        };
        let i = |d: &mut TantivyDocument, f: Field, v: Option<i64>| {
            if let Some(v) = v {
                d.add_i64(f, v);
            }
        };
        kw(&mut d, fid!(self, "id"), &e.id);
        d.add_i64(fid!(self, "time"), e.time.0);
        kw(&mut d, fid!(self, "host"), &e.host);
        kw(&mut d, fid!(self, "kind"), e.kind().name());
        if let Some(a) = &e.agent {
            kw(&mut d, fid!(self, "agent.name"), &a.name);
        }
        if let Some(s) = &e.session {
            kw(&mut d, fid!(self, "session.id"), &s.id);
        }
        let p = &e.process;
        u(&mut d, fid!(self, "process.pid"), Some(p.pid.into()));
        u(&mut d, fid!(self, "process.tid"), Some(p.tid.into()));
        i(&mut d, fid!(self, "process.start"), Some(p.start.0));
        bkw(&mut d, fid!(self, "process.exe"), &p.exe);
        bkw(&mut d, fid!(self, "process.comm"), &p.comm);
        u(&mut d, fid!(self, "process.uid"), Some(p.uid.into()));
        u(&mut d, fid!(self, "process.gid"), Some(p.gid.into()));
        u(&mut d, fid!(self, "process.euid"), p.euid.map(u64::from));
        u(&mut d, fid!(self, "process.egid"), p.egid.map(u64::from));
        // Only exec events carry argv worth matching one by one.
        for a in p.args.iter().take(64) {
            bkw(&mut d, fid!(self, "process.args"), a);
        }
        if !p.cmdline.is_empty() {
            d.add_text(fid!(self, "process.cmdline"), p.cmdline.to_str_lossy());
        }
        if p.args_truncated {
            d.add_bool(fid!(self, "process.args_truncated"), true);
        }
        u(
            &mut d,
            fid!(self, "process.args_len"),
            p.args_len.map(u64::from),
        );
        bkw(&mut d, fid!(self, "process.cwd"), &p.cwd);
        bkw(&mut d, fid!(self, "process.filename"), &p.filename);
        for m in &p.exec_markers {
            kw(&mut d, fid!(self, "process.exec_markers"), m);
        }
        if p.args_redacted {
            d.add_bool(fid!(self, "process.args_redacted"), true);
        }
        let mut text = String::new();
        push_text(&mut text, &p.exe);
        if let Some(par) = &e.parent {
            u(&mut d, fid!(self, "parent.pid"), Some(par.pid.into()));
            i(&mut d, fid!(self, "parent.start"), par.start.map(|t| t.0));
            bkw(&mut d, fid!(self, "parent.exe"), &par.exe);
        }
        for a in e.ancestry.iter().take(32) {
            bkw(&mut d, fid!(self, "ancestry"), a);
        }
        if let Some(fl) = &e.file {
            bkw(&mut d, fid!(self, "file.path"), &fl.path);
            push_text(&mut text, &fl.path);
            if let Some(t) = &fl.target {
                bkw(&mut d, fid!(self, "file.target"), t);
                push_text(&mut text, t);
            }
            if let Some(p) = &fl.path_arg {
                bkw(&mut d, fid!(self, "file.path_arg"), p);
            }
            if let Some(t) = &fl.target_arg {
                bkw(&mut d, fid!(self, "file.target_arg"), t);
            }
            u(&mut d, fid!(self, "file.dev"), fl.dev);
            u(&mut d, fid!(self, "file.ino"), fl.ino);
            if let Some(v) = &fl.access {
                kw(&mut d, fid!(self, "file.access"), v);
            }
            for v in &fl.flags {
                kw(&mut d, fid!(self, "file.flags"), v);
            }
            if let Some(v) = &fl.r#type {
                kw(&mut d, fid!(self, "file.type"), v);
            }
            u(&mut d, fid!(self, "file.mode"), fl.mode.map(u64::from));
            i(&mut d, fid!(self, "file.fd"), fl.fd.map(i64::from));
            if let Some(v) = &fl.via {
                kw(&mut d, fid!(self, "file.via"), v);
            }
            if fl.path_truncated {
                d.add_bool(fid!(self, "file.path_truncated"), true);
            }
            u(
                &mut d,
                fid!(self, "file.owner_uid"),
                fl.owner_uid.map(u64::from),
            );
            u(
                &mut d,
                fid!(self, "file.owner_gid"),
                fl.owner_gid.map(u64::from),
            );
            u(&mut d, fid!(self, "file.size"), fl.size);
            for m in &fl.markers {
                kw(&mut d, fid!(self, "file.markers"), m);
            }
            if let Some(v) = &fl.atime {
                kw(&mut d, fid!(self, "file.atime"), v);
            }
            if let Some(v) = &fl.mtime {
                kw(&mut d, fid!(self, "file.mtime"), v);
            }
        }
        if let Some(n) = &e.net {
            kw(&mut d, fid!(self, "net.family"), &n.family);
            if let Some(v) = &n.protocol {
                kw(&mut d, fid!(self, "net.protocol"), v);
            }
            if let Some(ip) = n.src_ip {
                d.add_ip_addr(fid!(self, "net.src_ip"), to_v6(ip));
            }
            u(
                &mut d,
                fid!(self, "net.src_port"),
                n.src_port.map(u64::from),
            );
            if let Some(ip) = n.dst_ip {
                d.add_ip_addr(fid!(self, "net.dst_ip"), to_v6(ip));
            }
            u(
                &mut d,
                fid!(self, "net.dst_port"),
                n.dst_port.map(u64::from),
            );
            if let Some(v) = &n.unix_path {
                bkw(&mut d, fid!(self, "net.unix_path"), v);
                push_text(&mut text, v);
            }
            if let Some(v) = &n.via {
                kw(&mut d, fid!(self, "net.via"), v);
            }
            u(&mut d, fid!(self, "net.bytes"), n.bytes);
            u(&mut d, fid!(self, "net.bytes_received"), n.bytes_received);
            u(&mut d, fid!(self, "net.flow_ms"), n.flow_ms);
            if let Some(v) = &n.flow_state {
                kw(&mut d, fid!(self, "net.flow_state"), v);
            }
        }
        if let Some(q) = &e.dns {
            bkw(&mut d, fid!(self, "dns.qname"), &q.qname);
            push_text(&mut text, &q.qname);
            kw(&mut d, fid!(self, "dns.qtype"), &q.qtype);
            // Derived (not stored in the event): indexed so `dns.longest_label:>40` works.
            let longest = q.qname.0.split(|b| *b == b'.').map(<[u8]>::len).max();
            u(
                &mut d,
                fid!(self, "dns.longest_label"),
                longest.map(|n| n as u64),
            );
        }
        if let Some(pv) = &e.r#priv {
            kw(&mut d, fid!(self, "priv.op"), &pv.op);
            u(&mut d, fid!(self, "priv.uid"), Some(pv.uid.into()));
            u(&mut d, fid!(self, "priv.euid"), Some(pv.euid.into()));
            u(&mut d, fid!(self, "priv.gid"), Some(pv.gid.into()));
            u(&mut d, fid!(self, "priv.egid"), Some(pv.egid.into()));
            if let Some(c) = &pv.caps {
                kw(&mut d, fid!(self, "priv.caps"), c);
            }
        }
        if let Some(t) = &e.target {
            u(&mut d, fid!(self, "target.pid"), Some(t.pid.into()));
            kw(&mut d, fid!(self, "target.relation"), &t.relation);
            bkw(&mut d, fid!(self, "target.exe"), &t.exe);
        }
        if let Some(o) = &e.op {
            kw(&mut d, fid!(self, "op.name"), &o.name);
            i(&mut d, fid!(self, "op.signal"), o.signal.map(i64::from));
            for f in &o.flags {
                kw(&mut d, fid!(self, "op.flags"), f);
            }
            if let Some(v) = &o.object {
                bkw(&mut d, fid!(self, "op.object"), v);
                push_text(&mut text, v);
            }
            if let Some(v) = &o.target_path {
                bkw(&mut d, fid!(self, "op.target_path"), v);
            }
            if let Some(v) = &o.r#type {
                kw(&mut d, fid!(self, "op.type"), v);
            }
            i(&mut d, fid!(self, "op.result"), o.result);
            u(&mut d, fid!(self, "op.object_id"), o.object_id);
        }
        if let Some(x) = &e.exit {
            i(&mut d, fid!(self, "exit.code"), x.code.map(i64::from));
            i(&mut d, fid!(self, "exit.signal"), x.signal.map(i64::from));
        }
        if let Some(m) = &e.monitor {
            if let Some(v) = &m.loss_kind {
                kw(&mut d, fid!(self, "monitor.loss_kind"), v);
            }
            u(&mut d, fid!(self, "monitor.loss_count"), m.loss_count);
            u(&mut d, fid!(self, "monitor.downtime_ms"), m.downtime_ms);
            u(&mut d, fid!(self, "monitor.buffered"), m.buffered);
            if let Some(v) = &m.message {
                d.add_text(fid!(self, "monitor.message"), v);
            }
        }
        if let Some(x) = &e.intent {
            let opt = |d: &mut TantivyDocument, f: Field, v: &Option<String>| {
                if let Some(v) = v {
                    d.add_text(f, clip(v));
                }
            };
            opt(&mut d, fid!(self, "intent.hook"), &x.hook);
            opt(&mut d, fid!(self, "intent.agent_session"), &x.agent_session);
            opt(&mut d, fid!(self, "intent.tool_name"), &x.tool_name);
            opt(&mut d, fid!(self, "intent.tool_call_id"), &x.tool_call_id);
            opt(&mut d, fid!(self, "intent.decision"), &x.decision);
            for (name, v) in [
                (fid!(self, "intent.tool_input"), &x.tool_input),
                (fid!(self, "intent.tool_output"), &x.tool_output),
                (fid!(self, "intent.prompt"), &x.prompt),
            ] {
                if let Some(v) = v {
                    d.add_text(name, v.to_str_lossy());
                    push_text(&mut text, v);
                }
            }
            if let Some(v) = &x.reason {
                d.add_text(fid!(self, "intent.reason"), v);
            }
            if let Some(b) = x.tool_success {
                d.add_bool(fid!(self, "intent.tool_success"), b);
            }
            if x.redacted {
                d.add_bool(fid!(self, "intent.redacted"), true);
            }
            if x.undeclared {
                d.add_bool(fid!(self, "intent.undeclared"), true);
            }
            if let Some(v) = &x.tool_path {
                d.add_text(fid!(self, "intent.tool_path"), clip(&v.to_str_lossy()));
            }
            if x.divergent {
                d.add_bool(fid!(self, "intent.divergent"), true);
            }
        }
        if let Some(r) = &e.response {
            kw(&mut d, fid!(self, "response.action"), &r.action);
            kw(&mut d, fid!(self, "response.mode"), &r.mode);
            kw(&mut d, fid!(self, "response.by"), &r.by);
            d.add_text(fid!(self, "response.result"), clip(&r.result));
            if !r.note.is_empty() {
                d.add_text(fid!(self, "response.note"), clip(&r.note));
            }
            u(&mut d, fid!(self, "response.processes"), r.processes);
        }
        if let Some(l) = &e.llm {
            kw(&mut d, fid!(self, "llm.provider"), &l.provider);
            for (f, v) in [
                (fid!(self, "llm.model"), &l.model),
                (fid!(self, "llm.stop_reason"), &l.stop_reason),
                (fid!(self, "llm.conn"), &l.conn),
            ] {
                if let Some(v) = v {
                    kw(&mut d, f, v);
                }
            }
            if !l.host.is_empty() {
                kw(&mut d, fid!(self, "llm.host"), &l.host);
            }
            if !l.path.is_empty() {
                kw(&mut d, fid!(self, "llm.path"), &l.path);
            }
            for (f, v) in [
                (fid!(self, "llm.tools"), &l.tools),
                (fid!(self, "llm.tool_calls"), &l.tool_calls),
                (fid!(self, "llm.tool_call_ids"), &l.tool_call_ids),
            ] {
                for x in v {
                    kw(&mut d, f, x);
                }
            }
            u(&mut d, fid!(self, "llm.input_tokens"), l.input_tokens);
            u(&mut d, fid!(self, "llm.output_tokens"), l.output_tokens);
            u(&mut d, fid!(self, "llm.status"), l.status.map(u64::from));
            u(&mut d, fid!(self, "llm.bytes"), l.bytes);
            for (f, v) in [
                (fid!(self, "llm.excerpt"), &l.excerpt),
                (fid!(self, "llm.system"), &l.system),
            ] {
                if let Some(v) = v {
                    d.add_text(f, v.to_str_lossy());
                    push_text(&mut text, v);
                }
            }
            if let Some(v) = &l.error {
                d.add_text(fid!(self, "llm.error"), clip(v));
            }
            if l.incomplete {
                d.add_bool(fid!(self, "llm.incomplete"), true);
            }
        }
        if let Some(m) = &e.mcp {
            kw(&mut d, fid!(self, "mcp.server"), &m.server);
            kw(&mut d, fid!(self, "mcp.tool"), &m.tool);
            u(&mut d, fid!(self, "mcp.bytes"), m.bytes);
            if let Some(v) = &m.arguments {
                d.add_text(fid!(self, "mcp.arguments"), v.to_str_lossy());
                push_text(&mut text, v);
            }
        }
        if !text.is_empty() {
            d.add_text(self.text, text);
        }
        d
    }

    /// The index document of an alert (`kind:alert`).
    pub fn alert_doc(&self, a: &Alert, seq: u64, off: u64) -> TantivyDocument {
        let mut d = TantivyDocument::new();
        d.add_u64(self.seq, seq);
        d.add_u64(self.off, off);
        d.add_text(fid!(self, "id"), clip(&a.id));
        d.add_i64(fid!(self, "time"), a.time.0);
        d.add_text(fid!(self, "host"), clip(&a.host));
        d.add_text(fid!(self, "kind"), "alert");
        d.add_text(fid!(self, "rule"), clip(&a.rule));
        d.add_text(fid!(self, "severity"), a.severity.name());
        if let Some(ag) = &a.agent {
            d.add_text(fid!(self, "agent.name"), clip(&ag.name));
        }
        if let Some(s) = &a.session {
            d.add_text(fid!(self, "session.id"), clip(&s.id));
        }
        d.add_text(fid!(self, "summary"), a.summary.to_str_lossy());
        for t in &a.tags {
            d.add_text(fid!(self, "tags"), clip(t));
        }
        for id in &a.event_ids {
            d.add_text(fid!(self, "event_ids"), clip(id));
        }
        d.add_u64(fid!(self, "count"), a.count);
        if a.in_loss_window {
            d.add_bool(fid!(self, "in_loss_window"), true);
        }
        d
    }

    /// The index document of a triage record (`kind:triage`, hidden from searches).
    pub fn triage_doc(&self, t: &TriageEntry, seq: u64, off: u64) -> TantivyDocument {
        let mut d = TantivyDocument::new();
        d.add_u64(self.seq, seq);
        d.add_u64(self.off, off);
        d.add_text(fid!(self, "kind"), "triage");
        d.add_i64(fid!(self, "time"), t.time.0);
        d.add_text(fid!(self, "triage.alert_id"), clip(&t.alert_id));
        d
    }
}

fn push_text(out: &mut String, v: &BStr) {
    if v.is_empty() {
        return;
    }
    if !out.is_empty() {
        out.push(' ');
    }
    out.push_str(&v.to_str_lossy());
}

/// A keyword value as indexed: at most [`MAX_KEYWORD`] bytes, cut on a char boundary.
pub(crate) fn clip(v: &str) -> &str {
    if v.len() <= MAX_KEYWORD {
        return v;
    }
    let mut end = MAX_KEYWORD;
    while !v.is_char_boundary(end) {
        end -= 1;
    }
    &v[..end]
}

pub(crate) fn to_v6(ip: IpAddr) -> std::net::Ipv6Addr {
    match ip {
        IpAddr::V4(v4) => v4.to_ipv6_mapped(),
        IpAddr::V6(v6) => v6,
    }
}

/// The Quickwit doc mapping of the same fields (nested objects for the dotted names), for
/// shipping events to a fleet-wide index. OpenSearch takes the same shape with `keyword`,
/// `text`, `long`, `date_nanos`, `ip` and `boolean` types (see README.md).
pub fn quickwit_doc_mapping() -> serde_json::Value {
    use serde_json::{Map, Value, json};
    fn leaf(s: &FieldSpec) -> Option<Value> {
        Some(match s.class {
            C::Keyword => json!({ "type": "text", "tokenizer": "raw", "fast": s.fast }),
            C::Text => json!({ "type": "text", "tokenizer": "default", "record": "position" }),
            C::U64 => json!({ "type": "u64", "fast": s.fast }),
            C::I64 => json!({ "type": "i64", "fast": s.fast }),
            C::Time => json!({
                "type": "datetime",
                "input_formats": ["rfc3339"],
                "fast": true,
                "fast_precision": "nanoseconds",
            }),
            C::Ip => json!({ "type": "ip", "fast": s.fast }),
            C::Bool => json!({ "type": "bool" }),
            C::Triage => return None,
        })
    }
    fn insert(tree: &mut Map<String, Value>, path: &[&str], v: Value) {
        if path.len() == 1 {
            tree.insert(path[0].to_string(), v);
            return;
        }
        let child = tree
            .entry(path[0].to_string())
            .or_insert_with(|| json!({ "type": "object", "field_mappings": {} }));
        if let Some(Value::Object(m)) = child.get_mut("field_mappings") {
            insert(m, &path[1..], v);
        }
    }
    let mut tree = Map::new();
    for s in SPECS {
        if let Some(v) = leaf(s) {
            let path: Vec<&str> = s.name.split('.').collect();
            insert(&mut tree, &path, v);
        }
    }
    fn to_list(tree: Map<String, Value>) -> Value {
        Value::Array(
            tree.into_iter()
                .map(|(name, mut v)| {
                    if let Some(Value::Object(m)) = v.get_mut("field_mappings").map(Value::take) {
                        v["field_mappings"] = to_list(m);
                    }
                    v["name"] = Value::String(name);
                    v
                })
                .collect(),
        )
    }
    json!({
        "field_mappings": to_list(tree),
        "timestamp_field": "time",
        "mode": "lenient",
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_catalogue_field_is_queryable_under_its_dotted_name() {
        // The query schema covers every event field of the model's catalogue.
        for d in agent_model::FIELDS {
            assert!(lookup(d.name).is_some(), "`{}` is not in SPECS", d.name);
        }
        for (alias, target) in ALIASES {
            assert!(lookup(target).is_some(), "alias `{alias}` → `{target}`");
        }
    }

    #[test]
    fn quickwit_mapping_nests_dotted_names() {
        let m = quickwit_doc_mapping();
        let fields = m["field_mappings"].as_array().unwrap();
        let net = fields.iter().find(|f| f["name"] == "net").unwrap();
        let dst = net["field_mappings"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["name"] == "dst_ip")
            .unwrap();
        assert_eq!(dst["type"], "ip");
        assert_eq!(m["timestamp_field"], "time");
    }
}
