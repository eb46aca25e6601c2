//! Locking the crate's shared bookkeeping (assignments, ledgers, readiness, label sets).

use std::sync::{Mutex, MutexGuard};

/// Locks `mutex`, also one a panicking thread poisoned: what these locks guard is plain
/// bookkeeping, still usable after a panic elsewhere.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding one of these locks leaves plain bookkeeping behind, still usable.
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}
