//! The native ceiling of the network benchmarks: the same services as `benchmarks/net.py`'s
//! servers, written in Rust on oxloop-core's reactor with no Python at all.
//!
//! `echo_server tcp ADDRESS` listens on 127.0.0.1 (a free port) or `echo_server unix PATH`; with
//! a third argument `http` it answers HTTP/1.1 keep-alive requests instead of echoing, with the
//! response net.py's `http` server sends (one per request; requests have no body, as wrk's GETs).
//! It speaks net.py's control protocol: prints `READY <json address>`, then on stdin answers
//! `stats` with `STATS {"user": s, "sys": s, "maxrss_kib": n}` and stops on `quit` or end of
//! input. Like asyncio's transports it reads at most 100 KiB per readiness event, writes at once,
//! buffers the rest and waits for writability only while a buffer is pending.

use std::collections::HashMap;
use std::io::{self, BufRead, Read, Write};
use std::net::TcpListener;
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::net::UnixListener;

use oxloop_core::reactor::{Interest, Reactor};
use oxloop_core::registry::Poller;

const READ_SIZE: usize = 102_400;

/// The HTTP response: the same bytes as net.py's `_HTTP_RESPONSE`.
const HTTP_BODY: &str = "Hello, World!Hello, World!Hello, World!Hello, World!\
                         Hello, World!Hello, World!Hello, World!Hello, World!";

/// What the server answers.
#[derive(Clone, Copy, PartialEq)]
enum Service {
    /// Writes back every byte read.
    Echo,
    /// One fixed response per request (a request ends with an empty line).
    Http,
}

/// A connected peer.
struct Conn {
    /// The socket.
    stream: Box<dyn Stream>,
    /// Bytes read but not yet written back.
    pending: Vec<u8>,
    /// The interest registered with the reactor.
    interest: Interest,
    /// HTTP only: how much of the `\r\n\r\n` that ends a request the bytes so far matched.
    matched: usize,
}

/// Counts the requests `data` completes, carrying the partial end-of-headers match in `matched`.
fn requests_ended(data: &[u8], matched: &mut usize) -> usize {
    const END: &[u8; 4] = b"\r\n\r\n";
    let mut done = 0;
    for &b in data {
        if b == END[*matched] {
            *matched += 1;
            if *matched == END.len() {
                done += 1;
                *matched = 0;
            }
        } else {
            *matched = usize::from(b == b'\r');
        }
    }
    done
}

trait Stream: Read + Write {}
impl<T: Read + Write> Stream for T {}

enum Listener {
    Tcp(TcpListener),
    Unix(UnixListener),
}

impl Listener {
    fn fd(&self) -> RawFd {
        match self {
            Listener::Tcp(l) => l.as_raw_fd(),
            Listener::Unix(l) => l.as_raw_fd(),
        }
    }

    /// Accepts one connection, non-blocking, with TCP_NODELAY as asyncio sets it.
    fn accept(&self) -> io::Result<(RawFd, Box<dyn Stream>)> {
        match self {
            Listener::Tcp(l) => {
                let (s, _) = l.accept()?;
                s.set_nonblocking(true)?;
                s.set_nodelay(true)?;
                Ok((s.as_raw_fd(), Box::new(s)))
            }
            Listener::Unix(l) => {
                let (s, _) = l.accept()?;
                s.set_nonblocking(true)?;
                Ok((s.as_raw_fd(), Box::new(s)))
            }
        }
    }
}

fn stats() -> String {
    // SAFETY: getrusage writes into the zeroed struct we pass; RUSAGE_SELF is always valid.
    let ru = unsafe {
        let mut ru: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut ru);
        ru
    };
    let secs = |tv: libc::timeval| tv.tv_sec as f64 + tv.tv_usec as f64 * 1e-6;
    // Current RSS: the second field of /proc/self/statm, in pages.
    let rss_kib = std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| {
            s.split_whitespace()
                .nth(1)
                .and_then(|p| p.parse::<i64>().ok())
        })
        .map_or(ru.ru_maxrss, |pages| pages * 4);
    format!(
        "{{\"user\": {}, \"sys\": {}, \"maxrss_kib\": {}, \"rss_kib\": {}}}",
        secs(ru.ru_utime),
        secs(ru.ru_stime),
        ru.ru_maxrss,
        rss_kib
    )
}

fn main() -> io::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let (family, address, service) = match args.as_slice() {
        [_, f, a] => (f.as_str(), a.as_str(), Service::Echo),
        [_, f, a, s] if s == "http" => (f.as_str(), a.as_str(), Service::Http),
        _ => {
            eprintln!("usage: echo_server tcp|unix ADDRESS [http]");
            std::process::exit(2);
        }
    };
    let response = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\
         Connection: keep-alive\r\n\r\n{HTTP_BODY}",
        HTTP_BODY.len()
    )
    .into_bytes();
    let mut replies = Vec::new();
    let (listener, bound) = if family == "tcp" {
        let l = TcpListener::bind("127.0.0.1:0")?;
        let port = l.local_addr()?.port();
        (Listener::Tcp(l), format!("[\"127.0.0.1\", {port}]"))
    } else {
        (
            Listener::Unix(UnixListener::bind(address)?),
            format!("\"{address}\""),
        )
    };
    match &listener {
        Listener::Tcp(l) => l.set_nonblocking(true)?,
        Listener::Unix(l) => l.set_nonblocking(true)?,
    }

    let mut reactor = Reactor::new()?;
    let readable = Interest::READ;
    reactor.update(listener.fd(), Interest::NONE, readable)?;
    let stdin_fd = io::stdin().as_raw_fd();
    reactor.update(stdin_fd, Interest::NONE, readable)?;
    let mut conns: HashMap<RawFd, Conn> = HashMap::new();
    let mut buf = vec![0u8; READ_SIZE];
    let mut stdin = io::stdin().lock();
    println!("READY {bound}");
    io::stdout().flush()?;

    loop {
        let events = match reactor.poll(None) {
            Ok(ev) => ev.to_vec(),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        for ev in events {
            if ev.fd == stdin_fd {
                let mut line = String::new();
                if stdin.read_line(&mut line)? == 0 || line.trim() == "quit" {
                    return Ok(());
                }
                if line.trim() == "stats" {
                    println!("STATS {}", stats());
                    io::stdout().flush()?;
                }
            } else if ev.fd == listener.fd() {
                while let Ok((fd, stream)) = listener.accept() {
                    reactor.update(fd, Interest::NONE, readable)?;
                    conns.insert(
                        fd,
                        Conn {
                            stream,
                            pending: Vec::new(),
                            matched: 0,
                            interest: readable,
                        },
                    );
                }
            } else if let Some(conn) = conns.get_mut(&ev.fd) {
                let mut close = false;
                if ev.writable && !conn.pending.is_empty() {
                    match conn.stream.write(&conn.pending) {
                        Ok(n) => {
                            conn.pending.drain(..n);
                        }
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                        Err(_) => close = true,
                    }
                }
                if ev.readable && !close {
                    match conn.stream.read(&mut buf) {
                        Ok(0) => close = true,
                        Ok(n) => {
                            let out: &[u8] = match service {
                                Service::Echo => &buf[..n],
                                Service::Http => {
                                    replies.clear();
                                    for _ in 0..requests_ended(&buf[..n], &mut conn.matched) {
                                        replies.extend_from_slice(&response);
                                    }
                                    &replies
                                }
                            };
                            if !conn.pending.is_empty() || out.is_empty() {
                                conn.pending.extend_from_slice(out);
                            } else {
                                match conn.stream.write(out) {
                                    Ok(w) => conn.pending.extend_from_slice(&out[w..]),
                                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                                        conn.pending.extend_from_slice(out)
                                    }
                                    Err(_) => close = true,
                                }
                            }
                        }
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                        Err(_) => close = true,
                    }
                }
                if close {
                    reactor.update(ev.fd, conn.interest, Interest::NONE)?;
                    conns.remove(&ev.fd);
                } else {
                    let want = Interest {
                        readable: true,
                        writable: !conn.pending.is_empty(),
                    };
                    reactor.update(ev.fd, conn.interest, want)?;
                    conn.interest = want;
                }
            }
        }
    }
}
