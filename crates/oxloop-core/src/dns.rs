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
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use crate::sys;

/// How many lookups may run at once.
pub const MAX_WORKERS: usize = 4;

/// How long a worker that finished a lookup watches for the next query before it sleeps.
// NOTE: a program resolving names one after another submits its next query a few tens of
// microseconds after the previous answer: a worker still spinning takes it with no futex wake on
// either side and none of the scheduler's wake-up latency. The spin is bounded, so an idle
// resolver costs at most this much CPU after its last lookup.
const SPIN: Duration = Duration::from_micros(50);

/// The query queue and the workers' state, under one lock.
#[derive(Debug, Default)]
struct Jobs {
    /// Queries not yet taken by a worker.
    queue: VecDeque<Query>,
    /// The resolver is closed: workers leave.
    closed: bool,
    /// Workers spinning for a query right now (they need no condvar signal).
    spinning: usize,
}

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
    /// Queries not yet taken by a worker, whether the resolver is closed, spinning workers.
    jobs: Mutex<Jobs>,
    /// `jobs.queue.len()`, readable without the lock by spinning workers.
    queued: AtomicUsize,
    /// Signalled when a query is queued for a sleeping worker or the resolver closes.
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
                jobs: Mutex::new(Jobs::default()),
                queued: AtomicUsize::new(0),
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
        jobs.queue.push_back(query);
        self.shared
            .queued
            .store(jobs.queue.len(), Ordering::Release);
        // A spinning worker sees the query by itself; only queries beyond them need a sleeper.
        let wake = jobs.queue.len() > jobs.spinning;
        drop(jobs);
        if wake {
            self.shared.wake_workers.notify_one();
        }
        Ok(())
    }

    /// Takes every finished lookup and resets the eventfd.
    pub fn take_done(&mut self) -> Vec<Done> {
        // NOTE: the eventfd is read through its number, not under `notify`: only `close` (which
        // takes `&mut self`, so not concurrently with this) closes it, and a worker signalling
        // holds `notify` while it writes, so locking it here made the loop thread wait for the
        // worker and be woken by it: a context switch more per lookup.
        let mut counter = [0u8; 8];
        // NOTE: EAGAIN (nothing to drain) and every other error mean the same: nothing pending.
        let _ = sys::read(self.fd, &mut counter, false);
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
        jobs.queue.clear();
        self.shared.queued.store(0, Ordering::Release);
        jobs.closed = true;
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
            let mut may_spin = true;
            loop {
                if jobs.closed {
                    return;
                }
                if let Some(q) = jobs.queue.pop_front() {
                    shared.queued.store(jobs.queue.len(), Ordering::Release);
                    break q;
                }
                if may_spin {
                    // See SPIN.
                    may_spin = false;
                    jobs.spinning += 1;
                    drop(jobs);
                    let deadline = Instant::now() + SPIN;
                    while shared.queued.load(Ordering::Acquire) == 0 && Instant::now() < deadline {
                        for _ in 0..64 {
                            std::hint::spin_loop();
                        }
                    }
                    jobs = shared.jobs.lock().unwrap_or_else(|e| e.into_inner());
                    jobs.spinning -= 1;
                    continue;
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
        let first = {
            let mut done = shared.done.lock().unwrap_or_else(|e| e.into_inner());
            done.push_back(Done {
                id: query.id,
                result,
            });
            done.len() == 1
        };
        // Only the first of the loop's pending results signals: the loop drains the eventfd
        // before it takes `done`, so whatever a later worker adds is taken with it.
        if !first {
            continue;
        }
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
