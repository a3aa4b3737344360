//! Self-repair of the kernel maps (issue 19), root required: a session process that deletes its
//! own `SESSIONS` entry through bpf(), and a process outside every session that deletes an entry
//! of the `HANDLERS` program array, are alerted (`monitor.map_tamper`), the entries are put back
//! within the check period, `status` counts the repairs, and what the sessions do next is
//! reported again. An entry of the inline kill map (`KILL_OPEN`) deleted from outside every
//! session is alerted and put back, and the kill holds.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use agent_model::{Event, Kind};
use tests::{Daemon, in_session, require_sensor, workload};

fn wait_alert(path: &Path, rule: &str, texts: &[&str]) -> serde_json::Value {
    tests::wait_alert_with(path, rule, texts, Duration::from_secs(15))
}

fn opens_of<'a>(evs: &'a [Event], session: &str, path: &str) -> Vec<&'a Event> {
    in_session(evs, session)
        .into_iter()
        .filter(|e| e.kind() == Kind::FileOpen)
        .filter(|e| {
            e.file
                .as_ref()
                .is_some_and(|f| f.path.to_str_lossy() == path)
        })
        .collect()
}

fn integrity(d: &Daemon) -> serde_json::Value {
    d.status().unwrap()["integrity"].clone()
}

#[test]
fn a_session_that_deletes_its_own_sessions_entry_is_repaired_and_seen_again() {
    require_sensor!();
    let work = tempfile::tempdir().unwrap();
    let alerts = work.path().join("alerts.jsonl");
    let d = Daemon::start_with(None, &["--alerts-jsonl", alerts.to_str().unwrap()]).unwrap();
    let secret = std::fs::canonicalize(work.path()).unwrap().join("id_rsa");
    std::fs::write(&secret, "-----BEGIN OPENSSH PRIVATE KEY-----\n").unwrap();
    let secret = secret.to_str().unwrap().to_owned();
    let script = format!("exec {} bpf-tamper-open {secret}", workload().display());
    let (out, sid) = d.run("t-self-repair", &["/bin/sh", "-c", &script]).unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{stdout}");
    assert!(
        stdout.contains("delete=0"),
        "the entry was not deleted: {stdout}"
    );
    let ms: u64 = stdout
        .split("restored_ms=")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("the entry was never put back: {stdout}"));
    assert!(ms < 3000, "repair took {ms} ms: {stdout}");
    assert!(stdout.contains("opened=true"), "{stdout}");
    // The open after the repair is in the session.
    let evs = d
        .wait_for("the open of the secret after the repair", |e| {
            !opens_of(e, &sid, &secret).is_empty()
        })
        .unwrap();
    let open = opens_of(&evs, &sid, &secret)[0];
    assert_eq!(open.agent.as_ref().unwrap().name, "t-self-repair");
    // Alerted, naming the map, the pid and the session; counted in status.
    let pid = open.process.pid;
    let a = wait_alert(
        &alerts,
        "monitor.map_tamper",
        &["`SESSIONS`", &format!("pid `{pid}` missing (restored)")],
    );
    assert_eq!(a["priority"], "Critical", "{a}");
    assert_eq!(a["session"], sid.as_str(), "{a}");
    let st = integrity(&d);
    assert!(st["repairs"].as_u64().unwrap() >= 1, "{st}");
    assert!(st["checks"].as_u64().unwrap() >= 1, "{st}");
    assert!(
        st["last_finding"].as_str().unwrap().contains("SESSIONS"),
        "{st}"
    );
}

#[test]
fn a_handler_deleted_from_outside_every_session_is_put_back() {
    require_sensor!();
    let work = tempfile::tempdir().unwrap();
    let alerts = work.path().join("alerts.jsonl");
    let d = Daemon::start_with(None, &["--alerts-jsonl", alerts.to_str().unwrap()]).unwrap();
    // No repair while nothing is touched.
    std::thread::sleep(Duration::from_millis(1500));
    let st = integrity(&d);
    assert_eq!(st["repairs"], 0, "{st}");
    assert!(st["checks"].as_u64().unwrap() >= 1, "{st}");
    // Slot 0 is `h_open`: without it no session's opens are reported.
    let out = Command::new(workload())
        .args(["bpf-delete", &d.pid().to_string(), "HANDLERS", "0"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(stdout.contains("delete=0"), "{stdout}");
    let a = wait_alert(
        &alerts,
        "monitor.map_tamper",
        &["`HANDLERS`", "entry `0` (h_open) missing (restored)"],
    );
    assert_eq!(a["priority"], "Critical", "{a}");
    // A session's open after the repair is reported.
    let file = std::fs::canonicalize(work.path()).unwrap().join("after");
    std::fs::write(&file, "x").unwrap();
    let file = file.to_str().unwrap().to_owned();
    let (out, sid) = d.run("t-handlers", &["/bin/cat", &file]).unwrap();
    assert!(out.status.success());
    d.wait_for("the open after the handler repair", |e| {
        !opens_of(e, &sid, &file).is_empty()
    })
    .unwrap();
    let st = integrity(&d);
    assert!(st["repairs"].as_u64().unwrap() >= 1, "{st}");
}

fn daemon_opens<'a>(evs: &'a [Event], path: &str) -> Vec<&'a Event> {
    evs.iter()
        .filter(|e| e.kind() == Kind::FileOpen)
        .filter(|e| {
            e.file
                .as_ref()
                .is_some_and(|f| f.path.to_str_lossy() == path)
        })
        .filter(|e| e.target.as_ref().is_some_and(|t| t.relation == "daemon"))
        .collect()
}

#[test]
fn opens_of_the_daemons_memory_and_of_its_store_for_writing_are_reported_from_anywhere() {
    require_sensor!();
    let work = tempfile::tempdir().unwrap();
    let alerts = work.path().join("alerts.jsonl");
    let d = Daemon::start_with(None, &["--alerts-jsonl", alerts.to_str().unwrap()]).unwrap();
    let pid = d.pid();
    let me = std::process::id();
    // Outside every session (this test process): the daemon's environment and memory map, and
    // a spool segment opened for writing.
    let environ = format!("/proc/{pid}/environ");
    let maps = format!("/proc/{pid}/maps");
    let stat = format!("/proc/{pid}/stat");
    std::fs::read(&environ).unwrap();
    std::fs::read(&maps).unwrap();
    std::fs::read(&stat).unwrap();
    let spool = d.data_dir().join("store/spool");
    let seg = std::fs::read_dir(&spool)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| p.is_file())
        .expect("a spool segment");
    let seg = std::fs::canonicalize(seg).unwrap();
    let seg_text = seg.to_str().unwrap().to_owned();
    std::fs::read(&seg).unwrap(); // reading is not reported
    drop(std::fs::OpenOptions::new().append(true).open(&seg).unwrap());
    let evs = d
        .wait_for("the outside opens aimed at the daemon", |e| {
            !daemon_opens(e, &environ).is_empty()
                && !daemon_opens(e, &maps).is_empty()
                && !daemon_opens(e, &seg_text).is_empty()
        })
        .unwrap();
    for path in [&environ, &maps] {
        let ev = daemon_opens(&evs, path);
        assert_eq!(ev.len(), 1, "{ev:?}");
        assert_eq!(ev[0].process.pid, me);
        assert!(ev[0].session.is_none());
        assert_eq!(ev[0].target.as_ref().unwrap().pid, pid as u32);
    }
    let w = daemon_opens(&evs, &seg_text);
    assert_eq!(w.len(), 1, "only the open for writing: {w:?}");
    assert_eq!(w[0].file.as_ref().unwrap().access.as_deref(), Some("write"));
    // Reading the daemon's stat (what ps does) is not aimed at it.
    assert!(
        !evs.iter().any(|e| e
            .file
            .as_ref()
            .is_some_and(|f| f.path.to_str_lossy() == stat)),
        "stat reported"
    );
    wait_alert(
        &alerts,
        "evasion.monitor_process_files",
        &[&format!("/proc/{pid}/environ")],
    );
    wait_alert(&alerts, "evasion.monitor_files", &[&seg_text]);
    // Inside a session: its memory, through a thread's entry too.
    let mem = format!("/proc/{pid}/task/{pid}/mem");
    let (out, sid) = d
        .run("t-proc-mem", &["/bin/sh", "-c", &format!("exec 3<{mem}")])
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let a = wait_alert(
        &alerts,
        "evasion.monitor_process_files",
        &[&format!("/proc/{pid}/task/{pid}/mem")],
    );
    assert_eq!(a["session"], sid.as_str(), "{a}");
    assert_eq!(a["priority"], "Critical", "{a}");
}

/// The kernel's encoding of a device number (`MAJOR << 20 | MINOR`) from `st_dev`.
fn kernel_dev(st_dev: u64) -> u64 {
    let major = ((st_dev >> 8) & 0xfff) | ((st_dev >> 32) & !0xfff);
    let minor = (st_dev & 0xff) | ((st_dev >> 12) & !0xff);
    (major << 20) | (minor & 0xf_ffff)
}

#[test]
fn an_inline_kill_entry_deleted_through_bpf_is_alerted_and_put_back() {
    use std::os::unix::fs::MetadataExt as _;
    require_sensor!();
    let work = tempfile::tempdir().unwrap();
    let w = std::fs::canonicalize(work.path()).unwrap();
    let secret = w.join("guarded");
    std::fs::write(&secret, "TOPSECRET-kill-open").unwrap();
    let rules_dir = w.join("rules");
    std::fs::create_dir_all(&rules_dir).unwrap();
    for (name, text) in rules::DEFAULT_POLICY {
        std::fs::write(rules_dir.join(name), text).unwrap();
    }
    std::fs::write(
        rules_dir.join("zz-inline.toml"),
        format!(
            "[[rule]]\nid = \"t.kill_open\"\ndescription = \"inline\"\nkinds = [\"file.open\"]\n\
             severity = \"high\"\noutput = \"{{file.path}}\"\n\
             condition = {{ field = \"file.path\", equals = \"{}\" }}\n\
             action = \"kill\"\nmode = \"enforce\"\ninline = true\n",
            secret.display()
        ),
    )
    .unwrap();
    let alerts = w.join("alerts.jsonl");
    let d = Daemon::start_with(
        None,
        &[
            "--rules",
            rules_dir.to_str().unwrap(),
            "--alerts-jsonl",
            alerts.to_str().unwrap(),
        ],
    )
    .unwrap();
    let md = std::fs::metadata(&secret).unwrap();
    let (dev, ino) = (kernel_dev(md.dev()), md.ino());
    let out = Command::new(workload())
        .args([
            "bpf-delete2",
            &d.pid().to_string(),
            "KILL_OPEN",
            &dev.to_string(),
            &ino.to_string(),
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(stdout.contains("delete=0"), "not deleted: {stdout}");
    let a = wait_alert(
        &alerts,
        "monitor.map_tamper",
        &[
            "`KILL_OPEN`",
            &format!("entry `dev {dev} inode {ino}` missing (restored)"),
        ],
    );
    assert_eq!(a["priority"], "Critical", "{a}");
    // The kill holds: the session's `cat` dies before the content reaches its stdout.
    let (out, _sid) = d
        .run("t-kill-open", &["/bin/cat", secret.to_str().unwrap()])
        .unwrap();
    assert!(
        !String::from_utf8_lossy(&out.stdout).contains("TOPSECRET"),
        "the file was read after the repair"
    );
    use std::os::unix::process::ExitStatusExt as _;
    assert!(
        out.status.signal() == Some(libc::SIGKILL) || out.status.code() == Some(137),
        "not killed: {:?}",
        out.status
    );
}
