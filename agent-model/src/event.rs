// Over 800 lines: one serde type per event part with its documented JSON shape; the parts only make sense read together with `Event`.
//! The owned event and alert types.
//!
//! JSON shape: nested objects whose dotted paths are the stable field names (`process.exe`,
//! `file.path`, `net.dst_ip`), the same names rules, queries, exports and the TUI use. Absent
//! optional parts are omitted. See [`crate::fields`] for the catalogue.

use std::fmt;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use crate::bstr::BStr;

/// Event kind. The numeric ids are stable and never reused; the dotted name is what users see.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Kind {
    #[serde(rename = "process.exec")]
    ProcessExec,
    #[serde(rename = "process.exit")]
    ProcessExit,
    #[serde(rename = "process.fork")]
    ProcessFork,
    #[serde(rename = "file.open")]
    FileOpen,
    #[serde(rename = "file.unlink")]
    FileUnlink,
    #[serde(rename = "file.rename")]
    FileRename,
    #[serde(rename = "net.connect")]
    NetConnect,
    #[serde(rename = "net.accept")]
    NetAccept,
    #[serde(rename = "net.listen")]
    NetListen,
    #[serde(rename = "file.chmod")]
    FileChmod,
    #[serde(rename = "file.chown")]
    FileChown,
    #[serde(rename = "file.link")]
    FileLink,
    #[serde(rename = "file.symlink")]
    FileSymlink,
    #[serde(rename = "file.mkdir")]
    FileMkdir,
    #[serde(rename = "file.truncate")]
    FileTruncate,
    #[serde(rename = "file.write")]
    FileWrite,
    #[serde(rename = "net.send")]
    NetSend,
    #[serde(rename = "net.dns")]
    NetDns,
    #[serde(rename = "net.flow")]
    NetFlow,
    #[serde(rename = "file.mmap_exec")]
    FileMmapExec,
    #[serde(rename = "file.utime")]
    FileUtime,
    #[serde(rename = "priv.change")]
    PrivChange,
    #[serde(rename = "process.ptrace")]
    ProcessPtrace,
    #[serde(rename = "kernel.bpf")]
    KernelBpf,
    #[serde(rename = "kernel.module")]
    KernelModule,
    #[serde(rename = "fs.mount")]
    FsMount,
    #[serde(rename = "process.namespace")]
    ProcessNamespace,
    #[serde(rename = "process.memfd")]
    ProcessMemfd,
    #[serde(rename = "process.signal")]
    ProcessSignal,
    #[serde(rename = "file.xattr")]
    FileXattr,
    #[serde(rename = "monitor.loss")]
    MonitorLoss,
    #[serde(rename = "monitor.start")]
    MonitorStart,
    #[serde(rename = "session.start")]
    SessionStart,
    #[serde(rename = "session.end")]
    SessionEnd,
    #[serde(rename = "response.action")]
    ResponseAction,
    #[serde(rename = "agent.prompt")]
    AgentPrompt,
    #[serde(rename = "agent.tool_call")]
    AgentToolCall,
    #[serde(rename = "agent.tool_result")]
    AgentToolResult,
    #[serde(rename = "agent.session")]
    AgentSession,
    #[serde(rename = "llm.request")]
    LlmRequest,
    #[serde(rename = "llm.response")]
    LlmResponse,
    #[serde(rename = "mcp.call")]
    McpCall,
}

impl Kind {
    /// Every kind, in id order.
    pub const ALL: [Kind; 42] = [
        Kind::ProcessExec,
        Kind::ProcessExit,
        Kind::ProcessFork,
        Kind::FileOpen,
        Kind::FileUnlink,
        Kind::FileRename,
        Kind::NetConnect,
        Kind::NetAccept,
        Kind::NetListen,
        Kind::FileChmod,
        Kind::FileChown,
        Kind::FileLink,
        Kind::FileSymlink,
        Kind::FileMkdir,
        Kind::FileTruncate,
        Kind::FileWrite,
        Kind::NetSend,
        Kind::NetDns,
        Kind::NetFlow,
        Kind::FileMmapExec,
        Kind::FileUtime,
        Kind::PrivChange,
        Kind::ProcessPtrace,
        Kind::KernelBpf,
        Kind::KernelModule,
        Kind::FsMount,
        Kind::ProcessNamespace,
        Kind::ProcessMemfd,
        Kind::ProcessSignal,
        Kind::FileXattr,
        Kind::MonitorLoss,
        Kind::MonitorStart,
        Kind::SessionStart,
        Kind::SessionEnd,
        Kind::ResponseAction,
        Kind::AgentPrompt,
        Kind::AgentToolCall,
        Kind::AgentToolResult,
        Kind::AgentSession,
        Kind::LlmRequest,
        Kind::LlmResponse,
        Kind::McpCall,
    ];

    /// Stable numeric id (kernel record kinds share their ids with `agent_common::RecordKind`).
    pub const fn id(self) -> u32 {
        match self {
            Kind::ProcessExec => 1,
            Kind::ProcessExit => 2,
            Kind::ProcessFork => 3,
            Kind::FileOpen => 10,
            Kind::FileUnlink => 11,
            Kind::FileRename => 12,
            Kind::NetConnect => 20,
            Kind::NetAccept => 21,
            Kind::NetListen => 22,
            Kind::FileChmod => 13,
            Kind::FileChown => 14,
            Kind::FileLink => 15,
            Kind::FileSymlink => 16,
            Kind::FileMkdir => 17,
            Kind::FileTruncate => 18,
            Kind::FileWrite => 19,
            Kind::NetSend => 23,
            Kind::NetDns => 24,
            Kind::NetFlow => 26,
            Kind::FileMmapExec => 25,
            Kind::FileUtime => 27,
            Kind::FileXattr => 45,
            Kind::PrivChange => 30,
            Kind::ProcessPtrace => 31,
            Kind::KernelBpf => 32,
            Kind::KernelModule => 33,
            Kind::FsMount => 34,
            Kind::ProcessNamespace => 35,
            Kind::ProcessMemfd => 36,
            Kind::ProcessSignal => 37,

            Kind::MonitorLoss => 900,
            Kind::MonitorStart => 901,
            Kind::SessionStart => 910,
            Kind::SessionEnd => 911,
            Kind::ResponseAction => 920,
            Kind::AgentPrompt => 950,
            Kind::AgentToolCall => 951,
            Kind::AgentToolResult => 952,
            Kind::AgentSession => 953,
            Kind::LlmRequest => 954,
            Kind::LlmResponse => 955,
            Kind::McpCall => 956,
        }
    }

    /// The dotted name, e.g. `file.open`.
    pub const fn name(self) -> &'static str {
        match self {
            Kind::ProcessExec => "process.exec",
            Kind::ProcessExit => "process.exit",
            Kind::ProcessFork => "process.fork",
            Kind::FileOpen => "file.open",
            Kind::FileUnlink => "file.unlink",
            Kind::FileRename => "file.rename",
            Kind::NetConnect => "net.connect",
            Kind::NetAccept => "net.accept",
            Kind::NetListen => "net.listen",
            Kind::FileChmod => "file.chmod",
            Kind::FileChown => "file.chown",
            Kind::FileLink => "file.link",
            Kind::FileSymlink => "file.symlink",
            Kind::FileMkdir => "file.mkdir",
            Kind::FileTruncate => "file.truncate",
            Kind::FileWrite => "file.write",
            Kind::NetSend => "net.send",
            Kind::NetDns => "net.dns",
            Kind::NetFlow => "net.flow",
            Kind::FileMmapExec => "file.mmap_exec",
            Kind::FileUtime => "file.utime",
            Kind::FileXattr => "file.xattr",
            Kind::PrivChange => "priv.change",
            Kind::ProcessPtrace => "process.ptrace",
            Kind::KernelBpf => "kernel.bpf",
            Kind::KernelModule => "kernel.module",
            Kind::FsMount => "fs.mount",
            Kind::ProcessNamespace => "process.namespace",
            Kind::ProcessMemfd => "process.memfd",
            Kind::ProcessSignal => "process.signal",

            Kind::MonitorLoss => "monitor.loss",
            Kind::MonitorStart => "monitor.start",
            Kind::SessionStart => "session.start",
            Kind::SessionEnd => "session.end",
            Kind::ResponseAction => "response.action",
            Kind::AgentPrompt => "agent.prompt",
            Kind::AgentToolCall => "agent.tool_call",
            Kind::AgentToolResult => "agent.tool_result",
            Kind::AgentSession => "agent.session",
            Kind::LlmRequest => "llm.request",
            Kind::LlmResponse => "llm.response",
            Kind::McpCall => "mcp.call",
        }
    }

    /// Whether the kind reports what the agent said (its hooks), not what the kernel saw.
    pub const fn is_intent(self) -> bool {
        matches!(
            self,
            Kind::AgentPrompt
                | Kind::AgentToolCall
                | Kind::AgentToolResult
                | Kind::AgentSession
                | Kind::LlmRequest
                | Kind::LlmResponse
                | Kind::McpCall
        )
    }

    /// Parse a dotted name.
    pub fn from_name(name: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.name() == name)
    }

    /// Parse a stable id.
    pub fn from_id(id: u32) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.id() == id)
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Nanoseconds since the Unix epoch, serialized as RFC 3339 with nanoseconds (UTC).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(pub i64);

impl Timestamp {
    pub fn now() -> Timestamp {
        let d = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        Timestamp(d.as_nanos() as i64)
    }

    pub fn to_rfc3339(self) -> String {
        let t = time::OffsetDateTime::from_unix_timestamp_nanos(self.0 as i128)
            .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
        t.format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default()
    }

    pub fn parse_rfc3339(s: &str) -> Option<Timestamp> {
        let t =
            time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).ok()?;
        // Nanoseconds in an i64 reach 1677-09-21..2262-04-11; a date outside is no timestamp
        // (an `as` cast would wrap it around to another date).
        i64::try_from(t.unix_timestamp_nanos()).ok().map(Timestamp)
    }
}

impl Serialize for Timestamp {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_rfc3339())
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Timestamp::parse_rfc3339(&s)
            .ok_or_else(|| serde::de::Error::custom(format!("bad RFC 3339 time `{s}`")))
    }
}

/// The agent class a session belongs to.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentRef {
    pub name: String,
}

/// The session (one running agent instance and all its descendants).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SessionRef {
    /// 16 hex digits.
    pub id: String,
}

/// The process an event is about. Identity is (`pid`, `start`), never `pid` alone.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Process {
    /// Process id (thread-group id).
    pub pid: u32,
    /// Thread id that acted.
    pub tid: u32,
    /// Start time of the process.
    pub start: Timestamp,
    /// Executable path, from the kernel (the binprm's file at exec).
    pub exe: BStr,
    pub comm: BStr,
    pub uid: u32,
    pub gid: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub euid: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub egid: Option<u32>,
    /// argv as captured at exec.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<BStr>,
    /// argv joined by spaces (for matching and display).
    #[serde(default, skip_serializing_if = "BStr::is_empty")]
    pub cmdline: BStr,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub args_truncated: bool,
    /// Length in bytes of argv in the process before truncation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub args_len: Option<u32>,
    #[serde(default, skip_serializing_if = "BStr::is_empty")]
    pub cwd: BStr,
    /// The path given to exec (may differ from `exe`: symlinks, relative paths, scripts).
    #[serde(default, skip_serializing_if = "BStr::is_empty")]
    pub filename: BStr,
    /// How the executable was found at exec: `memfd`, `deleted`, `writable_dir`, `ld_loader`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exec_markers: Vec<String>,
    /// Some argv values looked like secrets and were masked.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub args_redacted: bool,
}

/// The parent of the subject process.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Parent {
    pub pid: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "BStr::is_empty")]
    pub exe: BStr,
}

/// A file an event is about.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct File {
    pub path: BStr,
    /// Rename target.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<BStr>,
    /// Device number as `stat(2)` reports it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dev: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ino: Option<u64>,
    /// `read`, `write` or `read_write`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access: Option<String>,
    /// Open flags by name (`O_CREAT`, `O_TRUNC`, ...).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub flags: Vec<String>,
    /// File type: `file`, `dir`, `symlink`, `char`, `block`, `fifo`, `socket`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub r#type: Option<String>,
    /// Permission bits (octal in the low 12 bits).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fd: Option<i32>,
    /// `syscall` or `io_uring`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub via: Option<String>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub path_truncated: bool,
    /// New owner (chown).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner_uid: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner_gid: Option<u32>,
    /// New length (truncate), bytes of the first write (write).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
    /// `memfd`, `deleted`, `writable_dir` (mmap_exec, write).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub markers: Vec<String>,
    /// The path as the process passed it, when it differs from `path` (a magic link such as
    /// `/proc/self/fd/N/NAME` that the kernel resolved).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path_arg: Option<BStr>,
    /// The target as passed, when it differs from `target`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_arg: Option<BStr>,
    /// Access and modification times set (utime): RFC 3339, `now` or `omit` (left as is).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub atime: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtime: Option<String>,
}

/// A network endpoint pair.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Net {
    /// `ipv4`, `ipv6` or `unix`.
    pub family: String,
    /// `tcp`, `udp`, `icmp`, `raw`, or the number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub src_ip: Option<IpAddr>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub src_port: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dst_ip: Option<IpAddr>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dst_port: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unix_path: Option<BStr>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub via: Option<String>,
    /// Bytes sent (net.send; net.flow: total on the socket so far).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes: Option<u64>,
    /// Bytes received on the socket so far (net.flow).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes_received: Option<u64>,
    /// `close`, `update` (periodic report of an open flow) or `exit` (owner exited) (net.flow).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flow_state: Option<String>,
    /// Milliseconds from the first counted byte to this report (net.flow).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flow_ms: Option<u64>,
}

/// A DNS question seen leaving the host.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Dns {
    pub qname: BStr,
    /// `A`, `AAAA`, `TXT`, ... or the number.
    pub qtype: String,
}

/// A credential change.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Priv {
    /// The syscall (`setuid`, `setresuid`, `capset`, ...) or `exec` for a setuid binary.
    pub op: String,
    pub uid: u32,
    pub euid: u32,
    pub gid: u32,
    pub egid: u32,
    /// Effective capabilities, hex.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub caps: Option<String>,
}

/// Another process an event acts on (ptrace, signal).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Target {
    pub pid: u32,
    /// `same_session`, `other_session`, `daemon` or `outside`.
    pub relation: String,
    #[serde(default, skip_serializing_if = "BStr::is_empty")]
    pub exe: BStr,
}

/// Details of process, kernel and file-system operations.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Op {
    /// The syscall, ptrace request or bpf command, by name.
    pub name: String,
    /// Signal number (process.signal).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signal: Option<i32>,
    /// Namespace or memfd flags by name.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub flags: Vec<String>,
    /// memfd name, module path, bpf program name, mount source, setns file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object: Option<BStr>,
    /// Mount target.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_path: Option<BStr>,
    /// Mount file system type, bpf program type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub r#type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<i64>,
    /// Id of the bpf program, map or link a bpf() command reached.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object_id: Option<u64>,
}

/// How a process ended.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Exit {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signal: Option<i32>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub core_dumped: bool,
}

/// Monitor health details (losses, restarts).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Monitor {
    /// The event kind whose records were lost.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub loss_kind: Option<String>,
    /// Records lost since the previous `monitor.loss` for that kind.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub loss_count: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// On `monitor.start` of a daemon that adopted a pinned sensor: how long no daemon ran.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub downtime_ms: Option<u64>,
    /// On that `monitor.start`: the records the kernel buffered meanwhile.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub buffered: Option<u64>,
}

/// What the agent said it was doing: filled from its hooks on `agent.*` events, and, on kernel
/// events caused by a tool call, the call's id and tool name (see `intent.*` in the field
/// catalogue). Every text here came from the agent: bounded and redacted by the daemon.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Intent {
    /// The hook that reported it (`PreToolUse`, `PostToolUse`, `UserPromptSubmit`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hook: Option<String>,
    /// The agent's own session id, as the payload named it (informational: attribution comes
    /// from the calling process, never from this).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_session: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_call_id: Option<String>,
    /// A bounded, redacted summary of the tool's input (a shell command, a path, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_input: Option<BStr>,
    /// A bounded, redacted excerpt of the tool's output.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_output: Option<BStr>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_success: Option<bool>,
    /// A bounded, redacted excerpt of the user's prompt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt: Option<BStr>,
    /// The policy's answer to the hook: `allow` or `deny`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decision: Option<String>,
    /// Why it was denied (the rule's output).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Some text looked like a secret and was masked, or was cut at its bound.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub redacted: bool,
    /// On a kernel event: the session's agent reports its tool calls, and this activity is
    /// explained by none in progress (a process started outside every call, or a job a call
    /// left behind after it ended). The agent process itself is never undeclared.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub undeclared: bool,
    /// The file a Read/Write/Edit tool call named (absolute, as the agent gave it); on the
    /// agent's own kernel events within the call, the file the call declared.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_path: Option<BStr>,
    /// On a kernel event: the agent process itself, inside a file tool call that named
    /// `tool_path`, reached a different file (the call said one thing, the kernel saw another).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub divergent: bool,
}

/// A tool call an agent made to an MCP server, as its hooks reported it (`mcp.call`). The
/// names come from the tool name (`mcp__<server>__<tool>`); the arguments are the agent's:
/// bounded and redacted, absent in metadata-only mode.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Mcp {
    pub server: String,
    pub tool: String,
    /// The call's arguments as compact JSON, bounded and redacted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arguments: Option<BStr>,
    /// Bytes of the arguments as the agent sent them (before any cut).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes: Option<u64>,
}

/// An agent's exchange with its model API, read from TLS plaintext (`llm.request`,
/// `llm.response`). Every text came from the agent or the model: bounded and redacted.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Llm {
    /// `anthropic`, `open_ai_chat`, `open_ai_responses` or `gemini`.
    pub provider: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// The HTTP host (`Host` or `:authority`) and path of the request.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub host: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub path: String,
    /// Tools offered to the model (request).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tools: Vec<String>,
    /// Tools the model decided to call (response).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tool_calls: Vec<String>,
    /// Ids of those calls, in the same order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tool_call_ids: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_tokens: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_tokens: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_reason: Option<String>,
    /// HTTP status (response).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// Request: the last user prompt; response: the model's text, then the first tool input.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub excerpt: Option<BStr>,
    /// Request: the system prompt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system: Option<BStr>,
    /// An API error message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Body bytes (request) or text bytes (response).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes: Option<u64>,
    /// The connection id (`SSL *`) and HTTP stream the exchange used, to pair the two halves.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conn: Option<String>,
    /// The body or stream was cut, ended early or did not parse.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub incomplete: bool,
}

/// A response action taken (or, in a dry run, that would have been taken) on a session.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Response {
    /// `kill`, `kill_session`, `freeze_session`, `thaw_session` or `deny`.
    pub action: String,
    /// `enforce` or `dry_run`.
    pub mode: String,
    /// Who asked: `uid:N` for a manual action, `rule:ID` for a rule's.
    pub by: String,
    /// What happened: `done`, `dry_run`, `refused: ...` or `failed: ...`.
    pub result: String,
    /// The responder's note, or the alert that triggered it.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub note: String,
    /// Processes signalled or frozen.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub processes: Option<u64>,
}

/// One observed event, enriched with agent, session and ancestry.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Event {
    /// Unique id (`<daemon instance>-<sequence>`).
    pub id: String,
    pub time: Timestamp,
    pub host: String,
    pub kind: KindField,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<AgentRef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session: Option<SessionRef>,
    pub process: Process,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<Parent>,
    /// Executables from the parent up to the session root, nearest first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ancestry: Vec<BStr>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<File>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub net: Option<Net>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit: Option<Exit>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub monitor: Option<Monitor>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dns: Option<Dns>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub r#priv: Option<Priv>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<Target>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub op: Option<Op>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub intent: Option<Intent>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response: Option<Response>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub llm: Option<Llm>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mcp: Option<Mcp>,
}

/// `Kind` wrapped so `Event::default()` exists (defaults to `monitor.start`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct KindField(pub Kind);

impl Default for KindField {
    fn default() -> Self {
        KindField(Kind::MonitorStart)
    }
}

impl Event {
    pub fn kind(&self) -> Kind {
        self.kind.0
    }

    pub fn session_id(&self) -> Option<&str> {
        self.session.as_ref().map(|s| s.id.as_str())
    }

    pub fn agent_name(&self) -> Option<&str> {
        self.agent.as_ref().map(|a| a.name.as_str())
    }

    /// One JSON object, no trailing newline.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
    }
}

/// Alert severity, ordered from least to most severe.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    #[default]
    Info,
    Low,
    Medium,
    High,
    Critical,
}

impl Severity {
    pub const ALL: [Severity; 5] = [
        Severity::Info,
        Severity::Low,
        Severity::Medium,
        Severity::High,
        Severity::Critical,
    ];

    pub const fn name(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
        }
    }

    pub fn from_name(s: &str) -> Option<Severity> {
        Severity::ALL
            .into_iter()
            .find(|v| v.name().eq_ignore_ascii_case(s))
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A rule result. Alerts are stored and searched like events (their `kind` is `alert`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Alert {
    pub id: String,
    /// Time of the last event that caused it.
    pub time: Timestamp,
    pub host: String,
    /// Rule id.
    pub rule: String,
    pub severity: Severity,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<AgentRef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session: Option<SessionRef>,
    /// The rendered output template.
    pub summary: BStr,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    /// Ids of the events that caused it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub event_ids: Vec<String>,
    /// Number of folded repeats (1 for a fresh alert).
    pub count: u64,
    pub first_time: Timestamp,
    pub last_time: Timestamp,
    /// True when the alert falls in a span where the sensor lost events.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub in_loss_window: bool,
}
