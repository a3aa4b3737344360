//! The catalogue of event fields: one stable dotted name per field, its type, the kinds that carry
//! it, and a fast accessor. Rules resolve names to [`Field`] once at load time; the store and the
//! TUI iterate the catalogue; the README's field table is checked against it by a test.

use std::borrow::Cow;
use std::net::IpAddr;

use crate::event::{Event, Kind};

/// Value type of a field.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FieldType {
    /// Text (may hold arbitrary bytes; matched as lossy UTF-8).
    Str,
    /// A list of text values.
    StrList,
    /// Unsigned or signed integer.
    Int,
    /// IP address.
    Ip,
    /// Port number.
    Port,
    /// Boolean.
    Bool,
    /// Time (ns since the epoch).
    Time,
}

/// A value borrowed from an event.
#[derive(Clone, Debug, PartialEq)]
pub enum Value<'a> {
    Str(Cow<'a, str>),
    List(Vec<Cow<'a, str>>),
    Int(i64),
    Ip(IpAddr),
    Bool(bool),
    Time(i64),
}

impl Value<'_> {
    /// A text rendering (lists joined by spaces), for templates and display.
    pub fn render(&self) -> String {
        match self {
            Value::Str(s) => s.to_string(),
            Value::List(l) => l.join(" "),
            Value::Int(i) => i.to_string(),
            Value::Ip(ip) => ip.to_string(),
            Value::Bool(b) => b.to_string(),
            Value::Time(t) => crate::Timestamp(*t).to_rfc3339(),
        }
    }
}

macro_rules! fields {
    ($( $var:ident => $name:literal, $ty:ident, [$($kind:ident),*], $doc:literal; )*) => {
        /// A known event field.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum Field { $( $var, )* }

        /// Catalogue entry of a field.
        #[derive(Clone, Copy, Debug)]
        pub struct FieldDef {
            pub field: Field,
            pub name: &'static str,
            pub ty: FieldType,
            /// Kinds that carry it; empty means every kind.
            pub kinds: &'static [Kind],
            pub doc: &'static str,
        }

        /// Every field, in a stable order.
        pub const FIELDS: &[FieldDef] = &[
            $( FieldDef { field: Field::$var, name: $name, ty: FieldType::$ty, kinds: &[$(Kind::$kind),*], doc: $doc }, )*
        ];
    };
}

fields! {
    Id => "id", Str, [], "unique event id";
    Time => "time", Time, [], "time of the event (RFC 3339, ns)";
    Host => "host", Str, [], "host name";
    EventKind => "kind", Str, [], "event kind, e.g. `file.open`";
    AgentName => "agent.name", Str, [], "agent class from the config or `agentwatch run --agent`";
    SessionId => "session.id", Str, [], "session id (16 hex digits)";
    ProcessPid => "process.pid", Int, [], "process id (thread-group id)";
    ProcessTid => "process.tid", Int, [], "thread id that acted";
    ProcessStart => "process.start", Time, [], "process start time; (pid, start) is the identity";
    ProcessExe => "process.exe", Str, [], "executable path from the kernel";
    ProcessComm => "process.comm", Str, [], "kernel command name (16 bytes, can be renamed)";
    ProcessUid => "process.uid", Int, [], "real uid";
    ProcessGid => "process.gid", Int, [], "real gid";
    ProcessEuid => "process.euid", Int, [ProcessExec], "effective uid at exec";
    ProcessEgid => "process.egid", Int, [ProcessExec], "effective gid at exec";
    ProcessArgs => "process.args", StrList, [], "argv captured at exec";
    ProcessCmdline => "process.cmdline", Str, [], "argv joined by spaces";
    ProcessArgsTruncated => "process.args_truncated", Bool, [ProcessExec], "argv was longer than the capture limit";
    ProcessArgsLen => "process.args_len", Int, [ProcessExec], "argv bytes in the process before truncation";
    ProcessCwd => "process.cwd", Str, [], "working directory at exec";
    ProcessFilename => "process.filename", Str, [ProcessExec], "path passed to exec";
    ProcessExecMarkers => "process.exec_markers", StrList, [ProcessExec], "`memfd`, `deleted`, `writable_dir`, `ld_loader`: how the executable was found; `stdin_inet`, `stdout_inet`: descriptor 0 or 1 was an IPv4/IPv6 socket at exec";
    ProcessArgsRedacted => "process.args_redacted", Bool, [], "argv values that looked like secrets were masked";
    ParentPid => "parent.pid", Int, [], "parent process id";
    ParentStart => "parent.start", Time, [], "parent start time";
    ParentExe => "parent.exe", Str, [], "parent executable";
    Ancestry => "ancestry", StrList, [], "executables from the parent up to the session root";
    FilePath => "file.path", Str, [FileOpen, FileUnlink, FileRename, FileChmod, FileChown, FileLink, FileSymlink, FileMkdir, FileTruncate, FileWrite, FileMmapExec, FileUtime, FileXattr], "path of the file: from the kernel's dentry for opens and descriptor operations; magic links (`/proc/self/fd/N/...`, `/dev/fd/N/...`, `/proc/self/cwd/...`) resolved in the kernel";
    FilePathArg => "file.path_arg", Str, [FileUnlink, FileRename, FileChmod, FileChown, FileLink, FileSymlink, FileMkdir, FileTruncate, FileUtime, FileXattr], "the path as passed, when a magic link in it was resolved into `file.path`";
    FileTarget => "file.target", Str, [FileRename, FileLink, FileSymlink], "new path of a rename, the existing file of a hard link, the text of a symlink";
    FileTargetArg => "file.target_arg", Str, [FileRename, FileLink], "the target as passed, when a magic link in it was resolved into `file.target`";
    FileDev => "file.dev", Int, [FileOpen], "device number";
    FileIno => "file.ino", Int, [FileOpen], "inode number";
    FileAccess => "file.access", Str, [FileOpen], "`read`, `write` or `read_write`";
    FileFlags => "file.flags", StrList, [FileOpen], "open flags by name (O_CREAT, O_TRUNC, ...)";
    FileType => "file.type", Str, [FileOpen], "file type: file, dir, symlink, char, block, fifo, socket";
    FileMode => "file.mode", Int, [FileOpen, FileChmod, FileMkdir], "permission bits (the new mode for chmod and mkdir)";
    FileOwnerUid => "file.owner_uid", Int, [FileChown], "new owner uid";
    FileOwnerGid => "file.owner_gid", Int, [FileChown], "new owner gid";
    FileSize => "file.size", Int, [FileTruncate, FileWrite, FileXattr], "new length (truncate), bytes of the first write (write), size of the value set (xattr)";
    FileMarkers => "file.markers", StrList, [FileMmapExec, FileWrite, FileOpen], "`memfd`, `deleted`, `writable_dir` (mmap_exec, write); `created` (open: this open created the file)";
    FileAtime => "file.atime", Str, [FileUtime], "access time set: RFC 3339, `now` or `omit` (left as it was)";
    FileMtime => "file.mtime", Str, [FileUtime], "modification time set: RFC 3339, `now` or `omit`";
    FileFd => "file.fd", Int, [FileOpen], "file descriptor returned";
    FileVia => "file.via", Str, [FileOpen, FileUnlink, FileRename, FileChmod, FileChown, FileLink, FileSymlink, FileMkdir, FileTruncate, FileWrite, FileMmapExec, FileUtime, FileXattr], "`syscall` or `io_uring` (io_uring issues opens, mkdir, symlink, link, rename and unlink)";
    NetFamily => "net.family", Str, [NetConnect, NetAccept, NetListen, NetSend, NetDns, NetFlow], "`ipv4`, `ipv6` or `unix`";
    NetProtocol => "net.protocol", Str, [NetConnect, NetAccept, NetListen, NetSend, NetDns, NetFlow], "`tcp`, `udp`, ...";
    NetSrcIp => "net.src_ip", Ip, [NetConnect, NetAccept, NetListen, NetFlow], "local address";
    NetSrcPort => "net.src_port", Port, [NetConnect, NetAccept, NetListen, NetSend, NetDns, NetFlow], "local port";
    NetDstIp => "net.dst_ip", Ip, [NetConnect, NetAccept, NetSend, NetDns, NetFlow], "remote address";
    NetDstPort => "net.dst_port", Port, [NetConnect, NetAccept, NetSend, NetDns, NetFlow], "remote port";
    NetBytes => "net.bytes", Int, [NetSend, NetDns, NetFlow], "bytes sent (net.flow: total on the socket so far)";
    NetBytesReceived => "net.bytes_received", Int, [NetFlow], "bytes received on the socket so far";
    NetFlowState => "net.flow_state", Str, [NetFlow], "`close` (TCP socket closed), `update` (periodic, still open) or `exit` (owner exited first; UDP)";
    NetFlowMs => "net.flow_ms", Int, [NetFlow], "milliseconds from the first counted byte to this report";
    NetUnixPath => "net.unix_path", Str, [NetConnect, NetAccept, NetListen], "unix socket path (abstract ones start with `@`)";
    NetVia => "net.via", Str, [NetConnect, NetAccept, NetListen, NetSend, NetDns], "`syscall`, `io_uring` or `tcp_state`";
    DnsQname => "dns.qname", Str, [NetDns], "DNS question name";
    DnsQtype => "dns.qtype", Str, [NetDns], "DNS question type (`A`, `AAAA`, `TXT`, ...)";
    DnsLongestLabel => "dns.longest_label", Int, [NetDns], "bytes in the longest label of `dns.qname` (derived: tunnels fill labels up to 63)";
    PrivOp => "priv.op", Str, [PrivChange], "`setuid`, `setresuid`, `capset`, ... or `exec` (setuid binary)";
    PrivUid => "priv.uid", Int, [PrivChange], "real uid after the change";
    PrivEuid => "priv.euid", Int, [PrivChange], "effective uid after the change";
    PrivGid => "priv.gid", Int, [PrivChange], "real gid after the change";
    PrivEgid => "priv.egid", Int, [PrivChange], "effective gid after the change";
    PrivCaps => "priv.caps", Str, [PrivChange], "effective capabilities after the change (hex)";
    TargetPid => "target.pid", Int, [ProcessPtrace, ProcessSignal, KernelBpf, FileOpen], "the process acted on (kernel.bpf: the daemon, when the object is agentwatch's; file.open: the daemon, when the file is its own)";
    TargetRelation => "target.relation", Str, [ProcessPtrace, ProcessSignal, KernelBpf, FileOpen], "`same_session`, `other_session`, `daemon` or `outside` (kernel.bpf: `daemon` when the bpf object belongs to agentwatch; file.open: `daemon` for the daemon's `/proc/PID/` memory and secret entries, and its files opened for writing; such events, and ptrace and signals aimed at the daemon, come from any process, in a session or not)";
    TargetExe => "target.exe", Str, [ProcessPtrace, ProcessSignal], "executable of the process acted on, when known";
    OpName => "op.name", Str, [ProcessPtrace, KernelBpf, KernelModule, FsMount, ProcessNamespace, ProcessMemfd, ProcessSignal, FileXattr], "syscall, ptrace request, bpf command (`bpf_map_get_fd_by_id`, ...) or signal name (file.xattr: `setxattr`, `lsetxattr`, `fsetxattr` or `setxattrat`)";
    OpSignal => "op.signal", Int, [ProcessSignal], "signal number";
    OpFlags => "op.flags", StrList, [ProcessNamespace, ProcessMemfd, FileXattr], "namespace or memfd flags by name; file.xattr of `security.capability`: the permitted capabilities (`cap_setuid`, ...) and `effective` when the effective bit is set";
    OpObject => "op.object", Str, [KernelBpf, KernelModule, FsMount, ProcessNamespace, ProcessMemfd, FileXattr], "memfd name, module file, bpf program name, mount source, setns file, extended attribute name (file.xattr)";
    OpTargetPath => "op.target_path", Str, [FsMount], "mount point";
    OpType => "op.type", Str, [KernelBpf, FsMount], "file system type, bpf program type (loads) or the type of the bpf object reached (`prog`, `map`, `link`)";
    OpObjectId => "op.object_id", Int, [KernelBpf], "id of the bpf program, map or link reached";
    OpResult => "op.result", Int, [ProcessSignal, KernelBpf, KernelModule], "result code (a negative errno when the kernel refused: module loads are reported when attempted)";
    ExitCode => "exit.code", Int, [ProcessExit], "exit status";
    ExitSignal => "exit.signal", Int, [ProcessExit], "terminating signal";
    MonitorLossKind => "monitor.loss_kind", Str, [MonitorLoss], "kind whose records were lost";
    MonitorLossCount => "monitor.loss_count", Int, [MonitorLoss, MonitorStart], "records lost (on `monitor.start`: while no daemon ran)";
    MonitorMessage => "monitor.message", Str, [MonitorLoss, MonitorStart, SessionStart, SessionEnd], "monitor message";
    MonitorDowntimeMs => "monitor.downtime_ms", Int, [MonitorStart], "how long no daemon ran before this one adopted the pinned sensor (milliseconds)";
    MonitorBuffered => "monitor.buffered", Int, [MonitorStart], "records the pinned sensor buffered while no daemon ran";
    IntentHook => "intent.hook", Str, [AgentPrompt, AgentToolCall, AgentToolResult, AgentSession, McpCall], "the agent hook that reported it: `PreToolUse`, `PostToolUse`, `UserPromptSubmit`, `SessionStart`, `SessionEnd`, `Stop`, ...";
    IntentAgentSession => "intent.agent_session", Str, [AgentPrompt, AgentToolCall, AgentToolResult, AgentSession], "the agent's own session id from the hook payload (informational; `session.id` comes from the calling process)";
    IntentToolName => "intent.tool_name", Str, [], "tool the model called (`Bash`, `Read`, `mcp__server__tool`, ...); on kernel events, the tool call that caused them";
    IntentToolCallId => "intent.tool_call_id", Str, [], "the model's tool call id (`tool_use_id`); on kernel events, the tool call that caused them";
    IntentToolInput => "intent.tool_input", Str, [AgentToolCall, AgentToolResult], "summary of the tool input (the shell command, the file path, ...), bounded and redacted";
    IntentToolOutput => "intent.tool_output", Str, [AgentToolResult], "excerpt of the tool output, bounded and redacted";
    IntentToolSuccess => "intent.tool_success", Bool, [AgentToolResult], "the tool reported success";
    IntentPrompt => "intent.prompt", Str, [AgentPrompt], "excerpt of the user prompt, bounded and redacted";
    IntentDecision => "intent.decision", Str, [AgentPrompt, AgentToolCall, McpCall], "the policy's answer to the hook: `allow` or `deny`";
    IntentReason => "intent.reason", Str, [AgentPrompt, AgentToolCall], "why the hook was denied (the deny rule's output)";
    IntentRedacted => "intent.redacted", Bool, [AgentPrompt, AgentToolCall, AgentToolResult], "agent text was masked as a secret or cut at its bound";
    IntentUndeclared => "intent.undeclared", Bool, [], "on kernel events: the agent reports its tool calls and no call in progress explains this (a process started outside every call, or a job a call left behind); never the agent process itself";
    ResponseActionName => "response.action", Str, [ResponseAction], "`kill`, `kill_session`, `freeze_session`, `thaw_session` or `deny`";
    ResponseMode => "response.mode", Str, [ResponseAction], "`enforce` or `dry_run` (recorded, nothing done)";
    ResponseBy => "response.by", Str, [ResponseAction], "who acted: `uid:N` (manual) or `rule:ID`";
    ResponseResult => "response.result", Str, [ResponseAction], "`done`, `dry_run`, `refused: why` or `failed: why`";
    ResponseNote => "response.note", Str, [ResponseAction], "the responder's note or the triggering alert";
    ResponseProcesses => "response.processes", Int, [ResponseAction], "processes signalled or frozen";
    LlmProvider => "llm.provider", Str, [LlmRequest, LlmResponse], "model API: `anthropic`, `open_ai_chat`, `open_ai_responses` or `gemini`";
    LlmModel => "llm.model", Str, [LlmRequest, LlmResponse], "model asked for (request) or that answered (response)";
    LlmHost => "llm.host", Str, [LlmRequest, LlmResponse], "HTTP host of the model API request";
    LlmPath => "llm.path", Str, [LlmRequest, LlmResponse], "HTTP path of the model API request";
    LlmTools => "llm.tools", StrList, [LlmRequest], "tools offered to the model";
    LlmToolCalls => "llm.tool_calls", StrList, [LlmResponse], "tools the model decided to call";
    LlmToolCallIds => "llm.tool_call_ids", StrList, [LlmResponse], "ids of those tool calls (`tool_use_id`, `call_id`)";
    LlmInputTokens => "llm.input_tokens", Int, [LlmResponse], "input tokens the API reported";
    LlmOutputTokens => "llm.output_tokens", Int, [LlmResponse], "output tokens the API reported";
    LlmStopReason => "llm.stop_reason", Str, [LlmResponse], "why the model stopped (`tool_use`, `end_turn`, `tool_calls`, ...)";
    LlmStatus => "llm.status", Int, [LlmResponse], "HTTP status of the response";
    LlmExcerpt => "llm.excerpt", Str, [LlmRequest, LlmResponse], "request: the last user prompt; response: the model's text (bounded, redacted; absent in metadata-only mode)";
    LlmSystem => "llm.system", Str, [LlmRequest], "excerpt of the system prompt (bounded, redacted)";
    LlmError => "llm.error", Str, [LlmResponse], "API error message";
    LlmBytes => "llm.bytes", Int, [LlmRequest, LlmResponse], "request body bytes, or response text bytes";
    LlmConn => "llm.conn", Str, [LlmRequest, LlmResponse], "TLS connection and HTTP stream (`SSL*:stream`) that pairs a request with its response";
    LlmIncomplete => "llm.incomplete", Bool, [LlmRequest, LlmResponse], "the body or stream was cut at its bound, ended early or did not parse";
    McpServer => "mcp.server", Str, [McpCall], "MCP server the agent called (from the tool name `mcp__<server>__<tool>`)";
    McpTool => "mcp.tool", Str, [McpCall], "MCP tool the agent called on that server";
    McpArguments => "mcp.arguments", Str, [McpCall], "the call's arguments as compact JSON, bounded and redacted (absent in metadata-only mode)";
    McpBytes => "mcp.bytes", Int, [McpCall], "bytes of the arguments as the agent sent them";
    IntentToolPath => "intent.tool_path", Str, [], "the file a Read/Write/Edit tool call named; on the agent's own kernel events within that call, the file the call declared";
    IntentDivergent => "intent.divergent", Bool, [], "on kernel events: the agent process itself, inside a file tool call, reached a file other than the one the call named (`intent.tool_path`)";
}

/// Fields computed from other fields when read (never stored or serialized): the rules can test
/// them, the JSON of an event does not carry them.
pub const DERIVED_FIELDS: &[Field] = &[Field::DnsLongestLabel];

impl Field {
    /// Look a field up by its dotted name.
    pub fn from_name(name: &str) -> Option<Field> {
        FIELDS.iter().find(|d| d.name == name).map(|d| d.field)
    }

    pub fn def(self) -> &'static FieldDef {
        // The catalogue lists every variant in declaration order.
        &FIELDS[self as usize]
    }

    pub fn name(self) -> &'static str {
        self.def().name
    }

    /// Whether events of `kind` can carry this field.
    pub fn applies_to(self, kind: Kind) -> bool {
        let kinds = self.def().kinds;
        kinds.is_empty() || kinds.contains(&kind)
    }
}

fn s(b: &crate::BStr) -> Cow<'_, str> {
    b.to_str_lossy()
}

fn non_empty(s: &str) -> Option<&str> {
    (!s.is_empty()).then_some(s)
}

fn strs(l: &[String]) -> Vec<Cow<'_, str>> {
    l.iter().map(|v| Cow::Borrowed(v.as_str())).collect()
}

fn opt_str(b: &crate::BStr) -> Option<Value<'_>> {
    (!b.is_empty()).then(|| Value::Str(b.to_str_lossy()))
}

impl Event {
    /// The value of `field`, or `None` when the event does not carry it.
    pub fn get(&self, field: Field) -> Option<Value<'_>> {
        use Field as F;
        let p = &self.process;
        Some(match field {
            F::Id => Value::Str(Cow::Borrowed(&self.id)),
            F::Time => Value::Time(self.time.0),
            F::Host => Value::Str(Cow::Borrowed(&self.host)),
            F::EventKind => Value::Str(Cow::Borrowed(self.kind().name())),
            F::AgentName => Value::Str(Cow::Borrowed(&self.agent.as_ref()?.name)),
            F::SessionId => Value::Str(Cow::Borrowed(&self.session.as_ref()?.id)),
            F::ProcessPid => Value::Int(p.pid.into()),
            F::ProcessTid => Value::Int(p.tid.into()),
            F::ProcessStart => Value::Time(p.start.0),
            F::ProcessExe => Value::Str(s(&p.exe)),
            F::ProcessComm => Value::Str(s(&p.comm)),
            F::ProcessUid => Value::Int(p.uid.into()),
            F::ProcessGid => Value::Int(p.gid.into()),
            F::ProcessEuid => Value::Int(p.euid?.into()),
            F::ProcessEgid => Value::Int(p.egid?.into()),
            F::ProcessArgs => Value::List(p.args.iter().map(s).collect()),
            F::ProcessCmdline => opt_str(&p.cmdline)?,
            F::ProcessArgsTruncated => Value::Bool(p.args_truncated),
            F::ProcessArgsLen => Value::Int(p.args_len?.into()),
            F::ProcessCwd => opt_str(&p.cwd)?,
            F::ProcessFilename => opt_str(&p.filename)?,
            F::ProcessExecMarkers => Value::List(
                p.exec_markers
                    .iter()
                    .map(|m| Cow::Borrowed(m.as_str()))
                    .collect(),
            ),
            F::ProcessArgsRedacted => Value::Bool(p.args_redacted),
            F::ParentPid => Value::Int(self.parent.as_ref()?.pid.into()),
            F::ParentStart => Value::Time(self.parent.as_ref()?.start?.0),
            F::ParentExe => opt_str(&self.parent.as_ref()?.exe)?,
            F::Ancestry => Value::List(self.ancestry.iter().map(s).collect()),
            F::FilePath => Value::Str(s(&self.file.as_ref()?.path)),
            F::FileTarget => Value::Str(s(self.file.as_ref()?.target.as_ref()?)),
            F::FilePathArg => Value::Str(s(self.file.as_ref()?.path_arg.as_ref()?)),
            F::FileTargetArg => Value::Str(s(self.file.as_ref()?.target_arg.as_ref()?)),
            F::FileAtime => Value::Str(Cow::Borrowed(self.file.as_ref()?.atime.as_ref()?)),
            F::FileMtime => Value::Str(Cow::Borrowed(self.file.as_ref()?.mtime.as_ref()?)),
            F::FileDev => Value::Int(self.file.as_ref()?.dev? as i64),
            F::FileIno => Value::Int(self.file.as_ref()?.ino? as i64),
            F::FileAccess => Value::Str(Cow::Borrowed(self.file.as_ref()?.access.as_deref()?)),
            F::FileFlags => Value::List(
                self.file
                    .as_ref()?
                    .flags
                    .iter()
                    .map(|f| Cow::Borrowed(f.as_str()))
                    .collect(),
            ),
            F::FileType => Value::Str(Cow::Borrowed(self.file.as_ref()?.r#type.as_deref()?)),
            F::FileMode => Value::Int(self.file.as_ref()?.mode?.into()),
            F::FileOwnerUid => Value::Int(self.file.as_ref()?.owner_uid?.into()),
            F::FileOwnerGid => Value::Int(self.file.as_ref()?.owner_gid?.into()),
            F::FileSize => Value::Int(self.file.as_ref()?.size? as i64),
            F::FileMarkers => Value::List(
                self.file
                    .as_ref()?
                    .markers
                    .iter()
                    .map(|m| Cow::Borrowed(m.as_str()))
                    .collect(),
            ),
            F::FileFd => Value::Int(self.file.as_ref()?.fd?.into()),
            F::FileVia => Value::Str(Cow::Borrowed(self.file.as_ref()?.via.as_deref()?)),
            F::NetFamily => Value::Str(Cow::Borrowed(&self.net.as_ref()?.family)),
            F::NetProtocol => Value::Str(Cow::Borrowed(self.net.as_ref()?.protocol.as_deref()?)),
            F::NetSrcIp => Value::Ip(self.net.as_ref()?.src_ip?),
            F::NetSrcPort => Value::Int(self.net.as_ref()?.src_port?.into()),
            F::NetDstIp => Value::Ip(self.net.as_ref()?.dst_ip?),
            F::NetDstPort => Value::Int(self.net.as_ref()?.dst_port?.into()),
            F::NetUnixPath => Value::Str(s(self.net.as_ref()?.unix_path.as_ref()?)),
            F::NetVia => Value::Str(Cow::Borrowed(self.net.as_ref()?.via.as_deref()?)),
            F::NetBytes => Value::Int(self.net.as_ref()?.bytes? as i64),
            F::NetBytesReceived => Value::Int(self.net.as_ref()?.bytes_received? as i64),
            F::NetFlowState => Value::Str(Cow::Borrowed(self.net.as_ref()?.flow_state.as_deref()?)),
            F::NetFlowMs => Value::Int(self.net.as_ref()?.flow_ms? as i64),
            F::DnsQname => Value::Str(s(&self.dns.as_ref()?.qname)),
            F::DnsQtype => Value::Str(Cow::Borrowed(&self.dns.as_ref()?.qtype)),
            F::DnsLongestLabel => Value::Int(
                self.dns
                    .as_ref()?
                    .qname
                    .0
                    .split(|&c| c == b'.')
                    .map(<[u8]>::len)
                    .max()
                    .unwrap_or(0) as i64,
            ),
            F::PrivOp => Value::Str(Cow::Borrowed(&self.r#priv.as_ref()?.op)),
            F::PrivUid => Value::Int(self.r#priv.as_ref()?.uid.into()),
            F::PrivEuid => Value::Int(self.r#priv.as_ref()?.euid.into()),
            F::PrivGid => Value::Int(self.r#priv.as_ref()?.gid.into()),
            F::PrivEgid => Value::Int(self.r#priv.as_ref()?.egid.into()),
            F::PrivCaps => Value::Str(Cow::Borrowed(self.r#priv.as_ref()?.caps.as_deref()?)),
            F::TargetPid => Value::Int(self.target.as_ref()?.pid.into()),
            F::TargetRelation => Value::Str(Cow::Borrowed(&self.target.as_ref()?.relation)),
            F::TargetExe => opt_str(&self.target.as_ref()?.exe)?,
            F::OpName => Value::Str(Cow::Borrowed(&self.op.as_ref()?.name)),
            F::OpSignal => Value::Int(self.op.as_ref()?.signal?.into()),
            F::OpFlags => Value::List(
                self.op
                    .as_ref()?
                    .flags
                    .iter()
                    .map(|m| Cow::Borrowed(m.as_str()))
                    .collect(),
            ),
            F::OpObject => Value::Str(s(self.op.as_ref()?.object.as_ref()?)),
            F::OpTargetPath => Value::Str(s(self.op.as_ref()?.target_path.as_ref()?)),
            F::OpType => Value::Str(Cow::Borrowed(self.op.as_ref()?.r#type.as_deref()?)),
            F::OpResult => Value::Int(self.op.as_ref()?.result?),
            F::OpObjectId => Value::Int(self.op.as_ref()?.object_id? as i64),
            F::ExitCode => Value::Int(self.exit.as_ref()?.code?.into()),
            F::ExitSignal => Value::Int(self.exit.as_ref()?.signal?.into()),
            F::MonitorLossKind => {
                Value::Str(Cow::Borrowed(self.monitor.as_ref()?.loss_kind.as_deref()?))
            }
            F::MonitorLossCount => Value::Int(self.monitor.as_ref()?.loss_count? as i64),
            F::MonitorDowntimeMs => Value::Int(self.monitor.as_ref()?.downtime_ms? as i64),
            F::MonitorBuffered => Value::Int(self.monitor.as_ref()?.buffered? as i64),
            F::MonitorMessage => {
                Value::Str(Cow::Borrowed(self.monitor.as_ref()?.message.as_deref()?))
            }
            F::IntentHook => Value::Str(Cow::Borrowed(self.intent.as_ref()?.hook.as_deref()?)),
            F::IntentAgentSession => Value::Str(Cow::Borrowed(
                self.intent.as_ref()?.agent_session.as_deref()?,
            )),
            F::IntentToolName => {
                Value::Str(Cow::Borrowed(self.intent.as_ref()?.tool_name.as_deref()?))
            }
            F::IntentToolCallId => Value::Str(Cow::Borrowed(
                self.intent.as_ref()?.tool_call_id.as_deref()?,
            )),
            F::IntentToolInput => Value::Str(s(self.intent.as_ref()?.tool_input.as_ref()?)),
            F::IntentToolOutput => Value::Str(s(self.intent.as_ref()?.tool_output.as_ref()?)),
            F::IntentToolSuccess => Value::Bool(self.intent.as_ref()?.tool_success?),
            F::IntentPrompt => Value::Str(s(self.intent.as_ref()?.prompt.as_ref()?)),
            F::IntentDecision => {
                Value::Str(Cow::Borrowed(self.intent.as_ref()?.decision.as_deref()?))
            }
            F::IntentReason => Value::Str(Cow::Borrowed(self.intent.as_ref()?.reason.as_deref()?)),
            F::IntentRedacted => Value::Bool(self.intent.as_ref()?.redacted),
            F::LlmProvider => Value::Str(Cow::Borrowed(&self.llm.as_ref()?.provider)),
            F::LlmModel => Value::Str(Cow::Borrowed(self.llm.as_ref()?.model.as_deref()?)),
            F::LlmHost => Value::Str(Cow::Borrowed(non_empty(&self.llm.as_ref()?.host)?)),
            F::LlmPath => Value::Str(Cow::Borrowed(non_empty(&self.llm.as_ref()?.path)?)),
            F::LlmTools => Value::List(strs(&self.llm.as_ref()?.tools)),
            F::LlmToolCalls => Value::List(strs(&self.llm.as_ref()?.tool_calls)),
            F::LlmToolCallIds => Value::List(strs(&self.llm.as_ref()?.tool_call_ids)),
            F::LlmInputTokens => Value::Int(self.llm.as_ref()?.input_tokens? as i64),
            F::LlmOutputTokens => Value::Int(self.llm.as_ref()?.output_tokens? as i64),
            F::LlmStopReason => {
                Value::Str(Cow::Borrowed(self.llm.as_ref()?.stop_reason.as_deref()?))
            }
            F::LlmStatus => Value::Int(self.llm.as_ref()?.status?.into()),
            F::LlmExcerpt => Value::Str(s(self.llm.as_ref()?.excerpt.as_ref()?)),
            F::LlmSystem => Value::Str(s(self.llm.as_ref()?.system.as_ref()?)),
            F::LlmError => Value::Str(Cow::Borrowed(self.llm.as_ref()?.error.as_deref()?)),
            F::LlmBytes => Value::Int(self.llm.as_ref()?.bytes? as i64),
            F::LlmConn => Value::Str(Cow::Borrowed(self.llm.as_ref()?.conn.as_deref()?)),
            F::LlmIncomplete => Value::Bool(self.llm.as_ref()?.incomplete),
            F::McpServer => Value::Str(Cow::Borrowed(&self.mcp.as_ref()?.server)),
            F::McpTool => Value::Str(Cow::Borrowed(&self.mcp.as_ref()?.tool)),
            F::McpArguments => Value::Str(s(self.mcp.as_ref()?.arguments.as_ref()?)),
            F::McpBytes => Value::Int(self.mcp.as_ref()?.bytes? as i64),
            F::IntentToolPath => Value::Str(s(self.intent.as_ref()?.tool_path.as_ref()?)),
            F::IntentDivergent => Value::Bool(self.intent.as_ref()?.divergent),
            F::IntentUndeclared => Value::Bool(self.intent.as_ref().is_some_and(|i| i.undeclared)),
            F::ResponseActionName => Value::Str(Cow::Borrowed(&self.response.as_ref()?.action)),
            F::ResponseMode => Value::Str(Cow::Borrowed(&self.response.as_ref()?.mode)),
            F::ResponseBy => Value::Str(Cow::Borrowed(&self.response.as_ref()?.by)),
            F::ResponseResult => Value::Str(Cow::Borrowed(&self.response.as_ref()?.result)),
            F::ResponseNote => Value::Str(Cow::Borrowed(&self.response.as_ref()?.note)),
            F::ResponseProcesses => Value::Int(self.response.as_ref()?.processes? as i64),
        })
    }
}

/// The field reference as a Markdown table (the README embeds it; a test keeps them equal).
pub fn fields_markdown() -> String {
    let mut out = String::from("| field | type | kinds | meaning |\n| --- | --- | --- | --- |\n");
    for d in FIELDS {
        let kinds = if d.kinds.is_empty() {
            "all".to_owned()
        } else {
            d.kinds
                .iter()
                .map(|k| k.name())
                .collect::<Vec<_>>()
                .join(", ")
        };
        out.push_str(&format!(
            "| `{}` | {:?} | {} | {} |\n",
            d.name, d.ty, kinds, d.doc
        ));
    }
    out
}

/// The event kinds as a Markdown table.
pub fn kinds_markdown() -> String {
    let mut out = String::from("| kind | id |\n| --- | --- |\n");
    for k in Kind::ALL {
        out.push_str(&format!("| `{}` | {} |\n", k.name(), k.id()));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block<'a>(text: &'a str, name: &str) -> &'a str {
        let begin = format!("<!-- {name}:begin -->\n");
        let end = format!("<!-- {name}:end -->");
        let a = text
            .find(&begin)
            .map(|i| i + begin.len())
            .unwrap_or_else(|| panic!("README lacks {begin}"));
        let b = text[a..]
            .find(&end)
            .map(|i| a + i)
            .unwrap_or_else(|| panic!("README lacks {end}"));
        &text[a..b]
    }

    #[test]
    fn readme_field_and_kind_tables_match_the_code() {
        let readme = include_str!("../../README.md");
        assert_eq!(
            block(readme, "fields"),
            fields_markdown(),
            "regenerate the README table from fields_markdown()"
        );
        assert_eq!(
            block(readme, "kinds"),
            kinds_markdown(),
            "regenerate the README table from kinds_markdown()"
        );
    }

    #[test]
    fn catalogue_is_in_declaration_order_and_names_are_unique() {
        for (i, d) in FIELDS.iter().enumerate() {
            assert_eq!(d.field as usize, i, "{} out of order", d.name);
            assert_eq!(Field::from_name(d.name), Some(d.field));
        }
        let mut names: Vec<_> = FIELDS.iter().map(|d| d.name).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), FIELDS.len());
    }

    #[test]
    fn field_names_match_the_json_paths() {
        // Every catalogued field that an event carries must appear at its dotted path in the
        // event's JSON, so rules, queries and JSON output agree on one name.
        let ev: Event = serde_json::from_str(include_str!("../tests/full_event.json")).unwrap();
        let json: serde_json::Value = serde_json::to_value(&ev).unwrap();
        for d in FIELDS {
            if ev.get(d.field).is_none() || DERIVED_FIELDS.contains(&d.field) {
                continue;
            }
            let mut cur = &json;
            for part in d.name.split('.') {
                cur = cur
                    .get(part)
                    .unwrap_or_else(|| panic!("`{}` missing in JSON", d.name));
            }
        }
    }
}
