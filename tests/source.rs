//! The file and journal sources on real files in temp dirs: appends,
//! rotation, restarts at saved positions, globs, hostile lines, both file
//! backends, and journals written by systemd-journal-remote.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use fail3ban::source::{
    Backend, FileBatch, FilePosition, FileSource, FileSourceOptions, JournalOptions, JournalSource,
    JournalStart, LogPath, SourceError,
};

use crate::prereq::Need;
use crate::util::rt;

const WAIT: Duration = Duration::from_secs(10);

fn append(p: &Path, data: &[u8]) {
    let mut f = OpenOptions::new()
        .create(true)
        .append(true)
        .open(p)
        .unwrap();
    f.write_all(data).unwrap();
}

fn opts(paths: Vec<LogPath>, backend: Backend) -> FileSourceOptions {
    let mut o = FileSourceOptions::new("test", paths);
    o.backend = backend;
    o.poll_interval = Duration::from_millis(30);
    o
}

/// Collects lines until `n` have arrived (or panics after WAIT).
async fn take(src: &mut FileSource, n: usize) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let deadline = tokio::time::Instant::now() + WAIT;
    while out.len() < n {
        let b: FileBatch = tokio::time::timeout_at(deadline, src.next())
            .await
            .unwrap_or_else(|_| {
                let tail = &out[out.len().saturating_sub(5)..];
                let mut gaps = Vec::new();
                for w in out.windows(2) {
                    let num = |s: &String| s.rsplit(' ').next().and_then(|x| x.parse::<i64>().ok());
                    if let (Some(a), Some(b)) = (num(&w[0]), num(&w[1])) {
                        if b != a + 1 {
                            gaps.push((a, b));
                        }
                    }
                }
                panic!(
                    "timed out with {} of {n} lines, ending {tail:?}, gaps {gaps:?}",
                    out.len()
                )
            })
            .expect("source ended");
        out.extend(b.lines.into_iter().map(|l| l.text));
    }
    out
}

/// Asserts no line arrives within a short while.
async fn quiet(src: &mut FileSource) {
    let deadline = tokio::time::Instant::now() + Duration::from_millis(250);
    while let Ok(b) = tokio::time::timeout_at(deadline, src.next()).await {
        let b = b.expect("source ended");
        assert!(b.lines.is_empty(), "unexpected lines: {:?}", b.lines);
    }
}

fn numbered(prefix: &str, r: std::ops::Range<usize>) -> Vec<String> {
    r.map(|i| format!("{prefix} {i}")).collect()
}

fn lines_bytes(v: &[String]) -> Vec<u8> {
    let mut s = String::new();
    for l in v {
        s.push_str(l);
        s.push('\n');
    }
    s.into_bytes()
}

const BACKENDS: [Backend; 2] = [Backend::Inotify, Backend::Polling];

/// A scenario run on one backend: appends, a partial line, rename
/// rotation, copytruncate, deletion and re-creation. Returns all lines.
fn scenario(backend: Backend) -> Vec<String> {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("app.log");
    let rt = rt();
    rt.block_on(async {
        append(&p, &lines_bytes(&numbered("pre", 0..3)));
        let mut src =
            FileSource::spawn(opts(vec![LogPath::head(p.to_str().unwrap())], backend)).unwrap();
        assert_eq!(src.backend(), backend);
        let mut all = take(&mut src, 3).await;
        append(&p, b"partial ");
        quiet(&mut src).await;
        append(&p, b"done\r\nnext\n");
        all.extend(take(&mut src, 2).await);
        // rename and create
        append(&p, b"last of old\n");
        fs::rename(&p, d.path().join("app.log.1")).unwrap();
        append(&p, b"first of new\n");
        all.extend(take(&mut src, 2).await);
        // copytruncate
        fs::copy(&p, d.path().join("app.log.2")).unwrap();
        OpenOptions::new()
            .write(true)
            .open(&p)
            .unwrap()
            .set_len(0)
            .unwrap();
        append(&p, b"after truncate\n");
        all.extend(take(&mut src, 1).await);
        // deleted, then back
        fs::remove_file(&p).unwrap();
        quiet(&mut src).await;
        append(&p, b"recreated\n");
        all.extend(take(&mut src, 1).await);
        quiet(&mut src).await;
        src.stop().await;
        all
    })
}

#[test]
fn inotify_and_polling_give_the_same_lines() {
    let want: Vec<String> = [
        "pre 0",
        "pre 1",
        "pre 2",
        "partial done",
        "next",
        "last of old",
        "first of new",
        "after truncate",
        "recreated",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    for b in BACKENDS {
        assert_eq!(scenario(b), want, "backend {b:?}");
    }
}

/// A writer appends while rotating by rename every 700 lines and by
/// copytruncate once it has been read; every line arrives once, in order.
#[test]
fn rotation_loses_and_duplicates_nothing() {
    for backend in BACKENDS {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("r.log");
        let rt = rt();
        rt.block_on(async {
            append(&p, b"");
            let mut src =
                FileSource::spawn(opts(vec![LogPath::head(p.to_str().unwrap())], backend)).unwrap();
            // a rotation before the source ever saw the file cannot be
            // followed: wait until it has opened it
            let b = tokio::time::timeout(WAIT, src.next())
                .await
                .unwrap()
                .unwrap();
            assert!(b.lines.is_empty());
            let total = 5000;
            // The writer renames while lines the source has not read yet are
            // in the old file; it then waits until the source has seen a
            // line of the new file, since a file created and rotated away
            // before the source looks at its path cannot be followed.
            let (ack_tx, ack_rx) = std::sync::mpsc::channel::<usize>();
            let writer = {
                let p = p.clone();
                let dir = d.path().to_path_buf();
                std::thread::spawn(move || {
                    let mut f = OpenOptions::new()
                        .create(true)
                        .append(true)
                        .open(&p)
                        .unwrap();
                    let mut acked = 0;
                    for i in 0..total {
                        writeln!(f, "line {i}").unwrap();
                        if i % 700 == 0 && i > 0 {
                            while acked < i {
                                acked = ack_rx.recv_timeout(WAIT).expect("source stalled");
                            }
                        }
                        if i % 700 == 699 {
                            fs::rename(&p, dir.join(format!("r.log.{i}"))).unwrap();
                            f = OpenOptions::new()
                                .create(true)
                                .append(true)
                                .open(&p)
                                .unwrap();
                        }
                        if i % 50 == 0 {
                            std::thread::sleep(Duration::from_millis(1));
                        }
                    }
                })
            };
            let mut got: Vec<String> = Vec::new();
            let deadline = tokio::time::Instant::now() + WAIT;
            while got.len() < total {
                let b = tokio::time::timeout_at(deadline, src.next())
                    .await
                    .unwrap_or_else(|_| panic!("{backend:?}: timed out at {} lines", got.len()))
                    .unwrap();
                got.extend(b.lines.into_iter().map(|l| l.text));
                let _ = ack_tx.send(got.len().saturating_sub(1));
            }
            writer.join().unwrap();
            assert_eq!(got, numbered("line", 0..total), "backend {backend:?}");
            quiet(&mut src).await;
            // copytruncate after everything was read: nothing is lost
            // except what logrotate itself loses (nothing, here).
            OpenOptions::new()
                .write(true)
                .open(&p)
                .unwrap()
                .set_len(0)
                .unwrap();
            append(&p, &lines_bytes(&numbered("again", 0..10)));
            assert_eq!(take(&mut src, 10).await, numbered("again", 0..10));
            src.stop().await;
        });
    }
}

/// A file truncated and refilled past the old offset between two looks is
/// noticed by its first line.
#[test]
fn truncated_and_refilled_between_polls() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("t.log");
    let rt = rt();
    rt.block_on(async {
        append(&p, b"2024-01-01 a\n");
        let mut o = opts(vec![LogPath::head(p.to_str().unwrap())], Backend::Polling);
        o.poll_interval = Duration::from_millis(300);
        let mut src = FileSource::spawn(o).unwrap();
        assert_eq!(take(&mut src, 1).await, ["2024-01-01 a"]);
        fs::write(&p, b"2024-01-02 b\n2024-01-02 c\n2024-01-02 d\n").unwrap();
        assert_eq!(
            take(&mut src, 3).await,
            ["2024-01-02 b", "2024-01-02 c", "2024-01-02 d"]
        );
        src.stop().await;
    });
}

#[test]
fn restart_at_saved_position() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("s.log");
    let path = p.to_str().unwrap().to_string();
    let rt = rt();
    rt.block_on(async {
        append(&p, &lines_bytes(&numbered("a", 0..5)));
        let mut src = FileSource::spawn(opts(vec![LogPath::head(&path)], Backend::Auto)).unwrap();
        assert_eq!(take(&mut src, 5).await, numbered("a", 0..5));
        append(&p, b"half a li");
        quiet(&mut src).await;
        let saved = src.stop().await;
        assert_eq!(saved.len(), 1);
        assert_eq!(saved[0].offset, fs::metadata(&p).unwrap().len() - 9);

        // written while stopped
        append(&p, b"ne\n");
        append(&p, &lines_bytes(&numbered("b", 0..3)));
        let mut o = opts(vec![LogPath::head(&path)], Backend::Auto);
        o.saved = saved.clone();
        let mut src = FileSource::spawn(o).unwrap();
        let mut want = vec!["half a line".to_string()];
        want.extend(numbered("b", 0..3));
        assert_eq!(take(&mut src, 4).await, want);
        quiet(&mut src).await;
        src.stop().await;

        // the file replaced while stopped: its first line differs
        fs::write(&p, lines_bytes(&numbered("new", 0..20))).unwrap();
        let mut o = opts(vec![LogPath::head(&path)], Backend::Auto);
        o.saved = saved;
        let mut src = FileSource::spawn(o).unwrap();
        assert_eq!(take(&mut src, 20).await, numbered("new", 0..20));
        src.stop().await;
    });
}

#[test]
fn tail_starts_at_the_end() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("t.log");
    let rt = rt();
    rt.block_on(async {
        append(&p, b"old 1\nold 2\n");
        let mut src = FileSource::spawn(opts(
            vec![LogPath::tail(p.to_str().unwrap())],
            Backend::Auto,
        ))
        .unwrap();
        // the first batch only reports where we start
        let b = tokio::time::timeout(WAIT, src.next())
            .await
            .unwrap()
            .unwrap();
        assert!(b.lines.is_empty());
        assert_eq!(b.offset, 12);
        assert!(b.in_operation);
        append(&p, b"new 1\n");
        assert_eq!(take(&mut src, 1).await, ["new 1"]);
        assert_eq!(
            src.positions(),
            [FilePosition {
                path: p.clone(),
                md5: b.md5.to_string(),
                offset: 18
            }]
        );
        src.stop().await;
    });
}

#[test]
fn glob_picks_up_new_files() {
    for backend in BACKENDS {
        let d = tempfile::tempdir().unwrap();
        let pat = d.path().join("*.log");
        let rt = rt();
        rt.block_on(async {
            append(&d.path().join("a.log"), b"a1\n");
            append(&d.path().join("ignored.txt"), b"no\n");
            fs::create_dir(d.path().join("dir.log")).unwrap();
            let mut src =
                FileSource::spawn(opts(vec![LogPath::tail(pat.to_str().unwrap())], backend))
                    .unwrap();
            quiet(&mut src).await;
            // a file that appears later is new: read from its start,
            // even for a tail logpath
            append(&d.path().join("b.log"), b"b1\nb2\n");
            assert_eq!(take(&mut src, 2).await, ["b1", "b2"], "{backend:?}");
            append(&d.path().join("a.log"), b"a2\n");
            assert_eq!(take(&mut src, 1).await, ["a2"]);
            src.stop().await;
        });
    }
}

#[test]
fn glob_matching_rotated_names_does_not_reread() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("x.log");
    let pat = d.path().join("x.log*");
    let rt = rt();
    rt.block_on(async {
        append(&p, &lines_bytes(&numbered("x", 0..3)));
        let mut src = FileSource::spawn(opts(
            vec![LogPath::head(pat.to_str().unwrap())],
            Backend::Inotify,
        ))
        .unwrap();
        assert_eq!(take(&mut src, 3).await, numbered("x", 0..3));
        fs::rename(&p, d.path().join("x.log.1")).unwrap();
        append(&p, b"fresh\n");
        assert_eq!(take(&mut src, 1).await, ["fresh"]);
        quiet(&mut src).await;
        src.stop().await;
    });
}

#[test]
fn directory_where_a_log_should_be() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("odd.log");
    fs::create_dir(&p).unwrap();
    let rt = rt();
    rt.block_on(async {
        let mut src = FileSource::spawn(opts(
            vec![LogPath::head(p.to_str().unwrap())],
            Backend::Auto,
        ))
        .unwrap();
        quiet(&mut src).await;
        fs::remove_dir(&p).unwrap();
        append(&p, b"now a file\n");
        assert_eq!(take(&mut src, 1).await, ["now a file"]);
        src.stop().await;
    });
}

#[test]
fn missing_file_appears_later() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("sub/late.log");
    let rt = rt();
    rt.block_on(async {
        let mut src = FileSource::spawn(opts(
            vec![LogPath::tail(p.to_str().unwrap())],
            Backend::Inotify,
        ))
        .unwrap();
        quiet(&mut src).await;
        fs::create_dir(d.path().join("sub")).unwrap();
        append(&p, b"hello\n");
        // first seen after startup: read from its start
        assert_eq!(take(&mut src, 1).await, ["hello"]);
        src.stop().await;
    });
}

#[test]
fn hostile_lines() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("h.log");
    let rt = rt();
    rt.block_on(async {
        let mut data = b"before\n".to_vec();
        // 2 MiB without a newline, then a line that must not be forged
        // out of the long line's tail
        data.extend(std::iter::repeat_n(b'A', 2 << 20));
        data.extend_from_slice(b" sshd: Failed password from 6.6.6.6\n");
        data.extend_from_slice(b"bad \xff\xfe utf8\n");
        data.extend_from_slice(b"nul\0inside\n");
        data.extend_from_slice(b"crlf\r\n");
        append(&p, &data);
        let mut src = FileSource::spawn(opts(
            vec![LogPath::head(p.to_str().unwrap())],
            Backend::Auto,
        ))
        .unwrap();
        let got = take(&mut src, 5).await;
        assert_eq!(got[0], "before");
        assert_eq!(got[1].len(), 1 << 20);
        assert!(got[1].bytes().all(|b| b == b'A'));
        assert_eq!(got[2], "bad \u{fffd}\u{fffd} utf8");
        assert_eq!(got[3], "nul\0inside");
        assert_eq!(got[4], "crlf");
        quiet(&mut src).await;
        let pos = src.stop().await;
        assert_eq!(pos[0].offset, data.len() as u64);
    });
}

#[test]
fn latin1_logencoding() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("l.log");
    append(&p, b"user j\xfcrgen\n");
    let rt = rt();
    rt.block_on(async {
        let mut o = opts(vec![LogPath::head(p.to_str().unwrap())], Backend::Auto);
        o.encoding = fail3ban::source::LogEncoding::new("latin-1").unwrap();
        let mut src = FileSource::spawn(o).unwrap();
        assert_eq!(take(&mut src, 1).await, ["user j\u{fc}rgen"]);
        src.stop().await;
    });
}

/// Not a timed assertion: prints lines per second read while a writer
/// appends, in 64 KiB writes or one write per line, for each backend.
#[test]
fn throughput() {
    for (backend, chunk) in [
        (Backend::Inotify, 64 * 1024),
        (Backend::Polling, 64 * 1024),
        (Backend::Inotify, 1),
    ] {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("fast.log");
        let n = 400_000usize;
        let rt = rt();
        rt.block_on(async {
            append(&p, b"");
            let mut src =
                FileSource::spawn(opts(vec![LogPath::head(p.to_str().unwrap())], backend))
                    .unwrap();
            let start = Instant::now();
            let writer = {
                let p = p.clone();
                std::thread::spawn(move || {
                    let mut f = OpenOptions::new().append(true).open(&p).unwrap();
                    let mut buf = Vec::with_capacity(70_000);
                    for i in 0..n {
                        writeln!(
                            buf,
                            "Jan  1 00:00:00 host sshd[1234]: Failed password for root from 192.0.2.{} port {i} ssh2",
                            i % 250
                        )
                        .unwrap();
                        if buf.len() >= chunk {
                            f.write_all(&buf).unwrap();
                            buf.clear();
                        }
                    }
                    f.write_all(&buf).unwrap();
                })
            };
            let mut count = 0;
            let mut last = String::new();
            let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
            while count < n {
                let b = tokio::time::timeout_at(deadline, src.next())
                    .await
                    .expect("throughput run timed out")
                    .unwrap();
                count += b.lines.len();
                if let Some(l) = b.lines.last() {
                    last.clone_from(&l.text);
                }
            }
            writer.join().unwrap();
            let secs = start.elapsed().as_secs_f64();
            assert_eq!(count, n);
            assert!(last.ends_with(&format!("port {} ssh2", n - 1)));
            println!(
                "source throughput ({backend:?}, writes of {chunk}+ bytes): {n} lines in {secs:.3} s = {:.0} lines/s",
                n as f64 / secs
            );
            src.stop().await;
        });
    }
}

// ---------------------------------------------------------------- journal

/// Writes `entries` (fields, in journal export format) into `out` (a
/// `.journal` file) with systemd-journal-remote, which a test that calls
/// it needs ([`Need::JournalRemote`]).
fn make_journal(out: &Path, entries: &[Vec<(&str, String)>]) {
    let raw: Vec<Vec<(&str, Vec<u8>)>> = entries
        .iter()
        .map(|e| {
            e.iter()
                .map(|(k, v)| (*k, v.clone().into_bytes()))
                .collect()
        })
        .collect();
    crate::util::make_journal_raw(out, &raw);
}

const BOOT: &str = "0123456789abcdef0123456789abcdef";
const T0: u64 = 1_700_000_000_000_000;

fn entry(i: u64, unit: &str, comm: &str, msg: &str) -> Vec<(&'static str, String)> {
    vec![
        ("__REALTIME_TIMESTAMP", (T0 + i * 1_000_000).to_string()),
        ("__MONOTONIC_TIMESTAMP", (1_000_000 + i).to_string()),
        ("_BOOT_ID", BOOT.to_string()),
        ("_HOSTNAME", "web1".to_string()),
        ("_SYSTEMD_UNIT", unit.to_string()),
        ("_COMM", comm.to_string()),
        ("_PID", (100 + i).to_string()),
        ("MESSAGE", msg.to_string()),
    ]
}

async fn take_journal(src: &mut JournalSource, n: usize) -> Vec<fail3ban::source::JournalLine> {
    let mut out = Vec::new();
    let deadline = tokio::time::Instant::now() + WAIT;
    while out.len() < n {
        let b = tokio::time::timeout_at(deadline, src.next())
            .await
            .unwrap_or_else(|_| panic!("timed out with {} of {n} entries", out.len()))
            .expect("journal source ended");
        out.extend(b.lines);
    }
    out
}

async fn journal_quiet(src: &mut JournalSource) {
    if let Ok(b) = tokio::time::timeout(Duration::from_millis(300), src.next()).await {
        panic!("unexpected entries: {:?}", b.map(|b| b.lines));
    }
}

fn jopts(files: &Path, matches: &[&str]) -> JournalOptions {
    let mut o = JournalOptions::new("test");
    o.files = vec![files.to_str().unwrap().to_string()];
    if !matches.is_empty() {
        o.matches = vec![matches.iter().map(|s| s.to_string()).collect()];
    }
    o.start = JournalStart::Head;
    o
}

#[test]
#[ignore = "needs systemd-journal-remote"]
fn journal_matches_and_format() {
    let d = tempfile::tempdir().unwrap();
    let j = d.path().join("a.journal");
    let entries = vec![
        entry(
            0,
            "sshd.service",
            "sshd",
            "Failed password for root from 192.0.2.1",
        ),
        entry(1, "cron.service", "cron", "nothing to see"),
        entry(2, "other.service", "sshd", "multi\nline"),
        entry(3, "sshd.service", "sshd", "Accepted key"),
    ];
    make_journal(&j, &entries);
    let rt = rt();
    rt.block_on(async {
        // `+` ORs: the sshd unit, or any process named sshd
        let mut src = JournalSource::spawn(jopts(
            &d.path().join("*.journal"),
            &["_SYSTEMD_UNIT=sshd.service", "+", "_COMM=sshd"],
        ))
        .unwrap();
        let got = take_journal(&mut src, 3).await;
        let texts: Vec<&str> = got.iter().map(|l| l.text.as_str()).collect();
        assert_eq!(
            texts,
            [
                "web1 sshd[100]: Failed password for root from 192.0.2.1",
                "web1 sshd[102]: multi\\nline",
                "web1 sshd[103]: Accepted key",
            ]
        );
        assert_eq!(got[0].time, 1_700_000_000.0);
        assert_eq!(got[2].time, 1_700_000_003.0);
        assert!(got[0].date_text.ends_with(' '));
        assert_eq!(got[0].date_text.len(), "2023-11-14T22:13:20+00:00 ".len());
        journal_quiet(&mut src).await;
        let pos = src.stop().await.unwrap();
        assert_eq!(pos.cursor, got[2].cursor);

        // words of one value are ANDed
        let mut src = JournalSource::spawn(jopts(
            &j,
            &["_SYSTEMD_UNIT=sshd.service", "_COMM=sshd", "_PID=103"],
        ))
        .unwrap();
        let got = take_journal(&mut src, 1).await;
        assert_eq!(got[0].text, "web1 sshd[103]: Accepted key");
        journal_quiet(&mut src).await;
        src.stop().await;

        // two journalmatch values are ORed
        let mut o = jopts(&j, &[]);
        o.matches = vec![vec!["_COMM=cron".into()], vec!["_PID=103".into()]];
        let mut src = JournalSource::spawn(o).unwrap();
        let got = take_journal(&mut src, 2).await;
        assert_eq!(got[0].text, "web1 cron[101]: nothing to see");
        assert_eq!(got[1].text, "web1 sshd[103]: Accepted key");
        journal_quiet(&mut src).await;
        src.stop().await;
    });
}

#[test]
#[ignore = "needs systemd-journal-remote"]
fn journal_cursor_and_time_restart() {
    let d = tempfile::tempdir().unwrap();
    let j = d.path().join("a.journal");
    let entries: Vec<_> = (0..6)
        .map(|i| entry(i, "sshd.service", "sshd", &format!("msg {i}")))
        .collect();
    make_journal(&j, &entries);
    let rt = rt();
    rt.block_on(async {
        let mut o = jopts(&j, &["_SYSTEMD_UNIT=sshd.service"]);
        o.batch_lines = 2;
        let mut src = JournalSource::spawn(o).unwrap();
        let first = take_journal(&mut src, 2).await;
        assert_eq!(first[1].text, "web1 sshd[101]: msg 1");
        let pos = src.position().unwrap().clone();
        src.stop().await;

        let mut o = jopts(&j, &["_SYSTEMD_UNIT=sshd.service"]);
        o.start = JournalStart::Cursor(pos.cursor.clone());
        let mut src = JournalSource::spawn(o).unwrap();
        let rest = take_journal(&mut src, 4).await;
        assert_eq!(rest[0].text, "web1 sshd[102]: msg 2");
        assert_eq!(rest[3].text, "web1 sshd[105]: msg 5");
        journal_quiet(&mut src).await;
        src.stop().await;

        let mut o = jopts(&j, &[]);
        o.start = JournalStart::Time(1_700_000_004.0);
        let mut src = JournalSource::spawn(o).unwrap();
        let rest = take_journal(&mut src, 2).await;
        assert_eq!(rest[0].text, "web1 sshd[104]: msg 4");
        journal_quiet(&mut src).await;
        src.stop().await;

        let mut o = jopts(&j, &[]);
        o.start = JournalStart::Tail;
        let mut src = JournalSource::spawn(o).unwrap();
        journal_quiet(&mut src).await;
        src.stop().await;
    });
}

/// journalpath: a directory whose new journal file shows up while reading.
#[test]
#[ignore = "needs systemd-journal-remote"]
fn journal_path_sees_new_files() {
    let d = tempfile::tempdir().unwrap();
    let first: Vec<_> = (0..2).map(|i| entry(i, "a.service", "a", "one")).collect();
    make_journal(&d.path().join("one.journal"), &first);
    let rt = rt();
    rt.block_on(async {
        let mut o = JournalOptions::new("test");
        o.path = Some(d.path().to_str().unwrap().to_string());
        o.start = JournalStart::Head;
        o.flags = Some(0);
        let mut src = JournalSource::spawn(o).unwrap();
        let got = take_journal(&mut src, 2).await;
        assert_eq!(got[0].text, "web1 a[100]: one");
        let later: Vec<_> = (5..7).map(|i| entry(i, "b.service", "b", "two")).collect();
        // written elsewhere, then moved in whole
        let tmp = tempfile::tempdir().unwrap();
        make_journal(&tmp.path().join("two.journal"), &later);
        fs::copy(tmp.path().join("two.journal"), d.path().join("two.journal")).unwrap();
        let got = take_journal(&mut src, 2).await;
        assert_eq!(got[0].text, "web1 b[105]: two");
        src.stop().await;
    });
}

#[test]
#[ignore = "needs systemd-journal-remote"]
fn journal_errors_are_clear() {
    let d = tempfile::tempdir().unwrap();
    let j = d.path().join("a.journal");
    make_journal(&j, &[entry(0, "x.service", "x", "m")]);
    let err = JournalSource::spawn(jopts(&j, &["not-a-match"])).unwrap_err();
    assert!(
        matches!(err, SourceError::JournalMatch { ref element, .. } if element == "not-a-match"),
        "{err}"
    );
    let err = JournalSource::spawn(jopts(&d.path().join("none*.journal"), &[])).unwrap_err();
    assert!(matches!(err, SourceError::NoJournalFiles(_)), "{err}");
}

/// Every entry formatted by fail3ban and by fail2ban's own FilterSystemd
/// (through python3-systemd) on the same journal file: same date text,
/// line and time.
#[test]
#[ignore = "needs the reference fail2ban, python3-systemd and systemd-journal-remote"]
fn journal_format_matches_fail2ban() {
    crate::prereq::need(&[Need::Reference, Need::PythonSystemd, Need::JournalRemote]);
    let root = crate::prereq::reference();
    let d = tempfile::tempdir().unwrap();
    let j = d.path().join("diff.journal");
    let b = |s: &str| s.as_bytes().to_vec();
    let base = |i: u64| -> Vec<(&'static str, Vec<u8>)> {
        vec![
            (
                "__REALTIME_TIMESTAMP",
                b(&(T0 + i * 1_000_000 + i * 7).to_string()),
            ),
            (
                "__MONOTONIC_TIMESTAMP",
                b(&(5_000_000 + i * 1234).to_string()),
            ),
            ("_BOOT_ID", b(BOOT)),
        ]
    };
    let mut entries = Vec::new();
    let mut add = |i: u64, fields: &[(&'static str, Vec<u8>)]| {
        let mut e = base(i);
        e.extend_from_slice(fields);
        entries.push(e);
    };
    add(
        0,
        &[
            ("_HOSTNAME", b("h")),
            ("SYSLOG_IDENTIFIER", b("sshd")),
            ("_PID", b("42")),
            ("MESSAGE", b("Failed password for x")),
        ],
    );
    add(
        1,
        &[
            ("_HOSTNAME", b("h")),
            ("SYSLOG_IDENTIFIER", b("kernel")),
            ("MESSAGE", b("iptables: IN=eth0")),
        ],
    );
    add(
        2,
        &[
            ("SYSLOG_IDENTIFIER", b("kernel")),
            ("_SOURCE_MONOTONIC_TIMESTAMP", b("987654321")),
            ("MESSAGE", b("oops")),
        ],
    );
    add(
        3,
        &[
            ("_HOSTNAME", b("h")),
            ("_COMM", b("su")),
            ("SYSLOG_PID", b("0")),
            ("_PID", b("77")),
            ("MESSAGE", b("zero pid")),
        ],
    );
    add(
        4,
        &[
            ("SYSLOG_IDENTIFIER", b("app")),
            ("SYSLOG_PID", b("abc")),
            ("MESSAGE", b("odd pid")),
        ],
    );
    add(5, &[("_HOSTNAME", b("h")), ("MESSAGE", b("no ident"))]);
    add(
        6,
        &[
            ("_COMM", b("x")),
            ("MESSAGE", b("first")),
            ("MESSAGE", b("second")),
        ],
    );
    add(7, &[("_COMM", b("x")), ("MESSAGE", b("two\nlines\r"))]);
    add(
        8,
        &[("_COMM", b("x")), ("MESSAGE", b"bad \xff utf8".to_vec())],
    );
    add(
        9,
        &[
            ("_COMM", b("x")),
            ("_SOURCE_REALTIME_TIMESTAMP", b("1600000000250000")),
            ("MESSAGE", b("source time")),
        ],
    );
    add(
        10,
        &[
            ("_COMM", b("x")),
            ("_SOURCE_REALTIME_TIMESTAMP", b("1600000000000000")),
            ("MESSAGE", b("whole second")),
        ],
    );
    add(
        11,
        &[
            ("_HOSTNAME", b("h")),
            ("SYSLOG_IDENTIFIER", b("")),
            ("_COMM", b("fallback")),
            ("MESSAGE", b("empty ident")),
        ],
    );
    add(12, &[("_COMM", b("x"))]);
    add(
        13,
        &[("_COMM", b("caf\u{e9}")), ("MESSAGE", b("\u{fc}nicode"))],
    );
    crate::util::make_journal_raw(&j, &entries);
    let script = r#"
import json, sys
from fail2ban.server.filtersystemd import FilterSystemd
from fail2ban.tests.dummyjail import DummyJail
f = FilterSystemd(DummyJail(), journalfiles=sys.argv[1])
f.setLogEncoding('utf-8')
r = f.getJournalReader()
r.seek_head()
out = []
for e in r:
    line, tm = f.formatJournalEntry(e)
    out.append([line[1], line[2], tm])
print(json.dumps(out))
"#;
    let o = Command::new("/usr/bin/python3")
        .args(["-c", script, j.to_str().unwrap()])
        .env("PYTHONPATH", root.join("usr/lib/python3/dist-packages"))
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "fail2ban: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let want: Vec<(String, String, f64)> = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(want.len(), entries.len());
    let rt = rt();
    let got = rt.block_on(async {
        let mut src = JournalSource::spawn(jopts(&j, &[])).unwrap();
        let got = take_journal(&mut src, entries.len()).await;
        src.stop().await;
        got
    });
    for (g, w) in got.iter().zip(&want) {
        assert_eq!((&g.date_text, &g.text), (&w.0, &w.1));
        assert!((g.time - w.2).abs() < 1e-6, "{} vs {}", g.time, w.2);
    }
}

/// fail2ban 1.1.1's `rotated`: off (the default), the archived files of a
/// journal directory (`name@...journal`) are not read, only its current
/// ones; on, both are.
#[test]
#[ignore = "needs systemd-journal-remote"]
fn journal_rotated_files_are_read_only_with_rotated() {
    let d = tempfile::tempdir().unwrap();
    let old: Vec<_> = (0..2)
        .map(|i| entry(i, "a.service", "a", "archived"))
        .collect();
    make_journal(&d.path().join("system@0001-0002.journal"), &old);
    let cur: Vec<_> = (5..7)
        .map(|i| entry(i, "a.service", "a", "current"))
        .collect();
    make_journal(&d.path().join("system.journal"), &cur);
    let rt = rt();
    for rotated in [false, true] {
        rt.block_on(async {
            let mut o = JournalOptions::new("test");
            o.path = Some(d.path().to_str().unwrap().to_string());
            o.start = JournalStart::Head;
            o.rotated = rotated;
            let mut src = JournalSource::spawn(o).unwrap();
            let got = take_journal(&mut src, if rotated { 4 } else { 2 }).await;
            journal_quiet(&mut src).await;
            let texts: Vec<&str> = got.iter().map(|l| l.text.as_str()).collect();
            let archived = texts.iter().filter(|t| t.ends_with("archived")).count();
            assert_eq!(
                archived,
                if rotated { 2 } else { 0 },
                "rotated={rotated}: {texts:?}"
            );
            src.stop().await;
        });
    }
}

/// Without rotated files, journald's rotation (the current file renamed to
/// an archive, a new one started) is still followed: the entries of the
/// new file come, none of the old one again.
#[test]
#[ignore = "needs systemd-journal-remote"]
fn journal_rotation_is_followed_without_rotated_files() {
    let d = tempfile::tempdir().unwrap();
    let before: Vec<_> = (0..2)
        .map(|i| entry(i, "a.service", "a", "before"))
        .collect();
    make_journal(&d.path().join("system.journal"), &before);
    let rt = rt();
    rt.block_on(async {
        let mut o = JournalOptions::new("test");
        o.path = Some(d.path().to_str().unwrap().to_string());
        o.start = JournalStart::Head;
        let mut src = JournalSource::spawn(o).unwrap();
        let got = take_journal(&mut src, 2).await;
        assert!(got.iter().all(|l| l.text.ends_with("before")));
        fs::rename(
            d.path().join("system.journal"),
            d.path().join("system@0001-0002.journal"),
        )
        .unwrap();
        let after: Vec<_> = (5..7)
            .map(|i| entry(i, "a.service", "a", "after"))
            .collect();
        let tmp = tempfile::tempdir().unwrap();
        make_journal(&tmp.path().join("system.journal"), &after);
        // Moved in whole, as journald's new file appears (with its header).
        fs::copy(tmp.path().join("system.journal"), d.path().join("new.tmp")).unwrap();
        fs::rename(d.path().join("new.tmp"), d.path().join("system.journal")).unwrap();
        let got = take_journal(&mut src, 2).await;
        let texts: Vec<&str> = got.iter().map(|l| l.text.as_str()).collect();
        assert!(texts.iter().all(|t| t.ends_with("after")), "{texts:?}");
        journal_quiet(&mut src).await;
        src.stop().await;
    });
}
