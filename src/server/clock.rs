//! Where the server's and its jails' time comes from: the wall clock in
//! the daemon; in tests, a clock that follows tokio's time, so that a test
//! on paused time (`tokio::time::advance`) moves `now()` and every timer
//! of a jail together, and covers hours of findtime and bantime in
//! moments.

use std::time::Duration;

/// The time a jail counts failures, bans and unbans by. Copied into each
/// part of a jail that needs it: there is no global one.
#[derive(Debug, Clone, Copy)]
pub struct Clock(Kind);

#[derive(Debug, Clone, Copy)]
enum Kind {
    Wall,
    /// The wall time at `at`, then as much later as tokio's clock says.
    Tokio {
        wall: f64,
        at: tokio::time::Instant,
    },
}

/// The longest a timer waits before it looks at the time again, so that a
/// jump of the wall clock delays an unban by at most that.
const MAX_WAIT: Duration = Duration::from_secs(86400);

fn wall_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

impl Clock {
    /// The system's wall clock: log time stamps are wall time.
    pub fn wall() -> Clock {
        Clock(Kind::Wall)
    }

    /// A clock that starts at the wall time now and then moves with
    /// tokio's clock (paused and advanced by a test). Call it within a
    /// tokio runtime.
    pub fn following_tokio() -> Clock {
        Clock(Kind::Tokio {
            wall: wall_now(),
            at: tokio::time::Instant::now(),
        })
    }

    /// Unix time now.
    pub fn now(&self) -> f64 {
        match self.0 {
            Kind::Wall => wall_now(),
            Kind::Tokio { wall, at } => wall + at.elapsed().as_secs_f64(),
        }
    }

    /// How long a timer waits for the Unix time `t` (none if it is past, at
    /// most [`MAX_WAIT`]).
    pub fn until(&self, t: f64) -> Duration {
        Duration::from_secs_f64((t - self.now()).clamp(0.0, MAX_WAIT.as_secs_f64()))
    }

    /// The clock as the actions take it, for their `<time>` tag.
    pub fn for_actions(self) -> crate::action::Clock {
        std::sync::Arc::new(move || self.now())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn following_tokio_moves_with_advance() {
        let c = Clock::following_tokio();
        let t0 = c.now();
        tokio::time::advance(Duration::from_secs(7200)).await;
        let moved = c.now() - t0;
        assert!((moved - 7200.0).abs() < 0.01, "{moved}");
        assert_eq!(c.until(t0 + 7260.0).as_secs(), 60);
        assert_eq!(c.until(t0), Duration::ZERO);
    }

    #[test]
    fn wall_is_the_system_time() {
        assert!((Clock::wall().now() - wall_now()).abs() < 1.0);
        assert_eq!(Clock::wall().until(f64::MAX), MAX_WAIT);
    }
}
