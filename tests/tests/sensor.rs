//! Sensor end-to-end tests: real eBPF programs in this kernel, real workloads inside an agent
//! session (`agentwatch run`) and the same workloads outside any session, asserting the exact
//! events that arrive. Root and BTF required; without them each test says why and skips.

use std::os::unix::fs::MetadataExt as _;
use std::process::Command;

use agent_model::{Event, Kind};
use tests::{Daemon, in_session, real_exe, require_sensor, workload};

fn w() -> String {
    workload().display().to_string()
}

fn kind<'a>(evs: &[&'a Event], k: Kind) -> Vec<&'a Event> {
    evs.iter().copied().filter(|e| e.kind() == k).collect()
}

fn opens_of<'a>(evs: &'a [Event], path: &str) -> Vec<&'a Event> {
    evs.iter()
        .filter(|e| {
            e.kind() == Kind::FileOpen
                && e.file
                    .as_ref()
                    .is_some_and(|f| f.path.to_str_lossy() == path)
        })
        .collect()
}

fn tmpdir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("aw-work-")
        .tempdir()
        .unwrap()
}

#[test]
fn exec_event_carries_exe_argv_cwd_ids_and_parent() {
    require_sensor!();
    let d = Daemon::start().unwrap();
    let work = tmpdir();
    let cwd = work.path().canonicalize().unwrap();
    let script = format!("cd {} && /bin/true alpha 'beta gamma'", cwd.display());
    let (out, sid) = d.run("t-exec", &["/bin/sh", "-c", &script]).unwrap();
    assert!(out.status.success());
    let true_exe = real_exe("true");
    let evs = d
        .wait_for("exec of true", |e| {
            e.iter()
                .any(|e| e.kind() == Kind::ProcessExec && e.process.exe.to_str_lossy() == true_exe)
        })
        .unwrap();
    let s = in_session(&evs, &sid);
    let ex = kind(&s, Kind::ProcessExec);
    let t = ex
        .iter()
        .find(|e| e.process.exe.to_str_lossy() == true_exe)
        .unwrap();
    assert_eq!(
        t.process
            .args
            .iter()
            .map(|a| a.to_str_lossy().into_owned())
            .collect::<Vec<_>>(),
        vec!["/bin/true", "alpha", "beta gamma"]
    );
    assert_eq!(t.process.filename.to_str_lossy(), "/bin/true");
    assert_eq!(t.process.cwd.to_str_lossy(), cwd.to_str().unwrap());
    assert_eq!(t.process.uid, 0);
    assert_eq!(t.process.euid, Some(0));
    assert!(!t.process.args_truncated);
    assert_eq!(t.agent_name(), Some("t-exec"));
    // Parent is the shell, and the ancestry ends at the session root.
    let sh = ex
        .iter()
        .find(|e| e.process.exe.to_str_lossy() == real_exe("sh"))
        .expect("exec of sh");
    let parent = t.parent.as_ref().unwrap();
    assert_eq!(parent.pid, sh.process.pid);
    assert_eq!(parent.exe.to_str_lossy(), real_exe("sh"));
    assert_eq!(
        t.ancestry.first().map(|a| a.to_str_lossy().into_owned()),
        Some(real_exe("sh"))
    );
    assert!(t.process.start > agent_model::Timestamp(0));
}

#[test]
fn exit_event_reports_code_and_signal() {
    require_sensor!();
    let d = Daemon::start().unwrap();
    let (_, sid) = d
        .run(
            "t-exit",
            &[
                "/bin/sh",
                "-c",
                "/bin/sh -c 'exit 7'; /bin/sh -c 'kill -9 $$'; exit 0",
            ],
        )
        .unwrap();
    let evs = d
        .wait_for("three exits", |e| {
            in_session(e, &sid)
                .iter()
                .filter(|e| e.kind() == Kind::ProcessExit)
                .count()
                >= 3
        })
        .unwrap();
    let s = in_session(&evs, &sid);
    let exits = kind(&s, Kind::ProcessExit);
    assert!(
        exits
            .iter()
            .any(|e| e.exit.as_ref().unwrap().code == Some(7)),
        "{exits:?}"
    );
    assert!(
        exits
            .iter()
            .any(|e| e.exit.as_ref().unwrap().signal == Some(9)),
        "{exits:?}"
    );
    assert!(
        exits
            .iter()
            .any(|e| e.exit.as_ref().unwrap().code == Some(0))
    );
    assert!(
        evs.iter()
            .any(|e| e.kind() == Kind::SessionEnd && e.session_id() == Some(&sid))
    );
}

#[test]
fn file_open_reads_the_kernel_file_with_inode_flags_and_real_path() {
    require_sensor!();
    let d = Daemon::start().unwrap();
    let work = tmpdir();
    let dir = work.path().canonicalize().unwrap();
    let secret = dir.join("id_rsa");
    std::fs::write(&secret, "FAKE KEY").unwrap();
    let link = dir.join("innocent");
    std::os::unix::fs::symlink(&secret, &link).unwrap();
    let hard = dir.join("hardlink");
    std::fs::hard_link(&secret, &hard).unwrap();
    let created = dir.join("new.txt");
    let md = std::fs::metadata(&secret).unwrap();
    let wl = w();
    let script = format!(
        "{wl} open {link}; {wl} open {hard}; {wl} create {created}; cd {dir} && {wl} open id_rsa; {wl} open /proc/self/root{secret}",
        link = link.display(),
        hard = hard.display(),
        created = created.display(),
        dir = dir.display(),
        secret = secret.display(),
    );
    let (_, sid) = d.run("t-open", &["/bin/sh", "-c", &script]).unwrap();
    let secret_s = secret.to_str().unwrap();
    let evs = d
        .wait_for("opens", |e| {
            opens_of(e, secret_s).len() >= 3 && !opens_of(e, created.to_str().unwrap()).is_empty()
        })
        .unwrap();
    // Symlink, relative path and /proc/self/root all resolve to the real path and inode.
    let real = opens_of(&evs, secret_s);
    assert!(
        real.len() >= 3,
        "symlink, cd+relative and /proc/self/root: {real:?}"
    );
    for e in &real {
        let f = e.file.as_ref().unwrap();
        assert_eq!(f.ino, Some(md.ino()));
        assert_eq!(f.dev, Some(md.dev()));
        assert_eq!(f.access.as_deref(), Some("read"));
        assert_eq!(f.r#type.as_deref(), Some("file"));
        assert_eq!(f.via.as_deref(), Some("syscall"));
        assert_eq!(e.session_id(), Some(sid.as_str()));
    }
    // A hard link has its own name but the same inode.
    let h = opens_of(&evs, hard.to_str().unwrap());
    assert_eq!(h.len(), 1);
    assert_eq!(h[0].file.as_ref().unwrap().ino, Some(md.ino()));
    // O_CREAT and O_TRUNC are reported although the kernel clears them from f_flags.
    let c = opens_of(&evs, created.to_str().unwrap());
    let f = c[0].file.as_ref().unwrap();
    assert_eq!(f.access.as_deref(), Some("write"));
    for flag in ["O_WRONLY", "O_CREAT", "O_TRUNC", "O_CLOEXEC"] {
        assert!(
            f.flags.iter().any(|x| x == flag),
            "{flag} missing in {:?}",
            f.flags
        );
    }
    assert!(!in_session(&evs, &sid).iter().any(|e| {
        e.file
            .as_ref()
            .is_some_and(|f| f.path.to_str_lossy() == link.to_str().unwrap())
    }));
}

#[test]
fn io_uring_open_and_connect_produce_the_same_events() {
    require_sensor!();
    let d = Daemon::start().unwrap();
    let work = tmpdir();
    let secret = work.path().canonicalize().unwrap().join("token");
    std::fs::write(&secret, "x").unwrap();
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let script = format!(
        "{wl} uring-open {s} && {wl} uring-connect 127.0.0.1:{port}",
        wl = w(),
        s = secret.display()
    );
    let (out, sid) = d.run("t-uring", &["/bin/sh", "-c", &script]).unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let evs = d
        .wait_for("io_uring open and connect", |e| {
            !opens_of(e, secret.to_str().unwrap()).is_empty()
                && e.iter().any(|e| {
                    e.kind() == Kind::NetConnect && e.net.as_ref().unwrap().dst_port == Some(port)
                })
        })
        .unwrap();
    let o = opens_of(&evs, secret.to_str().unwrap());
    assert_eq!(o[0].file.as_ref().unwrap().via.as_deref(), Some("io_uring"));
    assert_eq!(o[0].session_id(), Some(sid.as_str()));
    let c = evs
        .iter()
        .find(|e| e.kind() == Kind::NetConnect && e.net.as_ref().unwrap().dst_port == Some(port))
        .unwrap();
    let n = c.net.as_ref().unwrap();
    assert_eq!(n.dst_ip, Some("127.0.0.1".parse().unwrap()));
    assert_eq!(n.protocol.as_deref(), Some("tcp"));
    assert_eq!(c.session_id(), Some(sid.as_str()));
}

#[test]
fn unlink_and_rename_report_full_paths() {
    require_sensor!();
    let d = Daemon::start().unwrap();
    let work = tmpdir();
    let dir = work.path().canonicalize().unwrap();
    let script = format!(
        "cd {d} && echo x > a.txt && mv a.txt b.txt && rm b.txt && mkdir sub && mv sub /{d2}/sub2",
        d = dir.display(),
        d2 = dir.display().to_string().trim_start_matches('/'),
    );
    let (_, sid) = d.run("t-paths", &["/bin/sh", "-c", &script]).unwrap();
    let a = dir.join("a.txt").display().to_string();
    let b = dir.join("b.txt").display().to_string();
    let evs = d
        .wait_for("unlink", |e| e.iter().any(|e| e.kind() == Kind::FileUnlink))
        .unwrap();
    let s = in_session(&evs, &sid);
    let r = kind(&s, Kind::FileRename);
    assert!(
        r.iter().any(|e| {
            let f = e.file.as_ref().unwrap();
            f.path.to_str_lossy() == a && f.target.as_ref().unwrap().to_str_lossy() == b
        }),
        "{r:?}"
    );
    let u = kind(&s, Kind::FileUnlink);
    assert_eq!(u.len(), 1);
    assert_eq!(u[0].file.as_ref().unwrap().path.to_str_lossy(), b);
}

#[test]
fn connect_accept_listen_for_tcp_udp_unix_and_ipv6() {
    require_sensor!();
    let d = Daemon::start().unwrap();
    let work = tmpdir();
    let usock = work.path().canonicalize().unwrap().join("agent.sock");
    let ul = std::os::unix::net::UnixListener::bind(&usock).unwrap();
    let l4 = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let p4 = l4.local_addr().unwrap().port();
    let l6 = std::net::TcpListener::bind("[::1]:0").ok();
    let p6 = l6.as_ref().map(|l| l.local_addr().unwrap().port());
    let portfile = work.path().join("port");
    let pf = portfile.display().to_string();
    // Connect to our listener from outside the session once the workload listens.
    let pf2 = portfile.clone();
    let client = std::thread::spawn(move || {
        for _ in 0..200 {
            if let Ok(p) = std::fs::read_to_string(&pf2)
                && let Ok(port) = p.trim().parse::<u16>()
            {
                return std::net::TcpStream::connect(("127.0.0.1", port))
                    .map(|s| s.local_addr().unwrap().port())
                    .ok();
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        None
    });
    let mut script = format!(
        "{wl} connect 127.0.0.1:{p4}; {wl} udp-connect 127.0.0.1:53; {wl} connect-unix {u}; {wl} listen-accept {pf}",
        wl = w(),
        u = usock.display()
    );
    if let Some(p6) = p6 {
        script.push_str(&format!("; {} connect [::1]:{p6}", w()));
    }
    let (out, sid) = d.run("t-net", &["/bin/sh", "-c", &script]).unwrap();
    assert!(out.status.success());
    let client_port = client.join().unwrap().expect("client connected");
    drop(ul);
    // Wait for the whole session (the IPv6 connect comes after the accept).
    let evs = d
        .wait_for("session end", |e| {
            e.iter()
                .any(|e| e.kind() == Kind::SessionEnd && e.session_id() == Some(sid.as_str()))
        })
        .unwrap();
    let s = in_session(&evs, &sid);
    let conns = kind(&s, Kind::NetConnect);
    let tcp4 = conns
        .iter()
        .find(|e| e.net.as_ref().unwrap().dst_port == Some(p4))
        .expect("tcp4 connect");
    assert_eq!(tcp4.net.as_ref().unwrap().family, "ipv4");
    assert_eq!(tcp4.net.as_ref().unwrap().protocol.as_deref(), Some("tcp"));
    let udp = conns
        .iter()
        .find(|e| e.net.as_ref().unwrap().protocol.as_deref() == Some("udp"))
        .expect("udp connect");
    assert_eq!(udp.net.as_ref().unwrap().dst_port, Some(53));
    assert_eq!(
        udp.net.as_ref().unwrap().dst_ip,
        Some("127.0.0.1".parse().unwrap())
    );
    let unix = conns
        .iter()
        .find(|e| e.net.as_ref().unwrap().family == "unix")
        .expect("unix connect");
    assert_eq!(
        unix.net
            .as_ref()
            .unwrap()
            .unix_path
            .as_ref()
            .unwrap()
            .to_str_lossy(),
        usock.to_str().unwrap()
    );
    if let Some(p6) = p6 {
        let c6 = conns
            .iter()
            .find(|e| e.net.as_ref().unwrap().dst_port == Some(p6))
            .expect("tcp6 connect");
        assert_eq!(c6.net.as_ref().unwrap().family, "ipv6");
        assert_eq!(
            c6.net.as_ref().unwrap().dst_ip,
            Some("::1".parse().unwrap())
        );
    }
    let listen = kind(&s, Kind::NetListen);
    let lport = std::fs::read_to_string(&portfile)
        .unwrap()
        .trim()
        .parse::<u16>()
        .unwrap();
    assert!(
        listen
            .iter()
            .any(|e| e.net.as_ref().unwrap().src_port == Some(lport)),
        "{listen:?}"
    );
    let acc = kind(&s, Kind::NetAccept);
    let a = acc[0].net.as_ref().unwrap();
    assert_eq!(a.src_port, Some(lport));
    assert_eq!(a.dst_port, Some(client_port));
    assert_eq!(a.dst_ip, Some("127.0.0.1".parse().unwrap()));
}

#[test]
fn the_same_workloads_outside_a_session_produce_no_events() {
    require_sensor!();
    let d = Daemon::start().unwrap();
    let work = tmpdir();
    let dir = work.path().canonicalize().unwrap();
    let f = dir.join("outside.txt");
    std::fs::write(&f, "x").unwrap();
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let script = format!(
        "{wl} open {f}; {wl} uring-open {f}; {wl} connect 127.0.0.1:{port}; {wl} uring-connect 127.0.0.1:{port}; {wl} udp-connect 127.0.0.1:53; cd {dir} && mv outside.txt o2.txt && rm o2.txt; /bin/true",
        wl = w(),
        f = f.display(),
        dir = dir.display()
    );
    let st = Command::new("/bin/sh")
        .args(["-c", &script])
        .status()
        .unwrap();
    assert!(st.success());
    // A marker session proves the daemon is delivering while we look.
    let (_, sid) = d.run("t-marker", &["/bin/true"]).unwrap();
    let evs = d
        .wait_for("marker", |e| {
            in_session(e, &sid)
                .iter()
                .any(|e| e.kind() == Kind::ProcessExit)
        })
        .unwrap();
    let dir_s = dir.to_str().unwrap();
    let leaked: Vec<_> = evs
        .iter()
        .filter(|e| {
            e.file
                .as_ref()
                .is_some_and(|f| f.path.to_str_lossy().starts_with(dir_s))
                || e.net
                    .as_ref()
                    .is_some_and(|n| n.dst_port == Some(port) || n.dst_port == Some(53))
        })
        .collect();
    assert!(
        leaked.is_empty(),
        "outside-session activity leaked: {leaked:?}"
    );
    let sessionless: Vec<_> = evs
        .iter()
        .filter(|e| {
            e.session_id().is_none()
                && !matches!(e.kind(), Kind::MonitorLoss | Kind::MonitorStart)
                // bpf() reaching the daemon's own objects is reported from any process by
                // design (self-protection): here the other tests' daemons, which list every
                // bpf link on the host when they start. This test's workloads make no bpf().
                && !(e.kind() == Kind::KernelBpf
                    && e.target.as_ref().is_some_and(|t| t.relation == "daemon"))
        })
        .map(|e| e.to_json())
        .collect();
    assert!(sessionless.is_empty(), "{sessionless:#?}");
}

#[test]
fn setsid_double_fork_grandchild_stays_in_the_session() {
    require_sensor!();
    let d = Daemon::start().unwrap();
    let work = tmpdir();
    let f = work.path().canonicalize().unwrap().join("later.txt");
    std::fs::write(&f, "x").unwrap();
    let script = format!(
        "(setsid /bin/sh -c '(/bin/sh -c \"sleep 0.3; {wl} open {f}\" &) ; exit 0' &) ; exit 0",
        wl = w(),
        f = f.display()
    );
    let (_, sid) = d.run("t-setsid", &["/bin/sh", "-c", &script]).unwrap();
    let evs = d
        .wait_for("late open", |e| {
            !opens_of(e, f.to_str().unwrap()).is_empty()
        })
        .unwrap();
    let o = opens_of(&evs, f.to_str().unwrap());
    assert_eq!(o[0].session_id(), Some(sid.as_str()));
    assert_eq!(o[0].agent_name(), Some("t-setsid"));
    // The grandchild was reparented, but its recorded parent and ancestry stay true.
    assert!(o[0].ancestry.len() >= 2, "{:?}", o[0].ancestry);
}

#[test]
fn pid_reuse_does_not_carry_a_session_to_a_new_process() {
    require_sensor!();
    let d = Daemon::start().unwrap();
    let work = tmpdir();
    let f = work.path().canonicalize().unwrap().join("reuse.txt");
    std::fs::write(&f, "x").unwrap();
    // An agent process whose pid we then hand to a non-agent process through ns_last_pid.
    let (out, sid) = d.run("t-reuse", &["/bin/sh", "-c", "echo $$"]).unwrap();
    let pid: i32 = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap();
    d.settle();
    let mut reused = false;
    for _ in 0..50 {
        std::fs::write("/proc/sys/kernel/ns_last_pid", (pid - 1).to_string()).unwrap();
        let child = Command::new(w())
            .args(["open", f.to_str().unwrap()])
            .spawn()
            .unwrap();
        let got = child.id() as i32;
        let _ = { child }.wait();
        if got == pid {
            reused = true;
            break;
        }
    }
    assert!(reused, "could not get pid {pid} reused");
    let (_, sid2) = d.run("t-marker", &["/bin/true"]).unwrap();
    let evs = d
        .wait_for("marker", |e| {
            in_session(e, &sid2)
                .iter()
                .any(|e| e.kind() == Kind::ProcessExit)
        })
        .unwrap();
    assert!(
        opens_of(&evs, f.to_str().unwrap()).is_empty(),
        "the reused pid inherited session {sid}"
    );
}

#[test]
fn process_running_before_the_daemon_is_found_from_proc() {
    require_sensor!();
    let work = tmpdir();
    let dir = work.path().canonicalize().unwrap();
    // A copy of the workload whose file name (and so comm) the config selects.
    let agent_bin = dir.join("aw-preagent");
    std::fs::copy(workload(), &agent_bin).unwrap();
    let trigger = dir.join("go");
    let target = dir.join("seen.txt");
    std::fs::write(&target, "x").unwrap();
    let mut child = Command::new(&agent_bin)
        .args([
            "wait-open",
            trigger.to_str().unwrap(),
            target.to_str().unwrap(),
        ])
        .spawn()
        .unwrap();
    let d = Daemon::start_with(
        Some("[[agent]]\nname = \"pre\"\ncomm = [\"aw-preagent\"]\n"),
        &[],
    )
    .unwrap();
    std::fs::write(&trigger, "").unwrap();
    assert!(child.wait().unwrap().success());
    let evs = d
        .wait_for("open by the seeded agent", |e| {
            !opens_of(e, target.to_str().unwrap()).is_empty()
        })
        .unwrap();
    let o = opens_of(&evs, target.to_str().unwrap());
    assert_eq!(o[0].agent_name(), Some("pre"));
    assert_eq!(o[0].process.pid, child.id());
    assert!(
        evs.iter()
            .any(|e| e.kind() == Kind::SessionStart && e.agent_name() == Some("pre"))
    );
}

#[test]
fn agent_selected_by_comm_at_exec_loses_no_event() {
    require_sensor!();
    let work = tmpdir();
    let dir = work.path().canonicalize().unwrap();
    let agent_bin = dir.join("aw-comm-agent");
    std::fs::copy(workload(), &agent_bin).unwrap();
    let target = dir.join("first.txt");
    std::fs::write(&target, "x").unwrap();
    let d = Daemon::start_with(
        Some("[[agent]]\nname = \"by-comm\"\ncomm = [\"aw-comm-agent\"]\n"),
        &[],
    )
    .unwrap();
    // The very first thing the agent does after exec is the open.
    let st = Command::new(&agent_bin)
        .args(["open", target.to_str().unwrap()])
        .status()
        .unwrap();
    assert!(st.success());
    let evs = d
        .wait_for("open", |e| {
            !opens_of(e, target.to_str().unwrap()).is_empty()
        })
        .unwrap();
    let o = opens_of(&evs, target.to_str().unwrap());
    assert_eq!(o[0].agent_name(), Some("by-comm"));
    let sid = o[0].session_id().unwrap();
    assert!(
        evs.iter()
            .any(|e| e.kind() == Kind::ProcessExec && e.session_id() == Some(sid))
    );
}

#[test]
fn exe_glob_selector_confirms_full_path_and_drops_non_matches() {
    require_sensor!();
    let work = tmpdir();
    let dir = work.path().canonicalize().unwrap();
    std::fs::create_dir_all(dir.join("good/bin")).unwrap();
    std::fs::create_dir_all(dir.join("bad/bin")).unwrap();
    let good = dir.join("good/bin/awexeagent");
    let bad = dir.join("bad/bin/awexeagent");
    std::fs::copy(workload(), &good).unwrap();
    std::fs::copy(workload(), &bad).unwrap();
    let target = dir.join("t.txt");
    std::fs::write(&target, "x").unwrap();
    let cfg = format!(
        "[[agent]]\nname = \"by-exe\"\nexe = [\"{}/good/**/awexeagent\"]\n",
        dir.display()
    );
    let d = Daemon::start_with(Some(&cfg), &[]).unwrap();
    Command::new(&bad)
        .args(["open", target.to_str().unwrap()])
        .status()
        .unwrap();
    Command::new(&good)
        .args(["open", target.to_str().unwrap()])
        .status()
        .unwrap();
    let evs = d
        .wait_for("open", |e| {
            !opens_of(e, target.to_str().unwrap()).is_empty()
        })
        .unwrap();
    d.settle();
    let evs = {
        let _ = evs;
        d.events()
    };
    let o = opens_of(&evs, target.to_str().unwrap());
    assert_eq!(o.len(), 1, "only the matching exe is an agent: {o:?}");
    assert_eq!(o[0].process.exe.to_str_lossy(), good.to_str().unwrap());
    assert_eq!(o[0].agent_name(), Some("by-exe"));
}

#[test]
fn exec_a_and_prctl_rename_do_not_change_the_exe() {
    require_sensor!();
    let d = Daemon::start().unwrap();
    let work = tmpdir();
    let f = work.path().canonicalize().unwrap().join("s.txt");
    std::fs::write(&f, "x").unwrap();
    let script = format!(
        "exec -a innocent-name {wl} prctl-rename sshd {f}",
        wl = w(),
        f = f.display()
    );
    let (_, sid) = d.run("t-rename", &["/bin/bash", "-c", &script]).unwrap();
    let evs = d
        .wait_for("open", |e| !opens_of(e, f.to_str().unwrap()).is_empty())
        .unwrap();
    let o = opens_of(&evs, f.to_str().unwrap());
    let p = &o[0].process;
    assert_eq!(
        p.comm.to_str_lossy(),
        "sshd",
        "comm is what the process claims"
    );
    assert_eq!(
        p.exe.to_str_lossy(),
        workload().canonicalize().unwrap().to_str().unwrap(),
        "exe stays true"
    );
    assert_eq!(p.args[0].to_str_lossy(), "innocent-name", "argv0 as given");
    assert_eq!(o[0].session_id(), Some(sid.as_str()));
}

#[test]
fn flood_with_a_tiny_ring_buffer_accounts_for_every_record() {
    require_sensor!();
    let work = tmpdir();
    let f = work.path().canonicalize().unwrap().join("flood.txt");
    std::fs::write(&f, "x").unwrap();
    let d = Daemon::start_with(None, &["--ringbuf-bytes", "4096"]).unwrap();
    let wl = w();
    let fs = f.to_str().unwrap().to_owned();
    let opens_for = |sid: &str| -> usize {
        d.events()
            .iter()
            .filter(|e| e.kind() == Kind::FileOpen && e.session_id() == Some(sid))
            .count()
    };
    let lost_opens = || -> u64 {
        d.status().unwrap()["losses"]["file.open"]
            .as_u64()
            .unwrap_or(0)
    };
    // Baseline: the same program with N = 0 (its loader's own opens), slow enough to lose none.
    let (_, base_sid) = d.run("t-flood", &[&wl, "flood", &fs, "0"]).unwrap();
    d.settle();
    assert_eq!(lost_opens(), 0, "baseline must not lose");
    let base = opens_for(&base_sid);
    assert!(base > 0);
    let n = 20_000usize;
    let (out, sid) = d
        .run("t-flood", &[&wl, "flood", &fs, &n.to_string()])
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!("opened={n}")
    );
    d.settle();
    std::thread::sleep(std::time::Duration::from_millis(600));
    let delivered = opens_for(&sid);
    let lost = lost_opens() as usize;
    assert!(
        lost > 0,
        "a 4 KiB ring must overflow under a 20k-open flood"
    );
    assert_eq!(
        delivered + lost,
        base + n,
        "generated = delivered + counted lost"
    );
    let loss_events: u64 = d
        .events()
        .iter()
        .filter(|e| {
            e.kind() == Kind::MonitorLoss
                && e.monitor.as_ref().unwrap().loss_kind.as_deref() == Some("file.open")
        })
        .map(|e| e.monitor.as_ref().unwrap().loss_count.unwrap())
        .sum();
    assert_eq!(
        loss_events as usize, lost,
        "monitor.loss events add up to the counter"
    );
}

#[test]
fn run_refuses_to_start_unmonitored_without_a_daemon() {
    let dir = tmpdir();
    if !tests::bin().exists() {
        eprintln!("SKIPPED: binary not built");
        return;
    }
    let marker = dir.path().join("ran");
    let out = Command::new(tests::bin())
        .args(["run", "--data-dir"])
        .arg(dir.path())
        .args([
            "--",
            "/bin/sh",
            "-c",
            &format!("touch {}", marker.display()),
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("refusing to start"));
    assert!(!marker.exists(), "the command must not run unmonitored");
}

#[test]
fn status_lists_programs_events_losses_and_sessions() {
    require_sensor!();
    let d = Daemon::start().unwrap();
    let (_, _sid) = d
        .run("t-status", &["/bin/sh", "-c", "sleep 1"])
        .unwrap_or_else(|e| panic!("{e}"));
    let v = d.status().unwrap();
    let progs: Vec<&str> = v["programs"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| p.as_str())
        .collect();
    for p in [
        "tp_btf/sched_process_exec",
        "tp_btf/sched_process_fork",
        "tp_btf/sys_exit",
        "tp_btf/io_uring_complete",
    ] {
        assert!(progs.contains(&p), "{p} not attached: {progs:?}");
    }
    assert!(v["events"]["process.exec"].as_u64().unwrap() >= 1);
    assert!(v["losses"].is_object());
}

#[test]
fn bad_config_is_exit_2_with_file_line_col() {
    let dir = tmpdir();
    if !tests::bin().exists() {
        eprintln!("SKIPPED: binary not built");
        return;
    }
    let cfg = dir.path().join("bad.toml");
    std::fs::write(
        &cfg,
        "[[agent]]\nname = \"x\"\ncomm = [\"a\"]\nexe = \"not-a-list\"\n",
    )
    .unwrap();
    let out = Command::new(tests::bin())
        .args(["daemon", "--config"])
        .arg(&cfg)
        .arg("--data-dir")
        .arg(dir.path().join("d"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&format!("{}:4:7", cfg.display())), "{err}");
}
