//! One peer's run of the manifest: a bin inside the server holding the receive chain of the
//! peer's first track, `remotemediapipeline`, and the outgoing audio and video streams its
//! media results are encoded to (for this peer alone).

use remotemedia_runtime::sync::lock;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::Duration;

use gst::prelude::*;

use crate::elements::{self, BuildError, MissingElement, make};
use remotemedia_runtime::manifest::{self, Nodes};
use remotemedia_runtime::{ErrorCode, ManifestReport, Registry};
use webrtc::peer_connection::RTCPeerConnection;
use webrtc::rtp_transceiver::rtp_receiver::RTCRtpReceiver;
use webrtc::rtp_transceiver::rtp_transceiver_direction::RTCRtpTransceiverDirection;
use webrtc::track::track_remote::TrackRemote;

use crate::webrtc::RUNTIME;
use crate::webrtc::hub::SetupError;
use crate::webrtc::receive::{DEFAULT_LATENCY_MS, PeerReceive, ReceiveError, Receiver};
use crate::webrtc::send::{EncodeSettings, Kind, SendError, Stream};

/// Why a peer's run of the manifest could not be made, started or fed.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("the server is stopping")]
    ServerGone,
    #[error("the run is stopping")]
    Stopping,
    #[error(transparent)]
    Build(#[from] BuildError),
    #[error(transparent)]
    Send(#[from] SendError),
    #[error(transparent)]
    Receive(#[from] ReceiveError),
    #[error("the manifest run did not start")]
    NotStarted(#[source] gst::glib::BoolError),
    #[error("the manifest run's start-up died")]
    StartUpDied(#[source] tokio::task::JoinError),
    #[error("the manifest cannot take this peer's media: {0}")]
    MediaRefused(#[source] gst::PadLinkError),
}

impl RunError {
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::ServerGone | Self::Stopping | Self::StartUpDied(_) => ErrorCode::Internal,
            Self::Build(e) => e.code(),
            Self::Send(e) => e.code(),
            Self::Receive(e) => e.code(),
            Self::NotStarted(_) | Self::MediaRefused(_) => ErrorCode::Pipeline,
        }
    }
}

impl From<MissingElement> for RunError {
    fn from(e: MissingElement) -> Self {
        Self::Build(e.into())
    }
}

impl From<RunError> for SetupError {
    fn from(e: RunError) -> Self {
        SetupError::new(e.code(), e)
    }
}

/// Where the manifest comes from: a file (relative paths inside it resolve next to it) or
/// inline JSON.
#[derive(Debug, Clone)]
pub enum ManifestSource {
    Path(String),
    Json(String),
}

impl ManifestSource {
    /// Loads the manifest once, so a bad one fails the server at start, not at the first peer.
    /// False for a manifest without nodes: signaling and data channels only, no run per peer.
    pub fn has_nodes(&self) -> Result<bool, ManifestReport> {
        let registry = Registry::builtin();
        let manifest = match self {
            ManifestSource::Path(p) => {
                manifest::load_file(std::path::Path::new(p), registry, Nodes::MayBeEmpty)
            }
            ManifestSource::Json(j) => {
                manifest::parse_in(j, "manifest-json", None, registry, Nodes::MayBeEmpty)
            }
        }?;
        Ok(!manifest.nodes.is_empty())
    }
}

/// Reads a peer's track and drops what comes: unread tracks would fill webrtc-rs's buffers.
pub fn drop_media(track: Arc<TrackRemote>) {
    RUNTIME.spawn(async move { while track.read_rtp().await.is_ok() {} });
}

/// Runs being torn down off their callers' threads. The server waits for them when it stops,
/// so no run outlives the element (its threads would go on into whatever the process does
/// next, and its bin would be taken out of a parent being disposed).
#[derive(Clone, Default)]
pub struct Teardowns(Arc<(Mutex<usize>, Condvar)>);

/// One teardown in progress; dropping it marks it done.
pub struct Teardown(Teardowns);

impl Teardowns {
    fn begin(&self) -> Teardown {
        *lock(&self.0.0) += 1;
        Teardown(self.clone())
    }

    /// Waits until every teardown finished, or `timeout` passed; false on timeout.
    pub fn wait(&self, timeout: Duration) -> bool {
        let (count, done) = &*self.0;
        let (guard, _) = done
            .wait_timeout_while(lock(count), timeout, |n| *n > 0)
            .unwrap_or_else(PoisonError::into_inner);
        *guard == 0
    }
}

impl Drop for Teardown {
    fn drop(&mut self) {
        let (count, done) = &*self.0.0;
        *lock(count) -= 1;
        done.notify_all();
    }
}

pub struct PeerRun {
    pub peer_id: String,
    pub bin: gst::Bin,
    pipeline: gst::Element,
    audio: Arc<Stream>,
    video: Option<Arc<Stream>>,
    receive: PeerReceive,
    /// Set by the first track, which feeds the manifest.
    claimed: AtomicBool,
    input: Mutex<Option<Receiver>>,
    stopped: AtomicBool,
}

impl PeerRun {
    /// Builds the run's elements; `start` adds them to the server.
    pub fn new(
        peer_id: &str,
        name: String,
        manifest: &ManifestSource,
        encode: EncodeSettings,
        with_video: bool,
    ) -> Result<Arc<Self>, RunError> {
        let bin = gst::Bin::builder().name(name).build();
        // The streams' appsinks appear once caps are known; their preroll stays in this bin.
        bin.set_property("async-handling", true);
        let pipeline = make("remotemediapipeline")?;
        match manifest {
            ManifestSource::Path(p) => pipeline.set_property("manifest", p),
            ManifestSource::Json(j) => pipeline.set_property("manifest-json", j),
        }
        elements::add(&bin, &[&pipeline])?;
        let (audio, audio_pad) = Stream::new(&bin, Kind::Audio, "audio", encode)?;
        let (video, video_pad) = match with_video {
            true => {
                Stream::new(&bin, Kind::Video, "video", encode).map(|(s, p)| (Some(s), Some(p)))?
            }
            false => (None, None),
        };
        route_results(&bin, &pipeline, audio_pad, video_pad)?;
        let receive = PeerReceive::new(&bin, DEFAULT_LATENCY_MS)?;
        audio.start();
        if let Some(v) = &video {
            v.start();
        }
        Ok(Arc::new(Self {
            peer_id: peer_id.to_owned(),
            bin,
            pipeline,
            audio,
            video,
            receive,
            claimed: AtomicBool::new(false),
            input: Mutex::new(None),
            stopped: AtomicBool::new(false),
        }))
    }

    /// Starts the run inside `server` (errors of the manifest go to the server's bus handler).
    /// This blocks (the manifest loads, Python workers start and report ready): call it off
    /// the async runtime.
    pub fn launch(&self, server: &gst::Bin) -> Result<(), RunError> {
        elements::add(server, &[&self.bin])?;
        self.bin
            .sync_state_with_parent()
            .map_err(RunError::NotStarted)
    }

    /// Adds the run's tracks to `pc` and takes the peer's tracks from it.
    pub async fn attach(self: &Arc<Self>, pc: &Arc<RTCPeerConnection>) -> Result<(), SendError> {
        // The peer's audio comes in on the transceiver our audio goes out on.
        self.audio
            .add_to(pc, Some(RTCRtpTransceiverDirection::Sendrecv))
            .await?;
        if let Some(video) = &self.video {
            video.add_to(pc, None).await?;
        }
        let weak = Arc::downgrade(self);
        pc.on_track(Box::new(move |track, receiver, _| {
            if let Some(run) = weak.upgrade() {
                run.on_track(track, receiver);
            }
            Box::pin(async {})
        }));
        Ok(())
    }

    /// The first track the peer sends feeds the manifest; further tracks are read and
    /// dropped (unread tracks would fill webrtc-rs's buffers).
    ///
    /// No lock is held while the chain is built or the error posted: the server handles a
    /// run's error on the posting thread, and stopping the run from there must not wait for
    /// this thread.
    fn on_track(&self, track: Arc<TrackRemote>, rtp_receiver: Arc<RTCRtpReceiver>) {
        if self.stopped.load(Ordering::SeqCst) || self.claimed.swap(true, Ordering::SeqCst) {
            drop_media(track);
            return;
        }
        let feed = || -> Result<Receiver, RunError> {
            let receiver = self.receive.add_track(&self.bin, &track, true)?;
            let sink = elements::static_pad(&self.pipeline, "sink")?;
            receiver.src.link(&sink).map_err(RunError::MediaRefused)?;
            receiver.start(track.clone(), rtp_receiver.clone())?;
            Ok(receiver)
        };
        match feed() {
            Ok(r) => *lock(&self.input) = Some(r),
            Err(e) => gst::element_error!(self.bin, gst::StreamError::Format, ["{}", e]),
        }
    }

    /// A new peer or a PLI gets a key frame.
    pub fn request_key_unit(&self) {
        if let Some(video) = &self.video {
            video.request_key_unit();
        }
    }

    /// Stops the run and takes it out of `server`, off the calling thread: this is also called
    /// from the run's own streaming threads (a failing node), which a state change would block.
    pub fn stop(self: Arc<Self>, server: &gst::Bin, teardowns: &Teardowns) {
        let teardown = teardowns.begin();
        self.stopped.store(true, Ordering::SeqCst);
        // Elements a track started while this was on its way are stopped by the second
        // NULL, so nothing of the run keeps running once it is out of the server.
        let server = server.downgrade();
        self.bin.call_async(move |bin| {
            shut_down(bin);
            if let Some(server) = server.upgrade() {
                let _ = server.remove(bin);
            }
            shut_down(bin);
            drop(teardown);
        });
    }
}

/// Brings a run's bin to NULL for good. Its state is locked first: until the bin is out of
/// the server, a state change of the server (the pipeline stopping) would otherwise bring it
/// back up, and it would be dropped in PAUSED with its threads running. Any element that
/// still did not get to NULL is set there on its own.
pub fn shut_down(bin: &gst::Bin) {
    bin.set_locked_state(true);
    let _ = bin.set_state(gst::State::Null);
    if bin.current_state() == gst::State::Null {
        return;
    }
    for element in bin.iterate_recurse().into_iter().flatten() {
        let _ = element.set_locked_state(false);
        let _ = element.set_state(gst::State::Null);
    }
    let _ = bin.set_state(gst::State::Null);
}

/// Links the manifest's src pad, once its caps are known: audio and video to the peer's
/// streams (video when the peer negotiated it), anything else (text/JSON, already on the bus)
/// to a fakesink.
fn route_results(
    bin: &gst::Bin,
    pipeline: &gst::Element,
    audio: gst::Pad,
    video: Option<gst::Pad>,
) -> Result<(), BuildError> {
    let src = elements::static_pad(pipeline, "src")?;
    let weak = bin.downgrade();
    src.add_probe(gst::PadProbeType::EVENT_DOWNSTREAM, move |pad, info| {
        let Some(gst::EventView::Caps(c)) = info.event().map(|e| e.view()) else {
            return gst::PadProbeReturn::Ok;
        };
        if pad.is_linked() {
            return gst::PadProbeReturn::Ok;
        }
        let name = c.caps().structure(0).map(|s| s.name().to_string());
        let target = match name.as_deref() {
            Some(n) if n.starts_with("audio/") => Ok(audio.clone()),
            Some(n) if n.starts_with("video/") && video.is_some() => {
                Ok(video.clone().expect("checked"))
            }
            _ => discard(&weak),
        };
        match target.and_then(|t| elements::link_pads(pad, &t).map_err(RunError::from)) {
            Ok(_) => gst::PadProbeReturn::Ok,
            Err(e) => {
                if let Some(bin) = weak.upgrade() {
                    gst::element_error!(bin, gst::StreamError::Format, ["results: {}", e]);
                }
                gst::PadProbeReturn::Handled
            }
        }
    });
    Ok(())
}

/// A fakesink in the run's bin, for results no stream carries.
fn discard(bin: &gst::glib::WeakRef<gst::Bin>) -> Result<gst::Pad, RunError> {
    let bin = bin.upgrade().ok_or(RunError::Stopping)?;
    let sink = make("fakesink")?;
    sink.set_property("sync", false);
    sink.set_property("async", false);
    elements::add(&bin, &[&sink])?;
    elements::start(&sink)?;
    Ok(elements::static_pad(&sink, "sink")?)
}
