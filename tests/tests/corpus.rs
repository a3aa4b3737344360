//! The attack and benign corpora run end to end (issue #14): every scenario of
//! `tests/corpus/attacks.toml` runs as its own agent session under a real daemon (real sensor,
//! shipped policy) and must raise each rule it expects; every scenario of `benign.toml` must
//! raise nothing above `low`. A failure names each scenario that missed, its form, and what
//! fired instead. Scenarios are safe on the host: a temporary HOME and root (not under /tmp, so
//! the scratch-dir exceptions do not apply), system files only through an overlay in a private
//! mount namespace, networks only on loopback or in a private network namespace.
//! Root and BTF required; without them the runtime tests say why and skip.

use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use tests::corpus::{self, Attack};
use tests::{Daemon, require_sensor, workload};

const PY: &str = "/usr/bin/python3";
/// Sessions run at once (2 cores are shared; most scenarios wait on process start-up).
const PARALLEL: usize = 3;

/// The fake home, project, repo and data the scenarios act on.
fn build_root() -> tempfile::TempDir {
    let base = if Path::new("/home").is_dir() {
        "/home"
    } else {
        "/root"
    };
    let t = tempfile::Builder::new()
        .prefix("aw-corpus-")
        .tempdir_in(base)
        .unwrap();
    let r = t.path();
    let home = r.join("home");
    let w = |p: &str, s: &str| {
        let p = home.join(p);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, s).unwrap();
    };
    // As long as a real ed25519/RSA key file (an upload of it crosses the 1 KiB bound of
    // `exfil.secret_read_then_upload` on its own).
    w(
        ".ssh/id_rsa",
        &format!(
            "-----BEGIN OPENSSH PRIVATE KEY-----\n{}-----END OPENSSH PRIVATE KEY-----\n",
            "RkFLRS1GQUtFLUZBS0UtRkFLRS1GQUtFLUZBS0UtRkFLRS1GQUtFLUZBS0UtRkFLRS1GQUtF\n".repeat(24)
        ),
    );
    w(".ssh/id_rsa.pub", "ssh-ed25519 AAAA fake\n");
    w(
        ".aws/credentials",
        "[default]\naws_secret_access_key=FAKE\n",
    );
    w(
        ".config/gcloud/application_default_credentials.json",
        "{}\n",
    );
    w(".kube/config", "apiVersion: v1\n");
    w(".git-credentials", "https://u:FAKE@example.com\n");
    w(".netrc", "machine example.com password FAKE\n");
    w(".npmrc", "//registry.npmjs.org/:_authToken=FAKE\n");
    w(".pypirc", "[pypi]\npassword = FAKE\n");
    w(".mozilla/firefox/abc.default/logins.json", "{}\n");
    w(".mozilla/firefox/abc.default/key4.db", "x");
    w(".password-store/bank.gpg", "x");
    w("vault.kdbx", "x");
    w(".bash_history", "ls\n");
    w(".python_history", "1+1\n");
    w(".zshrc", "# zsh\n");
    w(".gitconfig", "[user]\nname = a\n");
    w(".config/tool/config.toml", "a = 1\n");
    let proj = r.join("proj");
    std::fs::create_dir_all(&proj).unwrap();
    for (f, s) in [
        ("main.rs", "fn main() {}\n"),
        ("lib.rs", "pub fn f() {}\n"),
        ("Cargo.toml", "[package]\nname = \"p\"\n"),
        ("Cargo.lock", "# lock\n"),
        (".env", "API_KEY=FAKE\n"),
    ] {
        std::fs::write(proj.join(f), s).unwrap();
    }
    for (d, n) in [
        ("data1", 250),
        ("data2", 250),
        ("data3", 60),
        ("data4", 60),
        ("data5", 520),
        ("data6", 520),
    ] {
        let d = r.join(d);
        std::fs::create_dir_all(&d).unwrap();
        for i in 0..n {
            std::fs::write(d.join(format!("doc{i}.txt")), "important\n").unwrap();
        }
    }
    let bin = r.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    for tool in ["nmap", "nc"] {
        std::fs::copy("/bin/true", bin.join(tool)).unwrap();
        std::fs::set_permissions(bin.join(tool), std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let repo = r.join("repo");
    let git = |args: &[&str]| {
        let st = Command::new("git")
            .args([
                "-c",
                "user.name=a",
                "-c",
                "user.email=a@b",
                "-c",
                "init.defaultBranch=main",
            ])
            .args(args)
            .current_dir(&repo)
            .env("HOME", &home)
            .status()
            .unwrap();
        assert!(st.success(), "git {args:?}");
    };
    std::fs::create_dir_all(&repo).unwrap();
    std::fs::write(repo.join("README"), "repo\n").unwrap();
    git(&["init", "-q"]);
    git(&["add", "README"]);
    git(&["commit", "-qm", "init"]);
    std::fs::create_dir_all(r.join("s")).unwrap();
    std::fs::create_dir_all(r.join("b")).unwrap();
    t
}

struct Env<'a> {
    root: &'a Path,
    daemon: &'a Daemon,
    outside: &'a Outside,
}

impl Env<'_> {
    /// Write the scenario's script (environment, sandbox set-up, body) and return the command
    /// that runs it.
    fn script(&self, id: &str, body: &str, sandbox: &[String]) -> Vec<String> {
        let r = self.root.display();
        let mut s = String::new();
        s.push_str(&format!(
            "export HOME={r}/home T={r} REPO={r}/repo PY={PY} W={w} ATOMIC='{PY} {c}/atomic.py' \
             OUTSIDE={o} OUTSIDE2={o2} VMPID={o3} VMADDR={addr} AWPID={p} AWDATA={data} BIN={r}/bin B={r}/b/{id}\n\
             mkdir -p $B\n",
            w = workload().display(),
            c = corpus::dir().display(),
            o = self.outside.sleep.id(),
            o2 = self.outside.sleep2.id(),
            o3 = self.outside.vm.id(),
            addr = self.outside.vm_addr,
            p = self.daemon.pid(),
            data = self.daemon.data_dir().display(),
        ));
        for dir in ["etc", "var"] {
            if sandbox.iter().any(|x| x == dir) {
                s.push_str(&format!(
                    "ov={r}/s/{id}.{dir}; mkdir -p $ov && mount -t tmpfs aw-corpus $ov && \
                     mkdir $ov/u $ov/w && mount -t overlay aw-corpus \
                     -o lowerdir=/{dir},upperdir=$ov/u,workdir=$ov/w /{dir} || exit 97\n"
                ));
            }
        }
        if sandbox.iter().any(|x| x == "var") {
            s.push_str("echo old > /var/log/aw-corpus.log\n");
        }
        if sandbox.iter().any(|x| x == "netns") {
            s.push_str(
                "ip link set lo up && ip addr add 198.51.100.2/24 dev lo && \
                 ip addr add 10.9.9.1/24 dev lo && ip addr add 169.254.169.254/32 dev lo || exit 98\n",
            );
        }
        s.push_str(body);
        s.push('\n');
        let path = self.root.join("s").join(format!("{id}.sh"));
        std::fs::write(&path, s).unwrap();
        let mut cmd = Vec::new();
        let mount = sandbox.iter().any(|x| x == "etc" || x == "var");
        let net = sandbox.iter().any(|x| x == "netns");
        if mount || net {
            cmd.push("unshare".to_owned());
            if mount {
                cmd.extend(["-m".to_owned(), "--propagation".into(), "private".into()]);
            }
            if net {
                cmd.push("-n".to_owned());
            }
        }
        cmd.extend(["/bin/sh".to_owned(), path.display().to_string()]);
        cmd
    }

    /// Run the jobs `PARALLEL` at a time; returns id -> session id.
    fn run_all(&self, jobs: Vec<(String, Vec<String>)>) -> BTreeMap<String, String> {
        let queue = Mutex::new(jobs);
        let out = Mutex::new(BTreeMap::new());
        std::thread::scope(|sc| {
            for _ in 0..PARALLEL {
                sc.spawn(|| {
                    loop {
                        let Some((id, cmd)) = queue.lock().unwrap().pop() else {
                            return;
                        };
                        let args: Vec<&str> = cmd.iter().map(String::as_str).collect();
                        let (o, sid) = self.daemon.run("corpus", &args).unwrap();
                        if matches!(o.status.code(), Some(97 | 98)) {
                            panic!(
                                "`{id}`: sandbox set-up failed: {}",
                                String::from_utf8_lossy(&o.stderr)
                            );
                        }
                        out.lock().unwrap().insert(id, sid);
                    }
                });
            }
        });
        out.into_inner().unwrap()
    }
}

fn alerts(path: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// Rules fired per session.
fn fired(path: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let mut m: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for a in alerts(path) {
        if let (Some(s), Some(r)) = (a["session"].as_str(), a["rule"].as_str()) {
            m.entry(s.to_owned()).or_default().insert(r.to_owned());
        }
    }
    m
}

/// Processes outside every session, for the scenarios that reach across (ptrace, environ,
/// process memory); one per scenario that attaches, so parallel scenarios do not race.
struct Outside {
    sleep: std::process::Child,
    sleep2: std::process::Child,
    vm: std::process::Child,
    vm_addr: usize,
}

impl Drop for Outside {
    fn drop(&mut self) {
        for c in [&mut self.sleep, &mut self.sleep2, &mut self.vm] {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn setup() -> (tempfile::TempDir, PathBuf, Daemon, Outside) {
    let root = build_root();
    let alerts = root.path().join("alerts.jsonl");
    let d = Daemon::start_with(None, &["--alerts-jsonl", alerts.to_str().unwrap()]).unwrap();
    let sleep = || {
        Command::new("/bin/sleep")
            .arg("300")
            .env("SECRET_TOKEN", "FAKE")
            .spawn()
            .unwrap()
    };
    let mut vm = Command::new(workload())
        .args(["vm-target", "300"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(vm.stdout.take().unwrap()),
        &mut line,
    )
    .unwrap();
    let vm_addr = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    let outside = Outside {
        sleep: sleep(),
        sleep2: sleep(),
        vm,
        vm_addr,
    };
    (root, alerts, d, outside)
}

#[test]
fn corpus_files_parse_and_cover_every_category() {
    let a = corpus::attacks().unwrap();
    let b = corpus::benign().unwrap();
    assert!(a.len() >= 80, "{} attack scenarios", a.len());
    assert!(b.len() >= 30, "{} benign scenarios", b.len());
    let cats: BTreeSet<&str> = a.iter().map(|a| a.category.as_str()).collect();
    for c in [
        "credential_access",
        "exfiltration",
        "discovery",
        "privilege_escalation",
        "persistence",
        "defense_evasion",
        "monitor_tamper",
        "impact",
    ] {
        assert!(cats.contains(c), "no scenario for {c}");
    }
    // Every expected rule exists in the shipped policy.
    let policy = rules::Policy::compile(&rules::default_sources()).unwrap();
    let ids: BTreeSet<String> = policy.rules().iter().map(|r| r.id.clone()).collect();
    for s in &a {
        for r in &s.expect {
            assert!(ids.contains(r), "`{}` expects unknown rule `{r}`", s.id);
        }
    }
}

#[test]
fn readme_detection_table_is_current() {
    let table = corpus::table_markdown(&corpus::attacks().unwrap());
    let readme = std::fs::read_to_string(tests::root().join("README.md")).unwrap();
    let (Some(b), Some(e)) = (
        readme.find("<!-- corpus:begin -->\n"),
        readme.find("<!-- corpus:end -->"),
    ) else {
        panic!("README.md has no corpus table markers");
    };
    assert_eq!(
        &readme[b + "<!-- corpus:begin -->\n".len()..e],
        table,
        "regenerate the README table: cargo run --release -p tests --example corpus_table"
    );
}

#[test]
fn every_attack_scenario_raises_its_rules_and_benign_work_stays_quiet() {
    require_sensor!();
    let started = Instant::now();
    let attacks = corpus::attacks().unwrap();
    let benign = corpus::benign().unwrap();
    let (root, alerts_path, d, outside) = setup();
    let env = Env {
        root: root.path(),
        daemon: &d,
        outside: &outside,
    };
    // Benign work first: attacks change the shared fixtures (history, project files).
    let mut jobs: Vec<_> = benign
        .iter()
        .map(|b| (format!("b:{}", b.id), env.script(&b.id, &b.run, &[])))
        .collect();
    jobs.reverse();
    let mut sessions = env.run_all(jobs);
    let mut jobs: Vec<_> = attacks
        .iter()
        .map(|a| (format!("a:{}", a.id), env.script(&a.id, &a.run, &a.sandbox)))
        .collect();
    jobs.reverse();
    sessions.extend(env.run_all(jobs));

    let missing = |f: &BTreeMap<String, BTreeSet<String>>| -> Vec<(&Attack, Vec<String>)> {
        attacks
            .iter()
            .filter_map(|a| {
                let got = f.get(&sessions[&format!("a:{}", a.id)]);
                let miss: Vec<String> = a
                    .expect
                    .iter()
                    .filter(|r| !got.is_some_and(|g| g.contains(*r)))
                    .cloned()
                    .collect();
                (!miss.is_empty()).then_some((a, miss))
            })
            .collect()
    };
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut f = fired(&alerts_path);
    while !missing(&f).is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(250));
        f = fired(&alerts_path);
    }
    // Let late alerts of benign sessions arrive too.
    std::thread::sleep(Duration::from_millis(800));
    let all = alerts(&alerts_path);
    f = fired(&alerts_path);

    let mut report = Vec::new();
    for (a, miss) in missing(&f) {
        let sid = &sessions[&format!("a:{}", a.id)];
        report.push(format!(
            "MISSED {} [{} / {}] {}: expected {miss:?}, fired {:?}",
            a.id,
            a.category,
            a.form,
            a.technique,
            f.get(sid).cloned().unwrap_or_default()
        ));
    }
    for b in &benign {
        let sid = &sessions[&format!("b:{}", b.id)];
        for al in all.iter().filter(|al| al["session"] == sid.as_str()) {
            if !matches!(
                al["priority"].as_str(),
                Some("Debug" | "Informational" | "Notice")
            ) {
                report.push(format!(
                    "NOISY benign {}: {} ({}) {}",
                    b.id, al["rule"], al["priority"], al["output"]
                ));
            }
        }
    }
    // Credentials the argv scenarios put on command lines never reach the outputs unmasked.
    for (name, path) in [("alerts", &alerts_path), ("events", &d.events_path)] {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        if let Some(line) = text.lines().find(|l| l.contains("CorpusLeakCanary")) {
            report.push(format!(
                "LEAKED a credential into the {name} output: {line}"
            ));
        }
    }
    eprintln!(
        "corpus: {} attack and {} benign scenarios in {:.1} s",
        attacks.len(),
        benign.len(),
        started.elapsed().as_secs_f64()
    );
    assert!(report.is_empty(), "{}", report.join("\n"));
}
