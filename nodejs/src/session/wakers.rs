//! Waiting for a session's next output without a thread or a poll.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use remotemedia_runtime::sync::lock;

use super::deferred::{Deferred, settle};

/// Promises JavaScript awaits until the session's next output. The pipeline thread that
/// queues an output settles them all (one wake-up per wait, not one per output).
#[derive(Default)]
pub struct Wakers {
    pub armed: AtomicBool,
    waiting: Mutex<Vec<Deferred<()>>>,
}

impl Wakers {
    pub fn arm(&self, deferred: Deferred<()>) {
        lock(&self.waiting).push(deferred);
        self.armed.store(true, Ordering::SeqCst);
    }

    /// The session's notify: runs on a pipeline thread after each output or error is queued.
    pub fn output_queued(&self) {
        if self.armed.swap(false, Ordering::SeqCst) {
            self.wake_all();
        }
    }

    pub fn wake_all(&self) {
        let woken = std::mem::take(&mut *lock(&self.waiting));
        for deferred in woken {
            settle(deferred, Ok(()));
        }
    }
}

impl Drop for Wakers {
    /// An unsettled promise would keep Node's event loop alive.
    fn drop(&mut self) {
        self.wake_all();
    }
}
