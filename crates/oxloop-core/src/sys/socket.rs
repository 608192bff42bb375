//! Socket system calls the loop makes itself: `accept4` for `sock_accept` and server accept
//! loops.
//!
//! The peer address comes back in the form Python's socket module gives it (`makesockaddr` in
//! CPython's `socketmodule.c`), so the binding can hand it to Python unchanged.

use std::io;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};

use super::{ntop_v4, ntop_v6};

/// The peer address of an accepted connection, as Python's socket module decodes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PeerAddr {
    /// `AF_INET`: `(host, port)`.
    V4(String, u16),
    /// `AF_INET6`: `(host, port, flowinfo, scope_id)`; the host without a `%scope` suffix.
    V6(String, u16, u32, u32),
    /// `AF_UNIX` with a path: the path bytes (Python decodes them with the filesystem encoding).
    UnixPath(Vec<u8>),
    /// `AF_UNIX` in Linux's abstract namespace: the name, leading NUL included (Python: bytes).
    UnixAbstract(Vec<u8>),
    /// Another family: the caller asks the socket instead.
    Other(i32),
}

/// `accept4(fd, SOCK_NONBLOCK | SOCK_CLOEXEC)`: the new connection, non-blocking and
/// close-on-exec, and its peer address. `WouldBlock` when no connection is pending.
pub fn accept(fd: RawFd) -> io::Result<(OwnedFd, PeerAddr)> {
    // SAFETY: an all-zero sockaddr_storage is a valid value of that plain C struct.
    let mut storage: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    // SAFETY: `storage` and `len` are live locals; the kernel writes at most `len` bytes and
    // updates `len`. A stale fd only makes the kernel answer EBADF.
    let rc = unsafe {
        libc::accept4(
            fd,
            (&mut storage as *mut libc::sockaddr_storage).cast(),
            &mut len,
            libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: accept4 returned a new fd that nothing else owns.
    let conn = unsafe { OwnedFd::from_raw_fd(rc) };
    Ok((conn, peer_addr(&storage, len as usize)))
}

/// Decodes the first `len` bytes of `storage` as `makesockaddr` does.
fn peer_addr(storage: &libc::sockaddr_storage, len: usize) -> PeerAddr {
    match i32::from(storage.ss_family) {
        libc::AF_INET => {
            // SAFETY: an AF_INET address is a sockaddr_in, which fits in sockaddr_storage.
            let sa =
                unsafe { &*(storage as *const libc::sockaddr_storage).cast::<libc::sockaddr_in>() };
            PeerAddr::V4(ntop_v4(&sa.sin_addr), u16::from_be(sa.sin_port))
        }
        libc::AF_INET6 => {
            // SAFETY: an AF_INET6 address is a sockaddr_in6, which fits in sockaddr_storage.
            let sa = unsafe {
                &*(storage as *const libc::sockaddr_storage).cast::<libc::sockaddr_in6>()
            };
            PeerAddr::V6(
                ntop_v6(&sa.sin6_addr),
                u16::from_be(sa.sin6_port),
                u32::from_be(sa.sin6_flowinfo),
                sa.sin6_scope_id,
            )
        }
        libc::AF_UNIX => {
            // SAFETY: an AF_UNIX address is a sockaddr_un, which fits in sockaddr_storage.
            let sa =
                unsafe { &*(storage as *const libc::sockaddr_storage).cast::<libc::sockaddr_un>() };
            let offset = std::mem::size_of::<libc::sa_family_t>();
            let path: Vec<u8> = sa.sun_path[..len.saturating_sub(offset).min(sa.sun_path.len())]
                .iter()
                .map(|&c| c as u8)
                .collect();
            // Mirrors makesockaddr: a leading NUL is an abstract name (bytes, whole length);
            // otherwise the path up to its first NUL (an unnamed peer gives "").
            if path.first() == Some(&0) {
                PeerAddr::UnixAbstract(path)
            } else {
                let end = path.iter().position(|&c| c == 0).unwrap_or(path.len());
                PeerAddr::UnixPath(path[..end].to_vec())
            }
        }
        other => PeerAddr::Other(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;

    #[test]
    fn accept_reports_would_block_then_the_peer() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let err = accept(listener.as_raw_fd()).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::WouldBlock);
        let client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (conn, peer) = accept(listener.as_raw_fd()).unwrap();
        let local = client.local_addr().unwrap();
        assert_eq!(peer, PeerAddr::V4("127.0.0.1".into(), local.port()));
        // SAFETY: F_GETFL on the fd we own.
        let flags = unsafe { libc::fcntl(conn.as_raw_fd(), libc::F_GETFL) };
        assert_ne!(flags & libc::O_NONBLOCK, 0);
    }
}
