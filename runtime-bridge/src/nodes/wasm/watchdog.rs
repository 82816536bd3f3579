//! Time limits for module calls. All modules run on one engine; a call notes its limit in its
//! store. While calls run, one thread bumps the engine's epoch every tick: each running call
//! then checks its own deadline (`deadline_passed`) and only an overdue one stops. A tick is
//! `TICK`, or the shortest `timeout_ms` of any node when that is shorter. A call's clock starts
//! at its first tick (`HostState::deadline`), so it is stopped at most two ticks after its
//! deadline, never before.
//!
//! Calls come every few milliseconds on a live stream and last microseconds, so a call's whole
//! cost here is two atomic counts, a flag set (skipped when already set) and a load, and no
//! clock: the thread stays on watch while calls keep coming and goes to sleep when none ran for
//! `LINGER`; only the first call after that takes the lock to wake it.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, LazyLock, Mutex};
use std::time::{Duration, Instant};

use wasmtime::{Config, Engine, MemoryCreator};

use super::memory::MEMORIES;
use crate::sync::lock;

const TICK: Duration = Duration::from_millis(5);
const LINGER: Duration = Duration::from_secs(1);

struct Watchdog {
    engine: Engine,
    /// Calls running now.
    running: AtomicUsize,
    /// Set by every call, cleared by the thread at each tick: calls came since the last one.
    called: AtomicBool,
    /// The tick in nanoseconds: `TICK` or the shortest timeout of a node.
    tick_ns: AtomicU64,
    /// Set by the thread, under `sleeping`, before it waits; cleared by the call that wakes it.
    asleep: AtomicBool,
    sleeping: Mutex<()>,
    woken: Condvar,
}

static WATCHDOG: LazyLock<Watchdog> = LazyLock::new(|| {
    let mut config = Config::new();
    config.epoch_interruption(true);
    // Memories the host maps itself, so output audio can be lent (memory.rs); they are filled
    // by copying data segments, not by mapping the module's image over them.
    config.with_host_memory(Arc::clone(&*MEMORIES) as Arc<dyn MemoryCreator>);
    config.memory_init_cow(false);
    let engine = Engine::new(&config).expect("the default engine configuration is valid");
    std::thread::Builder::new()
        .name("remotemedia-wasm-watchdog".into())
        .spawn(watch)
        .expect("a thread for the WASM watchdog");
    Watchdog {
        engine,
        running: AtomicUsize::new(0),
        called: AtomicBool::new(false),
        tick_ns: AtomicU64::new(TICK.as_nanos() as u64),
        asleep: AtomicBool::new(false),
        sleeping: Mutex::new(()),
        woken: Condvar::new(),
    }
});

/// The engine every module is compiled for.
pub fn engine() -> &'static Engine {
    &WATCHDOG.engine
}

/// Makes the tick short enough for a node whose calls may take `timeout`.
pub fn expect_timeout(timeout: Duration) {
    let ns = timeout.as_nanos().clamp(1, TICK.as_nanos()) as u64;
    WATCHDOG.tick_ns.fetch_min(ns, Ordering::Relaxed);
}

/// A call in progress; dropping it ends the watch.
pub struct Watched(());

/// Watches a call that starts now (its limit is in its store).
pub fn watch_call() -> Watched {
    let dog = &*WATCHDOG;
    // SeqCst with the thread's `asleep` store then `running` load: either it sees this call, or
    // this call sees it asleep and wakes it.
    dog.running.fetch_add(1, Ordering::SeqCst);
    // A load first: no write to a line the thread reads while it is already set.
    if !dog.called.load(Ordering::Relaxed) {
        dog.called.store(true, Ordering::Relaxed);
    }
    // A load first: the locked swap only when the thread sleeps.
    if dog.asleep.load(Ordering::SeqCst) && dog.asleep.swap(false, Ordering::SeqCst) {
        // The thread holds `sleeping` from its `asleep` store until it waits: taking it here
        // means it waits now and gets the notification.
        drop(lock(&dog.sleeping));
        dog.woken.notify_one();
    }
    Watched(())
}

impl Drop for Watched {
    fn drop(&mut self) {
        WATCHDOG.running.fetch_sub(1, Ordering::SeqCst);
    }
}

fn watch() {
    let dog = &*WATCHDOG;
    // The first of the ticks in a row that saw no call: the thread sleeps `LINGER` after it.
    let mut idle_since: Option<Instant> = None;
    loop {
        let tick = Duration::from_nanos(dog.tick_ns.load(Ordering::Relaxed));
        std::thread::sleep(tick);
        let called = dog.called.swap(false, Ordering::Relaxed);
        let running = dog.running.load(Ordering::SeqCst) > 0;
        if running {
            dog.engine.increment_epoch();
        }
        if running || called {
            idle_since = None;
            continue;
        }
        if idle_since.get_or_insert_with(Instant::now).elapsed() < LINGER {
            continue;
        }
        idle_since = None;
        let mut guard = lock(&dog.sleeping);
        dog.asleep.store(true, Ordering::SeqCst);
        if dog.running.load(Ordering::SeqCst) > 0 {
            // A call started after the checks above; if it saw `asleep` it waits for `sleeping`.
            dog.asleep.store(false, Ordering::SeqCst);
            continue;
        }
        while dog.asleep.load(Ordering::SeqCst) {
            guard = dog.woken.wait(guard).unwrap_or_else(|e| e.into_inner());
        }
        drop(guard);
    }
}
