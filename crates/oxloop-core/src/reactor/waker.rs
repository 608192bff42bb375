//! The cross-thread waker: `call_soon_threadsafe` uses it to end the loop's wait in the poller.
//!
//! Wake-ups coalesce: after the first `wake` since the last poll, further ones cost one atomic
//! swap and no syscall. The loop always checks its ready queue (under the GIL) before sleeping, so
//! the flag can never hide a pending callback.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use crate::sys;

/// An eventfd plus a "wake already pending" flag.
#[derive(Debug)]
pub struct Waker {
    /// The eventfd registered in the reactor's epoll set; `None` once closed, so a late `wake`
    /// from another thread can never write to a reused fd number.
    fd: Mutex<Option<OwnedFd>>,
    /// The eventfd's number, for registration.
    raw: RawFd,
    /// True from the first `wake` until the reactor consumes it in `poll`.
    pending: AtomicBool,
}

impl Waker {
    pub(super) fn new() -> io::Result<Self> {
        let fd = sys::eventfd_create()?;
        let raw = fd.as_raw_fd();
        Ok(Self {
            fd: Mutex::new(Some(fd)),
            raw,
            pending: AtomicBool::new(false),
        })
    }

    pub(super) fn raw_fd(&self) -> RawFd {
        self.raw
    }

    fn with_fd(&self, f: impl FnOnce(&OwnedFd) -> io::Result<()>) -> io::Result<()> {
        let guard = self.fd.lock().unwrap_or_else(|e| e.into_inner());
        match guard.as_ref() {
            Some(fd) => f(fd),
            None => Ok(()),
        }
    }

    /// Ends the reactor's current or next wait. Callable from any thread; a no-op once closed.
    pub fn wake(&self) -> io::Result<()> {
        if self.pending.swap(true, Ordering::AcqRel) {
            return Ok(());
        }
        self.with_fd(sys::eventfd_signal)
    }

    /// Consumes a wake-up (reactor side, after epoll reported the eventfd).
    pub(super) fn reset(&self) {
        // NOTE: draining cannot fail in a way that matters: nothing pending is the goal.
        let _ = self.with_fd(|fd| {
            sys::eventfd_drain(fd);
            Ok(())
        });
        self.pending.store(false, Ordering::Release);
    }

    /// Closes the eventfd (the loop is closing); later wakes do nothing.
    pub fn close(&self) {
        let fd = self.fd.lock().unwrap_or_else(|e| e.into_inner()).take();
        drop(fd);
    }
}
