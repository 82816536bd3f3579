//! One server: a pipeline holding the `remotemediawebrtcserver` element, its life cycle and
//! the peers it has. What here calls into GStreamer blocks, so it runs on the server's command
//! thread (worker.rs), never on the JavaScript thread; no lock is held across such a call.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, Mutex};

use gst::prelude::*;
use remotemedia_runtime::sync::lock;

use super::bus_watch::BusWatch;
use super::config::{Settings, Signaling};
use super::dispatch::Dispatch;
use super::error::WebRtcError;
use super::events::Event;
use super::failures;
use super::peers::PeerTable;
use super::{plugin, properties};

const ELEMENT: &str = "remotemediawebrtcserver";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    Created,
    Starting,
    Running,
    Stopping,
    Stopped,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Created => "created",
            State::Starting => "starting",
            State::Running => "running",
            State::Stopping => "stopping",
            State::Stopped => "stopped",
        }
    }
}

pub struct ServerPipeline {
    pipeline: gst::Pipeline,
    pub(super) element: gst::Element,
    /// Signaling on the element's own port (not an external server's).
    embedded: bool,
    state: Mutex<State>,
    /// The embedded signaling port: the configured one, then the one bound (for port 0).
    port: Mutex<Option<u16>>,
    pub(super) peers: Mutex<PeerTable>,
}

impl ServerPipeline {
    pub fn build(settings: Settings) -> Result<ServerPipeline, WebRtcError> {
        plugin::ensure()?;
        let element = gst::ElementFactory::make(ELEMENT)
            .build()
            .map_err(|e| WebRtcError::internal(format!("cannot make {ELEMENT}: {e}")))?;
        properties::apply(&settings, &element);
        let pipeline = gst::Pipeline::new();
        // The bus thread hands on every message, those of the stop too: the pipeline must
        // not drop what is still queued when it reaches NULL.
        pipeline.set_auto_flush_bus(false);
        pipeline
            .add(&element)
            .map_err(|e| WebRtcError::internal(format!("cannot add {ELEMENT}: {e}")))?;
        let bus = pipeline
            .bus()
            .ok_or_else(|| WebRtcError::internal("the pipeline has no bus"))?;
        // Runs on whichever thread posts; a panic must not unwind into GStreamer's C.
        bus.set_sync_handler(|_, msg| {
            let _ = catch_unwind(AssertUnwindSafe(|| failures::note(msg)));
            gst::BusSyncReply::Pass
        });
        let port = match settings.signaling {
            Signaling::Embedded { port, .. } => Some(port),
            Signaling::External { .. } => None,
        };
        Ok(ServerPipeline {
            pipeline,
            element,
            embedded: port.is_some(),
            state: Mutex::new(State::Created),
            port: Mutex::new(port),
            peers: Mutex::default(),
        })
    }

    pub fn state(&self) -> State {
        *lock(&self.state)
    }

    fn set_state(&self, state: State) {
        *lock(&self.state) = state;
    }

    pub fn port(&self) -> Option<u16> {
        *lock(&self.port)
    }

    pub fn bus(&self) -> Option<gst::Bus> {
        self.pipeline.bus()
    }

    /// Keeps the peer table in step with the events the bus thread hands on.
    pub fn note(&self, event: &Event) {
        lock(&self.peers).note(event);
    }

    /// Binds the signaling port (or announces on the signaling server) and serves; events go
    /// to `dispatch` from the returned bus thread until `stop`.
    pub fn start(self: &Arc<Self>, dispatch: Dispatch) -> Result<BusWatch, WebRtcError> {
        let state = self.state();
        if !matches!(state, State::Created | State::Stopped) {
            return Err(WebRtcError::config(format!(
                "cannot start a server that is {}",
                state.as_str()
            )));
        }
        self.set_state(State::Starting);
        lock(&self.peers).clear();
        let watch = BusWatch::spawn(self.clone(), dispatch)?;
        failures::clear();
        let started = self.pipeline.set_state(gst::State::Playing);
        let failure = failures::take();
        if started.is_ok() {
            if self.embedded {
                let bound = self.element.property::<u32>("signaling-port");
                *lock(&self.port) = u16::try_from(bound).ok();
            }
            self.set_state(State::Running);
            return Ok(watch);
        }
        let _ = self.pipeline.set_state(gst::State::Null);
        watch.stop();
        self.set_state(State::Stopped);
        Err(failure.unwrap_or_else(|| WebRtcError::internal("the server did not start")))
    }

    /// Tells every peer goodbye, stops every run, frees the port, and ends the bus thread
    /// once it has handed on the last event.
    pub fn stop(&self, watch: Option<BusWatch>) {
        if !matches!(self.state(), State::Created | State::Stopped) {
            self.set_state(State::Stopping);
            let _ = self.pipeline.set_state(gst::State::Null);
        }
        if let Some(watch) = watch {
            watch.stop();
        }
        lock(&self.peers).clear();
        self.set_state(State::Stopped);
    }

    pub fn require_running(&self) -> Result<(), WebRtcError> {
        match self.state() {
            State::Running => Ok(()),
            other => Err(WebRtcError::config(format!(
                "the server is {}; call start() first",
                other.as_str()
            ))),
        }
    }
}
