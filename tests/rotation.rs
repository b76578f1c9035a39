//! Log rotation under a steady writer, fail3ban-server side by side with
//! the reference fail2ban-server (issue 15, finding 5).
//!
//! One writer appends numbered failing lines, one distinct address each
//! (maxretry 1: a jail's total of failures is the number of lines it
//! saw), while the file is rotated; both servers follow the same file
//! with the same jail, and what each missed is compared. Run with
//! `--nocapture` to see the numbers (one `ROTATION` line per scenario).

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::server::parse_status;
use crate::util::{new_log, stamp, Server, Tree, WAIT};

/// Lines each scenario writes, and the pause between two of them: four
/// seconds of a log that takes 500 lines a second.
const LINES: u64 = 2000;
const EVERY: Duration = Duration::from_millis(2);
/// Rotations, evenly spread over the run.
const ROTATIONS: u64 = 6;
/// How long the writer goes on writing into the renamed file before it
/// opens the new one (rsyslog after logrotate's HUP).
const REOPEN_AFTER: Duration = Duration::from_millis(150);

/// How the file is rotated.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Rotation {
    /// logrotate's `create`: rename, create a new file, signal the daemon,
    /// which reopens the path a moment later.
    Rename,
    /// logrotate's `copytruncate`: copy, then truncate in place.
    CopyTruncate,
}

fn jail_conf(backend: &str) -> String {
    format!(
        "[rot]
enabled = true
filter = test
logpath = @T@/rot.log
backend = {backend}
maxretry = 1
action =
"
    )
}

/// The line numbered `n`: its address is 2001:db8::1:n.
fn line(n: u64) -> String {
    format!(
        "{} web1 test[4242]: auth failure from 2001:db8::1:{:x}\n",
        stamp(),
        n
    )
}

/// The reference fail2ban-server on a copy of `tree`'s configuration,
/// with its own socket, pid file, log and database; killed when dropped.
struct Reference {
    conf: PathBuf,
    sock: PathBuf,
    log: PathBuf,
    root: PathBuf,
    child: Child,
}

impl Reference {
    fn start(root: &Path, tree: &Tree) -> Reference {
        let own = tree.path("f2");
        let conf = own.join("conf");
        copy_dir(&tree.conf(), &conf);
        let o = own.display();
        fs::write(
            conf.join("fail2ban.conf"),
            format!(
                "[Definition]\nloglevel = INFO\nlogtarget = {o}/server.log\n\
                 socket = {o}/sock\npidfile = {o}/pid\ndbfile = {o}/db.sqlite3\n"
            ),
        )
        .unwrap();
        let child = Command::new("/usr/bin/python3")
            .arg(root.join("usr/bin/fail2ban-server"))
            .args(["-f", "-x", "-c"])
            .arg(&conf)
            .arg("-s")
            .arg(own.join("sock"))
            .arg("-p")
            .arg(own.join("pid"))
            .env("PYTHONPATH", root.join("usr/lib/python3/dist-packages"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start fail2ban-server");
        let r = Reference {
            conf,
            sock: own.join("sock"),
            log: own.join("server.log"),
            root: root.to_path_buf(),
            child,
        };
        let deadline = Instant::now() + WAIT;
        while r.client(&["ping"]).is_none() {
            assert!(
                Instant::now() < deadline,
                "fail2ban-server does not answer:\n{}",
                r.report()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        r
    }

    fn client(&self, args: &[&str]) -> Option<String> {
        let o = Command::new("/usr/bin/python3")
            .arg(self.root.join("usr/bin/fail2ban-client"))
            .arg("-c")
            .arg(&self.conf)
            .arg("-s")
            .arg(&self.sock)
            .args(args)
            .env(
                "PYTHONPATH",
                self.root.join("usr/lib/python3/dist-packages"),
            )
            .stdin(Stdio::null())
            .output()
            .expect("run fail2ban-client");
        o.status
            .success()
            .then(|| String::from_utf8_lossy(&o.stdout).into_owned())
    }

    fn report(&self) -> String {
        format!(
            "--- fail2ban's log\n{}",
            fs::read_to_string(&self.log).unwrap_or_default()
        )
    }
}

impl Drop for Reference {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for e in fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &to.join(e.file_name()));
        } else {
            fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    }
}

/// The two servers, asked the same question.
struct Pair<'a> {
    f3: Server<'a>,
    f2: Reference,
}

impl Pair<'_> {
    /// Failures each has counted in the jail: (fail3ban, fail2ban).
    fn failed(&mut self) -> (u64, u64) {
        let f3 = parse_status(&self.f3.ok(&["status", "rot"])).total_failed;
        let f2 = self
            .f2
            .client(&["status", "rot"])
            .map_or(0, |o| parse_status(&o).total_failed);
        (f3 as u64, f2 as u64)
    }

    /// Waits until both have counted `want`, or neither count has moved
    /// for 3 s (fail2ban's polling looks at least every 2 s).
    fn settle(&mut self, want: u64) -> (u64, u64) {
        let deadline = Instant::now() + WAIT;
        let mut last = self.failed();
        let mut since = Instant::now();
        loop {
            std::thread::sleep(Duration::from_millis(200));
            let now = self.failed();
            if now == (want, want) || Instant::now() > deadline {
                return now;
            }
            if now != last {
                (last, since) = (now, Instant::now());
            } else if since.elapsed() > Duration::from_secs(3) {
                return now;
            }
        }
    }

    fn report(&self) -> String {
        format!("{}\n{}", self.f3.report(), self.f2.report())
    }
}

/// What one writer reopening its log and one rotator share.
#[derive(Default)]
struct Hup {
    /// Set by the rotator once the file is renamed and a new one created.
    pending: AtomicBool,
    /// When it was set, in ms since the run started.
    at_ms: AtomicU64,
}

/// Appends `LINES` numbered lines (from 1) to `log` every `EVERY`, while
/// another thread rotates it `ROTATIONS` times.
fn write_and_rotate(log: &Path, rotation: Rotation) {
    let started = Instant::now();
    let run = EVERY * LINES as u32;
    let hup = Arc::new(Hup::default());
    let rotator = {
        let (log, hup) = (log.to_path_buf(), hup.clone());
        std::thread::spawn(move || {
            for i in 1..=ROTATIONS {
                let at = run * i as u32 / (ROTATIONS + 1) as u32;
                std::thread::sleep(at.saturating_sub(started.elapsed()));
                let old = log.with_extension(format!("log.{i}"));
                match rotation {
                    Rotation::Rename => {
                        fs::rename(&log, &old).unwrap();
                        File::create(&log).unwrap();
                        hup.at_ms
                            .store(started.elapsed().as_millis() as u64, Ordering::SeqCst);
                        hup.pending.store(true, Ordering::SeqCst);
                    }
                    Rotation::CopyTruncate => {
                        fs::copy(&log, &old).unwrap();
                        OpenOptions::new()
                            .write(true)
                            .open(&log)
                            .unwrap()
                            .set_len(0)
                            .unwrap();
                    }
                }
            }
        })
    };
    let open = || OpenOptions::new().append(true).open(log).unwrap();
    let mut f = open();
    for n in 1..=LINES {
        std::thread::sleep((EVERY * n as u32).saturating_sub(started.elapsed()));
        if hup.pending.load(Ordering::SeqCst) {
            let at = Duration::from_millis(hup.at_ms.load(Ordering::SeqCst));
            if started.elapsed() >= at + REOPEN_AFTER {
                hup.pending.store(false, Ordering::SeqCst);
                f = open();
            }
        }
        f.write_all(line(n).as_bytes()).unwrap();
    }
    rotator.join().unwrap();
}

/// Runs one scenario on both servers; returns the lines each lost, after
/// checking that neither counted a line twice.
fn lost(backend: &str, rotation: Rotation) -> (u64, u64) {
    let root = crate::prereq::reference();
    let tree = Tree::new(&jail_conf(backend));
    let log = tree.path("rot.log");
    new_log(&log);
    let f3 = Server::start(&tree);
    let f2 = Reference::start(root, &tree);
    let mut pair = Pair { f3, f2 };
    // Line 0 tells when both are reading the file.
    fs::OpenOptions::new()
        .append(true)
        .open(&log)
        .unwrap()
        .write_all(line(0).as_bytes())
        .unwrap();
    let seen = pair.settle(1);
    assert_eq!(seen, (1, 1), "the first line\n{}", pair.report());
    write_and_rotate(&log, rotation);
    let (f3, f2) = pair.settle(LINES + 1);
    assert!(
        f3 <= LINES + 1 && f2 <= LINES + 1,
        "a line counted twice: fail3ban {f3}, fail2ban {f2} of {}\n{}",
        LINES + 1,
        pair.report()
    );
    let lost = (LINES + 1 - f3, LINES + 1 - f2);
    println!(
        "ROTATION {rotation:?} backend={backend}: {LINES} lines written, {ROTATIONS} rotations; \
         lost by fail3ban {}, by fail2ban {}",
        lost.0, lost.1
    );
    if lost.0 > 0 {
        eprintln!("{}", pair.report());
    }
    lost
}

/// Rename and create, the writer reopening 150 ms later, with inotify:
/// the lines written into the renamed file are read too.
#[test]
#[ignore = "needs the reference fail2ban (scripts/fetch-reference.sh) and python3"]
fn rename_rotation_loses_no_line() {
    let (f3, f2) = lost("auto", Rotation::Rename);
    assert_eq!(f3, 0, "fail3ban lost {f3} lines (fail2ban {f2})");
}

/// Rename and create with `backend = polling`.
#[test]
#[ignore = "needs the reference fail2ban (scripts/fetch-reference.sh) and python3"]
fn rename_polling_loses_no_more_than_fail2ban() {
    let (f3, f2) = lost("polling", Rotation::Rename);
    assert!(f3 <= f2, "fail3ban lost {f3} lines, fail2ban {f2}");
}

/// copytruncate with inotify. A line written just before the truncation
/// and not read yet is gone for any tail: what each server loses is the
/// lines written while it was not scheduled, a few milliseconds on a
/// busy machine. So fail3ban may lose the lines of 10 ms (5 lines) per
/// rotation more than fail2ban did in the same run; a slower reader (a
/// poll, a coalescing pause) loses far more.
#[test]
#[ignore = "needs the reference fail2ban (scripts/fetch-reference.sh) and python3"]
fn copytruncate_loses_no_more_than_fail2ban() {
    let (f3, f2) = lost("auto", Rotation::CopyTruncate);
    let race = ROTATIONS * 5;
    assert!(
        f3 <= f2 + race,
        "fail3ban lost {f3} lines, fail2ban {f2} (+{race} for scheduling)"
    );
}

/// copytruncate with `backend = polling`: fail3ban looks as often as
/// fail2ban does.
#[test]
#[ignore = "needs the reference fail2ban (scripts/fetch-reference.sh) and python3"]
fn copytruncate_polling_loses_no_more_than_fail2ban() {
    let (f3, f2) = lost("polling", Rotation::CopyTruncate);
    assert!(f3 <= f2, "fail3ban lost {f3} lines, fail2ban {f2}");
}

/// A glob logpath that matched one file at start follows a matching file
/// created later, within a second.
#[test]
fn glob_picks_up_new_files() {
    let tree = Tree::new(
        "[globbed]
enabled = true
filter = test
logpath = @T@/logs/*.log
maxretry = 1
action =
",
    );
    fs::create_dir(tree.path("logs")).unwrap();
    new_log(tree.path("logs/a.log"));
    let mut s = Server::start(&tree);
    let a = tree.path("logs/a.log");
    crate::server::fail(&a, "192.0.2.1", 1);
    s.wait("a.log is read", |s| {
        parse_status(&s.ok(&["status", "globbed"])).total_failed == 1
    });
    let b = tree.path("logs/b.log");
    crate::server::fail(&b, "192.0.2.20", 1);
    let written = Instant::now();
    let deadline = written + Duration::from_secs(1);
    loop {
        let failed = parse_status(&s.ok(&["status", "globbed"])).total_failed;
        if failed == 2 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "b.log, created after the start, not read within 1 s (total failed {failed})\n{}",
            s.report()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}
