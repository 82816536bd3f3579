//! `remotemediawebrtcserver`: the RemoteMedia WebRTC server as one bin. Every peer that
//! connects gets its own run of the manifest: its first track goes through it, media results
//! come back on the peer's own tracks and text/JSON results on its data channel. A manifest
//! without nodes (`"nodes": []`) makes it a signaling and data-channel server: no run per peer.

use gst::glib;
use gst::prelude::*;

mod imp;
mod run;

glib::wrapper! {
    pub struct RemoteMediaWebRtcServer(ObjectSubclass<imp::WebRtcServer>)
        @extends gst::Bin, gst::Element, gst::Object,
        @implements gst::ChildProxy;
}

pub fn register(plugin: &gst::Plugin) -> Result<(), glib::BoolError> {
    gst::Element::register(
        Some(plugin),
        "remotemediawebrtcserver",
        gst::Rank::NONE,
        RemoteMediaWebRtcServer::static_type(),
    )
}
