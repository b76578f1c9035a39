//! The unban timer: sleeps until the next ban ends.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{mpsc, watch, Notify};

use super::state::JailState;
use super::{now, Job};

pub(super) async fn unban_timer(
    state: Arc<Mutex<JailState>>,
    jobs: mpsc::Sender<Job>,
    wake: Arc<Notify>,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        let next = state.lock().expect("jail lock").engine.next_unban_time();
        let wait = match next {
            Some(t) => Duration::from_secs_f64((t - now()).clamp(0.0, 86400.0)),
            None => Duration::from_secs(86400),
        };
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = wake.notified() => continue,
            _ = stop.changed() => return,
        }
        let expired = state.lock().expect("jail lock").engine.unban_expired(now());
        for t in expired {
            if jobs.send(Job::Unban(Box::new(t), false)).await.is_err() {
                return;
            }
        }
    }
}
