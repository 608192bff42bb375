//! [`Lifecycle`]: the states every transport goes through, sans I/O.
//!
//! A socket, pipe or datagram transport is open, then closing (a graceful `close()` waiting for
//! its write buffer to drain, or a `write_eof()` half-close), then lost (`connection_lost` is
//! scheduled or running; nothing more is read or written). Reading may be paused while open. The
//! binding feeds the transport's events in (close, abort, buffer flushed, EOF received, pause and
//! resume of reading, the reactor registrations it made) and gets back [`Steps`]: what to do, in
//! the order [`Steps`] documents, which the binding maps to reactor and protocol calls in one
//! place (`transports::apply` in the binding crate).
//!
//! Mirrors the state asyncio's `_SelectorTransport`, `_SelectorSocketTransport`,
//! `_UnixReadPipeTransport` and `_UnixWritePipeTransport` keep in `_closing`, `_paused`,
//! `_eof`, `_conn_lost` and their reader/writer registrations.

/// Where a transport is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Reading and writing.
    Open,
    /// `close()` was called with data still buffered: the buffer drains, then the connection is
    /// lost. Nothing more is read.
    Closing,
    /// `connection_lost` is scheduled (or ran): nothing more is read or written.
    Lost,
}

/// What the binding must do after an event, as bits; [`Steps::order`] lists them in the order
/// they are carried out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[must_use]
pub struct Steps(u8);

impl Steps {
    /// Nothing to do.
    pub const NONE: Steps = Steps(0);
    /// Drop the write buffer's unsent bytes.
    pub const DROP_BUFFER: Steps = Steps(1);
    /// Remove the transport's writer from the reactor.
    pub const STOP_WRITING: Steps = Steps(1 << 1);
    /// Remove the transport's reader from the reactor.
    pub const STOP_READING: Steps = Steps(1 << 2);
    /// Register the transport's reader with the reactor (then report it with
    /// [`Lifecycle::registered`]).
    pub const START_READING: Steps = Steps(1 << 3);
    /// Shut the write side down (`shutdown(SHUT_WR)`): the buffer drained after `write_eof()`.
    pub const SHUTDOWN: Steps = Steps(1 << 4);
    /// Schedule `eof_received` with `call_soon` (a read pipe's end of file).
    pub const SCHEDULE_EOF: Steps = Steps(1 << 5);
    /// Schedule `connection_lost` with `call_soon` (asyncio's `_call_connection_lost`).
    pub const SCHEDULE_LOST: Steps = Steps(1 << 6);
    /// Call `connection_lost` now: the buffer of a closing transport drained inside the tick.
    pub const CALL_LOST: Steps = Steps(1 << 7);

    /// The order in which the binding carries the steps out.
    pub const ORDER: [Steps; 8] = [
        Steps::DROP_BUFFER,
        Steps::STOP_WRITING,
        Steps::STOP_READING,
        Steps::START_READING,
        Steps::SHUTDOWN,
        Steps::SCHEDULE_EOF,
        Steps::SCHEDULE_LOST,
        Steps::CALL_LOST,
    ];

    /// Whether every step of `other` is in `self`.
    #[inline]
    pub fn has(self, other: Steps) -> bool {
        self.0 & other.0 == other.0 && other.0 != 0
    }

    /// Whether there is nothing to do.
    #[inline]
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }
}

impl std::ops::BitOr for Steps {
    type Output = Steps;
    fn bitor(self, rhs: Steps) -> Steps {
        Steps(self.0 | rhs.0)
    }
}

impl std::ops::BitOrAssign for Steps {
    fn bitor_assign(&mut self, rhs: Steps) {
        self.0 |= rhs.0;
    }
}

/// A reactor registration of the transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// Its reader.
    Read,
    /// Its writer.
    Write,
}

/// The state machine of one transport; see the module docs.
#[derive(Debug)]
pub struct Lifecycle {
    /// Where the transport is.
    phase: Phase,
    /// `pause_reading()` is in effect.
    paused: bool,
    /// `write_eof()` was called (stream transports): the write side shuts once the buffer drains.
    eof_written: bool,
    /// The transport is registered as the fd's reader.
    reading: bool,
    /// The transport is registered as the fd's writer.
    writing: bool,
    /// Writes refused since the connection was lost (asyncio's `_conn_lost - 1`): from
    /// `LOG_THRESHOLD_FOR_CONNLOST_WRITES` on, each is logged.
    lost_writes: usize,
}

impl Default for Lifecycle {
    fn default() -> Self {
        Self::new()
    }
}

impl Lifecycle {
    /// An open transport, registered nowhere yet.
    pub const fn new() -> Self {
        Self {
            phase: Phase::Open,
            paused: false,
            eof_written: false,
            reading: false,
            writing: false,
            lost_writes: 0,
        }
    }

    /// Where the transport is.
    #[inline]
    pub fn phase(&self) -> Phase {
        self.phase
    }

    /// `is_closing()`: closing or lost.
    #[inline]
    pub fn is_closing(&self) -> bool {
        self.phase != Phase::Open
    }

    /// `connection_lost` is scheduled or ran.
    #[inline]
    pub fn is_lost(&self) -> bool {
        self.phase == Phase::Lost
    }

    /// `is_reading()`: open and not paused.
    #[inline]
    pub fn wants_reading(&self) -> bool {
        self.phase == Phase::Open && !self.paused
    }

    /// `pause_reading()` is in effect.
    #[inline]
    pub fn is_paused(&self) -> bool {
        self.paused
    }

    /// `write_eof()` was called.
    #[inline]
    pub fn eof_written(&self) -> bool {
        self.eof_written
    }

    /// Whether the transport is registered on `side` (a ready event for an unregistered side is
    /// stale and dropped, as asyncio drops a cancelled handle).
    #[inline]
    pub fn is_registered(&self, side: Side) -> bool {
        match side {
            Side::Read => self.reading,
            Side::Write => self.writing,
        }
    }

    /// The binding registered the transport on `side`.
    pub fn registered(&mut self, side: Side) {
        match side {
            Side::Read => self.reading = true,
            Side::Write => self.writing = true,
        }
    }

    /// [`Steps::STOP_READING`] / [`Steps::STOP_WRITING`] if registered there (then forgotten).
    pub fn stop(&mut self, side: Side) -> Steps {
        let (flag, step) = match side {
            Side::Read => (&mut self.reading, Steps::STOP_READING),
            Side::Write => (&mut self.writing, Steps::STOP_WRITING),
        };
        if std::mem::replace(flag, false) {
            step
        } else {
            Steps::NONE
        }
    }

    /// A graceful `close()` with `buffered` bytes still to send: stop reading; once nothing is
    /// buffered the connection is lost. A no-op unless open.
    pub fn close(&mut self, buffered: bool) -> Steps {
        if self.phase != Phase::Open {
            return Steps::NONE;
        }
        self.phase = Phase::Closing;
        let mut steps = self.stop(Side::Read);
        if !buffered {
            self.phase = Phase::Lost;
            steps |= self.stop(Side::Write) | Steps::SCHEDULE_LOST;
        }
        steps
    }

    /// `abort()` or a fatal error: drop the buffer, stop both sides and lose the connection. A
    /// no-op once lost, so `connection_lost` runs once.
    pub fn abort(&mut self) -> Steps {
        if self.phase == Phase::Lost {
            return Steps::NONE;
        }
        self.phase = Phase::Lost;
        Steps::DROP_BUFFER | self.stop(Side::Write) | self.stop(Side::Read) | Steps::SCHEDULE_LOST
    }

    /// End of file on a transport that ends with it (a read pipe, asyncio's
    /// `_UnixReadPipeTransport._read_ready`): stop reading, schedule `eof_received`, then
    /// `connection_lost`. A no-op once lost.
    pub fn eof_ends(&mut self) -> Steps {
        if self.phase == Phase::Lost {
            return Steps::NONE;
        }
        self.phase = Phase::Lost;
        self.stop(Side::Read) | Steps::SCHEDULE_EOF | Steps::SCHEDULE_LOST
    }

    /// `write_eof()` of a stream transport with `buffered` bytes still to send: the write side
    /// shuts now or once they are sent. A no-op when closing or already called.
    pub fn write_eof(&mut self, buffered: bool) -> Steps {
        if self.phase != Phase::Open || self.eof_written {
            return Steps::NONE;
        }
        self.eof_written = true;
        if buffered {
            Steps::NONE
        } else {
            Steps::SHUTDOWN
        }
    }

    /// The write buffer drained: stop writing; a closing transport loses its connection now
    /// (asyncio calls `_call_connection_lost` from `_write_ready`), a half-closed one shuts.
    pub fn flushed(&mut self) -> Steps {
        let mut steps = self.stop(Side::Write);
        match self.phase {
            Phase::Closing => {
                self.phase = Phase::Lost;
                steps |= self.stop(Side::Read) | Steps::CALL_LOST;
            }
            Phase::Open if self.eof_written => steps |= Steps::SHUTDOWN,
            _ => {}
        }
        steps
    }

    /// `pause_reading()`: a no-op unless reading is wanted.
    pub fn pause_reading(&mut self) -> Steps {
        if !self.wants_reading() {
            return Steps::NONE;
        }
        self.paused = true;
        self.stop(Side::Read)
    }

    /// `resume_reading()`: a no-op when closing or not paused.
    pub fn resume_reading(&mut self) -> Steps {
        if self.phase != Phase::Open || !self.paused {
            return Steps::NONE;
        }
        self.paused = false;
        Steps::START_READING
    }

    /// The transport is about to start reading (asyncio's `_add_reader` scheduled at
    /// creation): [`Steps::START_READING`] if reading is wanted.
    pub fn start_reading(&mut self) -> Steps {
        if self.wants_reading() {
            Steps::START_READING
        } else {
            Steps::NONE
        }
    }

    /// A write arrived after the connection was lost: counts it, and whether it must be
    /// logged (from the `threshold`th on, as asyncio's `_conn_lost >=
    /// LOG_THRESHOLD_FOR_CONNLOST_WRITES`).
    pub fn write_after_lost(&mut self, threshold: usize) -> bool {
        self.lost_writes += 1;
        self.lost_writes >= threshold
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn open_reading() -> Lifecycle {
        let mut lc = Lifecycle::new();
        assert_eq!(lc.start_reading(), Steps::START_READING);
        lc.registered(Side::Read);
        lc
    }

    #[test]
    fn close_with_empty_buffer_loses_at_once() {
        let mut lc = open_reading();
        let steps = lc.close(false);
        assert_eq!(steps, Steps::STOP_READING | Steps::SCHEDULE_LOST);
        assert!(lc.is_lost() && lc.is_closing() && !lc.wants_reading());
        assert_eq!(lc.close(false), Steps::NONE, "close twice");
        assert_eq!(
            lc.abort(),
            Steps::NONE,
            "abort after close: connection_lost once"
        );
    }

    #[test]
    fn close_with_buffer_waits_for_the_flush() {
        let mut lc = open_reading();
        lc.registered(Side::Write);
        assert_eq!(lc.close(true), Steps::STOP_READING);
        assert_eq!(lc.phase(), Phase::Closing);
        assert_eq!(lc.flushed(), Steps::STOP_WRITING | Steps::CALL_LOST);
        assert!(lc.is_lost());
        assert_eq!(lc.flushed(), Steps::NONE);
    }

    #[test]
    fn abort_while_closing_drops_the_buffer_once() {
        let mut lc = open_reading();
        lc.registered(Side::Write);
        let _ = lc.close(true);
        assert_eq!(
            lc.abort(),
            Steps::DROP_BUFFER | Steps::STOP_WRITING | Steps::SCHEDULE_LOST
        );
        assert_eq!(lc.abort(), Steps::NONE);
        assert_eq!(
            lc.flushed(),
            Steps::NONE,
            "a late flush after abort does nothing"
        );
    }

    #[test]
    fn write_eof_shuts_now_or_after_the_flush() {
        let mut lc = open_reading();
        assert_eq!(lc.write_eof(false), Steps::SHUTDOWN);
        assert_eq!(lc.write_eof(false), Steps::NONE);
        let mut lc = open_reading();
        lc.registered(Side::Write);
        assert_eq!(lc.write_eof(true), Steps::NONE);
        assert_eq!(lc.flushed(), Steps::STOP_WRITING | Steps::SHUTDOWN);
        assert!(!lc.is_closing(), "a half-closed transport still reads");
        assert!(lc.wants_reading());
    }

    #[test]
    fn pause_and_resume_reading() {
        let mut lc = open_reading();
        assert_eq!(lc.pause_reading(), Steps::STOP_READING);
        assert!(lc.is_paused() && !lc.wants_reading());
        assert_eq!(lc.pause_reading(), Steps::NONE);
        assert_eq!(lc.resume_reading(), Steps::START_READING);
        assert_eq!(lc.resume_reading(), Steps::NONE);
        lc.registered(Side::Read);
        let _ = lc.pause_reading();
        let _ = lc.close(false);
        assert_eq!(lc.resume_reading(), Steps::NONE, "no resume once closing");
        assert_eq!(lc.start_reading(), Steps::NONE);
    }

    #[test]
    fn stale_registrations_are_not_stopped_twice() {
        let mut lc = open_reading();
        assert_eq!(lc.stop(Side::Read), Steps::STOP_READING);
        assert_eq!(lc.stop(Side::Read), Steps::NONE);
        assert!(!lc.is_registered(Side::Read));
        assert_eq!(lc.abort(), Steps::DROP_BUFFER | Steps::SCHEDULE_LOST);
    }

    #[test]
    fn end_of_file_of_a_read_pipe() {
        let mut lc = open_reading();
        assert_eq!(
            lc.eof_ends(),
            Steps::STOP_READING | Steps::SCHEDULE_EOF | Steps::SCHEDULE_LOST
        );
        assert!(lc.is_closing() && !lc.wants_reading());
        assert_eq!(lc.eof_ends(), Steps::NONE);
        assert_eq!(
            lc.abort(),
            Steps::NONE,
            "close after EOF: connection_lost once"
        );
    }

    #[test]
    fn writes_after_lost_are_logged_from_the_threshold() {
        let mut lc = Lifecycle::new();
        let _ = lc.abort();
        let logged: Vec<bool> = (0..6).map(|_| lc.write_after_lost(5)).collect();
        assert_eq!(logged, [false, false, false, false, true, true]);
    }

    #[test]
    fn steps_order_covers_every_step_once() {
        let all = Steps::ORDER.iter().fold(Steps::NONE, |a, s| a | *s);
        assert_eq!(all, Steps(0xff));
        assert!(all.has(Steps::CALL_LOST));
        assert!(!Steps::NONE.has(Steps::NONE));
    }
}
