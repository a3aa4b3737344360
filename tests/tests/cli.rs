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
