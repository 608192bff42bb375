//! Plain fd numbers: borrowing one for a syscall, its file type, non-blocking mode, and which
//! errors mean "try again".

use std::io;
use std::os::fd::{BorrowedFd, RawFd};

/// Borrows `fd` for the duration of one syscall.
#[inline]
pub(super) fn borrow(fd: RawFd) -> BorrowedFd<'static> {
    // SAFETY: the borrowed fd is only ever passed straight to a syscall and never stored. If the
    // number is closed or reused, the kernel answers EBADF or acts on the new file, exactly as a
    // C program passing the same int would; no Rust object's lifetime depends on it.
    unsafe { BorrowedFd::borrow_raw(fd) }
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
    use crate::sys::read;

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
}
