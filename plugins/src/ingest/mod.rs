//! `remotemediaingest`: decoded audio and video from RTSP, RTMP, SRT, UDP, files or stdin on
//! `audio_%u`/`video_%u` pads (stream-ids `audio:0`, `video:0`...), chosen by
//! `track-selection`. Live sources are reconnected with backoff when they drop, stall or end,
//! and downstream keeps running: no EOS, timestamps go on.

use gst::glib;
use gst::prelude::*;

mod imp;
pub(crate) mod relay;
pub mod runtime;
mod selection;
mod stitch;
mod timers;
mod uri;

glib::wrapper! {
    pub struct RemoteMediaIngest(ObjectSubclass<imp::Ingest>)
        @extends gst::Bin, gst::Element, gst::Object,
        @implements gst::ChildProxy;
}

pub fn register(plugin: &gst::Plugin) -> Result<(), glib::BoolError> {
    gst::Element::register(
        Some(plugin),
        "remotemediaingest",
        gst::Rank::NONE,
        RemoteMediaIngest::static_type(),
    )
}
