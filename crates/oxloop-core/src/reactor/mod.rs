//! The reactor: waits for I/O readiness on many file descriptors at once.
//!
//! In a loop tick this is step 2: the binding crate computes a timeout, releases the GIL and calls
//! [`Reactor::poll`], which returns the ready descriptors. Interest is per fd number, as asyncio's
//! selector keys readers and writers by fd.
//!
//! # Implementation
//! Linux epoll in level-triggered mode, like Python's `selectors.EpollSelector`: a reader whose
//! callback does not drain its socket is called again next tick, which is what `add_reader` users
//! (and our own transports, which read once per tick as asyncio's do) expect. Error and hang-up
//! conditions are reported as both readable and writable, as `EpollSelector.select` does. A fd that
//! was closed and reused behind our back is re-added instead of failing.

mod waker;

pub use waker::Waker;

use std::collections::HashMap;
use std::io;
use std::os::fd::{OwnedFd, RawFd};
use std::sync::Arc;
use std::time::Duration;

use rustix::event::epoll;

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

    /// Whether this interest asks for nothing.
    pub fn is_empty(self) -> bool {
        !self.readable && !self.writable
    }
}

/// One ready file descriptor, as returned by [`Reactor::poll`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Event {
    /// The descriptor.
    pub fd: RawFd,
    /// Readable (or in error / hung up) and registered for reading.
    pub readable: bool,
    /// Writable (or in error) and registered for writing.
    pub writable: bool,
}

/// An epoll instance, its registrations and its waker.
pub struct Reactor {
    /// The epoll descriptor; `None` once [`Reactor::close`] ran (closed when the reactor drops
    /// otherwise).
    epoll: Option<OwnedFd>,
    /// Current interest of every registered fd; an fd is absent when its interest is empty.
    interests: HashMap<RawFd, Interest>,
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
            interests: HashMap::new(),
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
        self.interests.clear();
        self.epoll = None;
        self.waker.close();
    }

    /// A handle that wakes this reactor's poll from any thread.
    pub fn waker(&self) -> Arc<Waker> {
        Arc::clone(&self.waker)
    }

    /// The current interest registered for `fd`.
    pub fn interest(&self, fd: RawFd) -> Interest {
        self.interests.get(&fd).copied().unwrap_or_default()
    }

    /// The number of registered descriptors.
    pub fn len(&self) -> usize {
        self.interests.len()
    }

    /// Whether no descriptor is registered.
    pub fn is_empty(&self) -> bool {
        self.interests.is_empty()
    }

    /// Sets `fd`'s interest, adding, modifying or removing its epoll registration as needed.
    pub fn set_interest(&mut self, fd: RawFd, interest: Interest) -> io::Result<()> {
        let old = self.interest(fd);
        if old == interest {
            return Ok(());
        }
        let flags = sys::epoll_flags(interest.readable, interest.writable);
        let data = fd as u64;
        if interest.is_empty() {
            self.interests.remove(&fd);
            // NOTE: the fd may already be closed (epoll forgets closed files): nothing to undo.
            if let Ok(ep) = self.epoll() {
                let _ = sys::epoll_delete(ep, fd);
            }
            return Ok(());
        }
        let ep = self.epoll()?;
        let result = if old.is_empty() {
            match sys::epoll_add(ep, fd, flags, data) {
                // Registered earlier under a number that was closed and reused: update it.
                Err(e) if e.raw_os_error() == Some(rustix::io::Errno::EXIST.raw_os_error()) => {
                    sys::epoll_modify(ep, fd, flags, data)
                }
                r => r,
            }
        } else {
            match sys::epoll_modify(ep, fd, flags, data) {
                // Closed behind our back (epoll dropped it), maybe reopened: register afresh.
                Err(e) if e.raw_os_error() == Some(rustix::io::Errno::NOENT.raw_os_error()) => {
                    sys::epoll_add(ep, fd, flags, data)
                }
                r => r,
            }
        };
        match result {
            Ok(()) => {
                self.interests.insert(fd, interest);
                Ok(())
            }
            Err(e) => {
                self.interests.remove(&fd);
                Err(e)
            }
        }
    }

    /// Forgets `fd` entirely.
    pub fn remove(&mut self, fd: RawFd) {
        // Setting empty interest cannot fail.
        let _ = self.set_interest(fd, Interest::NONE);
    }

    /// Waits up to `timeout` (`None`: forever) and returns the ready descriptors. A wake-up from
    /// [`Waker::wake`] ends the wait and is consumed here; it is not among the returned events.
    /// A signal ends the wait with `ErrorKind::Interrupted`.
    pub fn poll(&mut self, timeout: Option<Duration>) -> io::Result<&[Event]> {
        let want = self.interests.len() + 1;
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
            let fd = token as RawFd;
            let Some(interest) = self.interests.get(&fd) else {
                continue;
            };
            let flags = ev.flags;
            // Mirrors selectors.EpollSelector.select: anything but OUT counts as readable,
            // anything but IN counts as writable (so ERR/HUP wake both sides).
            let readable = interest.readable && !(flags - epoll::EventFlags::OUT).is_empty();
            let writable = interest.writable && !(flags - epoll::EventFlags::IN).is_empty();
            if readable || writable {
                self.events.push(Event {
                    fd,
                    readable,
                    writable,
                });
            }
        }
        Ok(&self.events)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::os::fd::AsRawFd;
    use std::os::unix::net::UnixStream;

    #[test]
    fn readable_is_level_triggered() {
        let mut r = Reactor::new().unwrap();
        let (mut a, b) = UnixStream::pair().unwrap();
        r.set_interest(
            b.as_raw_fd(),
            Interest {
                readable: true,
                writable: false,
            },
        )
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
        r.set_interest(
            fd,
            Interest {
                readable: false,
                writable: true,
            },
        )
        .unwrap();
        assert_eq!(r.poll(Some(Duration::ZERO)).unwrap().len(), 1);
        r.remove(fd);
        assert!(r.is_empty());
        assert!(r.poll(Some(Duration::ZERO)).unwrap().is_empty());
    }

    #[test]
    fn closed_fd_reregisters_after_reuse() {
        let mut r = Reactor::new().unwrap();
        let (a, _b) = UnixStream::pair().unwrap();
        let (c, _d) = UnixStream::pair().unwrap();
        let mut a: OwnedFd = a.into();
        let fd = a.as_raw_fd();
        r.set_interest(
            fd,
            Interest {
                readable: true,
                writable: false,
            },
        )
        .unwrap();
        // The number now names another file: the old one was closed behind the reactor's back.
        rustix::io::dup2(&c, &mut a).unwrap();
        r.set_interest(
            fd,
            Interest {
                readable: true,
                writable: true,
            },
        )
        .unwrap();
        assert_eq!(r.poll(Some(Duration::ZERO)).unwrap().len(), 1);
    }

    #[test]
    fn close_releases_fds() {
        let mut r = Reactor::new().unwrap();
        let w = r.waker();
        let (a, _b) = UnixStream::pair().unwrap();
        r.set_interest(
            a.as_raw_fd(),
            Interest {
                readable: true,
                writable: false,
            },
        )
        .unwrap();
        r.close();
        assert!(r.is_empty());
        assert!(r.poll(Some(Duration::ZERO)).is_err());
        assert!(r
            .set_interest(
                a.as_raw_fd(),
                Interest {
                    readable: true,
                    writable: false
                }
            )
            .is_err());
        w.wake().unwrap(); // a no-op now
        assert_eq!(w.raw_fd(), -1);
    }

    #[test]
    fn waker_ends_a_wait_from_another_thread() {
        let mut r = Reactor::new().unwrap();
        let w = r.waker();
        let t = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(20));
            w.wake().unwrap();
        });
        let start = std::time::Instant::now();
        assert!(r.poll(Some(Duration::from_secs(10))).unwrap().is_empty());
        assert!(start.elapsed() < Duration::from_secs(5));
        t.join().unwrap();
        // The wake-up was consumed.
        assert!(r.poll(Some(Duration::ZERO)).unwrap().is_empty());
    }
}
