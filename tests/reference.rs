//! The reference fail2ban (Debian's package, pinned), fetched by
//! scripts/fetch-reference.sh and run from where it was extracted.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

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
