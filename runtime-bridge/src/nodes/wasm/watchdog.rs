//! Time limits for module calls. All modules run on one engine; a call sets its deadline in its
//! store and registers it here. One thread sleeps until the earliest registered deadline and
//! then bumps the engine's epoch: every running call checks its own deadline at that moment
//! (`deadline_passed`) and only an overdue one stops.
//!
//! Calls come every few milliseconds on a live stream and last microseconds: waking the thread
//! for each would cost more than the call. So the thread, once woken, stays on watch while
//! calls keep coming (re-checking at least every `TICK`, which is how late a deadline may be
//! noticed) and goes back to sleep `LINGER` after the last one; only the first call after
//! that wakes it.

use std::collections::BTreeSet;
use std::sync::{Condvar, LazyLock, Mutex};
use std::time::{Duration, Instant};

use wasmtime::{Config, Engine};

use crate::sync::lock;

const TICK: Duration = Duration::from_millis(5);
const LINGER: Duration = Duration::from_secs(1);

#[derive(Default)]
struct Calls {
    /// Deadlines of the calls running now, with a number that tells equal ones apart.
    running: BTreeSet<(Instant, u64)>,
    /// Until when the thread stays on watch without being woken; `None` while it sleeps.
    on_watch_until: Option<Instant>,
}

struct Watchdog {
    engine: Engine,
    calls: Mutex<Calls>,
    woken: Condvar,
}

static WATCHDOG: LazyLock<Watchdog> = LazyLock::new(|| {
    let mut config = Config::new();
    config.epoch_interruption(true);
    let engine = Engine::new(&config).expect("the default engine configuration is valid");
    std::thread::Builder::new()
        .name("remotemedia-wasm-watchdog".into())
        .spawn(watch)
        .expect("a thread for the WASM watchdog");
    Watchdog {
        engine,
        calls: Mutex::new(Calls::default()),
        woken: Condvar::new(),
    }
});

static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// The engine every module is compiled for.
pub fn engine() -> &'static Engine {
    &WATCHDOG.engine
}

/// A call in progress; dropping it ends the watch.
pub struct Watched {
    key: (Instant, u64),
}

/// Watches a call that must end by `deadline`.
pub fn watch_call(deadline: Instant) -> Watched {
    let key = (
        deadline,
        NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
    );
    let dog = &*WATCHDOG;
    let asleep = {
        let mut calls = lock(&dog.calls);
        calls.running.insert(key);
        calls
            .on_watch_until
            .replace(Instant::now() + LINGER)
            .is_none()
    };
    if asleep {
        dog.woken.notify_one();
    }
    Watched { key }
}

impl Drop for Watched {
    fn drop(&mut self) {
        lock(&WATCHDOG.calls).running.remove(&self.key);
    }
}

fn watch() {
    let dog = &*WATCHDOG;
    let mut calls = lock(&dog.calls);
    loop {
        let now = Instant::now();
        match calls.on_watch_until {
            None => {
                calls = dog.woken.wait(calls).unwrap_or_else(|e| e.into_inner());
                continue;
            }
            Some(until) if until <= now && calls.running.is_empty() => {
                calls.on_watch_until = None;
                continue;
            }
            Some(_) => {}
        }
        if calls.running.first().is_some_and(|&(d, _)| d <= now) {
            // Overdue: told once; its call ends at the next check of its own deadline.
            calls.running.retain(|&(d, _)| d > now);
            drop(calls);
            dog.engine.increment_epoch();
            calls = lock(&dog.calls);
            continue;
        }
        let next = calls
            .running
            .first()
            .map_or(TICK, |&(d, _)| (d - now).min(TICK));
        calls = dog
            .woken
            .wait_timeout(calls, next)
            .unwrap_or_else(|e| e.into_inner())
            .0;
    }
}
