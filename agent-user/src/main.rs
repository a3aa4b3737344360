//! `agentwatch`: the daemon (sensor, enrichment, outputs, local API) and the CLI that talks to it.
//!
//! One binary with subcommands, as in the design's CLI contract. Exit status: 0 success,
//! 1 runtime failure, 2 bad usage or bad input. `main` prints the error chain once. This file
//! only parses the arguments and dispatches; the commands live in the `agent_user` library.

use std::path::PathBuf;
use std::process::ExitCode;

use agent_api::{Request, TriageState};
use agent_user::commands::{self, Conn};
use agent_user::daemon::{DaemonArgs, daemon};
use agent_user::{BadInput, cli, config, hookcmd, install};
use anyhow::Result;
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "agentwatch",
    version,
    about = "Insider-risk monitor for AI agents: follows every agent session in the kernel",
    long_about = "Insider-risk monitor for AI agents.\n\nThe daemon loads eBPF programs that follow \
    agent processes and all their descendants (exec, fork, exit, file opens, unlinks, renames, \
    connects, accepts, listens), enriches each event with its agent, session and ancestry, and \
    writes it out. Exit status: 0 success, 1 runtime failure, 2 bad usage or bad input."
)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run the sensor, enrichment, outputs and local API (needs root and a kernel with BTF).
    Daemon {
        /// Config file (default: /etc/agentwatch/config.toml when present, else built-in):
        /// `[[agent]]` selectors, `[response]`, `[[egress]]` allow-lists, ... On SIGHUP it is
        /// read again and its `[[egress]]` tables replace the running ones.
        #[arg(long)]
        config: Option<PathBuf>,
        #[command(flatten)]
        conn: Conn,
        /// Append every event as one JSON object per line to this file.
        #[arg(long)]
        events_jsonl: Option<PathBuf>,
        /// Append every alert as one JSON object per line (Falco-like shape) to this file.
        #[arg(long)]
        alerts_jsonl: Option<PathBuf>,
        /// Policy files or directories (default: /etc/agentwatch/rules when present, else the
        /// built-in default policy). Reloaded on SIGHUP and when the files change.
        #[arg(long = "rules", value_name = "PATH")]
        rules: Vec<PathBuf>,
        /// Do not keep a durable store (events go only to the JSON-lines outputs).
        #[arg(long)]
        no_store: bool,
        /// Ring buffer size in bytes (power of two, at least 4096); overrides the config.
        #[arg(long)]
        ringbuf_bytes: Option<u32>,
        /// The store's high-water mark, kept outside the data dir (overrides `[daemon] mark`;
        /// default: /var/lib/agentwatch-mark/<hash of the data dir>.mark).
        #[arg(long, value_name = "PATH")]
        mark: Option<PathBuf>,
    },
    /// Check a store (read-only; the daemon may be running) or an evidence pack, and say exactly
    /// what is missing or altered. Exit 0 intact, 1 missing or altered, 2 bad usage.
    Verify {
        #[command(flatten)]
        conn: Conn,
        /// The store's high-water mark (default: `[daemon] mark` of the config, else
        /// /var/lib/agentwatch-mark/<hash of the data dir>.mark when it exists).
        #[arg(long, value_name = "PATH", conflicts_with = "pack")]
        mark: Option<PathBuf>,
        /// Check this evidence pack (from `export --evidence`) instead of a store.
        #[arg(long, value_name = "FILE")]
        pack: Option<PathBuf>,
        /// Config naming the mark (`[daemon] mark`; default /etc/agentwatch/config.toml when
        /// present).
        #[arg(long, conflicts_with = "pack")]
        config: Option<PathBuf>,
        /// One JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Start CMD as a monitored agent session and wait for it; refuses to start it unmonitored.
    Run {
        /// Agent name for the session.
        #[arg(long, default_value = "run")]
        agent: String,
        #[command(flatten)]
        conn: Conn,
        /// Config naming the daemon's user (`[daemon] user`): the listener on the socket must
        /// run as root or that user (default: /etc/agentwatch/config.toml when present).
        #[arg(long)]
        config: Option<PathBuf>,
        /// The command and its arguments.
        #[arg(required = true, trailing_var_arg = true, allow_hyphen_values = true)]
        cmd: Vec<std::ffi::OsString>,
    },
    /// Programs attached, event rates, losses and sessions of the running daemon.
    Status {
        #[command(flatten)]
        conn: Conn,
        /// One JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Print live events and alerts as they happen (Ctrl-C to stop).
    Events {
        #[command(flatten)]
        conn: Conn,
        /// Only events of this session id.
        #[arg(long)]
        session: Option<String>,
        /// One JSON object a line.
        #[arg(long)]
        json: bool,
    },
    /// Validate and test policies (no root needed).
    Rules {
        #[command(subcommand)]
        cmd: RulesCmd,
    },
    /// The field catalogue: every field rules, queries and outputs can name, its type, the
    /// kinds that carry it and what it means (no root, no daemon needed).
    Fields {
        /// Only the fields an event of this kind can carry (e.g. `file.open`).
        #[arg(long)]
        kind: Option<String>,
        /// One JSON object per field.
        #[arg(long)]
        json: bool,
    },
    /// Lucene-style search over stored events and alerts, newest first.
    Search {
        /// Query, e.g. `kind:file.open AND file.path:*id_rsa*` (append `| count by FIELD`,
        /// `| top N FIELD` or `| histogram 1m` to aggregate).
        query: Vec<String>,
        #[command(flatten)]
        conn: Conn,
        /// Start of the time range: `15m`, `2h`, `7d` or RFC 3339.
        #[arg(long)]
        since: Option<String>,
        /// End of the time range.
        #[arg(long)]
        until: Option<String>,
        #[arg(long, default_value_t = 50)]
        limit: usize,
        #[arg(long, default_value_t = 0)]
        offset: usize,
        #[arg(long)]
        json: bool,
        /// Search every host of the fleet instead: NATS server URL(s), comma-separated, of the
        /// cluster the daemons ship to (token from `AGENTWATCH_FLEET_TOKEN`).
        #[arg(long, value_name = "nats://HOST:PORT")]
        fleet: Option<String>,
        /// How long to gather the hosts' answers (`2s`, `500ms`).
        #[arg(long, default_value = "2s", requires = "fleet")]
        fleet_timeout: String,
        /// Hosts expected to answer (comma-separated): those silent are named, and the search
        /// ends as soon as all have answered.
        #[arg(long, value_delimiter = ',', requires = "fleet")]
        fleet_hosts: Vec<String>,
        /// The daemons' `subject_prefix`.
        #[arg(long, default_value = "agentwatch", requires = "fleet")]
        fleet_prefix: String,
        /// A NATS `.creds` file (user JWT and NKey seed).
        #[arg(long, requires = "fleet")]
        fleet_credentials: Option<PathBuf>,
    },
    /// Stored alerts, newest first.
    Alerts {
        #[command(flatten)]
        conn: Conn,
        #[arg(long)]
        since: Option<String>,
        /// Minimum severity: info, low, medium, high, critical.
        #[arg(long)]
        severity: Option<String>,
        #[arg(long, default_value_t = 100)]
        limit: usize,
        /// Keep printing new alerts as they are raised.
        #[arg(long)]
        follow: bool,
        #[arg(long)]
        json: bool,
    },
    /// Sessions seen, with their agent, span, event and alert counts.
    Sessions {
        #[command(flatten)]
        conn: Conn,
        #[arg(long)]
        since: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// One session: its process tree and its timeline with alerts placed on it; or act on a live
    /// session: `session kill ID` (SIGKILL every process of it), `session freeze ID` (stop them
    /// all at once, cgroup v2 freezer), `session thaw ID` (resume). Actions need root or the
    /// daemon's uid, ask for confirmation on a terminal unless `--yes`, and are recorded as
    /// `response.action` events of the session.
    Session {
        /// `ID`, or `kill ID`, `freeze ID`, `thaw ID`.
        #[arg(value_name = "[ACTION] ID", num_args = 1..=2, required = true)]
        args: Vec<String>,
        /// Note recorded with an action (why it was taken).
        #[arg(long)]
        note: Option<String>,
        /// Act without asking for confirmation.
        #[arg(long)]
        yes: bool,
        #[command(flatten)]
        conn: Conn,
        #[arg(long)]
        json: bool,
        /// Find the session on whichever host of the fleet recorded it: NATS server URL(s),
        /// comma-separated (token from `AGENTWATCH_FLEET_TOKEN`). Needs the full 16-digit id.
        #[arg(long, value_name = "nats://HOST:PORT")]
        fleet: Option<String>,
        /// How long to wait for the host that has it.
        #[arg(long, default_value = "3s", requires = "fleet")]
        fleet_timeout: String,
        /// The daemons' `subject_prefix`.
        #[arg(long, default_value = "agentwatch", requires = "fleet")]
        fleet_prefix: String,
        /// A NATS `.creds` file (user JWT and NKey seed).
        #[arg(long, requires = "fleet")]
        fleet_credentials: Option<PathBuf>,
    },
    /// Export stored events and alerts as JSON lines or OCSF.
    Export {
        /// Query (default: everything).
        query: Vec<String>,
        #[command(flatten)]
        conn: Conn,
        #[arg(long, value_parser = ["jsonl", "ocsf"], default_value = "jsonl")]
        format: String,
        #[arg(long)]
        since: Option<String>,
        #[arg(long)]
        until: Option<String>,
        #[arg(long, default_value_t = 1_000_000)]
        limit: usize,
        /// Write the evidence pack of this session instead (JSON lines: every item with its
        /// chain links; check it with `agentwatch verify --pack FILE`).
        #[arg(long, value_name = "SESSION_ID", conflicts_with_all = ["query", "since", "until"])]
        evidence: Option<String>,
    },
    /// Terminal UI: live alerts, sessions, timelines, search, rules, health. Talks to the daemon;
    /// when none answers, opens `<data-dir>/store` read-only for forensics.
    Tui {
        #[command(flatten)]
        conn: Conn,
        /// The whole fleet instead of one daemon: NATS server URL(s), comma-separated (token
        /// from `AGENTWATCH_FLEET_TOKEN`). Alerts of every host with a host column, triage
        /// shared by every fleet console, search on every host.
        #[arg(long, value_name = "nats://HOST:PORT")]
        fleet: Option<String>,
        /// How long a fleet search gathers the hosts' answers.
        #[arg(long, default_value = "2s", requires = "fleet")]
        fleet_timeout: String,
        /// The daemons' `subject_prefix`.
        #[arg(long, default_value = "agentwatch", requires = "fleet")]
        fleet_prefix: String,
        /// A NATS `.creds` file (user JWT and NKey seed).
        #[arg(long, requires = "fleet")]
        fleet_credentials: Option<PathBuf>,
    },
    /// Acknowledge an alert (persisted by the daemon, seen by every client).
    Ack {
        alert_id: String,
        #[arg(long, default_value = "")]
        note: String,
        #[command(flatten)]
        conn: Conn,
    },
    /// Called by an agent's hook configuration: reads the hook's JSON on stdin, asks the daemon,
    /// and answers the agent (allow, or deny with the policy's reason) within `--timeout-ms`.
    Hook {
        /// The agent's hook protocol: claude-code, codex or gemini-cli.
        #[arg(long, default_value = "claude-code")]
        agent: String,
        /// The daemon's hook socket (default: `[hooks] socket` of the config).
        #[arg(long)]
        socket: Option<PathBuf>,
        /// When the daemon does not answer in time: `open` (allow) or `closed` (deny).
        /// Default: `[hooks] fail` of the config.
        #[arg(long, value_parser = ["open", "closed"])]
        fail: Option<String>,
        /// The bound on the whole exchange (default: `[hooks] timeout_ms`, 2000).
        #[arg(long, value_parser = clap::value_parser!(u64).range(10..=60_000))]
        timeout_ms: Option<u64>,
    },
    /// Agent hooks: install them, show coverage.
    Agents {
        #[command(subcommand)]
        cmd: AgentsCmd,
    },
    /// Resolve an alert.
    Resolve {
        alert_id: String,
        #[arg(long, default_value = "")]
        note: String,
        #[command(flatten)]
        conn: Conn,
    },
    /// Print a shell completion script (e.g. `agentwatch completions bash >
    /// /etc/bash_completion.d/agentwatch`).
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the manual page (roff) to stdout, or with `--dir` write one page per command
    /// (`agentwatch.1`, `agentwatch-search.1`, ...) into that directory.
    Man {
        #[arg(long)]
        dir: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum AgentsCmd {
    /// Write agentwatch's hooks into each agent's system-wide settings (Claude Code's managed
    /// settings, Gemini CLI's system settings, Codex's admin requirements.toml), keeping every
    /// other setting; running it again changes nothing.
    InstallHooks {
        /// Only this agent: claude-code, codex or gemini-cli (repeatable; default: all).
        #[arg(long = "agent", value_name = "NAME")]
        agents: Vec<String>,
        /// Write this settings file instead of the agent's system-wide one (one `--agent` only).
        #[arg(long)]
        settings: Option<PathBuf>,
        /// Print the merged settings instead of writing them.
        #[arg(long)]
        dry_run: bool,
        /// Config whose `[hooks]` section (socket, fail, timeout_ms) the hook command uses.
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Which agents on this host run agentwatch's hooks, and whether a daemon answers them.
    Status {
        #[arg(long = "agent", value_name = "NAME")]
        agents: Vec<String>,
        #[arg(long)]
        settings: Option<PathBuf>,
        #[arg(long)]
        config: Option<PathBuf>,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum RulesCmd {
    /// Validate policy files or directories (default: the shipped policy); exit 2 on any error.
    Check { paths: Vec<PathBuf> },
    /// Run the policy's fixtures; exit 1 on any failure.
    Test { paths: Vec<PathBuf> },
    /// Rules loaded in the running daemon, with hit counts.
    List {
        #[command(flatten)]
        conn: Conn,
        #[arg(long)]
        json: bool,
    },
    /// One rule as enforced, after local `[[override]]`s: where it is defined, its severity,
    /// action and tags, which overrides changed it, its text and theirs, and its hits in the
    /// running daemon. Reads the files the daemon reads (else `--rules`, else the default).
    Show {
        /// Rule id.
        id: String,
        /// Policy files or directories (default: the daemon's, else /etc/agentwatch/rules
        /// when present, else the built-in policy).
        #[arg(long = "rules", value_name = "PATH")]
        rules: Vec<PathBuf>,
        #[command(flatten)]
        conn: Conn,
        #[arg(long)]
        json: bool,
    },
}

/// mimalloc rather than glibc malloc: the sensor thread allocates for every event and other
/// threads free, where glibc spent 40 % of the daemon's time (`malloc`, `_int_free`,
/// `malloc_consolidate`) under an open flood.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() {
                ExitCode::from(2)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("AGENTWATCH_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    match dispatch(cli) {
        Ok(code) => code,
        Err(e) => {
            // `agentwatch search ... | head` closing the pipe is not an error.
            if e.chain().any(|c| {
                c.downcast_ref::<std::io::Error>()
                    .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
            }) {
                return ExitCode::SUCCESS;
            }
            eprintln!("agentwatch: error: {e:#}");
            if e.downcast_ref::<BadInput>().is_some()
                || e.downcast_ref::<config::ConfigError>().is_some()
            {
                ExitCode::from(2)
            } else {
                ExitCode::from(1)
            }
        }
    }
}

fn dispatch(cli: Cli) -> Result<ExitCode> {
    match cli.command {
        Cmd::Completions { shell } => {
            use clap::CommandFactory as _;
            clap_complete::generate(
                shell,
                &mut Cli::command(),
                "agentwatch",
                &mut std::io::stdout(),
            );
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Man { dir } => {
            use clap::CommandFactory as _;
            man_pages(Cli::command(), dir.as_deref())?;
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Daemon {
            config,
            conn,
            events_jsonl,
            alerts_jsonl,
            rules,
            no_store,
            ringbuf_bytes,
            mark,
        } => daemon(DaemonArgs {
            config: config.as_deref(),
            conn: &conn,
            events_jsonl: events_jsonl.as_deref(),
            alerts_jsonl: alerts_jsonl.as_deref(),
            rules: &rules,
            no_store,
            ringbuf_bytes,
            mark: mark.as_deref(),
        }),
        Cmd::Verify {
            conn,
            mark,
            pack,
            config,
            json,
        } => match pack {
            Some(p) => agent_user::evidence::verify_pack(&p, json),
            None => {
                let explicit = match mark {
                    Some(m) => Some(m),
                    None => config::Config::load(config.as_deref())?.mark,
                };
                let choice = match explicit {
                    Some(path) => agent_user::evidence::MarkChoice {
                        path,
                        explicit: true,
                    },
                    None => agent_user::evidence::MarkChoice {
                        path: agent_user::protect::default_mark_path(&conn.data_dir),
                        explicit: false,
                    },
                };
                agent_user::evidence::verify_store(&conn.data_dir, choice, json)
            }
        },
        Cmd::Run {
            agent,
            conn,
            config,
            cmd,
        } => commands::run(&agent, &conn, config.as_deref(), &cmd),
        Cmd::Status { conn, json } => commands::status(&conn, json),
        Cmd::Events {
            conn,
            session,
            json,
        } => commands::events(&conn, session, json),
        Cmd::Fields { kind, json } => cli::fields(kind.as_deref(), json),
        Cmd::Rules { cmd } => match cmd {
            RulesCmd::Check { paths } => Ok(exit(rules::fs::cmd_check(
                &paths,
                &mut std::io::stdout(),
                &mut std::io::stderr(),
            ))),
            RulesCmd::Test { paths } => Ok(exit(rules::fs::cmd_test(
                &paths,
                &mut std::io::stdout(),
                &mut std::io::stderr(),
            ))),
            RulesCmd::List { conn, json } => cli::rules_list(&conn.socket(), json),
            RulesCmd::Show {
                id,
                rules,
                conn,
                json,
            } => agent_user::rulesshow::rules_show(&conn.socket(), &rules, &id, json),
        },
        Cmd::Search {
            query,
            conn,
            since,
            until,
            limit,
            offset,
            json,
            fleet,
            fleet_timeout,
            fleet_hosts,
            fleet_prefix,
            fleet_credentials,
        } => {
            let req = Request::Search {
                query: query.join(" "),
                since,
                until,
                limit,
                offset,
            };
            match fleet {
                Some(servers) => agent_user::fleetsearch::search(
                    agent_user::fleetsearch::FleetArgs {
                        servers,
                        timeout: fleet_timeout,
                        hosts: fleet_hosts,
                        prefix: fleet_prefix,
                        credentials: fleet_credentials,
                        token: std::env::var("AGENTWATCH_FLEET_TOKEN").ok(),
                    },
                    req,
                    json,
                ),
                None => cli::read(&conn.socket(), &conn.data_dir, req, json),
            }
        }
        Cmd::Alerts {
            conn,
            since,
            severity,
            limit,
            follow,
            json,
        } => {
            let code = cli::read(
                &conn.socket(),
                &conn.data_dir,
                Request::Alerts {
                    since,
                    severity: severity.clone(),
                    limit,
                },
                json,
            )?;
            if follow {
                cli::follow_alerts(&conn.socket(), severity.as_deref(), json)
            } else {
                Ok(code)
            }
        }
        Cmd::Sessions { conn, since, json } => cli::read(
            &conn.socket(),
            &conn.data_dir,
            Request::Sessions { since },
            json,
        ),
        Cmd::Session {
            args,
            note,
            yes,
            conn,
            json,
            fleet,
            fleet_timeout,
            fleet_prefix,
            fleet_credentials,
        } => match args.as_slice() {
            [id] if fleet.is_some() => agent_user::fleetsearch::session(
                agent_user::fleetsearch::FleetArgs {
                    servers: fleet.unwrap_or_default(),
                    timeout: fleet_timeout,
                    hosts: Vec::new(),
                    prefix: fleet_prefix,
                    credentials: fleet_credentials,
                    token: std::env::var("AGENTWATCH_FLEET_TOKEN").ok(),
                },
                id,
                json,
            ),
            [_, _] if fleet.is_some() => Err(agent_user::BadInput(anyhow::anyhow!(
                "`--fleet` reads a session; act on it on the host that runs it"
            ))
            .into()),
            [id] => cli::read(
                &conn.socket(),
                &conn.data_dir,
                Request::Session { id: id.clone() },
                json,
            ),
            [action, id] => {
                commands::respond(&conn, action, id, note.unwrap_or_default(), yes, json)
            }
            _ => unreachable!("clap takes one or two values"),
        },
        Cmd::Export {
            conn,
            evidence: Some(session),
            ..
        } => agent_user::evidence::export_pack(&conn.data_dir, &session),
        Cmd::Export {
            query,
            conn,
            format,
            since,
            until,
            limit,
            evidence: None,
        } => cli::export(
            &conn.data_dir,
            &query.join(" "),
            &format,
            since,
            until,
            limit,
        ),
        Cmd::Tui {
            conn,
            fleet,
            fleet_timeout,
            fleet_prefix,
            fleet_credentials,
        } => match fleet {
            Some(servers) => agent_user::fleettui::run(agent_user::fleetsearch::FleetArgs {
                servers,
                timeout: fleet_timeout,
                hosts: Vec::new(),
                prefix: fleet_prefix,
                credentials: fleet_credentials,
                token: std::env::var("AGENTWATCH_FLEET_TOKEN").ok(),
            }),
            None => cli::tui(&conn.socket(), &conn.data_dir),
        },
        Cmd::Ack {
            alert_id,
            note,
            conn,
        } => cli::triage(&conn.socket(), &alert_id, TriageState::Acknowledged, &note),
        Cmd::Resolve {
            alert_id,
            note,
            conn,
        } => cli::triage(&conn.socket(), &alert_id, TriageState::Resolved, &note),
        Cmd::Hook {
            agent,
            socket,
            fail,
            timeout_ms,
        } => {
            // The agent must get an answer even when the config cannot be read.
            let cfg = config::Config::load(None)
                .map(|c| c.hooks)
                .unwrap_or_default();
            hookcmd::hook(&hookcmd::HookArgs {
                agent,
                socket: socket.unwrap_or(cfg.socket),
                fail_closed: fail.map_or(cfg.fail_closed, |f| f == "closed"),
                timeout: std::time::Duration::from_millis(timeout_ms.unwrap_or(cfg.timeout_ms)),
            })
        }
        Cmd::Agents { cmd } => match cmd {
            AgentsCmd::InstallHooks {
                agents,
                settings,
                dry_run,
                config,
            } => {
                let cfg = config::Config::load(config.as_deref())?;
                install::install_cmd(
                    &hook_agents(&agents)?,
                    settings.as_deref(),
                    &cfg.hooks,
                    dry_run,
                )?;
                Ok(ExitCode::SUCCESS)
            }
            AgentsCmd::Status {
                agents,
                settings,
                config,
                json,
            } => {
                let cfg = config::Config::load(config.as_deref())?;
                install::status_cmd(
                    &hook_agents(&agents)?,
                    settings.as_deref(),
                    &cfg.hooks.socket,
                    json,
                )?;
                Ok(ExitCode::SUCCESS)
            }
        },
    }
}

/// The agents named by `--agent`, or all of them.
fn hook_agents(names: &[String]) -> Result<Vec<install::HookAgent>> {
    if names.is_empty() {
        return Ok(install::HookAgent::ALL.to_vec());
    }
    names
        .iter()
        .map(|n| install::HookAgent::from_name(n).map_err(|e| BadInput(e).into()))
        .collect()
}

fn exit(code: i32) -> ExitCode {
    ExitCode::from(code.clamp(0, 255) as u8)
}

/// `agentwatch man`: the top page to stdout, or every command's page into `dir`.
fn man_pages(cmd: clap::Command, dir: Option<&std::path::Path>) -> Result<()> {
    use anyhow::Context as _;
    use std::io::Write as _;
    let Some(dir) = dir else {
        let mut out = std::io::stdout().lock();
        clap_mangen::Man::new(cmd).render(&mut out)?;
        return Ok(out.flush()?);
    };
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let mut cmd = cmd;
    cmd.build();
    let mut stack = vec![(String::from("agentwatch"), cmd)];
    while let Some((name, cmd)) = stack.pop() {
        for sub in cmd.get_subcommands() {
            if sub.get_name() != "help" {
                stack.push((format!("{name}-{}", sub.get_name()), sub.clone()));
            }
        }
        let path = dir.join(format!("{name}.1"));
        let mut buf = Vec::new();
        clap_mangen::Man::new(cmd.clone())
            .title(name.clone())
            .render(&mut buf)
            .with_context(|| format!("cannot render the page of `{name}`"))?;
        std::fs::write(&path, buf).with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(())
}
