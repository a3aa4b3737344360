//! The CLI's rough edges against a real daemon (root): unknown alert ids, exit codes of `run`,
//! time ranges and limits that cannot be honoured, short session ids, and a closed pipe.

use std::io::BufRead as _;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use tests::{Daemon, bin, require_sensor};

/// `agentwatch SUB --data-dir DIR ARGS...` (the data dir before any `--`).
fn aw(d: &Daemon, args: &[&str]) -> Output {
    Command::new(bin())
        .arg(args[0])
        .arg("--data-dir")
        .arg(d.data_dir())
        .args(&args[1..])
        .output()
        .unwrap()
}

fn text(o: &Output) -> String {
    format!(
        "status {:?}\nstdout: {}\nstderr: {}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[test]
fn cli_rough_edges_are_errors_or_work() {
    require_sensor!();
    let d = Daemon::start().unwrap();

    // `ack` of an unknown id is an error, not "acknowledged".
    let o = aw(&d, &["ack", "no-such-alert"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        text(&o).contains("no alert with id `no-such-alert`"),
        "{}",
        text(&o)
    );

    // `run` of a missing command exits 127, as a shell does.
    let o = aw(&d, &["run", "--", "/nonexistent/agentwatch-cmd"]);
    assert_eq!(o.status.code(), Some(127), "{}", text(&o));
    // A bad agent name is refused before anything starts.
    let o = aw(&d, &["run", "--agent", "bad name!", "--", "true"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("`--agent`"), "{}", text(&o));

    // `--since` later than `--until` is an error; `15min` is a duration; over-cap limits say so.
    let o = aw(&d, &["search", "--since", "1m", "--until", "1h"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("is later than `--until`"), "{}", text(&o));
    let o = aw(&d, &["search", "--since", "15min"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let o = aw(&d, &["search", "--limit", "1000000"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("cap of 10000"), "{}", text(&o));

    // The short session id the timeline shows is accepted by `session`; search lines carry
    // the date and `Z`.
    let (_, sid) = d.run("t-cli", &["/bin/cat", "/etc/hostname"]).unwrap();
    let short = &sid[sid.len() - 8..];
    let deadline = Instant::now() + Duration::from_secs(10);
    let o = loop {
        let o = aw(&d, &["session", short]);
        if o.status.success() || Instant::now() > deadline {
            break o;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains(&format!("session {sid}")), "{}", text(&o));
    let o = aw(
        &d,
        &["search", &format!("session.id:{sid} AND kind:process.exec")],
    );
    let line = String::from_utf8_lossy(&o.stdout)
        .lines()
        .next()
        .unwrap_or("")
        .to_owned();
    let stamp = line.split(' ').next().unwrap_or("");
    assert!(
        stamp.len() == 24 && stamp.ends_with('Z') && stamp.as_bytes()[10] == b'T',
        "{}",
        text(&o)
    );

    // `rules list | head -1`: a closed pipe is a quiet, successful end.
    let mut child = Command::new(bin())
        .args(["rules", "list", "--data-dir"])
        .arg(d.data_dir())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    let o = child.wait_with_output().unwrap();
    assert!(first.starts_with("policy "), "{first}");
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(o.stderr.is_empty(), "{}", text(&o));
}

/// `agentwatch fields`: the whole catalogue, one kind's fields, JSON, and an unknown kind.
#[test]
fn fields_lists_the_catalogue_and_filters_by_kind() {
    let run = |args: &[&str]| {
        Command::new(bin())
            .arg("fields")
            .args(args)
            .output()
            .unwrap()
    };
    let all = run(&["--json"]);
    assert!(all.status.success(), "{}", text(&all));
    let rows: Vec<serde_json::Value> = String::from_utf8_lossy(&all.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), agent_model::FIELDS.len());
    let undeclared = rows
        .iter()
        .find(|r| r["field"] == "intent.undeclared")
        .expect("intent.undeclared listed");
    assert_eq!(undeclared["type"], "bool");
    let open = run(&["--kind", "file.open"]);
    let t = String::from_utf8_lossy(&open.stdout).into_owned();
    assert!(open.status.success(), "{}", text(&open));
    assert!(t.lines().any(|l| l.starts_with("file.path ")), "{t}");
    assert!(
        t.lines().any(|l| l.starts_with("process.exe ")),
        "every kind's fields: {t}"
    );
    assert!(
        !t.contains("dns.qname"),
        "a net.dns field listed for file.open: {t}"
    );
    let bad = run(&["--kind", "file.opne"]);
    assert_eq!(bad.status.code(), Some(2), "{}", text(&bad));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("file.opne"));
}

/// The commands `agentwatch --help` lists (the lines of its "Commands:" block).
fn listed_commands() -> Vec<String> {
    let o = Command::new(bin()).arg("--help").output().unwrap();
    let help = String::from_utf8_lossy(&o.stdout).to_string();
    help.lines()
        .skip_while(|l| !l.starts_with("Commands:"))
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        .filter_map(|l| l.split_whitespace().next().map(str::to_string))
        .filter(|c| c != "help")
        .collect()
}

#[test]
fn completions_and_man_pages_cover_every_command() {
    let commands = listed_commands();
    assert!(
        commands.len() >= 15 && commands.iter().any(|c| c == "search"),
        "{commands:?}"
    );
    for shell in ["bash", "zsh", "fish"] {
        let o = Command::new(bin())
            .args(["completions", shell])
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(0), "{}", text(&o));
        let script = String::from_utf8_lossy(&o.stdout);
        for c in &commands {
            assert!(
                script.contains(c.as_str()),
                "{shell} completion lacks `{c}`"
            );
        }
    }
    let o = Command::new(bin())
        .args(["completions", "cmd.exe"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));

    let dir = tempfile::tempdir().unwrap();
    let o = Command::new(bin())
        .args(["man", "--dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let mut pages = vec!["agentwatch".to_string()];
    pages.extend(commands.iter().map(|c| format!("agentwatch-{c}")));
    pages.push("agentwatch-rules-show".into());
    for p in &pages {
        let page = std::fs::read_to_string(dir.path().join(format!("{p}.1")))
            .unwrap_or_else(|e| panic!("no page {p}.1: {e}"));
        assert!(
            page.contains(".TH") && page.contains(".SH SYNOPSIS"),
            "{p}.1: {page}"
        );
    }
    // The daemon's page documents its options.
    let daemon = std::fs::read_to_string(dir.path().join("agentwatch-daemon.1")).unwrap();
    assert!(daemon.contains("config"), "{daemon}");
}

/// `agentwatch ARGS... --data-dir DIR` as uid/gid 65534 with the supplementary groups given.
fn aw_as_nobody(d: &Daemon, groups: Option<&str>, args: &[&str]) -> Output {
    let mut cmd = Command::new("setpriv");
    cmd.args(["--reuid", "65534", "--regid", "65534"]);
    match groups {
        Some(g) => cmd.args(["--groups", g]),
        None => cmd.arg("--clear-groups"),
    };
    // A copy in the test's dir: the checkout may sit under a directory only root may enter.
    let copy = d.dir.path().join("agentwatch-bin");
    if !copy.exists() {
        std::fs::copy(bin(), &copy).unwrap();
    }
    cmd.arg(copy)
        .arg(args[0])
        .arg("--data-dir")
        .arg(d.data_dir())
        .args(&args[1..])
        .output()
        .unwrap()
}

#[test]
fn read_group_members_read_but_do_not_act() {
    use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
    require_sensor!();
    let d = Daemon::start_with(Some("[daemon]\nread_group = \"64123\"\n"), &[]).unwrap();
    // The test's temporary dir is 0700: let others traverse it, as /var/lib is.
    std::fs::set_permissions(d.dir.path(), std::fs::Permissions::from_mode(0o711)).unwrap();
    let sock = std::fs::metadata(d.data_dir().join("agentwatch.sock")).unwrap();
    assert_eq!(sock.mode() & 0o777, 0o660, "socket mode");
    assert_eq!(sock.gid(), 64123, "socket group");
    let dir = std::fs::metadata(d.data_dir()).unwrap();
    assert_eq!(
        dir.mode() & 0o077,
        0o010,
        "data dir: group may search, not list"
    );

    // A member reads status and alerts.
    let o = aw_as_nobody(&d, Some("64123"), &["status", "--json"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(text(&o).contains("\"pid\""), "{}", text(&o));
    let o = aw_as_nobody(&d, Some("64123"), &["alerts", "--json"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    // ... and may not triage, act or start a session.
    let o = aw_as_nobody(&d, Some("64123"), &["ack", "some-alert"]);
    assert_ne!(o.status.code(), Some(0), "{}", text(&o));
    assert!(text(&o).contains("may only read"), "{}", text(&o));
    let o = aw_as_nobody(&d, Some("64123"), &["session", "kill", "s-1", "--yes"]);
    assert_ne!(o.status.code(), Some(0), "{}", text(&o));
    assert!(text(&o).contains("may only read"), "{}", text(&o));
    let o = aw_as_nobody(&d, Some("64123"), &["run", "--", "/bin/true"]);
    assert_ne!(o.status.code(), Some(0), "{}", text(&o));
    // A user outside the group is refused outright.
    let o = aw_as_nobody(&d, None, &["status"]);
    assert_ne!(o.status.code(), Some(0), "{}", text(&o));
    assert!(!text(&o).contains("\"pid\""), "{}", text(&o));
}
