//! `remotemediawebrtcsink`: a WebRTC mesh sink. Raw audio and video are encoded once and the
//! same RTP goes to every peer; peers find it through embedded JSON-RPC signaling (which also
//! serves the web page) or an external signaling server.

use gst::glib;
use gst::prelude::*;

mod imp;
mod results;

use crate::webrtc::send::VideoCodec;

glib::wrapper! {
    pub struct RemoteMediaWebRtcSink(ObjectSubclass<imp::WebRtcSink>)
        @extends gst::Bin, gst::Element, gst::Object,
        @implements gst::ChildProxy;
}

pub fn register(plugin: &gst::Plugin) -> Result<(), glib::BoolError> {
    VideoCodec::static_type().mark_as_plugin_api(gst::PluginAPIFlags::empty());
    gst::Element::register(
        Some(plugin),
        "remotemediawebrtcsink",
        gst::Rank::NONE,
        RemoteMediaWebRtcSink::static_type(),
    )
}
