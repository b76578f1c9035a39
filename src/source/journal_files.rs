//! The journal files a journal source opens when rotated ones are left out
//! (fail2ban 1.1.1's `backend = systemd[rotated=off]`, its default).
//!
//! journald rotates `system.journal` by renaming it `system@<ids>.journal`
//! (or `system.journal~` when it was not closed cleanly) and starting a new
//! one; a busy host keeps hundreds of such archives, which sd-journal maps
//! and merges on every open. Only the current files are opened then, and
//! since sd-journal does not follow new files among files opened by name,
//! the source looks at the listing again while it waits and reopens after
//! its last entry when a file came or went.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// The system's journal directories, persistent then volatile; each holds
/// a directory per machine id.
const SYSTEM_DIRS: &[&str] = &["/var/log/journal", "/run/log/journal"];

/// The current journal files, as (path, inode), sorted: the `.journal`
/// files in `dir` (the system's journal directories without it) and in
/// the directories right under it, except archived ones. `system_only`
/// keeps `system.journal` files only, as the SD_JOURNAL_SYSTEM flag does.
pub(crate) fn current(dir: Option<&str>, system_only: bool) -> Vec<(PathBuf, u64)> {
    let dirs: Vec<&str> = match dir {
        Some(d) => vec![d],
        None => SYSTEM_DIRS.to_vec(),
    };
    let mut out = Vec::new();
    for d in dirs {
        let Ok(entries) = std::fs::read_dir(d) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                if let Ok(inner) = std::fs::read_dir(&p) {
                    out.extend(inner.flatten().filter_map(|f| keep(&f.path(), system_only)));
                }
            } else if let Some(k) = keep(&p, system_only) {
                out.push(k);
            }
        }
    }
    out.sort();
    out
}

fn keep(p: &Path, system_only: bool) -> Option<(PathBuf, u64)> {
    let name = p.file_name()?.to_str()?;
    let stem = name.strip_suffix(".journal")?;
    if stem.contains('@') || (system_only && stem != "system") {
        return None;
    }
    let meta = std::fs::metadata(p).ok()?;
    meta.is_file().then(|| (p.to_path_buf(), meta.ino()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn archives_are_left_out() {
        let d = tempfile::tempdir().unwrap();
        let m = d.path().join("0123");
        std::fs::create_dir(&m).unwrap();
        for n in [
            "system.journal",
            "system@00a-01-02.journal",
            "system.journal~",
            "user-1000.journal",
            "user-1000@00b-01-02.journal",
        ] {
            std::fs::write(m.join(n), "").unwrap();
        }
        let names = |v: Vec<(PathBuf, u64)>| -> Vec<String> {
            v.iter()
                .map(|(p, _)| p.file_name().unwrap().to_string_lossy().into_owned())
                .collect()
        };
        let dir = d.path().to_str();
        assert_eq!(
            names(current(dir, false)),
            ["system.journal", "user-1000.journal"]
        );
        assert_eq!(names(current(dir, true)), ["system.journal"]);
    }
}
