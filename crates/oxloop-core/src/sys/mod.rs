//! The only raw system calls of oxloop-core, over `rustix` (and libc for `getaddrinfo`), one file
//! per concern as mio's `sys/` is laid out:
//!
//! - `clock`: `CLOCK_MONOTONIC`;
//! - `epoll`: the reactor's poller;
//! - `eventfd`: the waker's and the resolver's counters;
//! - `readwrite`: reads and writes of sockets and pipes, `shutdown`;
//! - `fd`: fd numbers, file types, non-blocking mode, retryable errors;
//! - `addrinfo`: `getaddrinfo`, `inet_pton`/`inet_ntop`;
//! - `socket`: `accept4`, the peer address as Python's socket module decodes it.
//!
//! Everything above this module works with plain `RawFd` numbers (asyncio keys its readers and
//! writers by fd number) and `io::Result`. Borrowing a raw fd for one syscall is the only
//! `unsafe` besides `getaddrinfo`'s: the kernel validates the number, so a stale fd yields
//! `EBADF`, never memory unsafety in this process.

mod addrinfo;
mod clock;
mod epoll;
mod eventfd;
mod fd;
mod readwrite;
pub mod socket;

pub use addrinfo::{getaddrinfo, ntop_v4, ntop_v6, parse_literal, AddrInfo, Literal, SockAddr};
pub use clock::monotonic;
pub use epoll::{epoll_add, epoll_create, epoll_delete, epoll_flags, epoll_modify, epoll_wait};
pub use eventfd::{eventfd_create, eventfd_drain, eventfd_signal};
use fd::borrow;
pub use fd::{errno_of, file_kind, is_retry, set_nonblocking, FileKind};
pub use readwrite::{read, shutdown_write, write, writev};
