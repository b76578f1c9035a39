//! Store writes from a jail: run off the runtime, and a failure is logged
//! with what was being written and why, never dropped.

use std::fmt::Display;

/// Runs `write` on the blocking pool. Its error, or the task's panic, is
/// logged as `[jail] <what>: <cause>`; the caller learns only whether it
/// was done.
pub(super) async fn store_write<T: Send + 'static>(
    jail: &str,
    what: impl Display,
    write: impl FnOnce() -> crate::store::Result<T> + Send + 'static,
) -> bool {
    match tokio::task::spawn_blocking(write).await {
        Ok(Ok(_)) => true,
        Ok(Err(e)) => {
            tracing::error!("[{jail}] {what}: {e}");
            false
        }
        Err(e) => {
            tracing::error!("[{jail}] {what}: the task failed: {e}");
            false
        }
    }
}
