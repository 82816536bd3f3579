//! The ingest's timers (stall and connect timeouts, reconnect backoff, settling a stream set)
//! run on the element's clock: the pipeline's, so a `gst_check::TestClock` drives them in
//! tests, or the system clock before the element has one. Each is a single-shot clock id;
//! nothing polls.

use std::sync::Mutex;
use std::time::Duration;

use gst::prelude::*;
use remotemedia_runtime::sync::lock;

/// The clock an element's timers use.
pub fn clock_of(element: &gst::Element) -> gst::Clock {
    element
        .clock()
        .unwrap_or_else(|| gst::SystemClock::obtain().upcast())
}

/// The pending timers of one element, unscheduled when it stops.
#[derive(Default)]
pub struct Timers(Mutex<Vec<gst::SingleShotClockId>>);

impl Timers {
    /// Calls `f` on the clock's thread once `delay` has passed on `element`'s clock.
    pub fn after(
        &self,
        element: &gst::Element,
        delay: Duration,
        f: impl FnOnce() + Send + 'static,
    ) {
        let clock = clock_of(element);
        let now = clock.time();
        let id =
            clock.new_single_shot_id(now + gst::ClockTime::from_nseconds(delay.as_nanos() as u64));
        // A panic must not unwind into the clock's C thread.
        let fired = id.wait_async(move |_, _, _| {
            let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
        });
        if fired.is_ok() {
            let mut pending = lock(&self.0);
            pending.retain(|p| p.time() > now);
            pending.push(id);
        }
    }

    pub fn cancel_all(&self) {
        let pending = std::mem::take(&mut *lock(&self.0));
        for id in pending {
            id.unschedule();
        }
    }
}
