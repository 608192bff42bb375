//! asyncio transports whose I/O runs in Rust, each a `NativeWatcher` on its socket's fd.

pub mod udp;
