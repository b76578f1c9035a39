//! The control socket: a Unix socket only root can use, one JSON command
//! per line in, one JSON answer per line out.

use std::os::unix::fs::PermissionsExt;
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
/// A socket left by a server that died is replaced; one a live server
/// answers on is an error.
pub async fn bind(path: &Path) -> std::io::Result<UnixListener> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    if path.exists() {
        if UnixStream::connect(path).await.is_ok() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::AddrInUse,
                format!("a server is already running on {}", path.display()),
            ));
        }
        tracing::warn!("removing the stale socket {}", path.display());
        std::fs::remove_file(path)?;
    }
    let listener = UnixListener::bind(path)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    Ok(listener)
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
