//! The Debian package: built with cargo-deb from the binaries this test
//! run uses, checked by lintian, then installed beside the distribution's
//! fail2ban, migrated to, run, removed and purged in clean Debian 12 and
//! Debian 13 roots by scripts/deb-test.sh.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::prereq::{need, Need};

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// `cargo deb --no-build`: the binaries cargo test built (a second build
/// with other features could replace them under the running tests).
fn build_deb() -> PathBuf {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .current_dir(repo())
        .args(["deb", "--no-build", "--output", "target/deb-test/"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "cargo deb: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let deb = PathBuf::from(stdout.lines().last().unwrap_or("").trim());
    assert!(deb.is_file(), "cargo deb made no package: {stdout}");
    deb
}

#[test]
#[ignore = "needs root, cargo-deb, lintian, debootstrap, unshare, chroot and dpkg-deb"]
fn package_installs_runs_and_purges_in_a_clean_debian() {
    need(&[Need::Deb]);
    let deb = build_deb();
    println!("deb: built {}", deb.display());

    // The Depends apt reads is the one tests/glibc.rs checks the binaries
    // against (cargo-deb's $auto may not raise or repeat it).
    let out = Command::new("dpkg-deb")
        .args(["-f"])
        .arg(&deb)
        .arg("Depends")
        .output()
        .unwrap();
    let depends = String::from_utf8_lossy(&out.stdout);
    let (major, minor) = crate::glibc::declared_floor().expect("Cargo.toml declares a libc6 floor");
    assert_eq!(depends.matches("libc6").count(), 1, "Depends: {depends}");
    assert!(
        depends.contains(&format!("libc6 (>= {major}.{minor})")),
        "Depends: {depends}"
    );

    // Warnings too: what the package means to keep is in its override
    // file, each with its reason (lintian_overrides_say_why).
    let out = Command::new("lintian")
        .args(["--fail-on", "error,warning"])
        .arg(&deb)
        .output()
        .unwrap();
    let text = crate::own_tree::text(&out);
    println!("deb: lintian:\n{text}");
    assert!(
        out.status.success()
            && !text
                .lines()
                .any(|l| l.starts_with("E:") || l.starts_with("W:")),
        "lintian reports errors or warnings:\n{text}"
    );

    let out = Command::new(repo().join("scripts/deb-test.sh"))
        .arg(&deb)
        .output()
        .unwrap();
    let text = crate::own_tree::text(&out);
    println!("{text}");
    assert!(out.status.success(), "scripts/deb-test.sh failed:\n{text}");
    assert!(
        text.contains("deb-test: all passed in bookworm trixie"),
        "{text}"
    );
}

/// Each lintian override has the reason for it in a comment right above.
#[test]
fn lintian_overrides_say_why() {
    let file = repo().join("debian/lintian-overrides");
    let text = std::fs::read_to_string(&file).unwrap();
    let mut above = "";
    let mut overrides = 0;
    for line in text.lines() {
        if !line.trim().is_empty() && !line.starts_with('#') {
            assert!(
                above.starts_with('#'),
                "{}: override {line:?} has no comment saying why right above it",
                file.display()
            );
            overrides += 1;
        }
        above = line;
    }
    assert!(overrides > 0, "{}: no overrides", file.display());
}

/// The systemd unit as systemd reads it (`systemd-analyze verify`), with
/// the programs pointed at this build since they are not installed here.
#[test]
#[ignore = "needs systemd-analyze"]
fn systemd_unit_verifies() {
    need(&[Need::SystemdAnalyze]);
    let unit = std::fs::read_to_string(repo().join("debian/fail3ban.service")).unwrap();
    let bin = Path::new(env!("CARGO_BIN_EXE_fail3ban-server"))
        .parent()
        .unwrap();
    let unit = unit.replace("/usr/bin/", &format!("{}/", bin.display()));
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("fail3ban.service");
    std::fs::write(&path, unit).unwrap();
    let out = Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .arg(&path)
        .output()
        .unwrap();
    let text = crate::own_tree::text(&out);
    // Outside a booted systemd it may add that it cannot reach the bus.
    let problems: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("fail3ban.service"))
        .collect();
    assert!(out.status.success() && problems.is_empty(), "{text}");
}

/// The bash completion the package installs completes commands, import
/// and migrate included, and jail names from filter.d for fail3ban-regex.
#[test]
#[ignore = "needs bash"]
fn bash_completion_completes() {
    need(&[Need::Bash]);
    let file = repo().join("debian/completions/fail3ban-client");
    // The repository root holds filter.d, all the completion reads.
    let conf = repo();
    let script = format!(
        "source '{}'
COMP_WORDS=(fail3ban-client imp); COMP_CWORD=1; _fail3ban_client; echo \"client: ${{COMPREPLY[*]}}\"
COMP_WORDS=(fail3ban-client --t); COMP_CWORD=1; _fail3ban_client; echo \"option: ${{COMPREPLY[*]}}\"
COMP_WORDS=(fail3ban-client mig); COMP_CWORD=1; _fail3ban_client; echo \"migrate: ${{COMPREPLY[*]}}\"
COMP_WORDS=(fail3ban-client migrate --); COMP_CWORD=2; _fail3ban_client; echo \"migrate option: ${{COMPREPLY[*]}}\"
COMP_WORDS=(fail3ban-regex -c '{}' /dev/null nginx-l); COMP_CWORD=4; _fail3ban_regex; echo \"regex: ${{COMPREPLY[*]}}\"",
        file.display(),
        conf.display()
    );
    let out = Command::new("bash").args(["-c", &script]).output().unwrap();
    let text = crate::own_tree::text(&out);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("client: import-fail2ban-db\n"), "{text}");
    assert!(text.contains("option: --test --timeout\n"), "{text}");
    assert!(text.contains("migrate: migrate\n"), "{text}");
    assert!(
        text.contains("migrate option: --dry-run --undo\n"),
        "{text}"
    );
    assert!(text.contains("regex: nginx-limit-req\n"), "{text}");
}
