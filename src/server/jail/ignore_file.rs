//! `ignoreip = file:<path>` (fail2ban 1.1.1): addresses and networks read
//! from a file, reread when it changes.
//!
//! The jail checks an address under its lock, where no file may be opened:
//! the check only looks at the entries last read, and at most once a second
//! (fail2ban's latency) starts a thread that looks at the file's metadata
//! and rereads it when it changed. The first reading happens where the
//! jail's ignore list is built, off the runtime, so that no address in the
//! file is ever banned for want of having read it.

use std::fs::File;
use std::io::Read;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use crate::filter::ipaddr::{parse_unspec, Addr, Fid};
use crate::jail::ignore::{file_item_text, in_net, AddrSet};

/// The largest list read: a bigger file is refused (and the last list
/// kept), so that a mistaken path costs no memory.
const MAX_BYTES: u64 = 1 << 20;

/// Seconds between two looks at the file while checks come.
const LATENCY: f64 = 1.0;

/// Seconds to wait after a failed reading before trying again (fail2ban's
/// minute, which keeps a broken file from flooding the log).
const RETRY: f64 = 60.0;

/// What tells one version of the file from another.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    dev: u64,
    ino: u64,
    size: u64,
    mtime: i64,
    mtime_nsec: i64,
}

impl Stamp {
    fn of(m: &std::fs::Metadata) -> Stamp {
        Stamp {
            dev: m.dev(),
            ino: m.ino(),
            size: m.size(),
            mtime: m.mtime(),
            mtime_nsec: m.mtime_nsec(),
        }
    }
}

#[derive(Debug, Default)]
struct Poll {
    next_check: f64,
    stamp: Option<Stamp>,
}

#[derive(Debug)]
struct Shared {
    jail: String,
    path: PathBuf,
    entries: RwLock<Vec<Addr>>,
    poll: Mutex<Poll>,
    refreshing: AtomicBool,
}

/// One ignoreip file of one jail.
#[derive(Debug, Clone)]
pub(crate) struct IgnoreFile(Arc<Shared>);

/// Why a file could not be read.
#[derive(Debug, thiserror::Error)]
enum ReadError {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("not a regular file")]
    NotRegular,
    #[error("larger than {MAX_BYTES} bytes")]
    TooLarge,
}

impl IgnoreFile {
    /// Reads `path` now (blocking: call it off the runtime, outside locks).
    pub(crate) fn open(jail: &str, path: &Path) -> IgnoreFile {
        let f = IgnoreFile(Arc::new(Shared {
            jail: jail.to_string(),
            path: path.to_path_buf(),
            entries: RwLock::new(Vec::new()),
            poll: Mutex::new(Poll::default()),
            refreshing: AtomicBool::new(false),
        }));
        f.0.refresh();
        f
    }

    /// Starts a look at the file on a thread of its own, unless one runs.
    fn refresh_in_background(&self) {
        if self.0.refreshing.swap(true, Ordering::AcqRel) {
            return;
        }
        let shared = self.0.clone();
        let spawned = std::thread::Builder::new()
            .name("f3-ignorefile".into())
            .spawn(move || {
                shared.refresh();
                shared.refreshing.store(false, Ordering::Release);
            });
        if let Err(e) = spawned {
            tracing::warn!("[{}] cannot look at {:?}: {e}", self.0.jail, self.0.path);
            self.0.refreshing.store(false, Ordering::Release);
        }
    }
}

impl Shared {
    /// Rereads the file when its metadata changed since the last reading.
    fn refresh(&self) {
        let known = self.poll.lock().expect("ignore file poll").stamp;
        let stamp = std::fs::metadata(&self.path).map(|m| Stamp::of(&m));
        if let (Ok(now), Some(known)) = (&stamp, known) {
            if *now == known {
                return;
            }
        }
        match read_bounded(&self.path) {
            Ok((text, stamp)) => {
                let (entries, bad) = parse_list(&text);
                for word in bad {
                    tracing::warn!(
                        "[{}] {}: {word:?} is no address or network, skipped",
                        self.jail,
                        file_item_text(&self.path)
                    );
                }
                tracing::info!(
                    "[{}] {}: {} addresses or networks read",
                    self.jail,
                    file_item_text(&self.path),
                    entries.len()
                );
                *self.entries.write().expect("ignore file entries") = entries;
                self.poll.lock().expect("ignore file poll").stamp = Some(stamp);
            }
            Err(e) => {
                // The last list stays: an address ignored a moment ago is
                // not banned because its file is being replaced.
                tracing::warn!(
                    "Retrieving IPs set from {:?} failed: {e}",
                    self.path.display().to_string()
                );
                self.poll.lock().expect("ignore file poll").next_check += RETRY;
            }
        }
    }
}

impl AddrSet for IgnoreFile {
    fn covers(&self, a: &Addr, now: f64) -> bool {
        let due = {
            let mut p = self.0.poll.lock().expect("ignore file poll");
            let due = now >= p.next_check;
            if due {
                p.next_check = now + LATENCY;
            }
            due
        };
        if due {
            self.refresh_in_background();
        }
        self.0
            .entries
            .read()
            .expect("ignore file entries")
            .iter()
            .any(|e| e == a || (!e.is_single() && in_net(a, e)))
    }
}

/// The file's text and the metadata of what was read. A FIFO or device
/// at the path is refused without blocking on it.
fn read_bounded(path: &Path) -> Result<(String, Stamp), ReadError> {
    let f = File::options()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(path)?;
    let meta = f.metadata()?;
    if !meta.is_file() {
        return Err(ReadError::NotRegular);
    }
    let mut bytes = Vec::new();
    f.take(MAX_BYTES + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > MAX_BYTES {
        return Err(ReadError::TooLarge);
    }
    Ok((
        String::from_utf8_lossy(&bytes).into_owned(),
        Stamp::of(&meta),
    ))
}

/// The addresses and networks of a list: `#` starts a comment, items are
/// separated by white space or commas, as `ignoreip` takes them. Names are
/// not looked up (a lookup here would hold the list back): they come back
/// as refused words, with anything else that is no address.
fn parse_list(text: &str) -> (Vec<Addr>, Vec<String>) {
    let mut entries = Vec::new();
    let mut bad = Vec::new();
    for line in text.lines() {
        let line = line.split('#').next().unwrap_or_default();
        for word in line
            .split(|c: char| c.is_whitespace() || c == ',')
            .filter(|w| !w.is_empty())
        {
            match parse_unspec(word) {
                Fid::Addr(a) => {
                    if !entries.contains(&a) {
                        entries.push(a);
                    }
                }
                _ => bad.push(word.to_string()),
            }
        }
    }
    (entries, bad)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_list_takes_comments_commas_and_networks() {
        let (e, bad) = parse_list(
            "# trusted\n192.0.2.7, 198.51.100.0/24 # office\n\n  2001:db8::/32\tnot-an-ip\n",
        );
        let shown: Vec<String> = e.iter().map(Addr::to_string).collect();
        assert_eq!(shown, ["192.0.2.7", "198.51.100.0/24", "2001:db8::/32"]);
        assert_eq!(bad, ["not-an-ip"]);
    }
}
