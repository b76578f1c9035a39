//! Waking the reader thread that sleeps in poll(2): a pipe whose read end is
//! polled with the inotify descriptors, so a new source or a stop request
//! never waits for the next tick.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::time::Duration;

/// The two ends of a non-blocking, close-on-exec pipe.
#[derive(Debug)]
pub(crate) struct Waker {
    read: OwnedFd,
    write: OwnedFd,
}

impl Waker {
    pub(crate) fn new() -> io::Result<Waker> {
        let mut fds = [0 as libc::c_int; 2];
        // SAFETY: fds is a valid two-element array, as pipe2 requires.
        let rc = unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC | libc::O_NONBLOCK) };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: pipe2 succeeded, so both descriptors are open and ours.
        unsafe {
            Ok(Waker {
                read: OwnedFd::from_raw_fd(fds[0]),
                write: OwnedFd::from_raw_fd(fds[1]),
            })
        }
    }

    /// Makes the next (or current) [`wait`] return at once.
    pub(crate) fn wake(&self) {
        let b = 1u8;
        // SAFETY: writes one byte from a live stack variable to our pipe.
        // A full pipe (EAGAIN) already means "woken", so errors are ignored.
        unsafe {
            libc::write(self.write.as_raw_fd(), (&b as *const u8).cast(), 1);
        }
    }

    /// Sleeps until one of `fds` (-1 entries are ignored) is readable, the
    /// waker is woken, or `timeout` passes. `ready[i]` tells whether
    /// `fds[i]` is readable.
    pub(crate) fn wait(&self, fds: &[RawFd], ready: &mut Vec<bool>, timeout: Duration) {
        let mut pfds: Vec<libc::pollfd> = std::iter::once(self.read.as_raw_fd())
            .chain(fds.iter().copied())
            .map(|fd| libc::pollfd {
                fd,
                events: libc::POLLIN,
                revents: 0,
            })
            .collect();
        let ms = timeout.as_millis().min(i32::MAX as u128) as libc::c_int;
        // SAFETY: pfds is a valid array of pollfd of the given length; poll
        // ignores negative descriptors.
        let n = unsafe { libc::poll(pfds.as_mut_ptr(), pfds.len() as libc::nfds_t, ms) };
        ready.clear();
        ready.extend(pfds[1..].iter().map(|p| n > 0 && p.revents != 0));
        if n > 0 && pfds[0].revents != 0 {
            let mut buf = [0u8; 64];
            // SAFETY: reads into a live stack buffer of the given length.
            unsafe {
                libc::read(self.read.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    #[test]
    fn wake_interrupts_wait() {
        let w = Waker::new().unwrap();
        let mut ready = Vec::new();
        w.wake();
        let t = Instant::now();
        w.wait(&[-1], &mut ready, Duration::from_secs(5));
        assert_eq!(ready, [false]);
        assert!(t.elapsed() < Duration::from_secs(1));
        let t = Instant::now();
        w.wait(&[], &mut ready, Duration::from_millis(20));
        assert!(t.elapsed() >= Duration::from_millis(15));
    }

    #[test]
    fn reports_readable_fds() {
        let w = Waker::new().unwrap();
        let other = Waker::new().unwrap();
        other.wake();
        let mut ready = Vec::new();
        w.wait(
            &[-1, other.read.as_raw_fd()],
            &mut ready,
            Duration::from_secs(5),
        );
        assert_eq!(ready, [false, true]);
    }
}
