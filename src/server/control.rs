//! The control socket: a Unix socket only root can use, one JSON command
//! per line in, one JSON answer per line out.

use std::io;
use std::os::unix::fs::FileTypeExt;
use std::path::Path;
use std::sync::Arc;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::Semaphore;

use crate::client::protocol::{decode_request, encode_response, Response};

use super::Server;

/// Most connections served at once; more wait.
const MAX_CONNECTIONS: usize = 64;
/// Longest request line accepted (a reload stream fits easily).
const MAX_REQUEST: usize = 16 << 20;

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
            let kind = super::files::kind(m.file_type());
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
    let limit = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let Ok(permit) = limit.clone().acquire_owned().await else {
            return;
        };
        let stream = match listener.accept().await {
            Ok((s, _)) => s,
            Err(e) => {
                tracing::error!("control socket: {e}");
                continue;
            }
        };
        let server = server.clone();
        tokio::spawn(async move {
            if let Err(e) = connection(server, stream).await {
                tracing::debug!("control connection: {e}");
            }
            drop(permit);
        });
    }
}

async fn connection(server: Arc<Server>, stream: UnixStream) -> std::io::Result<()> {
    let (r, mut w) = stream.into_split();
    let mut r = BufReader::new(r);
    let mut line = String::new();
    loop {
        line.clear();
        let n = (&mut r)
            .take(MAX_REQUEST as u64)
            .read_line(&mut line)
            .await?;
        if n == 0 {
            return Ok(());
        }
        let response = match decode_request(line.trim_end()) {
            Ok(cmd) => match server.command(&cmd).await {
                Ok(v) => Response::Ok(v),
                Err(e) => Response::Error(e),
            },
            Err(e) => Response::Error(e),
        };
        w.write_all(encode_response(&response).as_bytes()).await?;
    }
}

use tokio::io::AsyncReadExt as _;
