//! The only raw system calls of oxloop-core, over `rustix`.
//!
//! Everything above this module works with plain `RawFd` numbers (asyncio keys its readers and
//! writers by fd number) and `io::Result`. Borrowing a raw fd for one syscall is the only
//! `unsafe` here: the kernel validates the number, so a stale fd yields `EBADF`, never memory
//! unsafety in this process.

use std::io;
use std::os::fd::{BorrowedFd, OwnedFd, RawFd};
use std::time::Duration;

use rustix::event::{epoll, eventfd, EventfdFlags};
use rustix::time::{clock_gettime, ClockId, Timespec};

pub mod socket;

/// Seconds on `CLOCK_MONOTONIC`, the clock of Python's `time.monotonic()`.
#[inline]
pub fn monotonic() -> f64 {
    let ts = clock_gettime(ClockId::Monotonic);
    ts.tv_sec as f64 + ts.tv_nsec as f64 * 1e-9
}

/// Borrows `fd` for the duration of one syscall.
#[inline]
fn borrow(fd: RawFd) -> BorrowedFd<'static> {
    // SAFETY: the borrowed fd is only ever passed straight to a syscall and never stored. If the
    // number is closed or reused, the kernel answers EBADF or acts on the new file, exactly as a
    // C program passing the same int would; no Rust object's lifetime depends on it.
    unsafe { BorrowedFd::borrow_raw(fd) }
}

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

/// Vectored [`write`]: `sendmsg(2)` for a socket, `writev(2)` otherwise.
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

/// What kind of file an fd is, as far as pipe transports care.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    /// A pipe or FIFO.
    Fifo,
    /// A socket.
    Socket,
    /// A character device (a tty, say).
    CharDevice,
    /// Anything else: a regular file, a directory, a block device.
    Other,
}

/// `fstat(fd)`'s file type.
pub fn file_kind(fd: RawFd) -> io::Result<FileKind> {
    use rustix::fs::FileType;
    let st = rustix::fs::fstat(borrow(fd))?;
    Ok(match FileType::from_raw_mode(st.st_mode) {
        FileType::Fifo => FileKind::Fifo,
        FileType::Socket => FileKind::Socket,
        FileType::CharacterDevice => FileKind::CharDevice,
        _ => FileKind::Other,
    })
}

/// Puts `fd` in non-blocking mode (`os.set_blocking(fd, False)`).
pub fn set_nonblocking(fd: RawFd) -> io::Result<()> {
    let flags = rustix::fs::fcntl_getfl(borrow(fd))?;
    rustix::fs::fcntl_setfl(borrow(fd), flags | rustix::fs::OFlags::NONBLOCK)?;
    Ok(())
}

/// Whether `err` means "try again later" (`EAGAIN`/`EWOULDBLOCK`, `EINTR`), which asyncio's
/// transports ignore (`BlockingIOError`, `InterruptedError`).
pub fn is_retry(err: &io::Error) -> bool {
    matches!(
        err.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
    )
}

/// The errno of an `io::Error`, if it came from the OS.
pub fn errno_of(err: &io::Error) -> Option<i32> {
    err.raw_os_error()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn monotonic_matches_std_instant_pace() {
        let a = monotonic();
        std::thread::sleep(Duration::from_millis(2));
        let b = monotonic();
        assert!(b - a >= 0.002);
    }

    #[test]
    fn file_kinds_and_nonblocking() {
        use std::os::fd::AsRawFd;
        let (r, _w) = rustix::pipe::pipe().unwrap();
        assert_eq!(file_kind(r.as_raw_fd()).unwrap(), FileKind::Fifo);
        set_nonblocking(r.as_raw_fd()).unwrap();
        let mut buf = [0u8; 4];
        let err = read(r.as_raw_fd(), &mut buf, false).unwrap_err();
        assert!(is_retry(&err));
        let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
        assert_eq!(file_kind(a.as_raw_fd()).unwrap(), FileKind::Socket);
        let f = std::fs::File::open("/dev/null").unwrap();
        assert_eq!(file_kind(f.as_raw_fd()).unwrap(), FileKind::CharDevice);
        let f = std::fs::File::open("Cargo.toml").unwrap();
        assert_eq!(file_kind(f.as_raw_fd()).unwrap(), FileKind::Other);
    }

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

/// A socket address from `getaddrinfo`, in the form Python's socket module gives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SockAddr {
    /// `(host, port)`.
    V4(String, u16),
    /// `(host, port, flowinfo, scope_id)`.
    V6(String, u16, u32, u32),
    /// An address family Python would not decode either: the caller falls back.
    Other(i32),
}

/// One `struct addrinfo` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddrInfo {
    /// `ai_family`.
    pub family: i32,
    /// `ai_socktype`.
    pub socktype: i32,
    /// `ai_protocol`.
    pub protocol: i32,
    /// `ai_canonname`, or empty.
    pub canonname: String,
    /// `ai_addr`.
    pub addr: SockAddr,
}

extern "C" {
    // NOTE: the libc crate does not declare inet_ntop; this is its POSIX signature.
    fn inet_ntop(
        af: libc::c_int,
        src: *const libc::c_void,
        dst: *mut libc::c_char,
        size: libc::socklen_t,
    ) -> *const libc::c_char;
}

/// `inet_ntop` of `family`'s address at `src`, as Python's socket module formats addresses.
fn ntop(family: i32, src: *const libc::c_void) -> String {
    let mut out = [0 as libc::c_char; 64];
    // SAFETY: callers pass an in_addr (AF_INET) or in6_addr (AF_INET6) reference as `src`;
    // `out` is a live buffer of the length passed (larger than INET6_ADDRSTRLEN).
    let p = unsafe { inet_ntop(family, src, out.as_mut_ptr(), out.len() as libc::socklen_t) };
    if p.is_null() {
        return String::new();
    }
    // SAFETY: on success inet_ntop wrote a NUL-terminated string into `out`.
    unsafe { std::ffi::CStr::from_ptr(out.as_ptr()) }
        .to_string_lossy()
        .into_owned()
}

/// The text CPython gives an IPv4 address.
pub fn ntop_v4(addr: &libc::in_addr) -> String {
    ntop(libc::AF_INET, (addr as *const libc::in_addr).cast())
}

/// The text CPython gives an IPv6 address (`inet_ntop`, as its `makesockaddr` uses).
pub fn ntop_v6(addr: &libc::in6_addr) -> String {
    ntop(libc::AF_INET6, (addr as *const libc::in6_addr).cast())
}

/// libc's `getaddrinfo`. Blocking: call it off the loop thread. The error is the `EAI_*` code
/// and, for `EAI_SYSTEM`, `errno`.
pub fn getaddrinfo(
    host: Option<&std::ffi::CStr>,
    service: Option<&std::ffi::CStr>,
    family: i32,
    socktype: i32,
    protocol: i32,
    flags: i32,
) -> Result<Vec<AddrInfo>, (i32, i32)> {
    // SAFETY: an all-zero addrinfo is the documented way to start a hints struct.
    let mut hints: libc::addrinfo = unsafe { std::mem::zeroed() };
    hints.ai_family = family;
    hints.ai_socktype = socktype;
    hints.ai_protocol = protocol;
    hints.ai_flags = flags;
    let mut res: *mut libc::addrinfo = std::ptr::null_mut();
    // SAFETY: host/service are NUL-terminated C strings or NULL, hints is initialised and `res`
    // is a valid out-pointer; on success the list is freed below with freeaddrinfo.
    let rc = unsafe {
        libc::getaddrinfo(
            host.map_or(std::ptr::null(), |h| h.as_ptr()),
            service.map_or(std::ptr::null(), |s| s.as_ptr()),
            &hints,
            &mut res,
        )
    };
    if rc != 0 {
        return Err((rc, io::Error::last_os_error().raw_os_error().unwrap_or(0)));
    }
    let mut out = Vec::new();
    let mut cur = res;
    while !cur.is_null() {
        // SAFETY: `cur` is a node of the list getaddrinfo returned, not yet freed.
        let ai = unsafe { &*cur };
        let addr = if ai.ai_addr.is_null() {
            SockAddr::Other(ai.ai_family)
        } else {
            match ai.ai_family {
                libc::AF_INET => {
                    // SAFETY: an AF_INET entry's ai_addr points at a sockaddr_in.
                    let sa = unsafe { &*(ai.ai_addr as *const libc::sockaddr_in) };
                    let host = ntop_v4(&sa.sin_addr);
                    SockAddr::V4(host, u16::from_be(sa.sin_port))
                }
                libc::AF_INET6 => {
                    // SAFETY: an AF_INET6 entry's ai_addr points at a sockaddr_in6.
                    let sa = unsafe { &*(ai.ai_addr as *const libc::sockaddr_in6) };
                    let host = ntop_v6(&sa.sin6_addr);
                    SockAddr::V6(
                        host,
                        u16::from_be(sa.sin6_port),
                        u32::from_be(sa.sin6_flowinfo),
                        sa.sin6_scope_id,
                    )
                }
                other => SockAddr::Other(other),
            }
        };
        let canonname = if ai.ai_canonname.is_null() {
            String::new()
        } else {
            // SAFETY: ai_canonname, when set, is a NUL-terminated string owned by the list.
            unsafe { std::ffi::CStr::from_ptr(ai.ai_canonname) }
                .to_string_lossy()
                .into_owned()
        };
        out.push(AddrInfo {
            family: ai.ai_family,
            socktype: ai.ai_socktype,
            protocol: ai.ai_protocol,
            canonname,
            addr,
        });
        cur = ai.ai_next;
    }
    // SAFETY: `res` is the list getaddrinfo returned, freed exactly once, after the last use.
    unsafe { libc::freeaddrinfo(res) };
    Ok(out)
}
