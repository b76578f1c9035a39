//! The glibc the binaries need, read from their version needs: no newer
//! than Ubuntu 22.04's (2.35, the oldest glibc of a supported Debian or
//! Ubuntu release), and no newer than the `libc6 (>= ...)` the package's
//! Depends in Cargo.toml declares. apt trusts that Depends: a binary that
//! needs more installs and then fails at every start.

use std::path::Path;
use std::process::Command;

/// Ubuntu 22.04's glibc; Debian 12 has 2.36, Debian 13 2.41.
const OLDEST_GLIBC: (u32, u32) = (2, 35);

const BINARIES: [&str; 3] = [
    env!("CARGO_BIN_EXE_fail3ban-server"),
    env!("CARGO_BIN_EXE_fail3ban-client"),
    env!("CARGO_BIN_EXE_fail3ban-regex"),
];

/// The glibc release a version need stands for. GLIBC_ABI_DT_RELR is what
/// the linker adds for packed relative relocations, which glibc 2.36 was
/// the first to apply.
fn glibc_release(need: &str) -> Option<(u32, u32)> {
    if need == "GLIBC_ABI_DT_RELR" {
        return Some((2, 36));
    }
    let mut parts = need.strip_prefix("GLIBC_")?.split('.');
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next()?.parse().ok()?;
    Some((major, minor))
}

/// Every version a binary needs from any library (`readelf -V`).
fn version_needs(bin: &str) -> Vec<String> {
    let out = Command::new("readelf")
        .args(["-V", "-W", bin])
        .output()
        .expect("run readelf");
    assert!(out.status.success(), "readelf -V {bin} failed");
    let text = String::from_utf8_lossy(&out.stdout);
    let section = text
        .split("Version needs section")
        .nth(1)
        .unwrap_or_else(|| panic!("{bin} has no version needs:\n{text}"));
    section
        .lines()
        .filter_map(|l| l.split("Name: ").nth(1))
        .filter_map(|rest| rest.split_whitespace().next())
        .map(str::to_string)
        .collect()
}

/// The highest glibc a binary needs, with the need that says so. A glibc
/// need this test cannot date (a new GLIBC_ABI_* tag, GLIBC_PRIVATE) fails.
fn highest_glibc(bin: &str) -> ((u32, u32), String) {
    let mut top = ((0, 0), String::new());
    for need in version_needs(bin) {
        if !need.starts_with("GLIBC_") {
            continue;
        }
        let release = glibc_release(&need)
            .unwrap_or_else(|| panic!("{bin} needs {need}: which glibc is that?"));
        if release > top.0 {
            top = (release, need);
        }
    }
    top
}

/// The `libc6 (>= X.Y)` of `depends` in Cargo.toml's [package.metadata.deb].
pub fn declared_floor() -> Option<(u32, u32)> {
    let toml = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml"))
        .expect("read Cargo.toml");
    let deb = toml.split("[package.metadata.deb]").nth(1)?;
    let depends = deb.lines().find_map(|l| l.strip_prefix("depends = "))?;
    let version = depends.split("libc6 (>= ").nth(1)?.split(')').next()?;
    glibc_release(&format!("GLIBC_{version}"))
}

fn show((major, minor): (u32, u32)) -> String {
    format!("{major}.{minor}")
}

#[test]
#[ignore = "needs readelf (binutils)"]
fn binaries_run_on_glibc_2_35_and_the_declared_floor() {
    crate::prereq::need(&[crate::prereq::Need::Readelf]);
    let floor = declared_floor();
    let mut problems = Vec::new();
    if floor.is_none() {
        problems.push("Cargo.toml's package Depends declares no libc6 (>= ...)".to_string());
    }
    for bin in BINARIES {
        let (need, name) = highest_glibc(bin);
        println!("glibc: {bin} needs {} ({name})", show(need));
        assert!(need >= (2, 2), "{bin}: no glibc version needs found");
        if need > OLDEST_GLIBC {
            problems.push(format!(
                "{bin} needs glibc {} ({name}), newer than Ubuntu 22.04's {}",
                show(need),
                show(OLDEST_GLIBC)
            ));
        }
        if let Some(f) = floor.filter(|f| need > *f) {
            problems.push(format!(
                "{bin} needs glibc {} ({name}), the package declares libc6 (>= {})",
                show(need),
                show(f)
            ));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn glibc_releases_of_version_needs() {
    assert_eq!(glibc_release("GLIBC_2.2.5"), Some((2, 2)));
    assert_eq!(glibc_release("GLIBC_2.34"), Some((2, 34)));
    assert_eq!(glibc_release("GLIBC_ABI_DT_RELR"), Some((2, 36)));
    assert_eq!(glibc_release("GLIBC_PRIVATE"), None);
}
