//! Locking that survives a panic elsewhere: a poisoned mutex is taken over, since every value
//! we guard stays consistent between statements (no lock is held across user code).

use std::sync::{Mutex, MutexGuard, PoisonError};

pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}
