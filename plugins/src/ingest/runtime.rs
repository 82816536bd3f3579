//! The runtime's ingestion API backed by GStreamer: a `remotemediaingest` pipeline per
//! source, its decoded tracks delivered as `RuntimeData` (audio as F32 samples that stay in
//! the GStreamer buffers).

use std::sync::Arc;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::time::Duration;

use crate::failure::code_and_message;
use gst::prelude::*;
use remotemedia_runtime::{
    ErrorCode, IngestConfig, IngestError, IngestEvent, IngestPlugin, IngestSource, RuntimeData,
    global_ingest_registry,
};

use crate::pipeline::convert::InputCaps;

/// Events waiting for the reader; a slow reader slows the source down.
const QUEUE: usize = 64;

pub struct GstIngestPlugin;

/// Registers the GStreamer-backed plugin in the global ingest registry (initializing
/// GStreamer and this plugin's elements when needed).
pub fn register_runtime_plugin() -> Result<(), IngestError> {
    gst::init().map_err(|e| IngestError::new(ErrorCode::Internal, e.to_string()))?;
    if gst::ElementFactory::find("remotemediaingest").is_none() {
        crate::plugin_register_static()
            .map_err(|e| IngestError::new(ErrorCode::Internal, e.to_string()))?;
    }
    global_ingest_registry().register(Arc::new(GstIngestPlugin));
    Ok(())
}

impl IngestPlugin for GstIngestPlugin {
    fn name(&self) -> &str {
        "gstreamer"
    }

    fn schemes(&self) -> Vec<String> {
        [
            "rtsp", "rtsps", "rtspt", "rtmp", "rtmps", "srt", "udp", "file", "stdin",
        ]
        .map(String::from)
        .to_vec()
    }

    fn create(
        &self,
        uri: &str,
        config: &IngestConfig,
    ) -> Result<Box<dyn IngestSource>, IngestError> {
        GstIngestSource::start(uri, config).map(|s| Box::new(s) as Box<dyn IngestSource>)
    }
}

struct GstIngestSource {
    pipeline: gst::Pipeline,
    events: Option<Receiver<IngestEvent>>,
}

fn make(factory: &str) -> Result<gst::Element, IngestError> {
    crate::elements::make(factory).map_err(|e| IngestError::new(ErrorCode::Config, e.to_string()))
}

impl GstIngestSource {
    fn start(uri: &str, config: &IngestConfig) -> Result<Self, IngestError> {
        let pipeline = gst::Pipeline::new();
        let ingest = make("remotemediaingest")?;
        ingest.set_property("uri", uri);
        ingest.set_property("track-selection", &config.track_selection);
        ingest.set_property("max-attempts", config.max_attempts);
        pipeline
            .add(&ingest)
            .map_err(|e| IngestError::new(ErrorCode::Internal, e.to_string()))?;
        let (tx, rx) = sync_channel(QUEUE);
        watch_bus(&pipeline, tx.clone());
        let pipeline_weak = pipeline.downgrade();
        let config = config.clone();
        ingest.connect_pad_added(move |_, pad| {
            if let Some(pipeline) = pipeline_weak.upgrade()
                && let Err(e) = deliver(&pipeline, pad, &config, tx.clone())
            {
                let _ = tx.send(IngestEvent::Failed(e));
            }
        });
        if pipeline.set_state(gst::State::Ready).is_err() {
            let _ = pipeline.set_state(gst::State::Null);
            return Err(match rx.try_recv() {
                Ok(IngestEvent::Failed(e)) => e,
                _ => IngestError::new(ErrorCode::Config, format!("cannot open '{uri}'")),
            });
        }
        let _ = pipeline.set_state(gst::State::Playing);
        Ok(Self {
            pipeline,
            events: Some(rx),
        })
    }
}

/// Errors, reconnects and the end become events (on the posting thread, without polling).
fn watch_bus(pipeline: &gst::Pipeline, tx: SyncSender<IngestEvent>) {
    let bus = pipeline.bus().expect("a pipeline has a bus");
    bus.set_sync_handler(move |_, msg| {
        let event = match msg.view() {
            gst::MessageView::Error(e) => {
                let (code, message) = code_and_message(e);
                Some(IngestEvent::Failed(IngestError::new(code, message)))
            }
            gst::MessageView::Eos(_) => Some(IngestEvent::End),
            gst::MessageView::Element(e) => {
                e.structure().filter(|s| s.name() == "reconnect").map(|s| {
                    IngestEvent::Reconnecting {
                        attempt: s.get("attempt").unwrap_or(0),
                        reason: s.get("reason").unwrap_or_default(),
                    }
                })
            }
            _ => None,
        };
        if let Some(event) = event {
            let _ = tx.send(event);
        }
        gst::BusSyncReply::Drop
    });
}

/// One track: converted to F32 audio (at the asked rate and channels) or RGB video, into an
/// appsink whose samples become events.
fn deliver(
    pipeline: &gst::Pipeline,
    pad: &gst::Pad,
    config: &IngestConfig,
    tx: SyncSender<IngestEvent>,
) -> Result<(), IngestError> {
    let name = pad.name();
    let (track, chain) = match name.split_once('_') {
        Some(("audio", n)) => {
            let mut caps = gst::Caps::builder("audio/x-raw")
                .field("format", "F32LE")
                .field("layout", "interleaved");
            if let Some(rate) = config.sample_rate {
                caps = caps.field("rate", rate as i32);
            }
            if let Some(ch) = config.channels {
                caps = caps.field("channels", ch as i32);
            }
            let filter = make("capsfilter")?;
            filter.set_property("caps", caps.build());
            (
                format!("audio:{n}"),
                vec![make("audioconvert")?, make("audioresample")?, filter],
            )
        }
        Some(("video", n)) => {
            let filter = make("capsfilter")?;
            filter.set_property(
                "caps",
                gst::Caps::builder("video/x-raw")
                    .field("format", "RGB")
                    .build(),
            );
            (format!("video:{n}"), vec![make("videoconvert")?, filter])
        }
        _ => return Ok(()),
    };
    let track: Arc<str> = track.into();
    let appsink = gst_app::AppSink::builder().sync(false).build();
    let callback_track = track.clone();
    appsink.set_callbacks(
        gst_app::AppSinkCallbacks::builder()
            .new_sample(move |sink| {
                let sample = sink.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                let caps = sample.caps().ok_or(gst::FlowError::NotNegotiated)?;
                let input = InputCaps::parse(caps).map_err(|_| gst::FlowError::NotNegotiated)?;
                let buffer = sample.buffer_owned().ok_or(gst::FlowError::Error)?;
                let mut data = input.to_data(buffer).map_err(|_| gst::FlowError::Error)?;
                match &mut data {
                    RuntimeData::Audio(a) => a.stream_id = Some(callback_track.clone()),
                    RuntimeData::Video(v) => v.stream_id = Some(callback_track.clone()),
                    _ => {}
                }
                let event = IngestEvent::Data {
                    track: callback_track.to_string(),
                    data,
                };
                // The reader went away: stop.
                tx.send(event).map_err(|_| gst::FlowError::Flushing)?;
                Ok(gst::FlowSuccess::Ok)
            })
            .build(),
    );
    let mut elements = chain;
    elements.push(appsink.upcast());
    pipeline
        .add_many(&elements)
        .map_err(|e| IngestError::new(ErrorCode::Internal, e.to_string()))?;
    gst::Element::link_many(&elements)
        .map_err(|e| IngestError::new(ErrorCode::Internal, e.to_string()))?;
    for e in &elements {
        let _ = e.sync_state_with_parent();
    }
    let sink = elements[0]
        .static_pad("sink")
        .expect("converters have a sink pad");
    pad.link(&sink)
        .map(|_| ())
        .map_err(|e| IngestError::new(ErrorCode::Internal, format!("{track}: {e:?}")))
}

impl IngestSource for GstIngestSource {
    fn recv(&mut self, timeout: Duration) -> Option<IngestEvent> {
        self.events.as_ref()?.recv_timeout(timeout).ok()
    }
}

impl Drop for GstIngestSource {
    fn drop(&mut self) {
        // The reader goes first, so no streaming thread stays blocked on a full queue.
        self.events.take();
        let _ = self.pipeline.set_state(gst::State::Null);
        if let Some(bus) = self.pipeline.bus() {
            bus.unset_sync_handler();
        }
    }
}
