//! The cross-thread waker: `call_soon_threadsafe` uses it to end the loop's wait in the poller.
//!
//! Wake-ups coalesce: after the first `wake` since the last poll, further ones cost one atomic
//! swap and no syscall. The loop always checks its ready queue (under the GIL) before sleeping, so
//! the flag can never hide a pending callback.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::RwLock;

use crate::sys;

/// An eventfd plus a "wake already pending" flag.
#[derive(Debug)]
pub struct Waker {
    /// The eventfd registered in the reactor's epoll set; `None` once the reactor is closed.
    /// Read-locked only by the first `wake` after a poll, so wake-ups stay cheap.
    fd: RwLock<Option<OwnedFd>>,
    /// True from the first `wake` until the reactor consumes it in `poll`.
    pending: AtomicBool,
}

impl Waker {
    pub(super) fn new() -> io::Result<Self> {
        Ok(Self {
            fd: RwLock::new(Some(sys::eventfd_create()?)),
            pending: AtomicBool::new(false),
        })
    }

    /// The eventfd's number, or -1 once closed.
    pub(super) fn raw_fd(&self) -> RawFd {
        self.fd().as_ref().map_or(-1, |fd| fd.as_raw_fd())
    }

    fn fd(&self) -> std::sync::RwLockReadGuard<'_, Option<OwnedFd>> {
        self.fd.read().unwrap_or_else(|e| e.into_inner())
    }

    /// Closes the eventfd; later wake-ups do nothing.
    pub(super) fn close(&self) {
        self.pending.store(true, Ordering::Release);
        let fd = self.fd.write().unwrap_or_else(|e| e.into_inner()).take();
        drop(fd);
    }

    /// Ends the reactor's current or next wait. Callable from any thread.
    pub fn wake(&self) -> io::Result<()> {
        // NOTE: a plain load first: a producer calling in a tight loop finds the flag set and
        // leaves the cache line shared, instead of taking it exclusive with a locked swap per call.
        // A stale `true` is harmless: the wake-up it stands for has not been consumed yet.
        if self.pending.load(Ordering::Acquire) || self.pending.swap(true, Ordering::AcqRel) {
            return Ok(());
        }
        match self.fd().as_ref() {
            Some(fd) => sys::eventfd_signal(fd),
            None => Ok(()),
        }
    }

    /// Consumes a wake-up (reactor side, after epoll reported the eventfd).
    pub(super) fn reset(&self) {
        if let Some(fd) = self.fd().as_ref() {
            sys::eventfd_drain(fd);
        }
        self.pending.store(false, Ordering::Release);
    }
}
