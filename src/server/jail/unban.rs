//! The unban timer: sleeps until the next ban ends.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::super::clock::Clock;

use tokio::sync::{mpsc, watch, Notify};

use super::state::JailState;
use super::Job;

pub(super) async fn unban_timer(
    state: Arc<Mutex<JailState>>,
    jobs: mpsc::Sender<Job>,
    wake: Arc<Notify>,
    mut stop: watch::Receiver<bool>,
    clock: Clock,
) {
    loop {
        let next = state.lock().expect("jail lock").engine.next_unban_time();
        let wait = match next {
            Some(t) => clock.until(t),
            None => Duration::from_secs(86400),
        };
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = wake.notified() => continue,
            _ = stop.changed() => return,
        }
        let expired = state
            .lock()
            .expect("jail lock")
            .engine
            .unban_expired(clock.now());
        for t in expired {
            if jobs.send(Job::Unban(Box::new(t), false)).await.is_err() {
                return;
            }
        }
    }
}
