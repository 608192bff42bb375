//! `GilCell<T>`: state that only a thread holding the GIL may touch.
//!
//! The loop's queues are touched from Python methods (GIL held) and from the tick (GIL held while
//! callbacks run). Holding the GIL already serialises every access, so a lock would only add cost;
//! the `RefCell` inside catches re-entrant misuse (a borrow held across a call into Python) as a
//! panic that PyO3 turns into `PanicException`, never as undefined behaviour.

use std::cell::{Ref, RefCell, RefMut};

use pyo3::Python;

/// A `RefCell` that is `Sync` because every access proves the GIL is held.
pub struct GilCell<T>(RefCell<T>);

// SAFETY: every accessor takes a `Python<'_>` token, which only a thread holding the GIL can
// produce, so two threads never touch the `RefCell` at once. Free-threaded builds (no GIL) are
// refused at compile time in lib.rs. `T: Send` because the value may be used from whichever thread
// holds the GIL.
unsafe impl<T: Send> Sync for GilCell<T> {}

impl<T> GilCell<T> {
    pub const fn new(value: T) -> Self {
        Self(RefCell::new(value))
    }

    /// Mutable access. Never hold the result across a call into Python.
    #[inline]
    pub fn borrow_mut<'a>(&'a self, _py: Python<'_>) -> RefMut<'a, T> {
        self.0.borrow_mut()
    }

    /// Shared access.
    #[inline]
    pub fn borrow<'a>(&'a self, _py: Python<'_>) -> Ref<'a, T> {
        self.0.borrow()
    }

    /// Mutable access from the garbage collector's `__clear__`; `None` if already borrowed.
    pub fn try_borrow_mut_in_gc<'a>(&'a self, _py: Python<'_>) -> Option<RefMut<'a, T>> {
        self.0.try_borrow_mut().ok()
    }

    /// Shared access from the garbage collector's `__traverse__`, which runs with the GIL held but
    /// gets no token; `None` if the state is being mutated right now.
    pub fn try_borrow_in_gc(&self) -> Option<Ref<'_, T>> {
        self.0.try_borrow().ok()
    }
}
