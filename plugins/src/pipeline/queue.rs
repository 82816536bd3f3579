//! The queue between the graph and the pad that pushes its results downstream. Graph
//! outputs, node errors and serialized events pass through it in order.

use remotemedia_runtime::sync::lock;
use std::collections::VecDeque;
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};

use remotemedia_runtime::{Output, OutputSink, RuntimeError};

pub enum Item {
    Output(Output),
    Error(RuntimeError),
    /// A node recovered from a failure (a restarted Python worker).
    Warning(RuntimeError),
    Event(gst::Event),
}

struct Inner {
    items: VecDeque<Item>,
    flushing: bool,
    /// Threads blocked in `push` or `pop`; nobody waiting means no wake-up syscall.
    waiters: usize,
}

pub struct OutQueue {
    inner: Mutex<Inner>,
    changed: Condvar,
    capacity: usize,
}

impl OutQueue {
    /// `capacity` bounds the queue; a full queue blocks producers until the pusher catches up.
    pub fn new(capacity: usize) -> Self {
        Self {
            inner: Mutex::new(Inner {
                items: VecDeque::new(),
                flushing: false,
                waiters: 0,
            }),
            changed: Condvar::new(),
            capacity,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        lock(&self.inner)
    }

    fn wait<'a>(&self, mut inner: MutexGuard<'a, Inner>) -> MutexGuard<'a, Inner> {
        inner.waiters += 1;
        let mut inner = self
            .changed
            .wait(inner)
            .unwrap_or_else(PoisonError::into_inner);
        inner.waiters -= 1;
        inner
    }

    /// Unlocks, then wakes the waiters, if any.
    fn wake(&self, inner: MutexGuard<'_, Inner>) {
        let waiting = inner.waiters > 0;
        drop(inner);
        if waiting {
            self.changed.notify_all();
        }
    }

    /// Adds an item; dropped while flushing.
    pub fn push(&self, item: Item) {
        let mut inner = self.lock();
        while inner.items.len() >= self.capacity && !inner.flushing {
            inner = self.wait(inner);
        }
        if inner.flushing {
            return;
        }
        inner.items.push_back(item);
        self.wake(inner);
    }

    /// The next item without waiting.
    pub fn try_pop(&self) -> Option<Item> {
        let mut inner = self.lock();
        let item = inner.items.pop_front();
        self.wake(inner);
        item
    }

    /// Whether nothing waits to be pushed.
    pub fn is_empty(&self) -> bool {
        self.lock().items.is_empty()
    }

    /// Waits for the next item; `None` once flushing.
    pub fn pop(&self) -> Option<Item> {
        let mut inner = self.lock();
        loop {
            if inner.flushing {
                return None;
            }
            if let Some(item) = inner.items.pop_front() {
                self.wake(inner);
                return Some(item);
            }
            inner = self.wait(inner);
        }
    }

    /// Flushing drops what is queued and wakes every waiter.
    pub fn set_flushing(&self, flushing: bool) {
        let mut inner = self.lock();
        inner.flushing = flushing;
        inner.items.clear();
        self.wake(inner);
    }
}

/// The graph's output sink: everything goes into the queue.
pub struct QueueSink(pub std::sync::Arc<OutQueue>);

impl OutputSink for QueueSink {
    fn output(&self, output: Output) {
        self.0.push(Item::Output(output));
    }
    fn error(&self, error: RuntimeError) {
        self.0.push(Item::Error(error));
    }
    fn warning(&self, warning: RuntimeError) {
        self.0.push(Item::Warning(warning));
    }
}
