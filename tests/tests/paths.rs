//! Canonical paths, `file.utime`, and bpf() tamper reports end to end (issues #14 and #19): file
//! operations through magic links (`/proc/self/fd/N/NAME` with an O_PATH N, `/dev/fd/N/NAME`,
//! `/proc/self/cwd/NAME`) report the real path with the path as passed beside it; utime calls
//! report the times set; bpf() commands that reach agentwatch's own maps are reported with the
//! daemon as target, from inside a session and from outside any. Root and BTF required; without
//! them each test says why and skips.

use std::path::{Path, PathBuf};
use std::process::Command;

use agent_model::{Event, Kind};
use tests::{Daemon, in_session, require_sensor, workload};

fn w() -> String {
    workload().display().to_string()
}

fn real(t: &tempfile::TempDir) -> PathBuf {
    t.path().canonicalize().unwrap()
}

fn tmpdir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("aw-paths-")
        .tempdir()
        .unwrap()
}

fn st(o: Option<&agent_model::BStr>) -> Option<String> {
    o.map(|b| b.to_str_lossy().into_owned())
}

fn ended(d: &Daemon, sid: &str) -> Vec<Event> {
    d.wait_for("session end", |e| {
        e.iter()
            .any(|e| e.kind() == Kind::SessionEnd && e.session_id() == Some(sid))
    })
    .unwrap()
}

/// The one event of `kind` in session `sid` whose `file.path` is `path`.
fn one<'a>(evs: &'a [Event], sid: &str, k: Kind, path: &Path) -> &'a Event {
    let v: Vec<_> = in_session(evs, sid)
        .into_iter()
        .filter(|e| e.kind() == k)
        .filter(|e| e.file.as_ref().unwrap().path.to_str_lossy() == path.to_str().unwrap())
        .collect();
    assert_eq!(v.len(), 1, "{} {}: {v:?}", k.name(), path.display());
    v[0]
}

#[test]
fn renames_through_magic_links_report_the_real_paths_and_the_paths_as_passed() {
    require_sensor!();
    let d = Daemon::start().unwrap();
    let t = tmpdir();
    let dir = real(&t);
    let script = format!(
        "cd {d} && exec {wl} atomic-replace {d}",
        d = dir.display(),
        wl = w()
    );
    let (out, sid) = d.run("t-paths", &["/bin/sh", "-c", &script]).unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let n: u32 = stdout
        .trim()
        .strip_prefix("dirfd=")
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(
        std::fs::read_to_string(dir.join(".bashrc")).unwrap(),
        "x=1\n"
    );
    let evs = ended(&d, &sid);
    let tmp = one(
        &evs,
        &sid,
        Kind::FileRename,
        &dir.join(format!(".bashrc.tmp.{}.1f", pid_of(&evs, &sid))),
    );
    let pid = tmp.process.pid;
    let f = tmp.file.as_ref().unwrap();
    assert_eq!(
        st(f.target.as_ref()),
        Some(dir.join(".bashrc").display().to_string())
    );
    assert_eq!(
        st(f.path_arg.as_ref()),
        Some(format!("/proc/self/fd/{n}/.bashrc.tmp.{pid}.1f"))
    );
    assert_eq!(
        st(f.target_arg.as_ref()),
        Some(format!("/proc/self/fd/{n}/.bashrc"))
    );
    // The create of the temporary file: opens are canonical from the fd table.
    one(
        &evs,
        &sid,
        Kind::FileOpen,
        &dir.join(format!(".bashrc.tmp.{pid}.1f")),
    );
    let b = one(&evs, &sid, Kind::FileRename, &dir.join("b.tmp"))
        .file
        .as_ref()
        .unwrap();
    assert_eq!(
        st(b.target.as_ref()),
        Some(dir.join("b").display().to_string())
    );
    assert_eq!(st(b.path_arg.as_ref()), Some(format!("/dev/fd/{n}/b.tmp")));
    assert_eq!(st(b.target_arg.as_ref()), Some(format!("/dev/fd/{n}/b")));
    let c = one(&evs, &sid, Kind::FileRename, &dir.join("c.tmp"))
        .file
        .as_ref()
        .unwrap();
    assert_eq!(
        st(c.target.as_ref()),
        Some(dir.join("c").display().to_string())
    );
    assert_eq!(st(c.path_arg.as_ref()), Some("/proc/self/cwd/c.tmp".into()));
    assert_eq!(st(c.target_arg.as_ref()), Some("/proc/self/cwd/c".into()));
    // Relative to the O_PATH dirfd: the dirfd's dentry, and nothing was resolved.
    let e = one(&evs, &sid, Kind::FileRename, &dir.join("b"))
        .file
        .as_ref()
        .unwrap();
    assert_eq!(
        st(e.target.as_ref()),
        Some(dir.join("e").display().to_string())
    );
    assert_eq!((e.path_arg.as_ref(), e.target_arg.as_ref()), (None, None));
    let m = one(&evs, &sid, Kind::FileChmod, &dir.join("c"))
        .file
        .as_ref()
        .unwrap();
    assert_eq!(
        st(m.path_arg.as_ref()),
        Some(format!("/proc/{pid}/fd/{n}/c"))
    );
    assert_eq!(m.mode, Some(0o600));
}

/// The pid of the workload (the session's process that renamed something).
fn pid_of(evs: &[Event], sid: &str) -> u32 {
    in_session(evs, sid)
        .into_iter()
        .find(|e| e.kind() == Kind::FileRename)
        .map(|e| e.process.pid)
        .expect("a rename")
}

#[test]
fn utime_calls_report_the_times_set_in_a_session_and_nothing_outside() {
    require_sensor!();
    let d = Daemon::start().unwrap();
    let t = tmpdir();
    let f = real(&t).join("touched");
    std::fs::write(&f, "x").unwrap();
    let out = Command::new(workload())
        .arg("utimes")
        .arg(&f)
        .output()
        .unwrap();
    assert!(out.status.success());
    let script = format!("{} utimes {}", w(), f.display());
    let (out, sid) = d.run("t-utime", &["/bin/sh", "-c", &script]).unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let evs = ended(&d, &sid);
    let u: Vec<_> = evs.iter().filter(|e| e.kind() == Kind::FileUtime).collect();
    assert_eq!(u.len(), 3, "only the session's three calls: {u:?}");
    let times: Vec<_> = u
        .iter()
        .map(|e| {
            let f = e.file.as_ref().unwrap();
            assert_eq!(e.session_id(), Some(sid.as_str()));
            (
                f.path.to_str_lossy().into_owned(),
                f.atime.clone().unwrap(),
                f.mtime.clone().unwrap(),
            )
        })
        .collect();
    let p = f.display().to_string();
    assert_eq!(
        times,
        vec![
            (
                p.clone(),
                "2001-09-09T01:46:40.000000005Z".to_string(),
                "omit".to_string()
            ),
            (p.clone(), "now".into(), "now".into()),
            (p, "now".into(), "2033-05-18T03:33:20Z".into()),
        ]
    );
}

/// The `kernel.bpf` events with the daemon as target.
fn aimed_at_daemon<'a>(evs: &'a [Event], name: &str) -> Vec<&'a Event> {
    evs.iter()
        .filter(|e| e.kind() == Kind::KernelBpf)
        .filter(|e| e.op.as_ref().is_some_and(|o| o.name == name))
        .filter(|e| e.target.as_ref().is_some_and(|t| t.relation == "daemon"))
        .collect()
}

#[test]
fn deleting_a_session_entry_through_bpf_is_reported_inside_and_outside_sessions() {
    require_sensor!();
    let d = Daemon::start().unwrap();
    // Inside: the process deletes its own SESSIONS entry. The session goes dark for the
    // kernel, but the command itself is reported, attributed to the session.
    let script = format!("exec {} bpf-tamper SESSIONS", w());
    let (out, sid) = d.run("t-bpf-tamper", &["/bin/sh", "-c", &script]).unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{stdout}");
    assert!(stdout.contains("delete=0"), "{stdout}");
    let map_id: u64 = stdout
        .split("map_id=")
        .nth(1)
        .unwrap()
        .split(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let evs = d
        .wait_for("the delete", |e| {
            !aimed_at_daemon(e, "bpf_map_delete_elem").is_empty()
        })
        .unwrap();
    let del = aimed_at_daemon(&evs, "bpf_map_delete_elem");
    assert_eq!(del.len(), 1, "{del:?}");
    let op = del[0].op.as_ref().unwrap();
    assert_eq!(
        (op.result, op.object_id, op.r#type.as_deref()),
        (Some(0), Some(map_id), Some("map"))
    );
    assert_eq!(del[0].session_id(), Some(sid.as_str()));
    assert_eq!(del[0].target.as_ref().unwrap().pid, d.pid() as u32);
    let by_id = aimed_at_daemon(&evs, "bpf_map_get_fd_by_id");
    assert!(
        by_id
            .iter()
            .any(|e| e.op.as_ref().unwrap().object_id == Some(map_id)),
        "{by_id:?}"
    );
    assert!(!aimed_at_daemon(&evs, "bpf_map_get_next_id").is_empty());

    // Outside any session: the same attempt (its pid has no entry: ENOENT) and an enumeration.
    let out = Command::new(workload())
        .args(["bpf-tamper", "SESSIONS"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(stdout.contains("delete=-2"), "{stdout}");
    let pid = out.status.success().then_some(()).map(|_| ());
    assert!(pid.is_some());
    let evs = d
        .wait_for("the outside delete", |e| {
            aimed_at_daemon(e, "bpf_map_delete_elem")
                .iter()
                .any(|e| e.session.is_none())
        })
        .unwrap();
    let del: Vec<_> = aimed_at_daemon(&evs, "bpf_map_delete_elem")
        .into_iter()
        .filter(|e| e.session.is_none())
        .collect();
    assert_eq!(del.len(), 1, "{del:?}");
    assert_eq!(del[0].op.as_ref().unwrap().result, Some(-2));
    let out = Command::new(workload()).arg("bpf-enum").output().unwrap();
    assert!(out.status.success());
    let enum_pid = d
        .wait_for("the outside enumeration", |e| {
            aimed_at_daemon(e, "bpf_map_get_next_id")
                .iter()
                .any(|e| e.session.is_none() && e.process.comm.to_str_lossy() == "workload")
        })
        .unwrap();
    let next: Vec<_> = aimed_at_daemon(&enum_pid, "bpf_map_get_next_id")
        .into_iter()
        .filter(|e| e.session.is_none())
        .collect();
    // Every enumeration step that started from one of agentwatch's maps, and nothing else:
    // each found a next map, except the very last step of the walk, which ends with ENOENT
    // when one of agentwatch's maps has the highest id.
    let ended: Vec<_> = next
        .iter()
        .filter(|e| e.op.as_ref().unwrap().result != Some(0))
        .collect();
    assert!(
        ended.len() <= 1
            && ended.iter().all(|e| {
                let op = e.op.as_ref().unwrap();
                op.result == Some(-2)
                    && next
                        .iter()
                        .all(|o| o.op.as_ref().unwrap().object_id <= op.object_id)
            }),
        "{next:?}"
    );
}
