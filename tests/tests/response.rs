//! Response end-to-end tests: real sessions (`agentwatch run`) in their own cgroup v2, frozen,
//! thawed and killed with `agentwatch session freeze|thaw|kill`, with processes outside the
//! session running alongside and never touched. Root and BTF required; without them each test
//! says why and skips.

use std::os::unix::process::CommandExt as _;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use agent_model::{Event, Kind};
use tests::{Daemon, bin, require_sensor};

fn session_cmd(d: &Daemon, action: &str, sid: &str) -> std::process::Output {
    Command::new(bin())
        .args([
            "session",
            action,
            sid,
            "--yes",
            "--note",
            "test",
            "--data-dir",
        ])
        .arg(d.data_dir())
        .output()
        .unwrap()
}

fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
        s.rfind(')')
            .and_then(|i| s.get(i + 2..i + 3))
            .is_some_and(|st| st != "Z" && st != "X")
    })
}

fn read_pid(p: &Path) -> u32 {
    let t0 = Instant::now();
    loop {
        if let Some(pid) = std::fs::read_to_string(p)
            .ok()
            .and_then(|s| s.trim().parse().ok())
        {
            return pid;
        }
        assert!(t0.elapsed() < Duration::from_secs(10), "no pid in {p:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn counters(dir: &Path, n: usize) -> Vec<String> {
    (0..n)
        .map(|i| std::fs::read_to_string(dir.join(format!("c{i}"))).unwrap_or_default())
        .collect()
}

/// The counters of running processes: each read until it is not caught between the truncation
/// and the write of `echo $n > file`.
fn running_counters(dir: &Path, n: usize) -> Vec<String> {
    let t0 = Instant::now();
    (0..n)
        .map(|i| {
            loop {
                let c = std::fs::read_to_string(dir.join(format!("c{i}"))).unwrap_or_default();
                if !c.is_empty() {
                    return c;
                }
                assert!(
                    t0.elapsed() < Duration::from_secs(10),
                    "counter {i} never written"
                );
                std::thread::yield_now();
            }
        })
        .collect()
}

fn responses<'a>(evs: &'a [Event], sid: &str) -> Vec<&'a Event> {
    evs.iter()
        .filter(|e| e.kind() == Kind::ResponseAction && e.session_id() == Some(sid))
        .collect()
}

/// A busy child tree stops as a whole when frozen (no counter moves) and runs again on thaw.
#[test]
fn freeze_stops_every_process_of_the_session_and_thaw_resumes_them() {
    require_sensor!();
    let d = Daemon::start().unwrap();
    let work = tempfile::tempdir().unwrap();
    let w = work.path().display();
    // Three busy counters: two children and one grandchild that left its parent (setsid).
    let script = format!(
        "for i in 0 1; do (n=0; while :; do n=$((n+1)); echo $n > {w}/c$i; done) & done; \
         setsid sh -c '(n=0; while :; do n=$((n+1)); echo $n > {w}/c2; done) &'; sleep 1000"
    );
    let (mut run, sid) = tests::run_bg(&d, "t-freeze", &script);
    // Each counter is waited for on its own: all three non-empty in one read is rare while
    // every loop keeps truncating its file (it failed on a loaded machine).
    running_counters(work.path(), 3);
    let out = session_cmd(&d, "freeze", &sid);
    assert!(
        out.status.success(),
        "freeze: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let frozen = counters(work.path(), 3);
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        counters(work.path(), 3),
        frozen,
        "a counter moved while frozen"
    );
    let out = session_cmd(&d, "thaw", &sid);
    assert!(
        out.status.success(),
        "thaw: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::thread::sleep(Duration::from_millis(500));
    let thawed = running_counters(work.path(), 3);
    for (a, b) in frozen.iter().zip(&thawed) {
        assert_ne!(a, b, "a counter did not resume after thaw");
    }
    let evs = d
        .wait_for("freeze and thaw events", |e| responses(e, &sid).len() >= 2)
        .unwrap();
    let r = responses(&evs, &sid);
    let acts: Vec<(&str, &str, &str)> = r
        .iter()
        .map(|e| {
            let r = e.response.as_ref().unwrap();
            (r.action.as_str(), r.mode.as_str(), r.result.as_str())
        })
        .collect();
    assert_eq!(
        acts,
        [
            ("freeze_session", "enforce", "done"),
            ("thaw_session", "enforce", "done")
        ]
    );
    assert_eq!(r[0].response.as_ref().unwrap().by, "uid:0");
    assert_eq!(r[0].response.as_ref().unwrap().note, "test");
    assert!(session_cmd(&d, "kill", &sid).status.success());
    let _ = run.wait();
}

/// `session kill` leaves nothing of the session alive, double-forked children included, and a
/// process outside the session running beside it is not touched.
#[test]
fn kill_session_leaves_nothing_behind_and_never_touches_outsiders() {
    require_sensor!();
    let d = Daemon::start().unwrap();
    let work = tempfile::tempdir().unwrap();
    let w = work.path().display();
    let mut outsider = Command::new("/bin/sleep").arg("1000").spawn().unwrap();
    let script = format!(
        "echo $$ > {w}/root; sleep 1000 & echo $! > {w}/child; \
         (setsid sh -c 'sleep 1000 & echo $! > {w}/gc; exec sleep 1000' &) ; \
         sh -c 'trap \"\" TERM HUP; echo $$ > {w}/stubborn; while :; do sleep 1; done' & wait"
    );
    let (mut run, sid) = tests::run_bg(&d, "t-kill", &script);
    let pids: Vec<u32> = ["root", "child", "gc", "stubborn"]
        .iter()
        .map(|f| read_pid(&work.path().join(f)))
        .collect();
    assert!(pids.iter().all(|&p| alive(p)));
    let out = session_cmd(&d, "kill", &sid);
    assert!(
        out.status.success(),
        "kill: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let _ = run.wait();
    std::thread::sleep(Duration::from_millis(200));
    for p in &pids {
        assert!(!alive(*p), "pid {p} of the session survived");
    }
    assert!(
        alive(outsider.id()),
        "the process outside the session was killed"
    );
    let evs = d
        .wait_for("kill event", |e| !responses(e, &sid).is_empty())
        .unwrap();
    let r = responses(&evs, &sid)[0].response.clone().unwrap();
    assert_eq!(
        (r.action.as_str(), r.result.as_str()),
        ("kill_session", "done")
    );
    outsider.kill().unwrap();
    let _ = outsider.wait();
}

/// Only root and the daemon's uid may act: an unprivileged caller that reaches the socket is
/// refused and the session keeps running.
#[test]
fn manual_response_is_refused_to_an_unprivileged_caller() {
    require_sensor!();
    let d = Daemon::start().unwrap();
    let work = tempfile::tempdir().unwrap();
    let w = work.path().display();
    let (mut run, sid) = tests::run_bg(&d, "t-priv", &format!("echo $$ > {w}/root; sleep 1000"));
    let root = read_pid(&work.path().join("root"));
    // Open the way to the socket for everyone: the daemon's own check must still refuse.
    use std::os::unix::fs::PermissionsExt as _;
    for p in [
        d.dir.path().to_path_buf(),
        d.data_dir(),
        d.data_dir().join("agentwatch.sock"),
    ] {
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o777)).unwrap();
    }
    let out = Command::new(bin())
        .args(["session", "kill", &sid, "--yes", "--data-dir"])
        .arg(d.data_dir())
        .uid(65534)
        .gid(65534)
        .output()
        .unwrap();
    assert!(!out.status.success(), "an unprivileged kill succeeded");
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        alive(root),
        "the session was killed by an unprivileged caller"
    );
    assert!(responses(&d.events(), &sid).is_empty());
    assert!(session_cmd(&d, "kill", &sid).status.success());
    let _ = run.wait();
}

/// The kill switch: with `[response] enabled = false` nothing is done, and the refusal is
/// recorded as an event of the session.
#[test]
fn kill_switch_refuses_every_action_and_records_it() {
    require_sensor!();
    let d = Daemon::start_with(Some("[response]\nenabled = false\n"), &[]).unwrap();
    let work = tempfile::tempdir().unwrap();
    let w = work.path().display();
    let (mut run, sid) = tests::run_bg(&d, "t-off", &format!("echo $$ > {w}/root; sleep 1000"));
    let root = read_pid(&work.path().join("root"));
    let out = session_cmd(&d, "kill", &sid);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("disabled in the config"), "{err}");
    assert!(alive(root));
    let evs = d
        .wait_for("refusal event", |e| !responses(e, &sid).is_empty())
        .unwrap();
    assert!(
        responses(&evs, &sid)[0]
            .response
            .as_ref()
            .unwrap()
            .result
            .starts_with("refused")
    );
    // SAFETY: kill(2) on a process this test started.
    unsafe { libc::kill(root as i32, libc::SIGKILL) };
    let _ = run.wait();
}

/// A daemon with the shipped policy plus `extra` (one more rules file).
fn daemon_with_rules(work: &Path, extra: &str) -> Daemon {
    let rules_dir = work.join("rules");
    std::fs::create_dir_all(&rules_dir).unwrap();
    for (name, text) in rules::DEFAULT_POLICY {
        std::fs::write(rules_dir.join(name), text).unwrap();
    }
    std::fs::write(rules_dir.join("zz-response.toml"), extra).unwrap();
    Daemon::start_with(None, &["--rules", rules_dir.to_str().unwrap()]).unwrap()
}

fn trip_rule(id: &str, path: &Path, action: &str, more: &str) -> String {
    format!(
        "[[rule]]\nid = \"{id}\"\ndescription = \"trip\"\nkinds = [\"file.open\"]\n\
         severity = \"high\"\noutput = \"{{file.path}} {{process.pid}}\"\n\
         condition = {{ field = \"file.path\", prefix = \"{}\" }}\naction = \"{action}\"\n{more}\n",
        path.display()
    )
}

/// A rule in dry run (the config's default) only records; the same session then trips an
/// enforcing `kill_session` rule and dies whole, each action recorded with its rule and result.
#[test]
fn rule_actions_dry_run_records_and_enforce_kills_the_session() {
    require_sensor!();
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    std::fs::write(w.join("trip-dry"), "x").unwrap();
    std::fs::write(w.join("trip-enforce"), "x").unwrap();
    let policy = trip_rule("t.dry", &w.join("trip-dry"), "kill_session", "")
        + &trip_rule(
            "t.enforce",
            &w.join("trip-enforce"),
            "kill_session",
            "mode = \"enforce\"",
        );
    let d = daemon_with_rules(w, &policy);
    let wd = w.display();
    let script = format!(
        "sleep 1000 & echo $! > {wd}/child; cat {wd}/trip-dry; \
         while [ ! -e {wd}/go ]; do sleep 0.05; done; cat {wd}/trip-enforce; sleep 1000"
    );
    let (mut run, sid) = tests::run_bg(&d, "t-rules", &script);
    let child = read_pid(&w.join("child"));
    let evs = d
        .wait_for("the dry-run action", |e| !responses(e, &sid).is_empty())
        .unwrap();
    let r = responses(&evs, &sid)[0].response.clone().unwrap();
    assert_eq!(
        (
            r.action.as_str(),
            r.mode.as_str(),
            r.by.as_str(),
            r.result.as_str()
        ),
        ("kill_session", "dry_run", "rule:t.dry", "dry_run")
    );
    assert!(r.note.starts_with("alert "), "{r:?}");
    d.settle();
    assert!(alive(child), "a dry run must not kill anything");
    assert!(
        run.try_wait().unwrap().is_none(),
        "a dry run must not kill anything"
    );
    std::fs::write(w.join("go"), "").unwrap();
    let evs = d
        .wait_for("the enforced action", |e| responses(e, &sid).len() >= 2)
        .unwrap();
    let r = responses(&evs, &sid)[1].response.clone().unwrap();
    assert_eq!(
        (
            r.action.as_str(),
            r.mode.as_str(),
            r.by.as_str(),
            r.result.as_str()
        ),
        ("kill_session", "enforce", "rule:t.enforce", "done")
    );
    let t0 = Instant::now();
    while run.try_wait().unwrap().is_none() {
        assert!(
            t0.elapsed() < Duration::from_secs(5),
            "session root survived"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(!alive(child), "a session child survived kill_session");
}

/// `kill` hits only the process that tripped the rule, and a rule's rate limit refuses the
/// action past its budget (recorded as refused, the process left alone).
#[test]
fn rule_kill_hits_the_offender_only_within_the_rate_limit() {
    require_sensor!();
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    std::fs::write(w.join("trip-kill"), "x").unwrap();
    let policy = trip_rule(
        "t.kill",
        &w.join("trip-kill"),
        "kill",
        "mode = \"enforce\"\nrate_limit = \"1/1m\"",
    );
    let d = daemon_with_rules(w, &policy);
    let wd = w.display();
    let script = format!(
        "sleep 1000 & echo $! > {wd}/bystander; \
         sh -c 'echo $$ > {wd}/p1; exec 3< {wd}/trip-kill; exec sleep 1000' & \
         while [ ! -e {wd}/go ]; do sleep 0.05; done; \
         sh -c 'echo $$ > {wd}/p2; exec 3< {wd}/trip-kill; exec sleep 1000' & sleep 1000"
    );
    let (mut run, sid) = tests::run_bg(&d, "t-rate", &script);
    let bystander = read_pid(&w.join("bystander"));
    let p1 = read_pid(&w.join("p1"));
    let evs = d
        .wait_for("the first kill", |e| !responses(e, &sid).is_empty())
        .unwrap();
    let r = responses(&evs, &sid)[0].response.clone().unwrap();
    assert_eq!(
        (r.action.as_str(), r.result.as_str()),
        ("kill", "done"),
        "{r:?}"
    );
    assert_eq!(responses(&evs, &sid)[0].process.pid, p1);
    let t0 = Instant::now();
    while alive(p1) {
        assert!(
            t0.elapsed() < Duration::from_secs(5),
            "the offender survived"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    std::fs::write(w.join("go"), "").unwrap();
    let p2 = read_pid(&w.join("p2"));
    let evs = d
        .wait_for("the refused kill", |e| responses(e, &sid).len() >= 2)
        .unwrap();
    let r = responses(&evs, &sid)[1].response.clone().unwrap();
    assert!(r.result.starts_with("refused: rate limit"), "{r:?}");
    d.settle();
    assert!(alive(p2), "an action over the rate limit was carried out");
    assert!(
        alive(bystander),
        "kill hit a process that did not trip the rule"
    );
    assert!(
        run.try_wait().unwrap().is_none(),
        "kill hit the session root"
    );
    for p in [p2, bystander] {
        // SAFETY: test cleanup of our own children.
        unsafe { libc::kill(p as i32, libc::SIGKILL) };
    }
    let _ = run.kill();
}

/// An inline kill rule (`inline = true`) protects exact paths and directory prefixes: the open
/// probe SIGKILLs the session process that opens one before the open returns, so nothing of the
/// file reaches its stdout; the kill is one `response.action` event (`in kernel`). A dry-run
/// inline rule only records; an unprotected file and a process outside sessions are untouched.
#[test]
fn inline_kill_stops_the_read_in_the_kernel() {
    require_sensor!();
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    let secret = "TOPSECRET-4f1c9a";
    std::fs::write(w.join("secret"), secret).unwrap();
    std::fs::create_dir_all(w.join("vault/sub")).unwrap();
    std::fs::write(w.join("vault/sub/key"), secret).unwrap();
    std::fs::write(w.join("dry"), secret).unwrap();
    std::fs::write(w.join("plain"), "plain-data").unwrap();
    let rule = |id: &str, cond: &str, mode: &str| {
        format!(
            "[[rule]]\nid = \"{id}\"\ndescription = \"inline\"\nkinds = [\"file.open\"]\n\
             severity = \"high\"\noutput = \"{{file.path}}\"\ncondition = {cond}\n\
             action = \"kill\"\nmode = \"{mode}\"\ninline = true\n\n"
        )
    };
    let wd = w.display();
    let policy = rule(
        "t.inline",
        &format!("{{ field = \"file.path\", equals = \"{wd}/secret\" }}"),
        "enforce",
    ) + &rule(
        "t.vault",
        &format!("{{ field = \"file.path\", prefix = \"{wd}/vault/\" }}"),
        "enforce",
    ) + &rule(
        "t.dry",
        &format!("{{ field = \"file.path\", in = [\"{wd}/dry\"] }}"),
        "dry_run",
    );
    let d = daemon_with_rules(w, &policy);
    // The shell reports a killed child on stderr, which `spawn_session` has closed.
    let mut script = String::from("exec 2>/dev/null; ");
    for (i, f) in ["secret", "vault/sub/key", "dry", "plain"]
        .iter()
        .enumerate()
    {
        script += &format!("cat {wd}/{f} > {wd}/out{i}; echo $? > {wd}/rc{i}; ");
    }
    script += &format!("touch {wd}/done; sleep 1000");
    let (mut run, sid) = tests::run_bg(&d, "t-inline", &script);
    let t0 = Instant::now();
    while !w.join("done").exists() {
        if t0.elapsed() > Duration::from_secs(10) {
            let files: Vec<_> = std::fs::read_dir(w)
                .unwrap()
                .flatten()
                .map(|e| e.file_name())
                .collect();
            panic!("the session stalled: {files:?} {:?}", run.try_wait());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let read = |n: &str| std::fs::read_to_string(w.join(n)).unwrap();
    // 137 = 128 + SIGKILL, as the shell reports a child killed by signal 9.
    assert_eq!(read("rc0").trim(), "137", "the exact path was not killed");
    assert_eq!(
        read("out0"),
        "",
        "bytes of the protected file reached user space"
    );
    assert_eq!(
        read("rc1").trim(),
        "137",
        "the file below the prefix was not killed"
    );
    assert_eq!(read("out1"), "");
    assert_eq!(read("rc2").trim(), "0", "a dry-run inline rule killed");
    assert_eq!(read("out2"), secret);
    assert_eq!(read("rc3").trim(), "0");
    assert_eq!(
        read("out3"),
        "plain-data",
        "an unprotected file was touched"
    );
    // Outside every session the same file is read as usual.
    let out = Command::new("cat").arg(w.join("secret")).output().unwrap();
    assert!(
        out.status.success(),
        "a process outside sessions was killed"
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), secret);
    let evs = d
        .wait_for("three responses", |e| responses(e, &sid).len() >= 3)
        .unwrap();
    let _ = evs;
    d.settle();
    let evs = d.events();
    let mut acts: Vec<(String, String, String, String, String)> = responses(&evs, &sid)
        .iter()
        .map(|e| {
            let r = e.response.clone().unwrap();
            let note = if r.note.starts_with("alert ") {
                "alert".to_owned()
            } else {
                r.note
            };
            (r.by, r.action, r.mode, r.result, note)
        })
        .collect();
    acts.sort();
    let s = |x: &str| x.to_owned();
    assert_eq!(
        acts,
        [
            (
                s("rule:t.dry"),
                s("kill"),
                s("dry_run"),
                s("dry_run"),
                s("alert")
            ),
            (
                s("rule:t.inline"),
                s("kill"),
                s("enforce"),
                s("done"),
                s("in kernel")
            ),
            (
                s("rule:t.vault"),
                s("kill"),
                s("enforce"),
                s("done"),
                s("in kernel")
            ),
        ],
        "one event per action, none for the unprotected file"
    );
    assert!(
        run.try_wait().unwrap().is_none(),
        "the session root was killed"
    );
    let _ = run.kill();
}

/// Issue #15: a session whose processes keep tripping an inline kill rule (a shell respawning
/// `cat` on a protected file 200 times) is not a flood: every `cat` dies, the kill events are
/// bounded, and the `response.inline_kill` alert's count (written again when its 5 s window
/// closes) is exactly the number of kills.
#[test]
fn repeated_inline_kills_fold_into_one_counted_alert() {
    require_sensor!();
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    std::fs::write(w.join("secret"), "TOPSECRET-77e1").unwrap();
    let wd = w.display();
    let policy = format!(
        "[[rule]]\nid = \"t.respawn\"\ndescription = \"inline\"\nkinds = [\"file.open\"]\n\
         severity = \"high\"\noutput = \"{{file.path}}\"\n\
         condition = {{ field = \"file.path\", equals = \"{wd}/secret\" }}\n\
         action = \"kill\"\nmode = \"enforce\"\ninline = true\n"
    );
    let d = daemon_with_rules(w, &policy);
    let script = format!(
        "exec 2>/dev/null; k=0; i=0; while [ $i -lt 200 ]; do i=$((i+1)); cat {wd}/secret >/dev/null; [ $? -eq 137 ] && k=$((k+1)); done; echo $k > {wd}/killed; touch {wd}/done; sleep 1000"
    );
    let (mut run, sid) = tests::run_bg(&d, "t-respawn", &script);
    let t0 = Instant::now();
    while !w.join("done").exists() {
        assert!(
            t0.elapsed() < Duration::from_secs(120),
            "the loop stalled: {:?}",
            run.try_wait()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let loop_time = t0.elapsed();
    assert_eq!(
        std::fs::read_to_string(w.join("killed")).unwrap().trim(),
        "200",
        "every respawned cat was killed"
    );
    let count = |d: &Daemon| -> (usize, u64) {
        let out = Command::new(bin())
            .args(["alerts", "--json", "--limit", "1000", "--data-dir"])
            .arg(d.data_dir())
            .output()
            .unwrap();
        let mut by_id: std::collections::BTreeMap<String, u64> = Default::default();
        for l in String::from_utf8_lossy(&out.stdout).lines() {
            let Ok(mut v) = serde_json::from_str::<serde_json::Value>(l) else {
                continue;
            };
            let v = v["alert"].take();
            if v["rule"] == "response.inline_kill" && v["session"]["id"] == sid.as_str() {
                let e = by_id
                    .entry(v["id"].as_str().unwrap().to_owned())
                    .or_default();
                *e = (*e).max(v["count"].as_u64().unwrap());
            }
        }
        (by_id.len(), by_id.values().sum())
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    let (alerts, total) = loop {
        let (n, total) = count(&d);
        if total >= 200 {
            break (n, total);
        }
        assert!(
            Instant::now() < deadline,
            "counts reach {total} of 200; kill events: {}",
            responses(&d.events(), &sid).len()
        );
        std::thread::sleep(Duration::from_millis(250));
    };
    assert_eq!(total, 200, "the alert counts are the kills");
    let windows = (loop_time.as_secs() / 5 + 2) as usize;
    assert!(
        alerts <= windows,
        "{alerts} alerts for a {loop_time:?} loop"
    );
    let kills = responses(&d.events(), &sid)
        .into_iter()
        .filter(|e| e.response.as_ref().is_some_and(|r| r.action == "kill"))
        .count();
    assert!(
        (1..=windows).contains(&kills),
        "{kills} kill events stored for 200 kills"
    );
    let _ = run.kill();
}
