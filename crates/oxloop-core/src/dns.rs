//! Name resolution off the loop thread: a small pool of worker threads calling libc's
//! `getaddrinfo`, reporting back through an eventfd the reactor watches.
//!
//! Where it sits in a tick: `loop.getaddrinfo` submits a [`Query`]; a worker resolves it with no
//! interpreter lock (none exists here), queues a [`Done`] and signals [`Resolver::fd`]; the
//! binding layer watches that fd like any reader and, in its tick, takes the results with
//! [`Resolver::take_done`]. Workers start on first use (at most [`MAX_WORKERS`]) and leave when
//! the resolver is closed; a lookup still running then finishes and is dropped.

use std::collections::VecDeque;
use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::sync::{Arc, Condvar, Mutex};

use crate::sys;

/// How many lookups may run at once.
pub const MAX_WORKERS: usize = 4;

/// One `getaddrinfo` call to make.
#[derive(Debug, Clone)]
pub struct Query {
    /// The caller's token, handed back in [`Done`].
    pub id: u64,
    /// Node name, already encoded as the caller wants it (`None`: NULL).
    pub host: Option<CString>,
    /// Service name or port number as text (`None`: NULL).
    pub service: Option<CString>,
    /// `ai_family` hint.
    pub family: i32,
    /// `ai_socktype` hint.
    pub socktype: i32,
    /// `ai_protocol` hint.
    pub protocol: i32,
    /// `ai_flags` hint.
    pub flags: i32,
}

/// A finished lookup.
#[derive(Debug)]
pub struct Done {
    /// The query's token.
    pub id: u64,
    /// The entries, or the `EAI_*` code (with `errno` for `EAI_SYSTEM`).
    pub result: Result<Vec<sys::AddrInfo>, (i32, i32)>,
}

/// State shared by the resolver and its workers.
#[derive(Debug)]
struct Shared {
    /// Queries not yet taken by a worker, and whether the resolver is closed.
    jobs: Mutex<(VecDeque<Query>, bool)>,
    /// Signalled when a query is queued or the resolver closes.
    wake_workers: Condvar,
    /// Finished lookups not yet taken by the loop.
    done: Mutex<VecDeque<Done>>,
    /// Made readable when `done` gains an entry; `None` once closed.
    notify: Mutex<Option<OwnedFd>>,
}

/// A pool of resolver threads; see the module docs.
#[derive(Debug)]
pub struct Resolver {
    /// What the workers share with us.
    shared: Arc<Shared>,
    /// The eventfd's number, for the reactor.
    fd: RawFd,
    /// Workers started so far (at most [`MAX_WORKERS`]).
    workers: usize,
    /// Queries submitted and not yet taken back (to start workers only when needed).
    pending: usize,
}

impl Resolver {
    /// A resolver with no worker yet.
    pub fn new() -> io::Result<Self> {
        let fd = sys::eventfd_create()?;
        let raw = fd.as_raw_fd();
        Ok(Self {
            shared: Arc::new(Shared {
                jobs: Mutex::new((VecDeque::new(), false)),
                wake_workers: Condvar::new(),
                done: Mutex::new(VecDeque::new()),
                notify: Mutex::new(Some(fd)),
            }),
            fd: raw,
            workers: 0,
            pending: 0,
        })
    }

    /// The fd that becomes readable when results are ready.
    pub fn fd(&self) -> RawFd {
        self.fd
    }

    /// Queues `query` for a worker, starting one if all are busy (up to [`MAX_WORKERS`]).
    pub fn submit(&mut self, query: Query) -> io::Result<()> {
        self.pending += 1;
        if self.workers < MAX_WORKERS && self.pending > self.workers {
            let shared = Arc::clone(&self.shared);
            std::thread::Builder::new()
                .name("oxloop-resolver".into())
                .spawn(move || worker(&shared))?;
            self.workers += 1;
        }
        let mut jobs = self.shared.jobs.lock().unwrap_or_else(|e| e.into_inner());
        jobs.0.push_back(query);
        drop(jobs);
        self.shared.wake_workers.notify_one();
        Ok(())
    }

    /// Takes every finished lookup and resets the eventfd.
    pub fn take_done(&mut self) -> Vec<Done> {
        if let Some(fd) = self
            .shared
            .notify
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
        {
            sys::eventfd_drain(fd);
        }
        let done: Vec<Done> = self
            .shared
            .done
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .drain(..)
            .collect();
        self.pending = self.pending.saturating_sub(done.len());
        done
    }

    /// Stops the workers (a lookup in progress finishes and is dropped) and closes the eventfd.
    pub fn close(&mut self) {
        let mut jobs = self.shared.jobs.lock().unwrap_or_else(|e| e.into_inner());
        jobs.0.clear();
        jobs.1 = true;
        drop(jobs);
        self.shared.wake_workers.notify_all();
        let fd = self
            .shared
            .notify
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        drop(fd);
    }
}

impl Drop for Resolver {
    fn drop(&mut self) {
        self.close();
    }
}

/// A worker: takes queries until the resolver closes.
fn worker(shared: &Shared) {
    loop {
        let query = {
            let mut jobs = shared.jobs.lock().unwrap_or_else(|e| e.into_inner());
            loop {
                if jobs.1 {
                    return;
                }
                if let Some(q) = jobs.0.pop_front() {
                    break q;
                }
                jobs = shared
                    .wake_workers
                    .wait(jobs)
                    .unwrap_or_else(|e| e.into_inner());
            }
        };
        let result = sys::getaddrinfo(
            query.host.as_deref(),
            query.service.as_deref(),
            query.family,
            query.socktype,
            query.protocol,
            query.flags,
        );
        shared
            .done
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push_back(Done {
                id: query.id,
                result,
            });
        let notify = shared.notify.lock().unwrap_or_else(|e| e.into_inner());
        match notify.as_ref() {
            // NOTE: a failed signal only delays delivery until the next one.
            Some(fd) => drop(sys::eventfd_signal(fd)),
            None => return, // closed while we worked: nobody is listening
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reactor::{Interest, Reactor};
    use crate::registry::Poller;
    use std::time::Duration;

    #[test]
    fn resolves_numeric_hosts_and_reports_errors() {
        let mut r = Resolver::new().unwrap();
        let mut reactor = Reactor::new().unwrap();
        reactor
            .update(r.fd(), Interest::NONE, Interest::READ)
            .unwrap();
        let q = |id, host: &str| Query {
            id,
            host: Some(CString::new(host).unwrap()),
            service: Some(CString::new("80").unwrap()),
            family: 0,
            socktype: libc::SOCK_STREAM,
            protocol: 0,
            flags: libc::AI_NUMERICHOST,
        };
        r.submit(q(1, "127.0.0.1")).unwrap();
        r.submit(q(2, "not numeric")).unwrap();
        let mut done = Vec::new();
        while done.len() < 2 {
            reactor.poll(Some(Duration::from_secs(5))).unwrap();
            done.extend(r.take_done());
        }
        done.sort_by_key(|d| d.id);
        let first = done[0].result.as_ref().unwrap();
        assert_eq!(first.len(), 1);
        assert_eq!(first[0].family, libc::AF_INET);
        assert_eq!(first[0].addr, sys::SockAddr::V4("127.0.0.1".into(), 80));
        assert_eq!(done[1].result.as_ref().unwrap_err().0, libc::EAI_NONAME);
        r.close();
    }
}
