//! The `daemon` subcommand: loads the config, the policy and the sensor, opens the store, and
//! runs the sensor thread, the pipeline and the local API until SIGTERM or SIGINT.
//!
//! Kept apart from the CLI commands because it is the only one that owns the kernel side; the
//! binary only parses arguments and calls [`daemon`].

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{Context as _, Result, anyhow};

use crate::commands::Conn;
use crate::{BadInput, api, config, loader, pipeline, reload, source};

/// The arguments of `agentwatch daemon`.
pub struct DaemonArgs<'a> {
    pub config: Option<&'a Path>,
    pub conn: &'a Conn,
    pub events_jsonl: Option<&'a Path>,
    pub alerts_jsonl: Option<&'a Path>,
    pub rules: &'a [PathBuf],
    pub no_store: bool,
    pub ringbuf_bytes: Option<u32>,
    /// The store's high-water mark (overrides `[daemon] mark` and the default).
    pub mark: Option<&'a Path>,
}

fn make_data_dir(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir)
        .with_context(|| format!("cannot create data dir `{}`", dir.display()))?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
        .with_context(|| format!("cannot set permissions of `{}`", dir.display()))?;
    Ok(())
}

pub fn daemon(args: DaemonArgs<'_>) -> Result<ExitCode> {
    let DaemonArgs {
        config,
        conn,
        events_jsonl,
        alerts_jsonl,
        rules,
        no_store,
        ringbuf_bytes,
        mark,
    } = args;
    let cfg = config::Config::load(config)?;
    let mark = crate::protect::mark_path(mark, cfg.mark.as_deref(), &conn.data_dir);
    let policy_source = reload::PolicySource::from_args(rules);
    // The policy watches the daemon's real paths, wherever they are.
    make_data_dir(&conn.data_dir)?;
    let mut own_paths = vec![conn.data_dir.clone(), mark.clone()];
    if let Some(dir) = mark.parent() {
        own_paths.push(dir.to_path_buf());
    }
    if let Some(c) = config {
        own_paths.push(c.to_path_buf());
    } else if Path::new(config::DEFAULT_CONFIG_PATH).exists() {
        own_paths.push(config::DEFAULT_CONFIG_PATH.into());
    }
    if let reload::PolicySource::Paths(p) = &policy_source {
        own_paths.extend(p.iter().cloned());
    }
    if let Ok(exe) = std::env::current_exe() {
        own_paths.push(exe);
    }
    own_paths.extend(
        [events_jsonl, alerts_jsonl]
            .into_iter()
            .flatten()
            .map(Path::to_path_buf),
    );
    let extra = vec![crate::protect::monitor_paths_source(&own_paths)];
    let (compiled, _) = policy_source.compile_with(&extra).map_err(|e| {
        BadInput(e.context(format!("invalid policy in {}", policy_source.describe())))
    })?;
    let policy_state = reload::PolicyState::new(policy_source, &compiled).with_extra(extra);
    let compiled = Arc::new(compiled);
    if let Some(n) = ringbuf_bytes
        && (!n.is_power_of_two() || n < 4096)
    {
        return Err(BadInput(anyhow!(
            "`--ringbuf-bytes` = `{n}` must be a power of two of at least 4096"
        ))
        .into());
    }
    // Refuse a symlinked or foreign output file before anything is loaded.
    for (p, what) in [(events_jsonl, "events"), (alerts_jsonl, "alerts")] {
        if let Some(p) = p {
            crate::outfile::open_append(p, what)?;
        }
    }
    let mut sensor = loader::Sensor::load_pinned(
        &cfg,
        ringbuf_bytes.unwrap_or(cfg.ringbuf_bytes),
        Some(&conn.data_dir),
    )?;
    // Removed on a clean stop only: a daemon killed or failing leaves the sensor running.
    let pin_dir = sensor.pin_dir().map(Path::to_path_buf);
    let host = cfg.host.clone().unwrap_or_else(source::hostname);
    if mark.starts_with(&conn.data_dir) {
        tracing::warn!(mark = %mark.display(), "the high-water mark is inside the data dir: wiping the data dir wipes it too");
    }
    if no_store && !cfg.nats_outputs.is_empty() {
        return Err(BadInput(anyhow!(
            "{}: `[[output]] type = \"nats\"` ships from the store; it cannot run with `--no-store`",
            cfg.origin
        ))
        .into());
    }
    let (store, store_report) = if no_store {
        (None, None)
    } else {
        let dir = conn.data_dir.join("store");
        let store_cfg = agent_store::StoreConfig {
            mark: Some(mark.clone()),
            retention_age: cfg.retention_age,
            retention_bytes: cfg.retention_bytes,
            backlog_bytes: cfg
                .store_backlog
                .map_or(agent_store::StoreConfig::default().backlog_bytes, |b| {
                    b as usize
                }),
            ..Default::default()
        };
        let (st, report) = agent_store::Store::open(&dir, store_cfg)
            .with_context(|| format!("cannot open the store in `{}`", dir.display()))?;
        (Some(Arc::new(st)), Some(report))
    };
    let reader = match &store {
        Some(st) => Some(Arc::new(
            st.reader().context("cannot open a reader on the store")?,
        )),
        None => None,
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let (live, _) = tokio::sync::broadcast::channel(pipeline::LIVE_CAPACITY);
    let (cmd_tx, cmd_rx) = std::sync::mpsc::sync_channel(1024);
    let reload = Arc::new(AtomicBool::new(false));
    let mut pipeline = pipeline::Pipeline::new(
        host.clone(),
        pipeline::Outputs {
            events_jsonl,
            alerts_jsonl,
        },
        live.clone(),
        compiled,
        policy_state,
        reload.clone(),
        store.clone(),
    )?;
    pipeline.set_low_space(cfg.low_space);
    // Once the store and the outputs exist: opens of them for writing by any other process
    // are reported (see `Sensor::protect_paths`).
    sensor.protect_paths(&own_paths)?;
    // Fleet outputs ship from the spool on the runtime; the host works the same without them.
    if let Some(st) = &store {
        let mut handles = Vec::new();
        for out in &cfg.nats_outputs {
            let shipper = agent_fleet::Shipper::new(
                out.clone(),
                &host,
                st.clone(),
                conn.data_dir.join("store"),
            )
            .map_err(|e| BadInput(anyhow!("{}: {e}", cfg.origin)))?;
            // Fleet-wide search: the same read path as the API's `search` request.
            let mut shipper = shipper;
            if let Some(r) = &reader {
                // `session --fleet`: answered only by the host that has the session.
                let r2 = r.clone();
                shipper.answer_sessions(Arc::new(move |id| match r2.session(id) {
                    Ok(Some(d)) => Some(agent_api::Reply::Ok(d)),
                    Ok(None) => None,
                    Err(e) => Some(agent_api::Reply::err(e.to_string())),
                }));
                let r = r.clone();
                shipper.answer_searches(Arc::new(move |req| match crate::query::answer(&r, req) {
                    agent_api::Reply::Ok(crate::query::ReadAnswer::Search(s)) => {
                        agent_api::Reply::Ok(s)
                    }
                    agent_api::Reply::Ok(_) => agent_api::Reply::err("not a search answer"),
                    agent_api::Reply::Err(e) => agent_api::Reply::Err(e),
                }));
            }
            handles.push(shipper.handle());
            rt.spawn(shipper.run());
        }
        pipeline.set_fleet(handles);
        let mut hooks = Vec::new();
        for out in &cfg.webhook_outputs {
            let (w, h) =
                crate::webhook::Webhook::new(out.clone(), st.clone(), &conn.data_dir.join("store"))
                    .map_err(|e| BadInput(anyhow!("{}: {e}", cfg.origin)))?;
            hooks.push(h);
            rt.spawn(w.run());
        }
        for out in &cfg.syslog_outputs {
            let (w, h) =
                crate::syslog::Syslog::new(out.clone(), st.clone(), &conn.data_dir.join("store"))
                    .map_err(|e| BadInput(anyhow!("{}: {e}", cfg.origin)))?;
            hooks.push(h);
            rt.spawn(w.run());
        }
        pipeline.set_webhooks(hooks);
    } else if !cfg.webhook_outputs.is_empty() || !cfg.syslog_outputs.is_empty() {
        eprintln!(
            "agentwatch: webhook and syslog outputs ship from the store, which is off: not started"
        );
    }
    // Store findings become alerts once the session-less `monitor.start` event is out: tamper
    // evidence (something missing or altered) is critical and named; the rest (damage
    // repaired, index rebuilt) is the `store.recovery` it always was.
    let mut start_alerts = Vec::new();
    let mut tamper = 0;
    if let Some(report) = &store_report {
        let now = agent_model::Timestamp::now();
        let t = crate::protect::store_tamper_alerts(&report.findings, &host, now);
        tamper = t.len();
        start_alerts.extend(t);
    }
    if let Some(report) = &store_report
        && !report.is_clean()
    {
        for msg in report.messages() {
            if msg.starts_with("tamper evidence") {
                continue;
            }
            let now = agent_model::Timestamp::now();
            start_alerts.push(agent_model::Alert {
                id: format!("store-recovery-{}", now.0),
                time: now,
                host: host.clone(),
                rule: "store.recovery".into(),
                severity: agent_model::Severity::High,
                summary: agent_model::BStr::from(msg),
                tags: vec!["agentwatch".into(), "store".into()],
                count: 1,
                first_time: now,
                last_time: now,
                ..Default::default()
            });
        }
    }
    let start_message = format!(
        "agentwatch {} started: pid {}, config {}, policy {} ({} rules, hash {}), store {}, mark `{}`, {} tamper findings",
        env!("CARGO_PKG_VERSION"),
        std::process::id(),
        cfg.origin,
        pipeline.policy.source.describe(),
        pipeline.policy.rules,
        pipeline.policy.hash,
        match &store_report {
            Some(r) => format!("last seq {}", r.last_seq),
            None => "off".into(),
        },
        mark.display(),
        tamper,
    );
    let stop = Arc::new(AtomicBool::new(false));
    let mut src =
        source::SourceLoop::new(sensor, cfg.clone(), host, pipeline, cmd_rx, stop.clone())?;
    src.keep_agent_ids(&conn.data_dir);
    // SIGHUP re-reads the config too: its `[[egress]]` tables apply without a restart.
    let config_reload = Arc::new(AtomicBool::new(false));
    src.reload_config_on(config.map(Path::to_path_buf), config_reload.clone());
    src.started(start_message, start_alerts);
    // Sessions the pinned sensor kept tracking, and what it buffered, before anything new.
    src.adopt();
    src.seed_from_proc();
    let socket = conn.socket();
    let listener = {
        let _g = rt.enter();
        api::bind(&socket)?
    };
    if let Some(gid) = cfg.read_gid {
        api::grant_read_group(&socket, &conn.data_dir, gid)?;
    }
    // `[metrics] listen`: a listener that cannot bind stops the start, like the API socket: an
    // operator who asked for metrics must not find them silently missing.
    let metrics_listener = match cfg.metrics_listen {
        Some(addr) => Some(rt.block_on(crate::metrics::bind(addr))?),
        None => None,
    };
    let sensor_thread = std::thread::Builder::new()
        .name("sensor".into())
        .spawn(move || src.run())?;
    let api = api::Api {
        commands: cmd_tx,
        live,
        store: store.clone(),
        reader,
        read_gid: cfg.read_gid,
    };
    // The hook socket is optional: without it the daemon still senses everything, and
    // `agentwatch hook` falls back to its configured failure mode.
    let hook_socket = cfg.hooks.socket.clone();
    let hooks_listener = {
        let _g = rt.enter();
        api::bind_hooks(&hook_socket)
    };
    let hooks_served = hooks_listener.is_ok();
    match hooks_listener {
        Ok(l) => {
            rt.spawn(api.clone().serve_hooks(l));
        }
        Err(e) => eprintln!("agentwatch: agent hooks are not served: {e:#}"),
    }
    if let Some(l) = metrics_listener {
        rt.spawn(crate::metrics::serve(l, api.commands.clone()));
    }
    rt.spawn(api.serve(listener));
    eprintln!(
        "agentwatch: daemon ready (pid {}, socket {}, config {})",
        std::process::id(),
        socket.display(),
        cfg.origin
    );
    // systemd `Type=notify`: ready once the programs are attached and the socket listens.
    if let Err(e) = crate::sdnotify::notify(&format!(
        "READY=1\nMAINPID={}\nSTATUS=monitoring; socket {}",
        std::process::id(),
        socket.display()
    )) {
        tracing::warn!(error = %e, "cannot notify systemd of readiness");
    }
    rt.block_on(async {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate())?;
        let mut int = signal(SignalKind::interrupt())?;
        let mut hup = signal(SignalKind::hangup())?;
        loop {
            tokio::select! {
                _ = term.recv() => break,
                _ = int.recv() => break,
                _ = hup.recv() => {
                    reload.store(true, Ordering::Relaxed);
                    config_reload.store(true, Ordering::Relaxed);
                }
            }
        }
        anyhow::Ok(())
    })?;
    stop.store(true, Ordering::Relaxed);
    let res = sensor_thread
        .join()
        .map_err(|_| anyhow!("sensor thread panicked"))?;
    // A clean stop stops the monitor: unpinning detaches the programs the sensor thread's
    // handles no longer hold.
    if let Some(dir) = &pin_dir {
        crate::loader::pin::PinDir::remove_dir(dir);
    }
    let _ = std::fs::remove_file(&socket);
    if hooks_served {
        let _ = std::fs::remove_file(&hook_socket);
    }
    rt.shutdown_timeout(std::time::Duration::from_millis(200));
    if let Some(st) = store
        && let Ok(st) = Arc::try_unwrap(st)
        && let Err(e) = st.close()
    {
        eprintln!("agentwatch: closing the store failed: {e}");
    }
    res?;
    Ok(ExitCode::SUCCESS)
}
