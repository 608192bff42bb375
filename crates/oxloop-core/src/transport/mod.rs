//! Transport machinery that needs no Python: the lifecycle every transport shares and the write
//! buffer with its flow-control water marks.
//!
//! A stream transport (TCP, Unix socket, pipe) in the binding crate tries to send at once on
//! `write()` and queues what the kernel did not take in a [`WriteBuffer`]; when its fd becomes
//! writable the tick flushes the queue with one vectored write. The buffer decides when the
//! protocol must be paused (`pause_writing()`) or resumed (`resume_writing()`), with the rules of
//! asyncio's `transports._FlowControlMixin`.

mod lifecycle;
mod write_buffer;

pub use lifecycle::{Lifecycle, Phase, Side, Steps};
pub use write_buffer::{Limits, WriteBuffer, MAX_IOV};
