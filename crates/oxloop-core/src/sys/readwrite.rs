//! Reads and writes of transports and `sock_*` calls: `recv`/`send`/`sendmsg`/`shutdown` on
//! a socket, `read`/`write`/`writev` on a pipe or tty.

use std::io;
use std::os::fd::RawFd;

use super::borrow;

/// Reads at most `buf.len()` bytes from `fd`: `recv(2)` for a socket, `read(2)` otherwise.
pub fn read(fd: RawFd, buf: &mut [u8], socket: bool) -> io::Result<usize> {
    if socket {
        Ok(rustix::net::recv(borrow(fd), buf, rustix::net::RecvFlags::empty())?.0)
    } else {
        Ok(rustix::io::read(borrow(fd), buf)?)
    }
}

/// Writes some of `buf` to `fd`: `send(2)` with `MSG_NOSIGNAL` for a socket (a closed peer gives
/// `EPIPE`, never `SIGPIPE`), `write(2)` otherwise.
pub fn write(fd: RawFd, buf: &[u8], socket: bool) -> io::Result<usize> {
    if socket {
        Ok(rustix::net::send(
            borrow(fd),
            buf,
            rustix::net::SendFlags::NOSIGNAL,
        )?)
    } else {
        Ok(rustix::io::write(borrow(fd), buf)?)
    }
}

/// Vectored [`write()`]: `sendmsg(2)` for a socket, `writev(2)` otherwise.
pub fn writev(fd: RawFd, bufs: &[io::IoSlice<'_>], socket: bool) -> io::Result<usize> {
    if socket {
        let mut control = rustix::net::SendAncillaryBuffer::default();
        Ok(rustix::net::sendmsg(
            borrow(fd),
            bufs,
            &mut control,
            rustix::net::SendFlags::NOSIGNAL,
        )?)
    } else {
        Ok(rustix::io::writev(borrow(fd), bufs)?)
    }
}

/// `shutdown(fd, SHUT_WR)`: the peer reads EOF once the data sent so far is read.
pub fn shutdown_write(fd: RawFd) -> io::Result<()> {
    Ok(rustix::net::shutdown(
        borrow(fd),
        rustix::net::Shutdown::Write,
    )?)
}
