//! Hot reload compares the policy files' content, not their modification times: a rules file
//! replaced by one with an older mtime (`cp -p`) is still seen as a change.

use std::time::{Duration, Instant, SystemTime};

use agent_user::reload::{PolicySource, PolicyState};

const RULE: &str = r#"[[rule]]
id = "test.one"
description = "one"
kinds = ["file.open"]
severity = "low"
output = "{file.path}"
[rule.condition]
field = "file.path"
glob = "/tmp/one"
"#;

fn changed_within(state: &mut PolicyState, d: Duration) -> bool {
    let end = Instant::now() + d;
    while Instant::now() < end {
        if state.changed_on_disk() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

#[test]
fn a_file_replaced_with_an_older_mtime_is_a_change() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("r.toml");
    std::fs::write(&f, RULE).unwrap();
    let source = PolicySource::Paths(vec![dir.path().to_path_buf()]);
    let policy = source.compile().unwrap();
    let mut state = PolicyState::new(source, &policy);
    assert!(
        !changed_within(&mut state, Duration::from_millis(1200)),
        "nothing changed yet"
    );
    // New content, same length, with a modification time a day in the past.
    std::fs::write(&f, RULE.replace("/tmp/one", "/tmp/two")).unwrap();
    let old = SystemTime::now() - Duration::from_secs(86_400);
    std::fs::File::options()
        .write(true)
        .open(&f)
        .unwrap()
        .set_modified(old)
        .unwrap();
    std::fs::File::open(dir.path())
        .unwrap()
        .set_modified(old)
        .ok();
    assert!(
        changed_within(&mut state, Duration::from_secs(3)),
        "content change with an older mtime was missed"
    );
    // Touching without changing the content is not a change.
    std::fs::File::options()
        .write(true)
        .open(&f)
        .unwrap()
        .set_modified(SystemTime::now())
        .unwrap();
    assert!(!changed_within(&mut state, Duration::from_millis(1200)));
}
