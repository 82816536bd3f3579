//! `remotemediawebrtcsrc`: receives the audio and video that peers send, decoded (or encoded
//! with `decode=false`) on sometimes pads `audio_%u`/`video_%u`, stream-id
//! `peer:<id>:audio:0`; data-channel messages arrive as bus messages.

use gst::glib;
use gst::prelude::*;

mod imp;

glib::wrapper! {
    pub struct RemoteMediaWebRtcSrc(ObjectSubclass<imp::WebRtcSrc>)
        @extends gst::Bin, gst::Element, gst::Object,
        @implements gst::ChildProxy;
}

pub fn register(plugin: &gst::Plugin) -> Result<(), glib::BoolError> {
    gst::Element::register(
        Some(plugin),
        "remotemediawebrtcsrc",
        gst::Rank::NONE,
        RemoteMediaWebRtcSrc::static_type(),
    )
}
