//! The element: the manifest and encoder settings, one [`PeerRun`] per connected peer, and
//! the bus messages of the runs turned into per-peer results, errors and data-channel
//! messages.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, Mutex};
use std::time::Duration;

use gst::glib;
use gst::prelude::*;
use gst::subclass::prelude::*;
use remotemedia_runtime::sync::lock;
use serde_json::json;
use webrtc::peer_connection::RTCPeerConnection;

use super::run::{ManifestSource, PeerRun, RunError, Teardowns, drop_media, shut_down};
use crate::failure::Failure;
use crate::webrtc::channel::Payload;
use crate::webrtc::door::Door;
use crate::webrtc::hub::{BoxFuture, PeerHub, Role, SetupError};
use crate::webrtc::messages;
use crate::webrtc::send::EncodeSettings;
use crate::webrtc::settings::{CommonSettings, HubOwner, action_signals};
use remotemedia_runtime::ErrorCode;

static CAT: LazyLock<gst::DebugCategory> = LazyLock::new(|| {
    gst::DebugCategory::new(
        "remotemediawebrtcserver",
        gst::DebugColorFlags::empty(),
        Some("RemoteMedia WebRTC server"),
    )
});

#[derive(Debug, Clone, Default)]
struct Settings {
    common: CommonSettings,
    manifest: Option<String>,
    manifest_json: Option<String>,
    encode: EncodeSettings,
}

type Runs = Arc<Mutex<HashMap<String, Arc<PeerRun>>>>;

#[derive(Default)]
pub struct WebRtcServer {
    settings: Mutex<Settings>,
    hub: Mutex<Option<Arc<PeerHub>>>,
    runs: Runs,
    teardowns: Teardowns,
}

/// What every peer gets.
enum PerPeer {
    /// Its own run of the manifest.
    Run {
        manifest: ManifestSource,
        encode: EncodeSettings,
    },
    /// Signaling and data channels only (the manifest has no nodes); its media is dropped.
    SignalingOnly,
}

/// Gives every new peer what `per_peer` says.
struct ServerRole {
    bin: glib::WeakRef<gst::Bin>,
    runs: Runs,
    teardowns: Teardowns,
    per_peer: PerPeer,
    serial: AtomicU64,
}

impl Role for ServerRole {
    fn setup<'a>(
        &'a self,
        peer_id: &'a str,
        pc: &'a Arc<RTCPeerConnection>,
        offer: Option<&'a str>,
    ) -> BoxFuture<'a, Result<(), SetupError>> {
        let PerPeer::Run { manifest, encode } = &self.per_peer else {
            pc.on_track(Box::new(|track, _, _| {
                drop_media(track);
                Box::pin(async {})
            }));
            return Box::pin(async { Ok(()) });
        };
        Box::pin(async move {
            let bin = self.bin.upgrade().ok_or(RunError::ServerGone)?;
            let name = format!("peer{}", self.serial.fetch_add(1, Ordering::Relaxed));
            // A video track back only for peers that negotiate video (and in our own offers).
            let video = offer.is_none_or(|o| o.contains("\nm=video"));
            let run = PeerRun::new(peer_id, name, manifest, *encode, video)?;
            gst::info!(
                CAT,
                obj = bin,
                "peer {peer_id}: manifest run {}",
                run.bin.name()
            );
            // Registered first, so errors while it starts are known to be this peer's.
            let old = lock(&self.runs).insert(peer_id.to_owned(), run.clone());
            if let Some(old) = old {
                old.stop(&bin, &self.teardowns);
            }
            // Starting the run blocks (manifest, Python workers): off the runtime's workers,
            // which carry every peer's signaling and RTP.
            let launching = run.clone();
            tokio::task::spawn_blocking(move || launching.launch(&bin))
                .await
                .map_err(RunError::StartUpDied)??;
            Ok(run.attach(pc).await?)
        })
    }

    fn connected(&self, peer_id: &str) {
        let run = lock(&self.runs).get(peer_id).cloned();
        if let Some(run) = run {
            run.request_key_unit();
        }
    }

    fn closed(&self, peer_id: &str) {
        let run = lock(&self.runs).remove(peer_id);
        if let (Some(run), Some(bin)) = (run, self.bin.upgrade()) {
            run.stop(&bin, &self.teardowns);
        }
    }
}

impl HubOwner for WebRtcServer {
    fn hub(&self) -> Option<Arc<PeerHub>> {
        lock(&self.hub).clone()
    }
}

impl WebRtcServer {
    fn start(&self) -> Result<(), Failure> {
        let settings = lock(&self.settings).clone();
        let manifest = match (settings.manifest_json, settings.manifest) {
            (Some(j), _) => ManifestSource::Json(j),
            (None, Some(p)) => ManifestSource::Path(p),
            (None, None) => {
                return Err(Failure::config(
                    "set \"manifest\" (a path) or \"manifest-json\"",
                ));
            }
        };
        let has_nodes = manifest
            .has_nodes()
            .map_err(|report| Failure::config(report.to_string()))?;
        let per_peer = if has_nodes {
            PerPeer::Run {
                manifest,
                encode: settings.encode,
            }
        } else {
            gst::info!(
                CAT,
                imp = self,
                "the manifest has no nodes: signaling and data channels only"
            );
            PerPeer::SignalingOnly
        };
        let config = settings.common.hub_config(
            "remotemediawebrtcserver",
            json!({"role": "server", "audio": has_nodes, "video": has_nodes, "data": true}),
            Door::Whip,
        );
        let role = Arc::new(ServerRole {
            bin: self.obj().upcast_ref::<gst::Bin>().downgrade(),
            runs: self.runs.clone(),
            teardowns: self.teardowns.clone(),
            per_peer,
            serial: AtomicU64::new(0),
        });
        let element: gst::Element = self.obj().clone().upcast();
        let hub = PeerHub::start_blocking(&element, config, role)?;
        if let Some(port) = hub.port() {
            lock(&self.settings).common.signaling_port = port as u32;
            gst::info!(CAT, imp = self, "signaling and web page on port {port}");
        }
        *lock(&self.hub) = Some(hub);
        Ok(())
    }

    fn stop(&self) {
        let hub = lock(&self.hub).take();
        if let Some(hub) = hub {
            hub.stop();
        }
        let runs: Vec<Arc<PeerRun>> = lock(&self.runs).drain().map(|(_, r)| r).collect();
        for run in runs {
            shut_down(&run.bin);
            let _ = self.obj().remove(&run.bin);
        }
        if !self.teardowns.wait(Duration::from_secs(10)) {
            gst::warning!(
                CAT,
                imp = self,
                "a peer's run was still stopping after 10 s"
            );
        }
    }

    /// The child of this bin (a peer's run) a message comes from, and that run if it is
    /// still registered (a run that failed keeps posting while it is torn down).
    fn run_of(&self, msg: &gst::MessageRef) -> Option<(gst::Object, Option<Arc<PeerRun>>)> {
        let me = self.obj();
        let mut obj = msg.src()?.clone();
        while let Some(parent) = obj.parent() {
            if &parent == me.upcast_ref::<gst::Object>() {
                let run = lock(&self.runs)
                    .values()
                    .find(|r| r.bin.upcast_ref::<gst::Object>() == &obj)
                    .cloned();
                return Some((obj, run));
            }
            obj = parent;
        }
        None
    }

    /// A result of a peer's run: to that peer's data channel, and on the bus with its id.
    fn result(&self, run: &PeerRun, s: &gst::StructureRef) {
        let message = messages::result_json(s);
        if let Some(hub) = self.hub() {
            hub.try_send_to_peer(&run.peer_id, Payload::Text(message));
        }
        let mut out = s.to_owned();
        out.set("peer-id", &run.peer_id);
        let obj = self.obj();
        let _ = obj.post_message(gst::message::Element::builder(out).src(&*obj).build());
    }

    /// A failing run ends that peer's call alone; the server and the other peers go on.
    fn run_failed(&self, run: &PeerRun, err: &gst::message::Error) {
        let node = err
            .details()
            .and_then(|d| d.get::<String>("node-id").ok())
            .unwrap_or_default();
        let text = match err.debug() {
            Some(debug) => format!("{} ({debug})", err.error()),
            None => err.error().to_string(),
        };
        gst::warning!(CAT, imp = self, "peer {}: {text}", run.peer_id);
        let element = self.obj();
        messages::error(
            element.upcast_ref(),
            ErrorCode::Pipeline,
            Some(&run.peer_id),
            &text,
        );
        if let Some(hub) = self.hub() {
            let notice = json!({"type": "error", "code": "PIPELINE_ERROR", "node_id": node, "message": text});
            hub.try_send_to_peer(&run.peer_id, Payload::Text(notice.to_string()));
            hub.close_peer(&run.peer_id, &format!("PIPELINE_ERROR: {text}"), true);
        }
    }
}

#[glib::object_subclass]
impl ObjectSubclass for WebRtcServer {
    const NAME: &'static str = "GstRemoteMediaWebRtcServer";
    type Type = super::RemoteMediaWebRtcServer;
    type ParentType = gst::Bin;
}

impl ObjectImpl for WebRtcServer {
    fn properties() -> &'static [glib::ParamSpec] {
        static PROPERTIES: LazyLock<Vec<glib::ParamSpec>> = LazyLock::new(|| {
            let mut props = CommonSettings::properties();
            props.extend([
                glib::ParamSpecString::builder("manifest")
                    .nick("Manifest")
                    .blurb("Path of the RemoteMedia manifest every peer gets its own run of (no nodes: signaling and data channels only); checked at NULL->READY")
                    .mutable_ready()
                    .build(),
                glib::ParamSpecString::builder("manifest-json")
                    .nick("Manifest JSON")
                    .blurb("The manifest itself, inline; takes precedence over \"manifest\"")
                    .mutable_ready()
                    .build(),
            ]);
            props.extend(EncodeSettings::properties());
            props
        });
        PROPERTIES.as_ref()
    }

    fn signals() -> &'static [glib::subclass::Signal] {
        static SIGNALS: LazyLock<Vec<glib::subclass::Signal>> =
            LazyLock::new(action_signals::<WebRtcServer>);
        SIGNALS.as_ref()
    }

    fn set_property(&self, _id: usize, value: &glib::Value, pspec: &glib::ParamSpec) {
        let mut s = lock(&self.settings);
        let hub = self.hub();
        if s.common.set_live(pspec.name(), value, hub.as_ref()) || s.encode.set(pspec.name(), value)
        {
            return;
        }
        let string = || {
            value
                .get::<Option<String>>()
                .ok()
                .flatten()
                .filter(|v| !v.is_empty())
        };
        match pspec.name() {
            "manifest" => s.manifest = string(),
            "manifest-json" => s.manifest_json = string(),
            _ => unreachable!(),
        }
    }

    fn property(&self, _id: usize, pspec: &glib::ParamSpec) -> glib::Value {
        let s = lock(&self.settings);
        if let Some(v) = s
            .common
            .get(pspec.name())
            .or_else(|| s.encode.get(pspec.name()))
        {
            return v;
        }
        match pspec.name() {
            "manifest" => s.manifest.to_value(),
            _ => s.manifest_json.to_value(),
        }
    }
}

impl GstObjectImpl for WebRtcServer {}

impl ElementImpl for WebRtcServer {
    fn metadata() -> Option<&'static gst::subclass::ElementMetadata> {
        static META: LazyLock<gst::subclass::ElementMetadata> = LazyLock::new(|| {
            gst::subclass::ElementMetadata::new(
                "RemoteMedia WebRTC server",
                "Filter/Network/WebRTC",
                "Runs a RemoteMedia manifest for every WebRTC peer: its media in, results back on its tracks and data channel; a manifest without nodes serves signaling and data channels only",
                "RemoteMedia for GStreamer developers",
            )
        });
        Some(&*META)
    }

    fn change_state(
        &self,
        transition: gst::StateChange,
    ) -> Result<gst::StateChangeSuccess, gst::StateChangeError> {
        gst::debug!(CAT, imp = self, "{transition:?}");
        if transition == gst::StateChange::NullToReady
            && let Err(failure) = self.start()
        {
            failure.post(&*self.obj());
            return Err(gst::StateChangeError);
        }
        let result = self.parent_change_state(transition)?;
        if transition == gst::StateChange::ReadyToNull {
            self.stop();
        }
        // Live: peers bring media whenever they come.
        Ok(crate::live::no_preroll(transition, result))
    }
}

impl BinImpl for WebRtcServer {
    fn handle_message(&self, msg: gst::Message) {
        let Some((child, run)) = self.run_of(&msg) else {
            return self.parent_handle_message(msg);
        };
        let result = |m: &gst::message::Element| {
            m.structure()
                .filter(|s| s.name() == "remotemedia")
                .map(|s| s.to_owned())
        };
        match (msg.view(), run) {
            (gst::MessageView::Element(e), Some(run)) if result(e).is_some() => {
                self.result(&run, e.structure().expect("checked"));
            }
            (gst::MessageView::Error(err), Some(run)) => self.run_failed(&run, err),
            // A run on its way out: its peer was told already, nothing goes further.
            (gst::MessageView::Element(e), None) if result(e).is_some() => {}
            (gst::MessageView::Error(err), None) => {
                gst::debug!(
                    CAT,
                    imp = self,
                    "{}: after its end: {}",
                    child.name(),
                    err.error()
                );
            }
            _ => self.parent_handle_message(msg),
        }
    }
}
