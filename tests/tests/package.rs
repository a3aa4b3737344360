//! The .deb from `cargo xtask package`: its contents (binary without debug info, the systemd
//! unit, the config and rules.d) and the unit checked by `systemd-analyze verify`. Skips with a
//! message when no package was built (`cargo xtask test` does not build it: it takes minutes).

use std::path::PathBuf;
use std::process::Command;

fn deb() -> Option<PathBuf> {
    let dir = tests::root().join("target/debian");
    std::fs::read_dir(dir)
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.extension().is_some_and(|x| x == "deb"))
}

#[test]
fn deb_holds_stripped_binary_unit_config_and_rules() {
    let Some(deb) = deb() else {
        eprintln!("SKIPPED: no target/debian/*.deb; run `cargo xtask package` first");
        return;
    };
    let list = Command::new("dpkg-deb")
        .arg("-c")
        .arg(&deb)
        .output()
        .unwrap();
    assert!(list.status.success());
    let list = String::from_utf8_lossy(&list.stdout);
    for path in [
        "./usr/bin/agentwatch",
        "./lib/systemd/system/agentwatch.service",
        "./etc/agentwatch/config.toml",
        "./etc/agentwatch/rules.d/credentials.toml",
        "./etc/agentwatch/rules.d/local.d/",
        "./usr/share/man/man1/agentwatch.1.gz",
        "./usr/share/man/man1/agentwatch-search.1.gz",
        "./usr/share/bash-completion/completions/agentwatch",
        "./usr/share/zsh/vendor-completions/_agentwatch",
    ] {
        assert!(
            list.lines().any(|l| l.ends_with(path)),
            "{path} missing:\n{list}"
        );
    }
    let root = tempfile::tempdir().unwrap();
    assert!(
        Command::new("dpkg-deb")
            .arg("-x")
            .arg(&deb)
            .arg(root.path())
            .status()
            .unwrap()
            .success()
    );
    let bin = root.path().join("usr/bin/agentwatch");
    let sections = Command::new("readelf")
        .arg("-S")
        .arg(&bin)
        .output()
        .unwrap();
    let sections = String::from_utf8_lossy(&sections.stdout);
    assert!(sections.contains(".text"), "{sections}");
    assert!(
        !sections.contains(".debug_info"),
        "debug info left in the binary"
    );
    // The shipped config and policy are valid as installed.
    let check = Command::new(&bin)
        .args(["rules", "check"])
        .arg(root.path().join("etc/agentwatch/rules.d"))
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );
    // The unit, pointed at the extracted binary.
    let unit =
        std::fs::read_to_string(root.path().join("lib/systemd/system/agentwatch.service")).unwrap();
    assert!(unit.contains("Type=notify") && unit.contains("StateDirectory=agentwatch"));
    assert!(unit.contains("CapabilityBoundingSet=") && unit.contains("Restart=on-failure"));
    if Command::new("systemd-analyze")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!("SKIPPED: systemd-analyze verify (not installed)");
        return;
    }
    let test_unit = root.path().join("agentwatch.service");
    std::fs::write(
        &test_unit,
        unit.replace("/usr/bin/agentwatch", bin.to_str().unwrap()),
    )
    .unwrap();
    let v = Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .arg(&test_unit)
        .output()
        .unwrap();
    assert!(
        v.status.success(),
        "systemd-analyze verify: {}{}",
        String::from_utf8_lossy(&v.stdout),
        String::from_utf8_lossy(&v.stderr)
    );
}
