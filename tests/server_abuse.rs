//! A real fail3ban-server against the local users and clients of issue 13:
//! a caller's careless umask, files planted where the server writes its
//! socket, pid file and log, and clients that hold, starve or flood the
//! control socket. The server is driven through fail3ban-client as users
//! do, and through raw connections where a client misbehaves.

use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::{symlink, FileTypeExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::server::jail;
use crate::util::{new_log, PidGuard, Server, Tree, CLIENT, SERVER, WAIT};

/// The server's connection limit (src/server/control.rs).
const MAX_CONNECTIONS: usize = 64;
/// The longest request the server reads (src/server/control.rs).
const MAX_REQUEST: usize = 16 << 20;

/// The permission bits of `path` itself (a symlink is not followed).
fn mode(path: &Path) -> u32 {
    fs::symlink_metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o7777
}

/// Finding 3: started in the background from a shell whose umask is 000,
/// the server creates its log, pid file, socket, database (and SQLite's
/// -wal/-shm) and the directories for them writable by their owner only;
/// the socket and the database, which hold or give access to matched log
/// lines, are the owner's alone. The daemon leaves its working directory
/// for `/`.
#[test]
fn umask_000_creates_nothing_others_can_write() {
    let tree = Tree::new(&jail("one", ""));
    new_log(tree.path("one.log"));
    // Directories that do not exist yet: the server makes them.
    tree.write_conf(
        "fail2ban.local",
        "[Definition]
logtarget = @T@/log/server.log
socket = @T@/run/f3.sock
pidfile = @T@/run/f3.pid
dbfile = @T@/lib/f3.sqlite3
",
    );
    let _guard = PidGuard(tree.path("run/f3.pid"));
    let client = |args: &[&str]| -> Output {
        Command::new("/bin/sh")
            .arg("-c")
            .arg(r#"umask 000 && exec "$0" -c "$1" --timeout 10 "$2""#)
            .arg(CLIENT)
            .arg(tree.conf())
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    };
    let report = || {
        format!(
            "--- server.log\n{}",
            fs::read_to_string(tree.path("log/server.log")).unwrap_or_default()
        )
    };
    let o = client(&["start"]);
    assert!(
        o.status.success(),
        "start: {}{}",
        String::from_utf8_lossy(&o.stderr),
        report()
    );
    let mut checked = Vec::new();
    for (rel, others) in [
        ("log", 0o022),
        ("log/server.log", 0o022),
        ("run", 0o022),
        ("run/f3.pid", 0o022),
        ("run/f3.sock", 0o077),
        ("lib", 0o022),
        ("lib/f3.sqlite3", 0o077),
        ("lib/f3.sqlite3-wal", 0o077),
        ("lib/f3.sqlite3-shm", 0o077),
    ] {
        let path = tree.path(rel);
        if rel.ends_with("-wal") || rel.ends_with("-shm") {
            // SQLite makes these when it first writes; when it has, they
            // must be as private as the database.
            if !path.exists() {
                continue;
            }
        }
        let m = mode(&path);
        checked.push(format!("{rel} {m:o}"));
        assert_eq!(m & others, 0, "{rel} is {m:o}\n{}", report());
    }
    let pid = fs::read_to_string(tree.path("run/f3.pid")).unwrap();
    let cwd = fs::read_link(format!("/proc/{}/cwd", pid.trim())).unwrap();
    assert_eq!(cwd, Path::new("/"), "the daemon's working directory");
    let o = client(&["stop"]);
    assert!(o.status.success(), "stop: {}", report());
    eprintln!("modes: {}", checked.join(", "));
}

/// Runs `fail3ban-server -f` on `tree` with `args`, which must make it
/// refuse to start: its output once it has exited. Panics if it starts
/// serving instead (the socket path became a socket it answers on).
fn refused(tree: &Tree, args: &[&str], socket: &Path) -> Output {
    let mut child: Child = Command::new(SERVER)
        .arg("-f")
        .arg("-c")
        .arg(tree.conf())
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start fail3ban-server");
    let deadline = Instant::now() + WAIT;
    loop {
        if child.try_wait().unwrap().is_some() {
            let o = child.wait_with_output().unwrap();
            assert!(!o.status.success(), "the server exited 0 for {args:?}");
            return o;
        }
        // Answering, not just bound: a server that fails after binding
        // has its socket for a moment.
        let serving = UnixStream::connect(socket).is_ok_and(|s| {
            s.set_read_timeout(Some(Duration::from_secs(1))).unwrap();
            request(&mut BufReader::new(s), "[\"ping\"]\n").is_ok_and(|a| a.contains("pong"))
        });
        if serving || Instant::now() > deadline {
            let _ = child.kill();
            let o = child.wait_with_output().unwrap();
            panic!(
                "the server started with {args:?} (serving: {serving})\n{}{}",
                String::from_utf8_lossy(&o.stderr),
                tree.server_log()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Finding 4: whatever `-x` says, the server removes nothing at its
/// socket path but a stale socket: a regular file (a mistyped `-s`) or a
/// directory is refused and kept, and a symlink is neither followed nor
/// removed. A stale socket is still replaced, with or without `-x`.
#[test]
fn socket_path_removes_only_a_stale_socket() {
    let tree = Tree::new(&jail("one", ""));
    new_log(tree.path("one.log"));
    let sock = tree.path("f3.sock");
    let victim = tree.path("victim");
    fs::write(&victim, "precious\n").unwrap();

    // A regular file, started through the client as users do.
    fs::write(&sock, "precious\n").unwrap();
    let o = Command::new(CLIENT)
        .arg("-c")
        .arg(tree.conf())
        .args(["--timeout", "3", "start"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let _guard = PidGuard(tree.path("f3.pid"));
    assert!(!o.status.success(), "start over a regular file succeeded");
    assert_eq!(fs::read_to_string(&sock).unwrap(), "precious\n");
    let log = tree.server_log();
    assert!(log.contains("not a socket"), "{log}");
    // The same with -x, as the systemd unit starts it.
    for args in [&["-x"][..], &[][..]] {
        let o = refused(&tree, args, &sock);
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains("not a socket"), "{args:?}: {err}");
        assert_eq!(fs::read_to_string(&sock).unwrap(), "precious\n");
    }

    // A symlink, to a file or to a stale socket: not followed, kept.
    fs::remove_file(&sock).unwrap();
    let stale_elsewhere = tree.path("elsewhere.sock");
    drop(UnixListener::bind(&stale_elsewhere).unwrap());
    for target in [&victim, &stale_elsewhere] {
        symlink(target, &sock).unwrap();
        for args in [&["-x"][..], &[][..]] {
            let o = refused(&tree, args, &sock);
            let err = String::from_utf8_lossy(&o.stderr);
            assert!(err.contains("symbolic link"), "{args:?}: {err}");
            assert_eq!(fs::read_link(&sock).unwrap(), *target);
        }
        fs::remove_file(&sock).unwrap();
    }
    assert_eq!(fs::read_to_string(&victim).unwrap(), "precious\n");
    assert!(fs::symlink_metadata(&stale_elsewhere)
        .unwrap()
        .file_type()
        .is_socket());

    // A directory.
    fs::create_dir(&sock).unwrap();
    fs::write(sock.join("inside"), "precious\n").unwrap();
    let o = refused(&tree, &["-x"], &sock);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("not a socket"), "{err}");
    assert_eq!(
        fs::read_to_string(sock.join("inside")).unwrap(),
        "precious\n"
    );
    fs::remove_dir_all(&sock).unwrap();

    // A stale socket, left by a server that died, is replaced.
    drop(UnixListener::bind(&sock).unwrap());
    let mut s = Server::start(&tree);
    s.ok(&["status"]);
}

/// Finding 4: the pid file and the log are never opened through a
/// symlink, as one a local user plants in a world-writable directory
/// would be: the server refuses to start, and neither the file the link
/// names nor a file where a dangling link points is written.
#[test]
fn pid_file_and_log_symlinks_are_not_followed() {
    for option in ["pidfile", "logtarget"] {
        for dangling in [false, true] {
            let tree = Tree::new(&jail("one", ""));
            new_log(tree.path("one.log"));
            let shared = tree.path("shared");
            fs::create_dir(&shared).unwrap();
            fs::set_permissions(&shared, fs::Permissions::from_mode(0o1777)).unwrap();
            tree.write_conf(
                "fail2ban.local",
                &format!("[Definition]\n{option} = @T@/shared/planted\n"),
            );
            let target = tree.path("victim");
            if !dangling {
                fs::write(&target, "precious\n").unwrap();
            }
            symlink(&target, shared.join("planted")).unwrap();
            let case = format!("{option}, dangling: {dangling}");
            let o = refused(&tree, &[], &tree.path("f3.sock"));
            let err = String::from_utf8_lossy(&o.stderr);
            assert!(err.contains("symbolic link"), "{case}: {err}");
            if dangling {
                assert!(!target.exists(), "{case}: the link's target was created");
            } else {
                assert_eq!(fs::read_to_string(&target).unwrap(), "precious\n", "{case}");
            }
            // Refusing, the server left no socket behind.
            assert!(!tree.path("f3.sock").exists(), "{case}: socket left");
        }
    }
}

/// A raw connection to the tree's control socket, with `timeout` on reads.
fn connect(tree: &Tree, timeout: Duration) -> BufReader<UnixStream> {
    let s = UnixStream::connect(tree.path("f3.sock")).unwrap();
    s.set_read_timeout(Some(timeout)).unwrap();
    BufReader::new(s)
}

/// Sends one request line and reads the answer line (empty at EOF).
fn request(conn: &mut BufReader<UnixStream>, line: &str) -> std::io::Result<String> {
    conn.get_mut().write_all(line.as_bytes())?;
    let mut answer = String::new();
    conn.read_line(&mut answer)?;
    Ok(answer)
}

/// Connections that a thread keeps open and busy with a `ping` every
/// 200 ms, topped up to `n` after each round: they never go quiet for
/// long, so only a server that makes room for a new client, not one that
/// waits for them to time out, serves anyone else.
struct Holders {
    stop: Arc<AtomicBool>,
    /// Rounds in which all `n` connections answered.
    full_rounds: Arc<AtomicUsize>,
    /// Connections the server closed.
    closed: Arc<AtomicUsize>,
    thread: Option<JoinHandle<()>>,
}

impl Holders {
    fn start(sock: PathBuf, n: usize) -> Holders {
        let stop = Arc::new(AtomicBool::new(false));
        let full_rounds = Arc::new(AtomicUsize::new(0));
        let closed = Arc::new(AtomicUsize::new(0));
        let thread = {
            let (stop, full_rounds, closed) = (stop.clone(), full_rounds.clone(), closed.clone());
            std::thread::spawn(move || {
                let mut conns: Vec<BufReader<UnixStream>> = Vec::new();
                while !stop.load(Ordering::SeqCst) {
                    while conns.len() < n {
                        let Ok(s) = UnixStream::connect(&sock) else {
                            break;
                        };
                        s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
                        conns.push(BufReader::new(s));
                    }
                    let before = conns.len();
                    conns.retain_mut(|c| {
                        request(c, "[\"ping\"]\n").is_ok_and(|a| a.contains("pong"))
                    });
                    closed.fetch_add(before - conns.len(), Ordering::SeqCst);
                    if conns.len() == n {
                        full_rounds.fetch_add(1, Ordering::SeqCst);
                    }
                    std::thread::sleep(Duration::from_millis(200));
                }
            })
        };
        Holders {
            stop,
            full_rounds,
            closed,
            thread: Some(thread),
        }
    }

    /// Waits until a whole round, begun after this call, had all `n`
    /// connections answer.
    fn wait_full(&self, s: &mut Server) {
        let full = self.full_rounds.load(Ordering::SeqCst);
        s.wait("all held connections answer", |_| {
            self.full_rounds.load(Ordering::SeqCst) > full + 1
        });
    }
}

impl Drop for Holders {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Finding 5: with every connection slot held by clients that keep their
/// connections open, `status`, `reload` and `stop` still get through:
/// the server makes room by closing the connection that has waited
/// longest for its next request.
#[test]
fn control_socket_full_of_held_connections_still_serves() {
    let tree = Tree::new(&jail("one", ""));
    new_log(tree.path("one.log"));
    let mut s = Server::start(&tree);
    let holders = Holders::start(tree.path("f3.sock"), MAX_CONNECTIONS);
    holders.wait_full(&mut s);
    assert!(s.ok(&["status"]).contains("one"));
    holders.wait_full(&mut s);
    s.ok(&["reload"]);
    holders.wait_full(&mut s);
    assert!(s.ok(&["status", "one"]).contains("Currently failed"));
    holders.wait_full(&mut s);
    // Each command found all slots held and closed one to get in.
    let closed = holders.closed.load(Ordering::SeqCst);
    assert!(closed >= 3, "{closed} held connections closed");
    s.stop();
}

/// Finding 5: a connection that sends nothing, one that sends half a
/// request and stops, and one that goes quiet after an answer are all
/// closed after the idle timeout; the server goes on serving.
#[test]
fn control_socket_idle_connections_time_out() {
    let tree = Tree::new(&jail("one", ""));
    new_log(tree.path("one.log"));
    let mut s = Server::start(&tree);
    let mut silent = connect(&tree, WAIT);
    let mut half = connect(&tree, WAIT);
    half.get_mut().write_all(b"[\"sta").unwrap();
    let mut quiet = connect(&tree, WAIT);
    assert!(request(&mut quiet, "[\"ping\"]\n")
        .unwrap()
        .contains("pong"));
    let started = Instant::now();
    for (what, conn) in [
        ("silent", &mut silent),
        ("half a request", &mut half),
        ("quiet after an answer", &mut quiet),
    ] {
        let mut rest = Vec::new();
        match conn.read_to_end(&mut rest) {
            Ok(_) => assert!(
                rest.is_empty(),
                "{what}: {}",
                String::from_utf8_lossy(&rest)
            ),
            Err(e) => panic!(
                "{what}: not closed after {:?}: {e}\n{}",
                started.elapsed(),
                s.report()
            ),
        }
    }
    s.ok(&["ping"]);
}

/// Finding 5: a request longer than the limit gets an error answer and
/// the connection is closed; no piece of it runs, not even a tail that is
/// a valid `stop` command where the limit would cut it.
#[test]
fn control_socket_oversized_request_is_rejected_whole() {
    let tree = Tree::new(&jail("one", ""));
    new_log(tree.path("one.log"));
    let mut s = Server::start(&tree);
    let conn = connect(&tree, WAIT);
    let mut w = conn.get_ref().try_clone().unwrap();
    let writer = std::thread::spawn(move || {
        let mut request = vec![b'x'; MAX_REQUEST];
        request.extend_from_slice(b"[\"stop\"]\n");
        // The server may close before the tail is sent.
        let _ = w.write_all(&request);
    });
    let answers: Vec<String> = conn
        .lines()
        .map(|l| l.unwrap_or_else(|e| panic!("reading the answers: {e}")))
        .collect();
    writer.join().unwrap();
    assert_eq!(answers.len(), 1, "{answers:?}");
    let answer: serde_json::Value = serde_json::from_str(&answers[0]).unwrap();
    let message = answer["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("too long"), "{answer}");
    s.ok(&["ping"]);
    assert!(
        !tree.server_log().contains("Shutdown in progress"),
        "{}",
        s.report()
    );
}

/// fail2ban's end of a request or answer on the control socket.
const END: &[u8] = b"<F2B_END_COMMAND>";

/// Sends one framed pickle and reads up to the answer's END (all that
/// comes, to EOF, if there is none).
fn pickled_request(conn: &mut BufReader<UnixStream>, pickle: &[u8]) -> Vec<u8> {
    conn.get_mut().write_all(&[pickle, END].concat()).unwrap();
    let mut answer = Vec::new();
    let mut byte = [0];
    while !answer.ends_with(END) && conn.read(&mut byte).unwrap() == 1 {
        answer.push(byte[0]);
    }
    answer
}

/// Issue 19: a pickle that calls a function, as every pickle exploit does
/// (`os.system` by GLOBAL and REDUCE), runs nothing: it gets fail2ban's
/// answer to a pickle it cannot load ("ERROR: ..."), the refusal is
/// logged, the connection is closed, and the next client is served, in
/// fail2ban's protocol and in fail3ban's.
#[test]
fn pickled_global_reduce_is_refused() {
    let tree = Tree::new(&jail("one", ""));
    new_log(tree.path("one.log"));
    let mut s = Server::start(&tree);
    let planted = tree.path("planted");
    let shell = format!("touch {}", planted.display());
    let mut exploit = b"\x80\x02cos\nsystem\nX".to_vec();
    exploit.extend((shell.len() as u32).to_le_bytes());
    exploit.extend(shell.as_bytes());
    exploit.extend(b"\x85R.");

    let mut conn = connect(&tree, WAIT);
    let answer = pickled_request(&mut conn, &exploit);
    let text = String::from_utf8_lossy(&answer);
    assert!(
        text.contains("ERROR: opcode GLOBAL at byte 2 refused") && answer.ends_with(END),
        "{text:?}"
    );
    let mut rest = Vec::new();
    assert_eq!(
        conn.read_to_end(&mut rest).unwrap(),
        0,
        "connection left open"
    );
    assert!(!planted.exists(), "the pickle ran os.system");
    let deadline = Instant::now() + WAIT;
    while !tree
        .server_log()
        .contains("PROTO-error: load message failed: opcode GLOBAL")
    {
        assert!(Instant::now() < deadline, "not logged:\n{}", s.report());
        std::thread::sleep(Duration::from_millis(50));
    }

    // ['ping'], as fail2ban's CSocket pickles it (Python 3.11, protocol 5).
    let ping = b"\x80\x05\x95\x0b\x00\x00\x00\x00\x00\x00\x00]\x94\x8c\x04ping\x94a.";
    let answer = pickled_request(&mut connect(&tree, WAIT), ping);
    let pickle = answer.strip_suffix(END).expect("an answer ended by END");
    assert_eq!(
        fail3ban::pickle::decode(pickle, &fail3ban::pickle::Limits::SOCKET).unwrap(),
        serde_json::json!([0, "pong"])
    );
    s.ok(&["ping"]);
}
