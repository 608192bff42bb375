//! libc's `getaddrinfo` and `inet_ntop`, decoded as Python's socket module decodes them. Called
//! from the resolver threads (`crate::dns`), never from the loop thread.

use std::io;

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
