//! Issue 17: the native journal-file reader against libsystemd, on
//! journals written by systemd-journal-remote: the same lines, times and
//! cursors in the same order for several journalmatch sets and starts, on
//! compact and regular files, compressed fields, several files merged; a
//! cursor of either reader found by the other; a corrupt file an error or
//! libsystemd's, never a panic.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use fail3ban::source::{JournalLine, JournalOptions, JournalSource, JournalStart};

use crate::prereq::Need;
use crate::util::{make_journal_env, rt, WAIT};

const BOOT: &str = "0123456789abcdef0123456789abcdef";
const OTHER_BOOT: &str = "fedcba9876543210fedcba9876543210";
const T0: u64 = 1_700_000_000_000_000;

type Entry = Vec<(&'static str, Vec<u8>)>;

/// Entry `i` of a mixed journal: sshd, cron and kernel entries, several
/// PIDs, a second MESSAGE, a value that is not UTF-8.
fn entry(i: u64, boot: &str, usec: u64) -> Entry {
    let (unit, comm) = match i % 5 {
        0 | 3 => ("sshd.service", "sshd"),
        1 => ("cron.service", "cron"),
        2 => ("other.service", "sshd"),
        _ => ("", "kernel"),
    };
    let mut e: Entry = vec![
        ("__REALTIME_TIMESTAMP", usec.to_string().into_bytes()),
        (
            "__MONOTONIC_TIMESTAMP",
            (1_000_000 + usec - T0).to_string().into_bytes(),
        ),
        ("_BOOT_ID", boot.as_bytes().to_vec()),
        ("_HOSTNAME", b"web1".to_vec()),
        ("_COMM", comm.as_bytes().to_vec()),
        ("_PID", (100 + i % 7).to_string().into_bytes()),
        (
            "MESSAGE",
            format!("Failed password for root from 192.0.2.{} port 22", i % 250).into_bytes(),
        ),
    ];
    if !unit.is_empty() {
        e.push(("_SYSTEMD_UNIT", unit.as_bytes().to_vec()));
    } else {
        e.push(("SYSLOG_IDENTIFIER", b"kernel".to_vec()));
    }
    if i % 11 == 0 {
        e.push(("MESSAGE", b"second\nline".to_vec()));
    }
    if i % 13 == 0 {
        e.push(("SYSLOG_PID", b"\xff\xfe".to_vec()));
    }
    e
}

fn journal(out: &Path, n: u64, boot: &str, first_usec: u64, step: u64, env: &[(&str, &str)]) {
    let entries: Vec<Entry> = (0..n)
        .map(|i| entry(i, boot, first_usec + i * step))
        .collect();
    make_journal_env(out, &entries, env);
}

/// The file's incompatible flags (header offset 12).
fn incompatible_flags(p: &Path) -> u32 {
    let b = std::fs::read(p).unwrap();
    u32::from_le_bytes(b[12..16].try_into().unwrap())
}

fn opts(files: &str, matches: &[&[&str]], start: JournalStart, native: bool) -> JournalOptions {
    let mut o = JournalOptions::new("test");
    o.files = vec![files.to_string()];
    o.matches = matches
        .iter()
        .map(|m| m.iter().map(|w| w.to_string()).collect())
        .collect();
    o.start = start;
    o.native = native;
    o.follow = false;
    // A cursor on every line.
    o.batch_lines = 1;
    o
}

/// Every line the source gives until it ends, and whether it read natively.
async fn read_all(o: JournalOptions) -> (Vec<JournalLine>, bool) {
    let mut src = JournalSource::spawn(o).expect("journal opens");
    let native = src.is_native();
    let mut out = Vec::new();
    let deadline = tokio::time::Instant::now() + WAIT;
    while let Some(b) = tokio::time::timeout_at(deadline, src.next())
        .await
        .expect("journal source ends")
    {
        out.extend(b.lines);
    }
    (out, native)
}

/// Reads with both readers; asserts the native one was used and that both
/// gave the same lines; returns them.
async fn same(files: &str, matches: &[&[&str]], start: JournalStart) -> Vec<JournalLine> {
    let (native, was_native) = read_all(opts(files, matches, start.clone(), true)).await;
    let (sd, sd_native) = read_all(opts(files, matches, start.clone(), false)).await;
    assert!(was_native, "the native reader refused {files}");
    assert!(!sd_native);
    assert_eq!(
        native.len(),
        sd.len(),
        "{files} {matches:?} {start:?}: native {} lines, libsystemd {}",
        native.len(),
        sd.len()
    );
    for (i, (n, s)) in native.iter().zip(&sd).enumerate() {
        assert_eq!(n, s, "{files} {matches:?} {start:?}: line {i}");
    }
    native
}

const MATCH_SETS: &[&[&[&str]]] = &[
    &[],
    &[&["_SYSTEMD_UNIT=sshd.service", "+", "_COMM=sshd"]],
    &[&["_SYSTEMD_UNIT=sshd.service", "_SYSTEMD_UNIT=cron.service"]],
    &[&["_SYSTEMD_UNIT=sshd.service", "_COMM=sshd", "_PID=103"]],
    &[&["_COMM=cron"], &["_PID=103"]],
    &[&["_COMM=nobody"]],
    &[&["_COMM=nobody", "+", "SYSLOG_IDENTIFIER=kernel"]],
];

async fn compare_all_ways(files: &str, n: usize) {
    for m in MATCH_SETS {
        same(files, m, JournalStart::Head).await;
    }
    let all = same(files, &[], JournalStart::Head).await;
    assert_eq!(all.len(), n);
    let mid = &all[n / 2];
    same(files, MATCH_SETS[1], JournalStart::Time(mid.time)).await;
    same(files, &[], JournalStart::Time(mid.time + 0.5)).await;
    same(files, &[], JournalStart::Time(0.0)).await;
    let rest = same(files, &[], JournalStart::Cursor(mid.cursor.clone())).await;
    assert_eq!(rest.len(), n - n / 2 - 1);
    same(
        files,
        MATCH_SETS[1],
        JournalStart::Cursor(mid.cursor.clone()),
    )
    .await;
    same(files, &[], JournalStart::Cursor("s=junk".into())).await;
    assert!(same(files, &[], JournalStart::Tail).await.is_empty());
}

/// Compact (systemd 252's default) and regular files.
#[test]
#[ignore = "needs systemd-journal-remote"]
fn native_journal_reader_reads_as_libsystemd() {
    crate::prereq::need(&[Need::JournalRemote]);
    let d = tempfile::tempdir().unwrap();
    for (compact, name) in [("1", "compact.journal"), ("0", "regular.journal")] {
        let p = d.path().join(name);
        journal(
            &p,
            120,
            BOOT,
            T0,
            1_000_000,
            &[("SYSTEMD_JOURNAL_COMPACT", compact)],
        );
        assert_eq!(
            incompatible_flags(&p) & 16 != 0,
            compact == "1",
            "{name}: compact flag"
        );
        rt().block_on(compare_all_ways(p.to_str().unwrap(), 120));
    }
}

/// Fields longer than journald's compression threshold, compressed.
/// systemd 252's journal-remote writes only its built-in compression
/// (zstd on Debian 12: SYSTEMD_JOURNAL_COMPRESS switches it on or off,
/// names no algorithm), so xz and lz4 are not written here.
#[test]
#[ignore = "needs systemd-journal-remote"]
fn native_journal_reader_decompresses_as_libsystemd() {
    crate::prereq::need(&[Need::JournalRemote]);
    let d = tempfile::tempdir().unwrap();
    let (alg, flag) = ("ZSTD", 8);
    {
        let p = d.path().join(format!("{alg}.journal"));
        let entries: Vec<Entry> = (0..20u64)
            .map(|i| {
                let mut e = entry(i, BOOT, T0 + i * 1_000_000);
                let long: String = (0..400).map(|k| format!("{} ", k * (i + 1))).collect();
                e.push(("MESSAGE", long.into_bytes()));
                e.push(("_CMDLINE", vec![b'x'; 3000 + i as usize]));
                e
            })
            .collect();
        make_journal_env(&p, &entries, &[("SYSTEMD_JOURNAL_COMPRESS", "1")]);
        assert_ne!(incompatible_flags(&p) & flag, 0, "{alg}: not compressed");
        let f = p.to_str().unwrap();
        rt().block_on(async {
            let lines = same(f, &[], JournalStart::Head).await;
            assert!(lines[3].text.len() > 1000, "{}", lines[3].text);
            same(f, MATCH_SETS[1], JournalStart::Head).await;
            // A data threshold below the fields' length.
            for native in [true, false] {
                let mut o = opts(f, &[], JournalStart::Head, native);
                o.max_line_len = 700;
                let a = read_all(o).await.0;
                let mut o = opts(f, &[], JournalStart::Head, !native);
                o.max_line_len = 700;
                assert_eq!(a, read_all(o).await.0, "{alg}: threshold 700");
            }
        });
    }
}

/// Three files (two sequences of one boot interleaved in time, one of
/// another boot) merged in libsystemd's order.
#[test]
#[ignore = "needs systemd-journal-remote"]
fn native_journal_reader_merges_files_as_libsystemd() {
    crate::prereq::need(&[Need::JournalRemote]);
    let d = tempfile::tempdir().unwrap();
    journal(&d.path().join("a.journal"), 40, BOOT, T0, 2_000_000, &[]);
    journal(
        &d.path().join("b.journal"),
        40,
        BOOT,
        T0 + 1_000_000,
        2_000_000,
        &[],
    );
    journal(
        &d.path().join("c.journal"),
        30,
        OTHER_BOOT,
        T0 + 500_000,
        3_000_000,
        &[("SYSTEMD_JOURNAL_COMPACT", "0")],
    );
    let files = format!("{}/*.journal", d.path().display());
    rt().block_on(compare_all_ways(&files, 110));
}

/// A cursor one reader handed out starts the other after its entry.
#[test]
#[ignore = "needs systemd-journal-remote"]
fn journal_cursor_of_either_reader_seeks_in_the_other() {
    crate::prereq::need(&[Need::JournalRemote]);
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("a.journal");
    journal(&p, 50, BOOT, T0, 1_000_000, &[]);
    let f = p.to_str().unwrap();
    rt().block_on(async {
        let (all, _) = read_all(opts(f, MATCH_SETS[1], JournalStart::Head, true)).await;
        let (sd_all, _) = read_all(opts(f, MATCH_SETS[1], JournalStart::Head, false)).await;
        for k in [0, 7, all.len() - 1] {
            for native in [true, false] {
                let from = if native { &all[k] } else { &sd_all[k] };
                let start = JournalStart::Cursor(from.cursor.clone());
                let (rest, _) = read_all(opts(f, MATCH_SETS[1], start, !native)).await;
                assert_eq!(
                    rest.as_slice(),
                    &all[k + 1..],
                    "cursor {k}, native {native}"
                );
            }
        }
    });
}

/// A journal file with flipped bytes or cut short: fail3ban-regex reads it
/// natively or through libsystemd, and ends without a panic or a signal.
#[test]
#[ignore = "needs systemd-journal-remote"]
fn corrupt_journal_file_is_an_error_not_a_panic() {
    crate::prereq::need(&[Need::JournalRemote]);
    let d = tempfile::tempdir().unwrap();
    let good = d.path().join("good.journal");
    journal(&good, 60, BOOT, T0, 1_000_000, &[]);
    let bytes = std::fs::read(&good).unwrap();
    // The part journald wrote (the rest is preallocated zeros).
    let used = {
        let tail = u64::from_le_bytes(bytes[136..144].try_into().unwrap()) as usize;
        (tail + 4096).min(bytes.len())
    };
    let filter = d.path().join("f.conf");
    std::fs::write(&filter, "[Definition]\nfailregex = from <HOST> port\n").unwrap();
    let bad = d.path().join("bad.journal");
    let mut rng = fastrand::Rng::with_seed(17);
    for round in 0..120 {
        let mut b = bytes.clone();
        let what = if round % 4 == 3 {
            let at = rng.usize(0..used);
            b.truncate(at);
            format!("cut at {at}")
        } else {
            let mut flips = Vec::new();
            for _ in 0..rng.usize(1..8) {
                // Mostly past the header, where the objects are.
                let at = if rng.bool() {
                    rng.usize(0..used)
                } else {
                    rng.usize(0..272)
                };
                b[at] ^= 1 << rng.u8(0..8);
                flips.push(at);
            }
            format!("flipped {flips:?}")
        };
        std::fs::write(&bad, &b).unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_fail3ban-regex"))
            .arg(format!("systemd-journal[journalfiles={}]", bad.display()))
            .arg(&filter)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let t = Instant::now();
        let status = loop {
            if let Some(s) = child.try_wait().unwrap() {
                break s;
            }
            if t.elapsed() > Duration::from_secs(20) {
                let _ = child.kill();
                let _ = child.wait();
                panic!("round {round} ({what}): fail3ban-regex hangs");
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        let mut err = String::new();
        std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
        assert!(
            status.code().is_some() && status.code() != Some(101) && !err.contains("panicked"),
            "round {round} ({what}): {status:?}\n{err}"
        );
    }
}

/// A journal file that someone other than root can write (and so shorten
/// under the native reader's map, which would end the daemon with SIGBUS)
/// is read through libsystemd instead, with the same lines.
#[test]
#[ignore = "needs systemd-journal-remote"]
fn journal_file_others_can_write_is_read_by_libsystemd() {
    use std::os::unix::fs::PermissionsExt;
    crate::prereq::need(&[Need::JournalRemote]);
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("shared.journal");
    journal(&p, 40, BOOT, T0, 1_000_000, &[]);
    let files = p.to_str().unwrap();
    let rt = rt();
    let (trusted, was_native) = rt.block_on(read_all(opts(files, &[], JournalStart::Head, true)));
    assert!(was_native, "a root-only journal file is read natively");
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o666)).unwrap();
    let (shared, was_native) = rt.block_on(read_all(opts(files, &[], JournalStart::Head, true)));
    assert!(
        !was_native,
        "a journal file anyone can write was mapped by the native reader"
    );
    assert_eq!(shared, trusted);
}
