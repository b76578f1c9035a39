//! The reference fail2ban (Debian's package, pinned), fetched by
//! scripts/fetch-reference.sh and run from where it was extracted.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

/// The extracted package root, or `None` after saying loudly why not.
/// Under CI the reference must be there: its absence fails the test.
pub fn root() -> Option<&'static Path> {
    static ROOT: OnceLock<Option<PathBuf>> = OnceLock::new();
    ROOT.get_or_init(|| {
        let top = Path::new(env!("CARGO_MANIFEST_DIR"));
        let root = top.join("target/reference/root");
        if !root.join("usr/bin/fail2ban-client").exists() {
            let _ = Command::new(top.join("scripts/fetch-reference.sh")).status();
        }
        let python = Path::new("/usr/bin/python3");
        if root.join("usr/bin/fail2ban-client").exists() && python.exists() {
            Some(root)
        } else {
            None
        }
    })
    .as_deref()
}

/// Skips (loudly) when the reference is unavailable, except under CI.
#[macro_export]
macro_rules! need_reference {
    ($what:expr) => {
        match $crate::reference::root() {
            Some(r) => r,
            None => {
                if std::env::var_os("CI").is_some() {
                    panic!("{}: reference fail2ban unavailable under CI", $what);
                }
                eprintln!("SKIPPED: {}: reference fail2ban unavailable (scripts/fetch-reference.sh failed)", $what);
                return;
            }
        }
    };
}

/// Runs one of the reference's programs (`fail2ban-client`, ...).
pub fn run(root: &Path, program: &str, args: &[&str]) -> Output {
    Command::new("/usr/bin/python3")
        .arg(root.join("usr/bin").join(program))
        .args(args)
        .env("PYTHONPATH", root.join("usr/lib/python3/dist-packages"))
        .output()
        .expect("run /usr/bin/python3")
}

/// The reference's stock configuration tree.
pub fn stock_tree(root: &Path) -> PathBuf {
    root.join("etc/fail2ban")
}

/// The reference's Python package (sample logs, test filters, source).
pub fn package(root: &Path) -> PathBuf {
    root.join("usr/lib/python3/dist-packages/fail2ban")
}
