//! Values that must not cross a `fork()`: a child gets a copy of the parent's memory but none of
//! its threads, so a tokio runtime, its I/O registrations and any lock held by a parent thread
//! would be dead weight (or a deadlock) in the child. `ForkLocal` rebuilds its value the first
//! time it is used in a new process.

use std::sync::atomic::{AtomicU32, Ordering};

use parking_lot::Mutex;

pub(crate) struct ForkLocal<T: Clone, M = fn() -> T> {
    slot: Mutex<Option<(u32, T)>>,
    make: M,
}

impl<T: Clone, M: Fn() -> T> ForkLocal<T, M> {
    pub(crate) const fn new(make: M) -> Self {
        ForkLocal {
            slot: Mutex::new(None),
            make,
        }
    }

    /// The value for this process, made on first use here.
    pub(crate) fn get(&self) -> T {
        let pid = std::process::id();
        // A parent thread may have held this lock at fork time; the child has no such thread.
        let mut slot = self.slot.lock();
        match slot.as_ref() {
            Some((owner, value)) if *owner == pid => value.clone(),
            _ => {
                if let Some((_, stale)) = slot.take() {
                    // Dropping a parent's runtime or client would try to join threads that do not
                    // exist in this process.
                    std::mem::forget(stale);
                }
                let value = (self.make)();
                *slot = Some((pid, value.clone()));
                value
            }
        }
    }
}

/// The current process id, cheap enough for hot paths.
pub(crate) fn pid() -> u32 {
    std::process::id()
}

/// "One background task at a time, per process": a claim made by a parent process means
/// nothing in its child, whose copy of the task never runs.
pub(crate) struct ProcessClaim(AtomicU32);

impl ProcessClaim {
    pub(crate) const fn new() -> Self {
        ProcessClaim(AtomicU32::new(0))
    }

    /// True when this process now holds the claim (and must `release` it when done).
    pub(crate) fn try_claim(&self) -> bool {
        let pid = pid();
        let current = self.0.load(Ordering::Acquire);
        current != pid
            && self
                .0
                .compare_exchange(current, pid, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
    }

    pub(crate) fn release(&self) {
        self.0.store(0, Ordering::Release);
    }
}

impl Default for ProcessClaim {
    fn default() -> Self {
        Self::new()
    }
}
