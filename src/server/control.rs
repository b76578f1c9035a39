//! The control socket: a Unix socket only root can use, one JSON command
//! per line in, one JSON answer per line out; or, for fail2ban's client
//! and tools, fail2ban's pickled commands and answers ([`pickled`]).
//!
//! No client can lock the others out or hold the server's memory: a
//! request must arrive whole within [`IDLE_TIMEOUT`] of the connection or
//! of the previous answer, and be at most [`MAX_REQUEST`] long (a longer
//! one is answered with an error and the connection closed, so that no
//! piece of it runs as a command of its own). When all
//! [`MAX_CONNECTIONS`] are open, a new client is served by closing the
//! connection that has waited longest for its next request: held
//! connections never keep `status` or `stop` out.

use std::collections::HashMap;
use std::io;
use std::os::unix::fs::FileTypeExt;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::Notify;

use crate::client::protocol::{decode_request, encode_response, CommandError, ErrorKind, Response};

use super::pickled::{self, Frame};
use super::Server;

/// Most connections open at once.
const MAX_CONNECTIONS: usize = 64;
/// Longest request line accepted, newline included. The longest real
/// ones are `banip` with a list of addresses from a script.
const MAX_REQUEST: usize = 16 << 20;
/// How long a client may take to send a whole request (from connecting or
/// from the previous answer) and to take an answer. fail3ban-client and
/// fail2ban's tools write their command as soon as they connect, so a
/// few seconds is ample; a client that trickles a request or never sends
/// one holds a connection no longer than this.
const IDLE_TIMEOUT: Duration = Duration::from_secs(5);

/// Binds the socket at `path`, readable and writable by its owner only.
///
/// Nothing is removed there but a stale socket (one no server answers
/// on), `-x` or not: a regular file, a directory or anything else is
/// refused, and so is a symlink, which is neither followed nor removed. A
/// socket a live server answers on is an error.
///
/// The socket is created with its final mode: the umask is `0177` for
/// the `bind`, because a `chmod` afterwards would follow whatever was put
/// at the path in between. The umask is the process's; a file another
/// thread creates meanwhile only comes out more private.
pub async fn bind(path: &Path) -> io::Result<UnixListener> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    match std::fs::symlink_metadata(path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
        Ok(m) if !m.file_type().is_socket() => {
            let kind = crate::untrusted_file::kind(m.file_type());
            let why = if m.file_type().is_symlink() {
                "which fail3ban neither follows nor removes"
            } else {
                "not a socket: fail3ban removes nothing there but a stale socket"
            };
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!("{} is a {kind}, {why}", path.display()),
            ));
        }
        Ok(_) => match UnixStream::connect(path).await {
            Ok(_) => {
                return Err(io::Error::new(
                    io::ErrorKind::AddrInUse,
                    format!("a server is already running on {}", path.display()),
                ))
            }
            Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
                tracing::warn!("removing the stale socket {}", path.display());
                std::fs::remove_file(path)?;
            }
            Err(e) => return Err(e),
        },
    }
    // SAFETY: umask only swaps the process's file creation mask.
    let old = unsafe { libc::umask(0o177) };
    let listener = UnixListener::bind(path);
    // SAFETY: as above, restoring the mask.
    unsafe { libc::umask(old) };
    listener
}

/// Serves connections until the task is dropped.
pub async fn serve(server: Arc<Server>, listener: UnixListener) {
    let slots = Arc::new(Slots::default());
    loop {
        let stream = match listener.accept().await {
            Ok((s, _)) => s,
            Err(e) => {
                // Out of descriptors, say: accepting again at once would
                // only fail again, in a busy loop.
                tracing::error!("control socket: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let slot = Slots::take(&slots).await;
        let server = server.clone();
        tokio::spawn(async move {
            if let Err(e) = connection(server, stream, &slot).await {
                tracing::debug!("control connection: {e}");
            }
        });
    }
}

/// One connection: requests and answers until the client closes it, is
/// too slow, sends too much, or its slot is taken for a newer client. Its
/// first byte tells fail3ban's JSON lines from fail2ban's pickles.
async fn connection(server: Arc<Server>, stream: UnixStream, slot: &Slot) -> io::Result<()> {
    let (r, w) = stream.into_split();
    let mut r = BufReader::new(r);
    let Some(first) = slot.client(r.fill_buf()).await?.first().copied() else {
        return Ok(());
    };
    if pickled::speaks_fail2ban(first) {
        pickled_connection(&server, r, w, slot).await
    } else {
        json_connection(&server, r, w, slot).await
    }
}

async fn json_connection(
    server: &Server,
    mut r: BufReader<OwnedReadHalf>,
    mut w: OwnedWriteHalf,
    slot: &Slot,
) -> io::Result<()> {
    let mut request = Vec::new();
    loop {
        request.clear();
        let response = match slot.client(read_request(&mut r, &mut request)).await? {
            Read::End => return Ok(()),
            Read::TooLong => {
                let e = CommandError::new(ErrorKind::InvalidCommand, too_long());
                let answer = encode_response(&Response::Error(e));
                return slot.client(w.write_all(answer.as_bytes())).await;
            }
            Read::Line => {
                let cmd = match std::str::from_utf8(&request) {
                    Ok(line) => decode_request(line.trim_end()),
                    Err(_) => Err(CommandError::new(
                        ErrorKind::InvalidCommand,
                        "the request is not UTF-8",
                    )),
                };
                match run(server, slot, cmd).await {
                    Some(Ok(v)) => Response::Ok(v),
                    Some(Err(e)) => Response::Error(e),
                    None => return Ok(()),
                }
            }
        };
        slot.client(w.write_all(encode_response(&response).as_bytes()))
            .await?;
    }
}

/// fail2ban's protocol ([`pickled`]). A pickle that is not plain data is
/// answered as fail2ban answers one it cannot load, logged, and the
/// connection closed.
async fn pickled_connection(
    server: &Server,
    mut r: BufReader<OwnedReadHalf>,
    mut w: OwnedWriteHalf,
    slot: &Slot,
) -> io::Result<()> {
    let mut msg = Vec::new();
    loop {
        msg.clear();
        let answer = match slot
            .client(pickled::read_frame(&mut r, &mut msg, MAX_REQUEST))
            .await?
        {
            Frame::Close => return Ok(()),
            Frame::TooLong => {
                return slot
                    .client(w.write_all(&pickled::refusal(&too_long())))
                    .await
            }
            Frame::Message => match pickled::request(&msg) {
                Err(e) => {
                    tracing::error!("PROTO-error: load message failed: {e}");
                    return slot.client(w.write_all(&pickled::refusal(&e))).await;
                }
                Ok(cmd) => {
                    let words = cmd.as_deref().unwrap_or_default().to_vec();
                    match run(server, slot, cmd).await {
                        Some(result) => pickled::answer(&words, &result),
                        None => return Ok(()),
                    }
                }
            },
        };
        slot.client(w.write_all(&answer)).await?;
    }
}

fn too_long() -> String {
    format!("request too long (over {MAX_REQUEST} bytes): connection closed")
}

/// Runs a request's command, the same whatever protocol brought it:
/// `None` if the connection was closed meanwhile to make room, and must
/// run nothing.
async fn run(
    server: &Server,
    slot: &Slot,
    cmd: Result<Vec<Value>, CommandError>,
) -> Option<Result<Value, CommandError>> {
    if !slot.run() {
        return None;
    }
    let result = match cmd {
        Ok(cmd) => server.command(&cmd).await,
        Err(e) => Err(e),
    };
    slot.wait();
    Some(result)
}

/// What reading one request found.
enum Read {
    /// A line in `buf` (the last one may lack its newline).
    Line,
    /// The client closed the connection.
    End,
    /// More than [`MAX_REQUEST`] bytes without a newline.
    TooLong,
}

async fn read_request(r: &mut BufReader<OwnedReadHalf>, buf: &mut Vec<u8>) -> io::Result<Read> {
    let n = (&mut *r)
        .take(MAX_REQUEST as u64)
        .read_until(b'\n', buf)
        .await?;
    Ok(if n == 0 {
        Read::End
    } else if n < MAX_REQUEST || buf.last() == Some(&b'\n') {
        Read::Line
    } else {
        Read::TooLong
    })
}

/// The open connections, and for each whether it waits on its client
/// (since when) or runs a command.
#[derive(Default)]
struct Slots {
    open: Mutex<Open>,
    /// A connection ended: a slot may be free.
    freed: Notify,
}

#[derive(Default)]
struct Open {
    next_id: u64,
    by_id: HashMap<u64, Entry>,
}

struct Entry {
    /// `None` while the connection runs a command: it is never closed
    /// then, so that no command is cut halfway.
    waiting_since: Option<Instant>,
    close: Arc<Notify>,
}

impl Slots {
    /// A slot for a new connection. When all are taken, the connection
    /// that has waited longest on its client is closed to make room;
    /// when every one runs a command, this waits until one ends.
    async fn take(slots: &Arc<Slots>) -> Slot {
        loop {
            {
                let mut open = slots.open.lock().expect("slots lock");
                if open.by_id.len() >= MAX_CONNECTIONS {
                    let oldest = open
                        .by_id
                        .iter()
                        .filter_map(|(id, e)| e.waiting_since.map(|t| (t, *id)))
                        .min();
                    if let Some((_, id)) = oldest {
                        if let Some(e) = open.by_id.remove(&id) {
                            tracing::debug!(
                                "control socket full: closing the longest idle connection"
                            );
                            e.close.notify_one();
                        }
                    }
                }
                if open.by_id.len() < MAX_CONNECTIONS {
                    let id = open.next_id;
                    open.next_id += 1;
                    let close = Arc::new(Notify::new());
                    open.by_id.insert(
                        id,
                        Entry {
                            waiting_since: Some(Instant::now()),
                            close: close.clone(),
                        },
                    );
                    return Slot {
                        slots: slots.clone(),
                        id,
                        close,
                    };
                }
            }
            slots.freed.notified().await;
        }
    }
}

/// A connection's place among the open ones; dropping it frees it.
struct Slot {
    slots: Arc<Slots>,
    id: u64,
    close: Arc<Notify>,
}

impl Slot {
    /// Marks the connection as running a command: false if it was
    /// closed meanwhile to make room, and must run nothing.
    fn run(&self) -> bool {
        let mut open = self.slots.open.lock().expect("slots lock");
        match open.by_id.get_mut(&self.id) {
            Some(e) => {
                e.waiting_since = None;
                true
            }
            None => false,
        }
    }

    /// Marks the connection as waiting on its client again.
    fn wait(&self) {
        let mut open = self.slots.open.lock().expect("slots lock");
        if let Some(e) = open.by_id.get_mut(&self.id) {
            e.waiting_since = Some(Instant::now());
        }
    }

    /// Awaits `io` with the client, for at most [`IDLE_TIMEOUT`] and
    /// only until the connection is closed to make room.
    async fn client<T>(
        &self,
        io: impl std::future::Future<Output = io::Result<T>>,
    ) -> io::Result<T> {
        tokio::select! {
            r = tokio::time::timeout(IDLE_TIMEOUT, io) => r.unwrap_or_else(|_| Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("nothing from the client for {IDLE_TIMEOUT:?}"),
            ))),
            _ = self.close.notified() => Err(io::Error::new(
                io::ErrorKind::ConnectionAborted,
                "closed to make room for a new client",
            )),
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.slots
            .open
            .lock()
            .expect("slots lock")
            .by_id
            .remove(&self.id);
        self.slots.freed.notify_one();
    }
}

#[cfg(test)]
mod tests {
    use std::future::Future;
    use std::mem::size_of;

    use super::*;

    fn size1<A, F: Future>(_: impl FnOnce(A) -> F) -> usize {
        size_of::<F>()
    }
    fn size2<A, B, F: Future>(_: impl FnOnce(A, B) -> F) -> usize {
        size_of::<F>()
    }
    fn size3<A, B, C, F: Future>(_: impl FnOnce(A, B, C) -> F) -> usize {
        size_of::<F>()
    }

    /// A future lives on the stack of the thread that polls it (the main
    /// thread's `block_on`, a worker's task) or in its task's allocation,
    /// and its poll frames hold copies of its parts: every page of stack
    /// they touch once stays resident. These were 9.5-10 KiB, their poll
    /// frames 40-48 KiB (`sub $0xc000,%r11` in `objdump -d`), so each
    /// thread that ran a command (the main thread at start, the workers
    /// for the control socket) kept that much stack for the daemon's life.
    #[test]
    fn command_futures_are_small() {
        const MOST: usize = 2048;
        let sizes = [
            ("Server::command", size2(Server::command)),
            ("Server::load_config", size1(Server::load_config)),
            (
                "server::run",
                size3(
                    |s: Arc<Server>, l: UnixListener, p: std::future::Pending<()>| {
                        super::super::run(s, l, p)
                    },
                ),
            ),
            ("control::connection", size3(connection)),
        ];
        let big: Vec<_> = sizes.iter().filter(|(_, n)| *n > MOST).collect();
        assert!(big.is_empty(), "futures over {MOST} bytes: {big:?}");
    }
}
