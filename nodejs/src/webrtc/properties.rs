//! A checked config onto the element's properties (README, "Properties").

use gst::prelude::*;

use super::config::{Manifest, Settings, Signaling};

pub fn apply(settings: &Settings, element: &gst::Element) {
    match &settings.manifest {
        Manifest::Json(json) => element.set_property("manifest-json", json),
        Manifest::Path(path) => element.set_property("manifest", path),
    }
    match &settings.signaling {
        Signaling::Embedded { host, port } => {
            element.set_property("signaling-host", host);
            element.set_property("signaling-port", u32::from(*port));
        }
        Signaling::External { url } => element.set_property("signaling-url", url),
    }
    // One of the enum's nicks (config.rs checks it).
    element.set_property_from_str("video-codec", settings.video_codec);
    element.set_property("max-peers", settings.max_peers);
    element.set_property("peer-id", &settings.peer_id);
    element.set_property("stun-servers", &settings.stun_servers);
    element.set_property("turn-servers", &settings.turn_servers);
    element.set_property("ice-loopback-only", settings.ice_loopback_only);
    element.set_property("connect-to", &settings.connect_to);
    element.set_property("auth-token", &settings.auth_token);
}
