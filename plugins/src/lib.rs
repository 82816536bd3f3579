//! `libgstremotemedia.so`: GStreamer elements that run RemoteMedia pipelines.

use gst::glib;

mod elements;
mod failure;
mod ingest;
mod live;
mod pipeline;
mod webrtc;
mod webrtcserver;
mod webrtcsink;
mod webrtcsrc;

pub use ingest::runtime::{GstIngestPlugin, register_runtime_plugin};

fn plugin_init(plugin: &gst::Plugin) -> Result<(), glib::BoolError> {
    // Manifests run by these elements may hold a RemotePipelineNode.
    // Their calls run on the plugin's one runtime, made on first use.
    remotemedia_signaling::grpc::remote::install(|| Some(webrtc::RUNTIME.handle().clone()));
    ingest::relay::set_plugin_file(plugin.filename());
    pipeline::register(plugin)?;
    webrtcsink::register(plugin)?;
    webrtcsrc::register(plugin)?;
    webrtcserver::register(plugin)?;
    ingest::register(plugin)
}

gst::plugin_define!(
    remotemedia,
    env!("CARGO_PKG_DESCRIPTION"),
    plugin_init,
    concat!(env!("CARGO_PKG_VERSION"), "-", env!("COMMIT_ID")),
    "MIT/X11",
    env!("CARGO_PKG_NAME"),
    env!("CARGO_PKG_NAME"),
    env!("CARGO_PKG_REPOSITORY"),
    env!("BUILD_REL_DATE")
);
