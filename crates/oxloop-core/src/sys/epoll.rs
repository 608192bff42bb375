//! epoll: the poller behind [`crate::reactor::Reactor`], level-triggered as Python's
//! `selectors.EpollSelector`.

use std::io;
use std::os::fd::{OwnedFd, RawFd};
use std::time::Duration;

use rustix::event::epoll;
use rustix::time::Timespec;

use super::borrow;

/// A new epoll instance (close-on-exec).
pub fn epoll_create() -> io::Result<OwnedFd> {
    Ok(epoll::create(epoll::CreateFlags::CLOEXEC)?)
}

/// Level-triggered interest flags for epoll, as Python's `selectors.EpollSelector` registers them.
pub fn epoll_flags(readable: bool, writable: bool) -> epoll::EventFlags {
    let mut flags = epoll::EventFlags::empty();
    if readable {
        flags |= epoll::EventFlags::IN;
    }
    if writable {
        flags |= epoll::EventFlags::OUT;
    }
    flags
}

/// `EPOLL_CTL_ADD` of `fd` with `data`.
pub fn epoll_add(ep: &OwnedFd, fd: RawFd, flags: epoll::EventFlags, data: u64) -> io::Result<()> {
    Ok(epoll::add(
        ep,
        borrow(fd),
        epoll::EventData::new_u64(data),
        flags,
    )?)
}

/// `EPOLL_CTL_MOD` of `fd` to `flags`.
pub fn epoll_modify(
    ep: &OwnedFd,
    fd: RawFd,
    flags: epoll::EventFlags,
    data: u64,
) -> io::Result<()> {
    Ok(epoll::modify(
        ep,
        borrow(fd),
        epoll::EventData::new_u64(data),
        flags,
    )?)
}

/// `EPOLL_CTL_DEL` of `fd`.
pub fn epoll_delete(ep: &OwnedFd, fd: RawFd) -> io::Result<()> {
    Ok(epoll::delete(ep, borrow(fd))?)
}

/// Waits for events; `None` waits forever. Sub-millisecond timeouts round up, never down, so the
/// loop does not spin waiting for a timer. `EINTR` is returned as an error: the caller must let
/// pending signal handlers run (Python's `PyErr_CheckSignals`) before polling again.
pub fn epoll_wait(
    ep: &OwnedFd,
    buf: &mut Vec<epoll::Event>,
    timeout: Option<Duration>,
) -> io::Result<()> {
    buf.clear();
    let ts = timeout.map(|d| Timespec {
        tv_sec: d.as_secs().min(i32::MAX as u64 / 1000) as _,
        tv_nsec: d.subsec_nanos() as _,
    });
    epoll::wait(ep, rustix::buffer::spare_capacity(buf), ts.as_ref())?;
    Ok(())
}
