//! GStreamer, with the RemoteMedia elements registered from the plugin crate linked into this
//! module (`plugin_register_static`, made by `gst::plugin_define!`): no GST_PLUGIN_PATH is
//! needed, and an installed `libgstremotemedia.so` is not what runs.

use std::sync::OnceLock;

use super::error::WebRtcError;

static READY: OnceLock<Result<(), WebRtcError>> = OnceLock::new();

/// Initializes GStreamer and registers the elements, once per process. The first call may
/// scan the plugin registry: it runs on a server's command thread, never on JavaScript's.
pub fn ensure() -> Result<(), WebRtcError> {
    READY
        .get_or_init(|| {
            gst::init()
                .map_err(|e| WebRtcError::config(format!("GStreamer does not initialize: {e}")))?;
            gstremotemedia::plugin_register_static().map_err(|e| {
                WebRtcError::internal(format!("the RemoteMedia elements do not register: {e}"))
            })
        })
        .clone()
}
