//! The fd registry: the one place that knows who owns each file descriptor and what it waits for.
//!
//! In a loop tick it serves step 3: [`Registry::ready`] turns the poller's events into the
//! watchers to queue. Between ticks, `add_reader`, `remove_reader`, the transports and the
//! `sock_*` waits change it, and it updates the poller's interest itself ([`Poller::update`]):
//! the epoll interest is derived from this table and stored nowhere else.
//!
//! Each fd has one [`Slot`]: a reader, a writer, the transport that owns the fd (asyncio's
//! `loop._transports[fd]`) and the file object it was last watched under (asyncio's selector key
//! `fileobj`, so `remove_reader(sock)` still finds the fd once `sock` is closed).
//!
//! # Guarantees
//! - An fd is registered with the poller exactly when its slot has a reader or a writer, with
//!   exactly that interest; a failed poller update leaves the slot as it was.
//! - An fd has at most one owner, the one [`Registry::owner`] returns: asyncio's
//!   `_ensure_fd_no_transport` refuses `add_reader` and `sock_*` on an fd whose owner is not
//!   closing (the binding asks the transport, a Python call, after reading the owner here).
//! - An event for an fd or a direction nobody watches any more is dropped by [`Registry::ready`].
//!
//! # Implementation
//! A `Vec` indexed by fd number (fds are small and dense; the kernel hands out the lowest free
//! number), so the per-event lookup is one bounds check. The vector grows to the largest fd ever
//! registered and never shrinks.

use std::io;
use std::os::fd::RawFd;

use crate::reactor::{Event, Interest};

/// Which readiness a watcher waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// The fd is readable.
    Read,
    /// The fd is writable.
    Write,
}

/// What the registry asks of a poller: to wait for `new` on `fd` instead of `old`.
///
/// [`crate::reactor::Reactor`] implements it over epoll; tests use a recording fake.
pub trait Poller {
    /// Changes `fd`'s interest from `old` (what the registry last set) to `new`. Lowering to
    /// [`Interest::NONE`] must not fail (a closed fd is already gone from the poller).
    fn update(&mut self, fd: RawFd, old: Interest, new: Interest) -> io::Result<()>;
}

/// Everything the loop knows about one fd.
#[derive(Debug)]
pub struct Slot<W, O, F> {
    /// Runs when the fd is readable.
    pub reader: Option<W>,
    /// Runs when the fd is writable.
    pub writer: Option<W>,
    /// The transport owning the fd; `None` for a plain fd.
    pub owner: Option<O>,
    /// The object last passed to `add_reader`/`add_writer` when it was not an int; kept only
    /// while the fd has a reader or a writer.
    pub fileobj: Option<F>,
}

impl<W, O, F> Default for Slot<W, O, F> {
    fn default() -> Self {
        Self {
            reader: None,
            writer: None,
            owner: None,
            fileobj: None,
        }
    }
}

impl<W, O, F> Slot<W, O, F> {
    /// The interest this slot asks of the poller.
    #[inline]
    pub fn interest(&self) -> Interest {
        Interest {
            readable: self.reader.is_some(),
            writable: self.writer.is_some(),
        }
    }

    /// The watcher slot of `direction`.
    #[inline]
    fn watcher_mut(&mut self, direction: Direction) -> &mut Option<W> {
        match direction {
            Direction::Read => &mut self.reader,
            Direction::Write => &mut self.writer,
        }
    }

    /// Whether the slot holds nothing.
    fn is_empty(&self) -> bool {
        self.reader.is_none()
            && self.writer.is_none()
            && self.owner.is_none()
            && self.fileobj.is_none()
    }
}

/// What a slot lost in [`Registry::unwatch`]: drop these after releasing any borrow of the loop
/// state (they may be Python objects whose finalizers call back into the loop).
#[derive(Debug)]
pub struct Unwatched<W, F> {
    /// The removed watcher, if there was one.
    pub watcher: Option<W>,
    /// The file object, released with the last watcher.
    pub fileobj: Option<F>,
}

/// Fds by number: readers, writers, owners; see the module docs.
#[derive(Debug)]
pub struct Registry<W, O, F> {
    /// Indexed by fd; a slot past the end is empty.
    slots: Vec<Slot<W, O, F>>,
    /// How many fds have a reader or a writer (are registered with the poller).
    watched: usize,
}

impl<W, O, F> Default for Registry<W, O, F> {
    fn default() -> Self {
        Self::new()
    }
}

impl<W, O, F> Registry<W, O, F> {
    /// An empty registry.
    pub fn new() -> Self {
        Self {
            slots: Vec::new(),
            watched: 0,
        }
    }

    /// The slot of `fd`, if it holds anything.
    #[inline]
    pub fn slot(&self, fd: RawFd) -> Option<&Slot<W, O, F>> {
        usize::try_from(fd).ok().and_then(|i| self.slots.get(i))
    }

    /// The slot of `fd`, created empty.
    fn slot_mut(&mut self, fd: RawFd) -> &mut Slot<W, O, F> {
        let i = usize::try_from(fd).expect("a registered fd is not negative");
        if i >= self.slots.len() {
            self.slots.resize_with(i + 1, Slot::default);
        }
        &mut self.slots[i]
    }

    /// How many fds have a reader or a writer.
    #[inline]
    pub fn watched(&self) -> usize {
        self.watched
    }

    /// The interest registered for `fd`.
    #[inline]
    pub fn interest(&self, fd: RawFd) -> Interest {
        self.slot(fd).map(Slot::interest).unwrap_or_default()
    }

    /// `fd`'s watcher for `direction`.
    #[inline]
    pub fn watcher(&self, fd: RawFd, direction: Direction) -> Option<&W> {
        let slot = self.slot(fd)?;
        match direction {
            Direction::Read => slot.reader.as_ref(),
            Direction::Write => slot.writer.as_ref(),
        }
    }

    /// Makes `watcher` `fd`'s watcher for `direction` and returns the one it replaces. The
    /// poller is asked first: if it refuses (`EBADF`, `EPERM` for a regular file), nothing
    /// changes and the error comes back with `watcher`.
    pub fn watch(
        &mut self,
        poller: &mut impl Poller,
        fd: RawFd,
        direction: Direction,
        watcher: W,
    ) -> Result<Option<W>, (io::Error, W)> {
        if fd < 0 {
            let e = io::Error::from_raw_os_error(rustix::io::Errno::BADF.raw_os_error());
            return Err((e, watcher));
        }
        let old = self.interest(fd);
        let mut new = old;
        match direction {
            Direction::Read => new.readable = true,
            Direction::Write => new.writable = true,
        }
        if new != old {
            if let Err(e) = poller.update(fd, old, new) {
                return Err((e, watcher));
            }
            if old.is_empty() {
                self.watched += 1;
            }
        }
        Ok(self.slot_mut(fd).watcher_mut(direction).replace(watcher))
    }

    /// Removes `fd`'s watcher for `direction`, lowering the poller's interest; with the last
    /// watcher the file object goes too.
    pub fn unwatch(
        &mut self,
        poller: &mut impl Poller,
        fd: RawFd,
        direction: Direction,
    ) -> Unwatched<W, F> {
        let Some(slot) = usize::try_from(fd).ok().and_then(|i| self.slots.get_mut(i)) else {
            return Unwatched {
                watcher: None,
                fileobj: None,
            };
        };
        let old = slot.interest();
        let watcher = slot.watcher_mut(direction).take();
        let new = slot.interest();
        let mut fileobj = None;
        if new != old {
            if poller.update(fd, old, new).is_err() {
                // NOTE: nothing the caller can act on (the fd was closed and epoll forgot it);
                // forget the registration entirely so the table and epoll agree.
                let _ = poller.update(fd, old, Interest::NONE);
            }
            if new.is_empty() {
                self.watched -= 1;
                fileobj = slot.fileobj.take();
            }
        }
        Unwatched { watcher, fileobj }
    }

    /// Sets the file object `fd` is watched under; ignored (given back) if `fd` has no watcher.
    pub fn set_fileobj(&mut self, fd: RawFd, fileobj: F) -> Option<F> {
        if self.interest(fd).is_empty() {
            return Some(fileobj);
        }
        self.slot_mut(fd).fileobj.replace(fileobj)
    }

    /// The watched fd whose file object satisfies `is_it` (the selector's lookup of a closed
    /// socket, which has no fd of its own any more).
    pub fn find_fileobj(&self, mut is_it: impl FnMut(&F) -> bool) -> Option<RawFd> {
        self.slots
            .iter()
            .position(|s| s.fileobj.as_ref().is_some_and(&mut is_it))
            .and_then(|i| RawFd::try_from(i).ok())
    }

    /// The transport owning `fd`.
    #[inline]
    pub fn owner(&self, fd: RawFd) -> Option<&O> {
        self.slot(fd)?.owner.as_ref()
    }

    /// Records `owner` as `fd`'s owner (asyncio's `loop._transports[fd] = transport`); returns
    /// the previous one, a transport that lost its connection without leaving.
    pub fn set_owner(&mut self, fd: RawFd, owner: O) -> Option<O> {
        if fd < 0 {
            return Some(owner);
        }
        self.slot_mut(fd).owner.replace(owner)
    }

    /// Forgets `fd`'s owner if `is_it` says it is the one leaving; returns it.
    pub fn release_owner(&mut self, fd: RawFd, is_it: impl FnOnce(&O) -> bool) -> Option<O> {
        let slot = usize::try_from(fd)
            .ok()
            .and_then(|i| self.slots.get_mut(i))?;
        if slot.owner.as_ref().is_some_and(is_it) {
            slot.owner.take()
        } else {
            None
        }
    }

    /// Every owner, by fd.
    pub fn owners(&self) -> impl Iterator<Item = &O> {
        self.slots.iter().filter_map(|s| s.owner.as_ref())
    }

    /// Every non-empty slot.
    pub fn slots(&self) -> impl Iterator<Item = &Slot<W, O, F>> {
        self.slots.iter().filter(|s| !s.is_empty())
    }

    /// Empties the registry (the loop closes: its poller is closed with it), returning what it
    /// held.
    pub fn drain(&mut self) -> Vec<Slot<W, O, F>> {
        self.watched = 0;
        let mut slots = std::mem::take(&mut self.slots);
        slots.retain(|s| !s.is_empty());
        slots
    }

    /// Calls `queue` for each watcher an event wakes, in event order, reader before writer (as
    /// `_process_events` does). Events for a direction nobody watches any more are dropped.
    #[inline]
    pub fn ready(&self, events: &[Event], mut queue: impl FnMut(RawFd, Direction, &W)) {
        for ev in events {
            let Some(slot) = self.slot(ev.fd) else {
                continue;
            };
            if ev.readable {
                if let Some(w) = &slot.reader {
                    queue(ev.fd, Direction::Read, w);
                }
            }
            if ev.writable {
                if let Some(w) = &slot.writer {
                    queue(ev.fd, Direction::Write, w);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A poller that records what it was asked and may refuse.
    #[derive(Default)]
    struct Fake {
        /// The interest of each fd as the fake kernel sees it.
        kernel: std::collections::HashMap<RawFd, Interest>,
        /// Fds the fake refuses to add (a regular file, say).
        refuse: Vec<RawFd>,
        /// Calls seen.
        calls: usize,
    }

    impl Poller for Fake {
        fn update(&mut self, fd: RawFd, old: Interest, new: Interest) -> io::Result<()> {
            self.calls += 1;
            assert_eq!(self.kernel.get(&fd).copied().unwrap_or_default(), old);
            if new.is_empty() {
                self.kernel.remove(&fd);
                return Ok(());
            }
            if self.refuse.contains(&fd) {
                return Err(io::Error::from_raw_os_error(1));
            }
            self.kernel.insert(fd, new);
            Ok(())
        }
    }

    const R: Interest = Interest {
        readable: true,
        writable: false,
    };
    const RW: Interest = Interest {
        readable: true,
        writable: true,
    };

    type Reg = Registry<&'static str, &'static str, u32>;

    #[test]
    fn interest_is_derived_from_the_watchers() {
        let mut p = Fake::default();
        let mut r = Reg::new();
        assert!(r.watch(&mut p, 5, Direction::Read, "r").unwrap().is_none());
        assert_eq!(p.kernel[&5], R);
        assert_eq!(
            r.watch(&mut p, 5, Direction::Read, "r2").unwrap(),
            Some("r")
        );
        assert_eq!(p.calls, 1, "replacing a watcher does not touch the poller");
        r.watch(&mut p, 5, Direction::Write, "w").unwrap();
        assert_eq!(p.kernel[&5], RW);
        assert_eq!(r.watched(), 1);
        assert_eq!(r.unwatch(&mut p, 5, Direction::Read).watcher, Some("r2"));
        assert_eq!(
            r.interest(5),
            Interest {
                readable: false,
                writable: true
            }
        );
        assert_eq!(p.kernel[&5], r.interest(5));
        r.unwatch(&mut p, 5, Direction::Write);
        assert!(p.kernel.is_empty());
        assert_eq!(r.watched(), 0);
        assert!(r.unwatch(&mut p, 5, Direction::Write).watcher.is_none());
        assert!(r.unwatch(&mut p, 99, Direction::Read).watcher.is_none());
    }

    #[test]
    fn a_refused_watch_changes_nothing() {
        let mut p = Fake {
            refuse: vec![3],
            ..Fake::default()
        };
        let mut r = Reg::new();
        let (_, back) = r.watch(&mut p, 3, Direction::Read, "r").unwrap_err();
        assert_eq!(back, "r");
        assert!(r.watcher(3, Direction::Read).is_none());
        assert_eq!(r.watched(), 0);
        assert!(r.watch(&mut p, -1, Direction::Read, "r").is_err());
    }

    #[test]
    fn the_file_object_leaves_with_the_last_watcher() {
        let mut p = Fake::default();
        let mut r = Reg::new();
        assert_eq!(r.set_fileobj(4, 1), Some(1), "not watched: not kept");
        r.watch(&mut p, 4, Direction::Read, "r").unwrap();
        r.watch(&mut p, 4, Direction::Write, "w").unwrap();
        assert_eq!(r.set_fileobj(4, 7), None);
        assert_eq!(r.find_fileobj(|f| *f == 7), Some(4));
        assert_eq!(r.unwatch(&mut p, 4, Direction::Read).fileobj, None);
        assert_eq!(r.find_fileobj(|f| *f == 7), Some(4));
        assert_eq!(r.unwatch(&mut p, 4, Direction::Write).fileobj, Some(7));
        assert_eq!(r.find_fileobj(|f| *f == 7), None);
    }

    #[test]
    fn one_owner_per_fd() {
        let mut r = Reg::new();
        assert!(r.owner(6).is_none());
        assert_eq!(r.set_owner(6, "t1"), None);
        assert_eq!(r.owner(6), Some(&"t1"));
        // Owning is independent of watching: the owner stays while its watchers come and go.
        let mut p = Fake::default();
        r.watch(&mut p, 6, Direction::Read, "r").unwrap();
        r.unwatch(&mut p, 6, Direction::Read);
        assert_eq!(r.owner(6), Some(&"t1"));
        // Only the owner itself can leave.
        assert_eq!(r.release_owner(6, |o| *o == "t2"), None);
        assert_eq!(r.release_owner(6, |o| *o == "t1"), Some("t1"));
        assert!(r.owner(6).is_none());
        assert_eq!(r.owners().count(), 0);
    }

    #[test]
    fn events_map_to_watchers_in_order_and_stale_ones_drop() {
        let mut p = Fake::default();
        let mut r = Reg::new();
        r.watch(&mut p, 1, Direction::Read, "r1").unwrap();
        r.watch(&mut p, 2, Direction::Read, "r2").unwrap();
        r.watch(&mut p, 2, Direction::Write, "w2").unwrap();
        let ev = |fd, readable, writable| Event {
            fd,
            readable,
            writable,
        };
        let events = [
            ev(2, true, true),
            ev(1, true, true),  // writable, but fd 1 has no writer
            ev(9, true, false), // never watched
        ];
        r.unwatch(&mut p, 2, Direction::Write); // the event for it is now stale
        let mut got = Vec::new();
        r.ready(&events, |fd, d, w| got.push((fd, d, *w)));
        assert_eq!(
            got,
            vec![(2, Direction::Read, "r2"), (1, Direction::Read, "r1")]
        );
    }

    #[test]
    fn drain_empties_everything() {
        let mut p = Fake::default();
        let mut r = Reg::new();
        r.watch(&mut p, 10, Direction::Read, "r").unwrap();
        r.set_owner(12, "t");
        let slots = r.drain();
        assert_eq!(slots.len(), 2);
        assert_eq!(r.watched(), 0);
        assert!(r.owner(12).is_none());
        assert!(r.watcher(10, Direction::Read).is_none());
    }

    #[test]
    fn drives_the_real_reactor() {
        use crate::reactor::Reactor;
        use std::io::Write;
        use std::os::fd::AsRawFd;
        use std::time::Duration;

        let mut reactor = Reactor::new().unwrap();
        let mut r = Reg::new();
        let (mut a, b) = std::os::unix::net::UnixStream::pair().unwrap();
        let fd = b.as_raw_fd();
        r.watch(&mut reactor, fd, Direction::Read, "reader")
            .unwrap();
        r.watch(&mut reactor, fd, Direction::Write, "writer")
            .unwrap();
        a.write_all(b"x").unwrap();
        let mut got = Vec::new();
        let events = reactor.poll(Some(Duration::from_secs(5))).unwrap().to_vec();
        r.ready(&events, |_, d, w| got.push((d, *w)));
        assert_eq!(
            got,
            vec![(Direction::Read, "reader"), (Direction::Write, "writer")]
        );
        // Unwatched: epoll no longer reports the fd.
        r.unwatch(&mut reactor, fd, Direction::Read);
        r.unwatch(&mut reactor, fd, Direction::Write);
        assert!(reactor.poll(Some(Duration::ZERO)).unwrap().is_empty());
        // A regular file cannot be polled: refused, and the registry is unchanged.
        let file = std::fs::File::open("Cargo.toml").unwrap();
        assert!(r
            .watch(&mut reactor, file.as_raw_fd(), Direction::Read, "file")
            .is_err());
        assert_eq!(r.watched(), 0);
    }
}
