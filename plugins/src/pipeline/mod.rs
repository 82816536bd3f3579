//! `remotemediapipeline`: runs a RemoteMedia manifest on the buffers that flow through it.

use gst::glib;
use gst::prelude::*;

pub(crate) mod convert;
mod held;
mod imp;
mod queue;
pub(crate) mod result_meta;

glib::wrapper! {
    pub struct RemoteMediaPipeline(ObjectSubclass<imp::RemoteMediaPipeline>)
        @extends gst::Element, gst::Object;
}

pub fn register(plugin: &gst::Plugin) -> Result<(), glib::BoolError> {
    result_meta::register();
    gst::Element::register(
        Some(plugin),
        "remotemediapipeline",
        gst::Rank::NONE,
        RemoteMediaPipeline::static_type(),
    )
}
