//! The cross-thread waker: `call_soon_threadsafe` uses it to end the loop's wait in the poller.
//!
//! Wake-ups coalesce: after the first `wake` since the last poll, further ones cost one atomic
//! swap and no syscall. The loop always checks its ready queue (under the GIL) before sleeping, so
//! the flag can never hide a pending callback.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};

use crate::sys;

/// An eventfd plus a "wake already pending" flag.
#[derive(Debug)]
pub struct Waker {
    /// The eventfd registered in the reactor's epoll set.
    fd: OwnedFd,
    /// True from the first `wake` until the reactor consumes it in `poll`.
    pending: AtomicBool,
}

impl Waker {
    pub(super) fn new() -> io::Result<Self> {
        Ok(Self { fd: sys::eventfd_create()?, pending: AtomicBool::new(false) })
    }

    pub(super) fn raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    /// Ends the reactor's current or next wait. Callable from any thread.
    pub fn wake(&self) -> io::Result<()> {
        if self.pending.swap(true, Ordering::AcqRel) {
            return Ok(());
        }
        sys::eventfd_signal(&self.fd)
    }

    /// Consumes a wake-up (reactor side, after epoll reported the eventfd).
    pub(super) fn reset(&self) {
        sys::eventfd_drain(&self.fd);
        self.pending.store(false, Ordering::Release);
    }
}
