//! The reactor: waits for I/O readiness on many file descriptors at once.
//!
//! In a loop tick this is step 2: the binding crate computes a timeout, releases the GIL and calls
//! [`Reactor::poll`], which returns the ready descriptors. The reactor keeps no table of its own:
//! [`crate::registry::Registry`] owns each fd's interest and tells the reactor what changed
//! ([`Poller::update`]); it also drops events for interest removed since.
//!
//! # Implementation
//! Linux epoll in level-triggered mode, like Python's `selectors.EpollSelector`: a reader whose
//! callback does not drain its socket is called again next tick, which is what `add_reader` users
//! (and our own transports, which read once per tick as asyncio's do) expect. Error and hang-up
//! conditions are reported as both readable and writable, as `EpollSelector.select` does. A fd that
//! was closed and reused behind our back is re-added instead of failing.

mod waker;

pub use waker::Waker;

use std::io;
use std::os::fd::{OwnedFd, RawFd};
use std::sync::Arc;
use std::time::Duration;

use rustix::event::epoll;

use crate::registry::Poller;
use crate::sys;

/// The token reserved for the waker's eventfd.
const WAKER_TOKEN: u64 = u64::MAX;

/// What a registration waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Interest {
    /// Wake when the fd is readable.
    pub readable: bool,
    /// Wake when the fd is writable.
    pub writable: bool,
}

impl Interest {
    /// Interest in neither direction: the fd is not registered.
    pub const NONE: Interest = Interest {
        readable: false,
        writable: false,
    };

    /// Interest in reading only.
    pub const READ: Interest = Interest {
        readable: true,
        writable: false,
    };

    /// Whether this interest asks for nothing.
    pub fn is_empty(self) -> bool {
        !self.readable && !self.writable
    }
}

/// One ready file descriptor, as returned by [`Reactor::poll`]. The registry keeps only the
/// directions that are still watched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Event {
    /// The descriptor.
    pub fd: RawFd,
    /// Readable, in error or hung up.
    pub readable: bool,
    /// Writable or in error.
    pub writable: bool,
}

/// An epoll instance and its waker.
pub struct Reactor {
    /// The epoll descriptor; `None` once [`Reactor::close`] ran (closed when the reactor drops
    /// otherwise).
    epoll: Option<OwnedFd>,
    /// How many fds are registered (sizes the event buffer).
    registered: usize,
    /// Kernel event buffer, reused across polls (capacity grows with the number of fds).
    raw: Vec<epoll::Event>,
    /// Decoded events of the last poll, reused across polls.
    events: Vec<Event>,
    /// Cross-thread wake-up, registered under [`WAKER_TOKEN`].
    waker: Arc<Waker>,
}

// SAFETY: the only non-Send part is `epoll::Event`'s union, which could hold a raw pointer; this
// reactor only ever stores plain integers (fd numbers and a token) in it, never a pointer.
unsafe impl Send for Reactor {}

impl Reactor {
    /// A reactor with its waker registered.
    pub fn new() -> io::Result<Self> {
        let epoll = sys::epoll_create()?;
        let waker = Arc::new(Waker::new()?);
        sys::epoll_add(
            &epoll,
            waker.raw_fd(),
            sys::epoll_flags(true, false),
            WAKER_TOKEN,
        )?;
        Ok(Self {
            epoll: Some(epoll),
            registered: 0,
            raw: Vec::with_capacity(256),
            events: Vec::with_capacity(256),
            waker,
        })
    }

    /// The epoll fd, or `EBADF` once closed.
    fn epoll(&self) -> io::Result<&OwnedFd> {
        self.epoll
            .as_ref()
            .ok_or_else(|| io::Error::from_raw_os_error(rustix::io::Errno::BADF.raw_os_error()))
    }

    /// Closes the epoll fd and the waker's eventfd now, as asyncio's `loop.close()` closes its
    /// selector; every registration is forgotten and later polls fail with `EBADF`.
    pub fn close(&mut self) {
        self.registered = 0;
        self.epoll = None;
        self.waker.close();
    }

    /// A handle that wakes this reactor's poll from any thread.
    pub fn waker(&self) -> Arc<Waker> {
        Arc::clone(&self.waker)
    }

    /// Waits up to `timeout` (`None`: forever) and returns the ready descriptors. A wake-up from
    /// [`Waker::wake`] ends the wait and is consumed here; it is not among the returned events.
    /// A signal ends the wait with `ErrorKind::Interrupted`.
    pub fn poll(&mut self, timeout: Option<Duration>) -> io::Result<&[Event]> {
        let want = self.registered + 1;
        if self.raw.capacity() < want {
            self.raw.reserve(want - self.raw.len());
        }
        let ep = self
            .epoll
            .as_ref()
            .ok_or_else(|| io::Error::from_raw_os_error(rustix::io::Errno::BADF.raw_os_error()))?;
        sys::epoll_wait(ep, &mut self.raw, timeout)?;
        self.events.clear();
        for ev in &self.raw {
            let token = ev.data.u64();
            if token == WAKER_TOKEN {
                self.waker.reset();
                continue;
            }
            let flags = ev.flags;
            // Mirrors selectors.EpollSelector.select: anything but OUT counts as readable,
            // anything but IN counts as writable (so ERR/HUP wake both sides).
            self.events.push(Event {
                fd: token as RawFd,
                readable: !(flags - epoll::EventFlags::OUT).is_empty(),
                writable: !(flags - epoll::EventFlags::IN).is_empty(),
            });
        }
        Ok(&self.events)
    }
}

impl Poller for Reactor {
    fn update(&mut self, fd: RawFd, old: Interest, new: Interest) -> io::Result<()> {
        if old == new {
            return Ok(());
        }
        let flags = sys::epoll_flags(new.readable, new.writable);
        let data = fd as u64;
        if new.is_empty() {
            self.registered = self.registered.saturating_sub(1);
            // NOTE: the fd may already be closed (epoll forgets closed files): nothing to undo.
            if let Ok(ep) = self.epoll() {
                let _ = sys::epoll_delete(ep, fd);
            }
            return Ok(());
        }
        let ep = self.epoll()?;
        if old.is_empty() {
            match sys::epoll_add(ep, fd, flags, data) {
                // Registered earlier under a number that was closed and reused: update it.
                Err(e) if e.raw_os_error() == Some(rustix::io::Errno::EXIST.raw_os_error()) => {
                    sys::epoll_modify(ep, fd, flags, data)
                }
                r => r,
            }?;
            self.registered += 1;
            Ok(())
        } else {
            match sys::epoll_modify(ep, fd, flags, data) {
                // Closed behind our back (epoll dropped it), maybe reopened: register afresh.
                Err(e) if e.raw_os_error() == Some(rustix::io::Errno::NOENT.raw_os_error()) => {
                    sys::epoll_add(ep, fd, flags, data)
                }
                r => r,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::os::fd::AsRawFd;
    use std::os::unix::net::UnixStream;

    const W: Interest = Interest {
        readable: false,
        writable: true,
    };
    const RW: Interest = Interest {
        readable: true,
        writable: true,
    };

    #[test]
    fn readable_is_level_triggered() {
        let mut r = Reactor::new().unwrap();
        let (mut a, b) = UnixStream::pair().unwrap();
        r.update(b.as_raw_fd(), Interest::NONE, Interest::READ)
            .unwrap();
        assert!(r.poll(Some(Duration::ZERO)).unwrap().is_empty());
        a.write_all(b"x").unwrap();
        let ev = r.poll(Some(Duration::from_secs(1))).unwrap().to_vec();
        assert_eq!(
            ev,
            vec![Event {
                fd: b.as_raw_fd(),
                readable: true,
                writable: false
            }]
        );
        // Not drained: reported again, as a level-triggered selector does.
        assert_eq!(r.poll(Some(Duration::ZERO)).unwrap().len(), 1);
    }

    #[test]
    fn writable_and_removal() {
        let mut r = Reactor::new().unwrap();
        let (a, _b) = UnixStream::pair().unwrap();
        let fd = a.as_raw_fd();
        r.update(fd, Interest::NONE, W).unwrap();
        assert_eq!(r.poll(Some(Duration::ZERO)).unwrap().len(), 1);
        r.update(fd, W, Interest::NONE).unwrap();
        assert_eq!(r.registered, 0);
        assert!(r.poll(Some(Duration::ZERO)).unwrap().is_empty());
    }

    #[test]
    fn closed_fd_reregisters_after_reuse() {
        let mut r = Reactor::new().unwrap();
        let (a, _b) = UnixStream::pair().unwrap();
        let (c, _d) = UnixStream::pair().unwrap();
        let mut a: OwnedFd = a.into();
        let fd = a.as_raw_fd();
        r.update(fd, Interest::NONE, Interest::READ).unwrap();
        // The number now names another file: the old one was closed behind the reactor's back.
        rustix::io::dup2(&c, &mut a).unwrap();
        r.update(fd, Interest::READ, RW).unwrap();
        assert_eq!(r.poll(Some(Duration::ZERO)).unwrap().len(), 1);
    }

    #[test]
    fn close_releases_fds() {
        let mut r = Reactor::new().unwrap();
        let w = r.waker();
        let (a, _b) = UnixStream::pair().unwrap();
        r.update(a.as_raw_fd(), Interest::NONE, Interest::READ)
            .unwrap();
        r.close();
        assert_eq!(r.registered, 0);
        assert!(r.poll(Some(Duration::ZERO)).is_err());
        assert!(r
            .update(a.as_raw_fd(), Interest::NONE, Interest::READ)
            .is_err());
        w.wake().unwrap(); // a no-op now
        assert_eq!(w.raw_fd(), -1);
    }

    /// Wakes `r` with `w` from another thread 20 ms into a 10 s wait: the wait must end early.
    fn assert_a_wake_from_another_thread_ends_the_wait(r: &mut Reactor, w: Arc<Waker>) {
        let t = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(20));
            w.wake().unwrap();
        });
        let start = std::time::Instant::now();
        assert!(r.poll(Some(Duration::from_secs(10))).unwrap().is_empty());
        assert!(start.elapsed() < Duration::from_secs(5));
        t.join().unwrap();
    }

    #[test]
    fn waker_ends_a_wait_from_another_thread() {
        let mut r = Reactor::new().unwrap();
        let w = r.waker();
        assert_a_wake_from_another_thread_ends_the_wait(&mut r, w);
        // The wake-up was consumed.
        assert!(r.poll(Some(Duration::ZERO)).unwrap().is_empty());
    }

    #[test]
    fn wakes_coalesce_until_a_poll_consumes_them_then_signal_again() {
        let mut r = Reactor::new().unwrap();
        let w = r.waker();
        w.wake().unwrap();
        w.wake().unwrap(); // coalesced: the flag is already set
        assert!(r.poll(Some(Duration::ZERO)).unwrap().is_empty());
        // Consumed: the flag is clear again, so a wake-up during the next wait signals it.
        assert_a_wake_from_another_thread_ends_the_wait(&mut r, w);
    }
}
