//! [`WriteBuffer`]: bytes accepted by `write()` but not yet taken by the kernel.
//!
//! # Implementation
//! A deque of chunks plus the offset already sent from the front chunk. Small writes are
//! appended to the last chunk while it is small, so many tiny writes still flush in a few
//! iovecs; large writes keep their own chunk. A chunk is either bytes the buffer owns (a copy) or
//! a buffer of type `H` the caller hands over whole ([`WriteBuffer::push_held`]): the binding
//! holds an immutable Python `bytes` that way instead of copying it, as libuv keeps the caller's
//! buffer. [`WriteBuffer::slices`] hands at most [`MAX_IOV`] slices to one `writev`/`sendmsg`,
//! and [`WriteBuffer::consume`] drops what was sent.
//!
//! Flow control mirrors `asyncio.transports._FlowControlMixin`: the protocol is paused once the
//! size goes *above* the high-water mark and resumed once it is back *at or below* the low-water
//! mark; each transition is reported once.

use std::collections::VecDeque;
use std::io::IoSlice;

/// At most this many slices go to one vectored write (Linux's `IOV_MAX` is 1024).
pub const MAX_IOV: usize = 64;

/// A write shorter than this is appended to the last chunk instead of getting its own.
const COALESCE: usize = 16 * 1024;

/// asyncio's default high-water mark (64 KiB).
const DEFAULT_HIGH: usize = 64 * 1024;

/// The water marks of a transport, as `get_write_buffer_limits()` reports them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Resume the protocol once the buffer is at or below this size.
    pub low: usize,
    /// Pause the protocol once the buffer is above this size.
    pub high: usize,
}

impl Limits {
    /// Mirrors `_FlowControlMixin._set_write_buffer_limits`: a missing high defaults to 64 KiB
    /// (or `4 * low`), a missing low to `high / 4`. `Err((high, low))` when not
    /// `high >= low >= 0`, with the values that were compared (for the error message).
    pub fn new(high: Option<i64>, low: Option<i64>) -> Result<Self, (i64, i64)> {
        let high = match (high, low) {
            (Some(h), _) => h,
            (None, None) => DEFAULT_HIGH as i64,
            (None, Some(l)) => l.saturating_mul(4),
        };
        let low = low.unwrap_or(high.div_euclid(4));
        if !(high >= low && low >= 0) {
            return Err((high, low));
        }
        Ok(Self {
            low: low as usize,
            high: high as usize,
        })
    }
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            low: DEFAULT_HIGH / 4,
            high: DEFAULT_HIGH,
        }
    }
}

/// One queued chunk.
#[derive(Debug)]
enum Chunk<H> {
    /// A copy the buffer owns.
    Owned(Vec<u8>),
    /// A buffer the caller handed over, and the offset of its first queued byte (the bytes
    /// before it were sent before it was queued).
    Held(H, usize),
}

impl<H: AsRef<[u8]>> Chunk<H> {
    /// The queued bytes of the chunk (including those of the front chunk already sent).
    #[inline]
    fn bytes(&self) -> &[u8] {
        match self {
            Chunk::Owned(v) => v,
            Chunk::Held(h, start) => &h.as_ref()[*start..],
        }
    }
}

/// Unsent bytes of one transport, in order, with its flow-control state. `H` is the kind of
/// buffer [`WriteBuffer::push_held`] keeps without copying; it must not change while held.
#[derive(Debug)]
pub struct WriteBuffer<H = Vec<u8>> {
    /// Chunks in write order; never holds an empty chunk.
    chunks: VecDeque<Chunk<H>>,
    /// Bytes of `chunks[0]` already sent; always less than its length.
    head: usize,
    /// Unsent bytes in total: the sum of the chunk lengths minus `head`.
    len: usize,
    /// The water marks.
    limits: Limits,
    /// The protocol was told to pause and not yet to resume.
    paused: bool,
}

impl<H> Default for WriteBuffer<H> {
    fn default() -> Self {
        Self {
            chunks: VecDeque::new(),
            head: 0,
            len: 0,
            limits: Limits::default(),
            paused: false,
        }
    }
}

impl WriteBuffer {
    /// An empty buffer of owned chunks with asyncio's default limits (`default()` makes one
    /// for any kind of held chunk).
    pub fn new() -> Self {
        Self::default()
    }
}

impl<H: AsRef<[u8]>> WriteBuffer<H> {
    /// Unsent bytes (`get_write_buffer_size()`).
    #[inline]
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether everything was sent.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Queues a copy of `data` behind what is already queued.
    pub fn push(&mut self, data: &[u8]) {
        if data.is_empty() {
            return;
        }
        match self.chunks.back_mut() {
            Some(Chunk::Owned(last)) if data.len() < COALESCE && last.len() < COALESCE => {
                last.extend_from_slice(data)
            }
            _ => self.chunks.push_back(Chunk::Owned(data.to_vec())),
        }
        self.len += data.len();
    }

    /// Queues `data[start..]` behind what is already queued, keeping `data` itself rather than a
    /// copy; a short remainder (under 16 KiB) is copied instead, so that small writes still
    /// coalesce into few iovecs.
    pub fn push_held(&mut self, data: H, start: usize) {
        let Some(rest) = data.as_ref().get(start..) else {
            return;
        };
        if rest.len() < COALESCE {
            self.push(rest);
            return;
        }
        self.len += rest.len();
        self.chunks.push_back(Chunk::Held(data, start));
    }

    /// Fills `out` with up to [`MAX_IOV`] slices of the unsent bytes, front first.
    pub fn slices<'a>(&'a self, out: &mut Vec<IoSlice<'a>>) {
        out.clear();
        for (i, chunk) in self.chunks.iter().take(MAX_IOV).enumerate() {
            let start = if i == 0 { self.head } else { 0 };
            out.push(IoSlice::new(&chunk.bytes()[start..]));
        }
    }

    /// The front chunk's unsent bytes (for a plain `write` when one slice is enough).
    pub fn front(&self) -> &[u8] {
        self.chunks.front().map_or(&[], |c| &c.bytes()[self.head..])
    }

    /// Whether more than one chunk is queued (a vectored write is worth it).
    pub fn is_fragmented(&self) -> bool {
        self.chunks.len() > 1
    }

    /// Drops the first `n` unsent bytes (the kernel took them). `n` must not exceed `len()`.
    pub fn consume(&mut self, mut n: usize) {
        assert!(n <= self.len, "consumed more than was buffered");
        self.len -= n;
        while n > 0 {
            let front_left = self.chunks[0].bytes().len() - self.head;
            if n < front_left {
                self.head += n;
                return;
            }
            n -= front_left;
            self.chunks.pop_front();
            self.head = 0;
        }
    }

    /// Drops everything unsent (the transport is being aborted).
    pub fn clear(&mut self) {
        self.chunks.clear();
        self.head = 0;
        self.len = 0;
    }

    /// The current water marks.
    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// Replaces the water marks; the caller then checks [`WriteBuffer::should_pause`], as
    /// `set_write_buffer_limits()` does.
    pub fn set_limits(&mut self, limits: Limits) {
        self.limits = limits;
    }

    /// Whether the protocol is currently paused.
    pub fn paused(&self) -> bool {
        self.paused
    }

    /// `true` once when the size went above the high-water mark: call `pause_writing()` then.
    pub fn should_pause(&mut self) -> bool {
        if self.len > self.limits.high && !self.paused {
            self.paused = true;
            return true;
        }
        false
    }

    /// `true` once when a paused protocol may resume (size at or below the low-water mark): call
    /// `resume_writing()` then.
    pub fn should_resume(&mut self) -> bool {
        if self.paused && self.len <= self.limits.low {
            self.paused = false;
            return true;
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn collect<H: AsRef<[u8]>>(buf: &WriteBuffer<H>) -> Vec<u8> {
        let mut out = Vec::new();
        buf.slices(&mut out);
        out.iter().flat_map(|s| s.iter().copied()).collect()
    }

    #[test]
    fn push_consume_keeps_order() {
        let mut b = WriteBuffer::new();
        b.push(b"hello ");
        b.push(&vec![b'x'; 40_000]);
        b.push(b"world");
        assert_eq!(b.len(), 6 + 40_000 + 5);
        b.consume(3);
        let rest = collect(&b);
        assert_eq!(&rest[..3], b"lo ");
        assert_eq!(&rest[rest.len() - 5..], b"world");
        b.consume(3 + 40_000);
        assert_eq!(collect(&b), b"world");
        b.consume(5);
        assert!(b.is_empty());
        assert!(b.front().is_empty());
    }

    #[test]
    fn held_chunks_keep_order_and_offsets() {
        let big: Vec<u8> = (0..40_000u32).map(|i| i as u8).collect();
        let mut b = WriteBuffer::new();
        b.push(b"head");
        b.push_held(big.clone(), 100);
        b.push_held(b"tail that is short".to_vec(), 5);
        b.push_held(big.clone(), big.len());
        assert_eq!(b.len(), 4 + 39_900 + 13);
        assert!(b.is_fragmented());
        let mut want = b"head".to_vec();
        want.extend_from_slice(&big[100..]);
        want.extend_from_slice(b"that is short");
        assert_eq!(collect(&b), want);
        b.consume(4 + 900);
        assert_eq!(b.front(), &big[1000..]);
        b.consume(39_000);
        assert_eq!(collect(&b), b"that is short");
        b.consume(13);
        assert!(b.is_empty());
    }

    #[test]
    fn a_short_held_remainder_is_copied_and_coalesced() {
        let mut b = WriteBuffer::new();
        b.push(b"ab");
        b.push_held(b"cdef".to_vec(), 1);
        assert!(!b.is_fragmented());
        assert_eq!(b.front(), b"abdef");
    }

    #[test]
    fn small_writes_coalesce() {
        let mut b = WriteBuffer::new();
        for _ in 0..1000 {
            b.push(b"ab");
        }
        assert!(!b.is_fragmented());
        assert_eq!(b.front().len(), 2000);
    }

    #[test]
    fn slices_are_capped() {
        let mut b = WriteBuffer::new();
        for _ in 0..(MAX_IOV + 10) {
            b.push(&vec![1u8; COALESCE]);
        }
        let mut out = Vec::new();
        b.slices(&mut out);
        assert_eq!(out.len(), MAX_IOV);
    }

    #[test]
    fn limits_default_and_errors() {
        assert_eq!(
            Limits::new(None, None),
            Ok(Limits {
                low: 16384,
                high: 65536
            })
        );
        assert_eq!(
            Limits::new(None, Some(10)),
            Ok(Limits { low: 10, high: 40 })
        );
        assert_eq!(Limits::new(Some(10), None), Ok(Limits { low: 2, high: 10 }));
        assert_eq!(
            Limits::new(Some(0), Some(0)),
            Ok(Limits { low: 0, high: 0 })
        );
        assert_eq!(Limits::new(Some(1), Some(2)), Err((1, 2)));
        assert_eq!(Limits::new(Some(-1), None), Err((-1, -1)));
    }

    #[test]
    fn pause_and_resume_once_each() {
        let mut b = WriteBuffer::new();
        b.set_limits(Limits { low: 2, high: 4 });
        b.push(b"1234");
        assert!(!b.should_pause(), "at the high mark is not above it");
        b.push(b"5");
        assert!(b.should_pause());
        assert!(!b.should_pause());
        b.consume(2);
        assert!(!b.should_resume(), "3 bytes is above the low mark");
        b.consume(1);
        assert!(b.should_resume());
        assert!(!b.should_resume());
    }
}
