//! eventfd: the counter behind the reactor's cross-thread waker and the resolver's completions.

use std::io;
use std::os::fd::OwnedFd;

use rustix::event::{eventfd, EventfdFlags};

/// A non-blocking, close-on-exec eventfd.
pub fn eventfd_create() -> io::Result<OwnedFd> {
    Ok(eventfd(0, EventfdFlags::CLOEXEC | EventfdFlags::NONBLOCK)?)
}

/// Adds one to an eventfd's counter, making it readable.
pub fn eventfd_signal(fd: &OwnedFd) -> io::Result<()> {
    match rustix::io::write(fd, &1u64.to_ne_bytes()) {
        Ok(_) | Err(rustix::io::Errno::AGAIN) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Resets an eventfd's counter to zero.
pub fn eventfd_drain(fd: &OwnedFd) {
    let mut buf = [0u8; 8];
    // NOTE: EAGAIN (nothing to drain) and every other error mean the same here: nothing pending.
    let _ = rustix::io::read(fd, &mut buf);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eventfd_signal_then_drain() {
        let fd = eventfd_create().unwrap();
        eventfd_signal(&fd).unwrap();
        eventfd_signal(&fd).unwrap();
        eventfd_drain(&fd);
        let mut buf = [0u8; 8];
        assert_eq!(
            rustix::io::read(&fd, &mut buf),
            Err(rustix::io::Errno::AGAIN)
        );
    }
}
