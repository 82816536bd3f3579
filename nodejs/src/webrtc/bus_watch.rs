//! The bus thread of a running server: it waits on the pipeline's bus (`timed_pop`, no
//! polling), keeps the peer table in step and hands each event to JavaScript through the
//! server's threadsafe function, never blocking on it.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread::{self, JoinHandle};

use napi::threadsafe_function::ThreadsafeFunctionCallMode;

use super::dispatch::Dispatch;
use super::error::WebRtcError;
use super::events::Event;
use super::pipeline::ServerPipeline;

/// The application message that ends one bus thread (`watch` names which).
const STOP: &str = "remotemedia-node-stop";

static WATCHES: AtomicU64 = AtomicU64::new(0);

pub struct BusWatch {
    bus: gst::Bus,
    id: u64,
    thread: JoinHandle<()>,
}

impl BusWatch {
    pub fn spawn(
        pipeline: Arc<ServerPipeline>,
        dispatch: Dispatch,
    ) -> Result<BusWatch, WebRtcError> {
        let bus = pipeline
            .bus()
            .ok_or_else(|| WebRtcError::internal("the pipeline has no bus"))?;
        let id = WATCHES.fetch_add(1, Ordering::Relaxed);
        let watched = bus.clone();
        let thread = thread::Builder::new()
            .name("rm-webrtc-bus".into())
            .spawn(move || watch(&watched, id, &pipeline, &dispatch))
            .map_err(|e| WebRtcError::internal(format!("cannot start the bus thread: {e}")))?;
        Ok(BusWatch { bus, id, thread })
    }

    /// Ends the thread after it has handed on every message posted before this call; the
    /// threadsafe function goes with it.
    pub fn stop(self) {
        let stop = gst::Structure::builder(STOP)
            .field("watch", self.id)
            .build();
        let _ = self.bus.post(gst::message::Application::new(stop));
        let _ = self.thread.join();
    }
}

fn watch(bus: &gst::Bus, id: u64, pipeline: &ServerPipeline, dispatch: &Dispatch) {
    // The pipeline never sets its bus flushing (no auto-flush), so the pop only returns a
    // message; None would mean the bus is gone for good.
    while let Some(msg) = bus.timed_pop(gst::ClockTime::NONE) {
        if is_stop(&msg, id) {
            return;
        }
        if let Some(event) = Event::from_message(&msg) {
            pipeline.note(&event);
            let _ = dispatch.call(event, ThreadsafeFunctionCallMode::NonBlocking);
        }
    }
}

fn is_stop(msg: &gst::MessageRef, id: u64) -> bool {
    let gst::MessageView::Application(app) = msg.view() else {
        return false;
    };
    app.structure()
        .is_some_and(|s| s.name() == STOP && s.get::<u64>("watch").is_ok_and(|w| w == id))
}
