//! The one thread that follows the log files of every jail.
//!
//! A thread per followed log costs a stack, a malloc arena and tracing's
//! per-thread state, which for a server with every stock jail enabled was
//! a third of its memory. Reading a log file is short work, so one thread
//! multiplexes all of them with poll(2) over their inotify descriptors and
//! the hub's waker, each follower telling when it next needs a turn
//! (polling, rescans, coalescing, a batch its jail has no room for yet).
//! A follower never blocks: a full channel leaves the batch pending in it,
//! so one slow jail never holds up the others.

use std::os::fd::RawFd;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use super::waker::Waker;

/// Something the hub drives: one jail's file source.
pub(crate) trait Follower: Send {
    /// The descriptor whose readability calls for a turn, if any.
    fn fd(&self) -> Option<RawFd>;
    /// When the follower needs a turn even if its descriptor stays quiet;
    /// `None` means only when it is readable or the hub is woken.
    fn deadline(&self) -> Option<Instant>;
    /// Does whatever is due; `readable` says whether [`fd`](Self::fd) is.
    /// `scratch` is the hub's buffer for reading the descriptor (one for
    /// all followers, as they take turns). Returns false once the follower
    /// is finished and can be dropped.
    fn turn(&mut self, readable: bool, scratch: &mut [u8]) -> bool;
}

/// Hands followers to the hub thread and wakes it.
pub(crate) struct Hub {
    incoming: Mutex<Vec<Box<dyn Follower>>>,
    waker: Waker,
}

// Idle followers still get a turn this often, which bounds the cost of a
// missed wake-up.
const IDLE: Duration = Duration::from_secs(3600);

static HUB: OnceLock<&'static Hub> = OnceLock::new();
static START: Mutex<()> = Mutex::new(());

impl Hub {
    /// The hub, its thread started on first use.
    pub(crate) fn get() -> std::io::Result<&'static Hub> {
        if let Some(h) = HUB.get() {
            return Ok(h);
        }
        let _g = START.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(h) = HUB.get() {
            return Ok(h);
        }
        let hub: &'static Hub = Box::leak(Box::new(Hub {
            incoming: Mutex::new(Vec::new()),
            waker: Waker::new()?,
        }));
        std::thread::Builder::new()
            .name("f3b-files".into())
            .spawn(move || hub.run())?;
        let _ = HUB.set(hub);
        Ok(hub)
    }

    /// Gives `f` its first turn as soon as possible.
    pub(crate) fn add(&self, f: Box<dyn Follower>) {
        self.incoming
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(f);
        self.wake();
    }

    /// Gives every follower a turn now.
    pub(crate) fn wake(&self) {
        self.waker.wake();
    }

    fn run(&self) {
        let mut followers: Vec<Box<dyn Follower>> = Vec::new();
        let mut fds = Vec::new();
        let mut ready = Vec::new();
        // inotify events are at most 16 bytes plus a NAME_MAX name.
        let mut scratch = vec![0u8; 4096];
        loop {
            followers.append(&mut self.incoming.lock().unwrap_or_else(|e| e.into_inner()));
            ready.resize(followers.len(), false);
            let mut i = 0;
            while i < followers.len() {
                let readable = ready[i];
                let f = &mut followers[i];
                // A panic in one follower ends that source (its jail sees
                // the end of its batches), not the others.
                match catch_unwind(AssertUnwindSafe(|| f.turn(readable, &mut scratch))) {
                    Ok(true) => i += 1,
                    done => {
                        if done.is_err() {
                            tracing::error!("a file source failed; its jail reads no more lines");
                        }
                        followers.swap_remove(i);
                        ready.swap_remove(i);
                    }
                }
            }
            let now = Instant::now();
            let timeout = followers
                .iter()
                .filter_map(|f| f.deadline())
                .min()
                .map_or(IDLE, |d| d.saturating_duration_since(now))
                .min(IDLE);
            fds.clear();
            fds.extend(followers.iter().map(|f| f.fd().unwrap_or(-1)));
            self.waker.wait(&fds, &mut ready, timeout);
        }
    }
}
