//! libc's `getaddrinfo` and `inet_ntop`, decoded as Python's socket module decodes them.
//! `getaddrinfo` blocks: it is called from the resolver threads (`crate::dns`), never from the
//! loop thread. [`parse_literal`] does no lookup: the loop thread uses it to answer IP literals.

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
    // NOTE: the libc crate declares neither inet_pton nor inet_ntop; these are their POSIX
    // signatures.
    fn inet_pton(af: libc::c_int, src: *const libc::c_char, dst: *mut libc::c_void) -> libc::c_int;
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

/// An IP address literal whose `getaddrinfo` answer is known without calling it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Literal {
    /// An IPv4 address in canonical dotted-quad form: getaddrinfo answers with the same text.
    V4,
    /// An IPv6 address without a `%scope`: getaddrinfo answers with this canonical text.
    V6(String),
}

/// Whether `host` is an IP literal that `getaddrinfo` answers with no lookup and a known text.
///
/// IPv4: only the canonical form (`inet_ntop(inet_pton(host)) == host`), since getaddrinfo also
/// takes `127.1`, octal and hex parts, which it rewrites. IPv6: any address `inet_pton` takes,
/// without a scope (a scope name needs an interface lookup); its text is `inet_ntop`'s, as in
/// getaddrinfo's answer. `None` for everything else (names, scoped or malformed addresses).
pub fn parse_literal(host: &str) -> Option<Literal> {
    if !host.contains(':') {
        return is_canonical_v4(host).then_some(Literal::V4);
    }
    if host.len() > 63 || host.contains('%') {
        return None; // the longest IPv6 text is 45 bytes
    }
    let mut text = [0 as libc::c_char; 64];
    for (dst, &src) in text.iter_mut().zip(host.as_bytes()) {
        if src == 0 {
            return None;
        }
        *dst = src as libc::c_char;
    }
    // SAFETY: an all-zero in6_addr is a valid value of that plain C struct.
    let mut addr: libc::in6_addr = unsafe { std::mem::zeroed() };
    // SAFETY: as above; AF_INET6 writes an in6_addr.
    let ok = unsafe {
        inet_pton(
            libc::AF_INET6,
            text.as_ptr(),
            (&mut addr as *mut libc::in6_addr).cast(),
        )
    };
    (ok == 1).then(|| Literal::V6(ntop_v6(&addr)))
}

/// Whether `host` is an IPv4 address exactly as `inet_ntop` writes it: four dot-separated
/// decimal numbers up to 255, without leading zeros. (Checked here, not by a round trip through
/// `inet_pton`/`inet_ntop`, whose `sprintf` costs more than the whole answer.)
fn is_canonical_v4(host: &str) -> bool {
    let mut parts = 0;
    for part in host.split('.') {
        parts += 1;
        let ok = match part.as_bytes() {
            [b'0'] => true,
            [b'1'..=b'9', rest @ ..] if rest.len() <= 2 => {
                rest.iter().all(u8::is_ascii_digit) && part.parse::<u16>().is_ok_and(|v| v <= 255)
            }
            _ => false,
        };
        if !ok || parts > 4 {
            return false;
        }
    }
    parts == 4
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literals_are_those_getaddrinfo_answers_unchanged() {
        assert_eq!(parse_literal("127.0.0.1"), Some(Literal::V4));
        assert_eq!(parse_literal("0.0.0.0"), Some(Literal::V4));
        for rewritten in [
            "127.1",
            "127.000.0.1",
            "01.2.3.4",
            "0x7f.0.0.1",
            "1.2.3.4.5",
            "",
        ] {
            assert_eq!(parse_literal(rewritten), None, "{rewritten}");
        }
        assert_eq!(parse_literal("::1"), Some(Literal::V6("::1".into())));
        assert_eq!(parse_literal("0:0::1"), Some(Literal::V6("::1".into())));
        assert_eq!(
            parse_literal("::FFFF:1.2.3.4"),
            Some(Literal::V6("::ffff:1.2.3.4".into()))
        );
        for other in ["fe80::1%lo", "localhost", "::1\0", "1:::2", "a.b"] {
            assert_eq!(parse_literal(other), None, "{other}");
        }
    }

    #[test]
    fn canonical_v4_is_the_inet_ntop_round_trip() {
        let mut cases: Vec<String> = [
            "",
            ".",
            "1.2.3",
            "1.2.3.4.",
            ".1.2.3.4",
            "1..2.3",
            "256.1.1.1",
            "255.255.255.255",
            "00.1.2.3",
            "1.2.3.04",
            "1.2.3.+4",
            "1.2.3.4 ",
            "9999.1.1.1",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        for a in [
            "0", "1", "9", "10", "99", "100", "199", "200", "249", "250", "255", "256", "300",
            "010", "1000",
        ] {
            cases.push(format!("{a}.0.0.1"));
            cases.push(format!("127.0.{a}.1"));
        }
        for host in cases {
            let c = std::ffi::CString::new(host.as_str()).unwrap();
            // SAFETY: an all-zero in_addr is a valid value of that plain C struct.
            let mut addr: libc::in_addr = unsafe { std::mem::zeroed() };
            // SAFETY: `c` is NUL-terminated and `addr` is a live in_addr.
            let ok = unsafe {
                inet_pton(
                    libc::AF_INET,
                    c.as_ptr(),
                    (&mut addr as *mut libc::in_addr).cast(),
                )
            };
            let round_trip = ok == 1 && ntop_v4(&addr) == host;
            assert_eq!(is_canonical_v4(&host), round_trip, "{host:?}");
        }
    }

    #[test]
    fn literal_answers_match_getaddrinfo() {
        for host in [
            "127.0.0.1",
            "10.1.2.3",
            "::1",
            "2001:db8::1",
            "::ffff:1.2.3.4",
            "1::",
        ] {
            let c = std::ffi::CString::new(host).unwrap();
            let flags = libc::AI_NUMERICHOST;
            let got = getaddrinfo(Some(&c), None, 0, libc::SOCK_STREAM, 0, flags).unwrap();
            let text = match &got[0].addr {
                SockAddr::V4(h, _) | SockAddr::V6(h, _, _, _) => h.clone(),
                SockAddr::Other(f) => panic!("family {f}"),
            };
            match parse_literal(host).unwrap() {
                Literal::V4 => assert_eq!(text, host),
                Literal::V6(canonical) => assert_eq!(text, canonical),
            }
        }
    }
}
