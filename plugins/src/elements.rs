//! Making and taking down the elements our bins hold.

use gst::prelude::*;

/// An element of `factory`, or an error naming the missing factory.
pub fn make(factory: &str) -> Result<gst::Element, String> {
    gst::ElementFactory::make(factory)
        .build()
        .map_err(|_| format!("GStreamer element '{factory}' is missing (see README setup)"))
}

/// Stops `elements` and takes them out of `bin` (when it still exists). Their states are
/// locked first: a state change of `bin` meanwhile must not bring them back up before they
/// are out.
pub fn tear_down(bin: Option<&gst::Bin>, elements: &[gst::Element]) {
    for e in elements {
        e.set_locked_state(true);
        let _ = e.set_state(gst::State::Null);
    }
    if let Some(bin) = bin {
        let _ = bin.remove_many(elements);
    }
}
