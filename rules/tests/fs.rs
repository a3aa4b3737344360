//! `rules check` and `rules test` bodies, on the shipped policy and on temporary directories.

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;

use rules::fs::{cmd_check, cmd_test, default_policy_dir, load_sources};

fn run(
    f: fn(&[PathBuf], &mut dyn std::io::Write, &mut dyn std::io::Write) -> i32,
    paths: &[PathBuf],
) -> (i32, String, String) {
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let code = f(paths, &mut out, &mut err);
    (
        code,
        String::from_utf8(out).unwrap(),
        String::from_utf8(err).unwrap(),
    )
}

const RULE: &str = "[[rule]]\nid = \"t.etc\"\ndescription = \"d\"\nkinds = [\"file.open\"]\nseverity = \"high\"\noutput = \"{file.path}\"\ncondition = { field = \"file.path\", prefix = \"/etc/\" }\n";

#[test]
fn check_and_test_pass_on_the_shipped_policy() {
    let (code, out, err) = run(cmd_check, &[]);
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("policy ok: "), "{out}");
    let (code, out, err) = run(cmd_test, &[]);
    assert_eq!(code, 0, "{out}{err}");
    let last = out.lines().last().unwrap();
    assert!(last.ends_with(" passed, 0 failed"), "{last}");
    assert!(out.contains("ok   cred.ssh_private_key"), "{out}");
}

#[test]
fn the_directory_and_the_embedded_policy_agree() {
    let from_dir = load_sources(&[default_policy_dir()]).unwrap();
    let a = rules::Policy::compile(&from_dir).unwrap();
    let b = rules::Policy::compile(&rules::default_sources()).unwrap();
    let key = |p: &rules::Policy| -> Vec<_> {
        p.rules()
            .iter()
            .map(|r| {
                (
                    r.id.clone(),
                    r.severity,
                    r.kinds.clone(),
                    r.tags.clone(),
                    r.enabled,
                )
            })
            .collect()
    };
    assert_eq!(key(&a), key(&b));
    assert!(
        a.rules()[0]
            .defined_at
            .ends_with("policy/credentials.toml:3:1"),
        "{}",
        a.rules()[0].defined_at
    );
}

#[test]
fn check_reports_errors_with_location_and_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("a.toml"),
        RULE.replace("severity", "severty"),
    )
    .unwrap();
    let (code, _, err) = run(cmd_check, &[dir.path().to_path_buf()]);
    assert_eq!(code, 2);
    assert!(
        err.contains("a.toml:5:1: unknown key `severty`, did you mean `severity`?"),
        "{err}"
    );
    assert!(err.contains("policy rejected: 1 error"), "{err}");
}

#[test]
fn world_writable_and_non_regular_files_are_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("a.toml");
    std::fs::write(&f, RULE).unwrap();
    std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o666)).unwrap();
    let (code, _, err) = run(cmd_check, &[dir.path().to_path_buf()]);
    assert_eq!(code, 2);
    assert!(err.contains("is world-writable (mode `666`)"), "{err}");

    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("a.toml"), RULE).unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    let (code, _, err) = run(cmd_check, &[dir.path().to_path_buf()]);
    assert_eq!(code, 2);
    assert!(
        err.contains("is world-writable (mode `777`): any user could replace the policy"),
        "{err}"
    );

    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("b.toml");
    let _l = std::os::unix::net::UnixListener::bind(&sock).unwrap();
    let (code, _, err) = run(cmd_check, &[sock]);
    assert_eq!(code, 2);
    assert!(err.contains("is not a regular file"), "{err}");
}

#[test]
fn test_fails_with_1_on_a_failing_fixture_and_2_on_a_bad_policy() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("p.toml"), RULE).unwrap();
    std::fs::create_dir(dir.path().join("fixtures")).unwrap();
    std::fs::write(
        dir.path().join("fixtures/t.etc.toml"),
        r#"rule = "t.etc"
[[case]]
name = "hit"
expect = ["t.etc"]
events = '{"kind":"file.open","file":{"path":"/etc/x"}}'
[[case]]
name = "wrongly expects a miss"
expect_not = ["t.etc"]
events = '{"kind":"file.open","file":{"path":"/etc/y"}}'
"#,
    )
    .unwrap();
    let (code, out, _) = run(cmd_test, &[dir.path().to_path_buf()]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("FAIL t.etc (1 passed, 1 failed)"), "{out}");
    assert!(
        out.contains("wrongly expects a miss: expected `t.etc` not to fire"),
        "{out}"
    );
    assert!(out.ends_with("1 passed, 1 failed\n"), "{out}");

    std::fs::write(dir.path().join("p.toml"), "[[rule]]\nid = 3\n").unwrap();
    let (code, _, err) = run(cmd_test, &[dir.path().to_path_buf()]);
    assert_eq!(code, 2, "{err}");
}

#[test]
fn test_reports_rules_without_negative_fixtures() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("p.toml"), RULE).unwrap();
    std::fs::create_dir(dir.path().join("fixtures")).unwrap();
    std::fs::write(
        dir.path().join("fixtures/x.toml"),
        "[[case]]\nname = \"hit\"\nexpect = [\"t.etc\"]\nevents = '{\"kind\":\"file.open\",\"file\":{\"path\":\"/etc/x\"}}'\n",
    )
    .unwrap();
    let (code, out, _) = run(cmd_test, &[dir.path().to_path_buf()]);
    assert_eq!(code, 1);
    assert!(
        out.contains("rule `t.etc` has no negative fixture"),
        "{out}"
    );
}

#[test]
fn local_d_overrides_are_read_after_the_directory_and_reported_by_check() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("a.toml"), RULE).unwrap();
    let (code, before, err) = run(cmd_check, &[dir.path().to_path_buf()]);
    assert_eq!(code, 0, "{err}");
    assert!(!before.contains("overrides"), "{before}");
    let local = dir.path().join("local.d");
    std::fs::create_dir(&local).unwrap();
    std::fs::write(
        local.join("site.toml"),
        "[[override]]\nrule = \"t.etc\"\nseverity = \"low\"\nenabled = false\n",
    )
    .unwrap();
    let (code, out, err) = run(cmd_check, &[dir.path().to_path_buf()]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("policy ok: 1 rules (0 enabled)"), "{out}");
    assert!(
        out.contains("1 rules changed by overrides:\n  t.etc (low, disabled) by ")
            && out.contains("local.d/site.toml:1:1"),
        "{out}"
    );
    assert_ne!(before.lines().next(), out.lines().next(), "hash unchanged");
    // A typo in a local rule id fails the whole check, naming the place.
    std::fs::write(
        local.join("site.toml"),
        "[[override]]\nrule = \"t.etx\"\nenabled = false\n",
    )
    .unwrap();
    let (code, _, err) = run(cmd_check, &[dir.path().to_path_buf()]);
    assert_eq!(code, 2);
    assert!(
        err.contains(
            "local.d/site.toml:2:8: override names unknown rule `t.etx`, did you mean `t.etc`?"
        ),
        "{err}"
    );
    // A world-writable local.d is refused like the directory itself.
    std::fs::set_permissions(&local, std::fs::Permissions::from_mode(0o777)).unwrap();
    let (code, _, err) = run(cmd_check, &[dir.path().to_path_buf()]);
    assert_eq!(code, 2);
    assert!(err.contains("is world-writable"), "{err}");
}
