//! Helpers that several test modules share.

use std::fs;
use std::path::PathBuf;

/// Kills (SIGKILL) the process whose pid a pid file holds, when dropped:
/// a server started in the background outlives a test that fails before
/// it could stop it.
pub(crate) struct PidGuard(pub(crate) PathBuf);

impl Drop for PidGuard {
    fn drop(&mut self) {
        let Ok(pid) = fs::read_to_string(&self.0) else {
            return;
        };
        if let Ok(pid) = pid.trim().parse::<i32>() {
            // SAFETY: kill(2) on a pid the server wrote for itself.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
    }
}
