//! Hot reload: a change under filter.d, action.d or jail.d (or to jail.*
//! and fail2ban.* themselves) reloads the configuration, as `reload` does.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use inotify::{Inotify, WatchMask};
use tokio::sync::mpsc;

use super::Server;

/// Watches the configuration tree; returns when the server goes away.
pub async fn watch(server: Arc<Server>) {
    let dir = server.conf_dir().to_string();
    let (tx, mut rx) = mpsc::unbounded_channel::<()>();
    let started = std::thread::Builder::new()
        .name("conf-watch".into())
        .spawn(move || {
            let mut ino = match Inotify::init() {
                Ok(i) => i,
                Err(e) => {
                    tracing::warn!("configuration changes will not be noticed (inotify: {e})");
                    return;
                }
            };
            let mask = WatchMask::CLOSE_WRITE
                | WatchMask::MOVED_TO
                | WatchMask::MOVED_FROM
                | WatchMask::DELETE
                | WatchMask::CREATE;
            for sub in ["", "filter.d", "action.d", "jail.d", "fail2ban.d"] {
                let p = Path::new(&dir).join(sub);
                if p.is_dir() {
                    if let Err(e) = ino.watches().add(&p, mask) {
                        tracing::warn!("cannot watch {}: {e}", p.display());
                    }
                }
            }
            let mut buf = [0u8; 4096];
            loop {
                match ino.read_events_blocking(&mut buf) {
                    Ok(events) => {
                        let relevant = events.into_iter().any(|e| {
                            e.name
                                .and_then(|n| n.to_str())
                                .is_some_and(|n| n.ends_with(".conf") || n.ends_with(".local"))
                        });
                        if relevant && tx.send(()).is_err() {
                            return;
                        }
                    }
                    Err(e) => {
                        tracing::warn!("configuration watch stopped: {e}");
                        return;
                    }
                }
            }
        });
    if let Err(e) = started {
        tracing::warn!("configuration changes will not be noticed: {e}");
        return;
    }
    while rx.recv().await.is_some() {
        // Editors and generators write several files at once: settle first.
        tokio::time::sleep(Duration::from_millis(300)).await;
        while rx.try_recv().is_ok() {}
        tracing::info!("configuration changed: reloading");
        let cmd = [serde_json::Value::from("reload")];
        if let Err(e) = server.command(&cmd).await {
            tracing::error!("reload after a configuration change failed: {e}");
        }
    }
}
