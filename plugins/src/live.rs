//! What live elements (the WebRTC source and server, live ingest) answer to state changes.

/// A live element has nothing to preroll: READY->PAUSED and PLAYING->PAUSED say NO_PREROLL.
pub fn no_preroll(
    transition: gst::StateChange,
    result: gst::StateChangeSuccess,
) -> gst::StateChangeSuccess {
    match transition {
        gst::StateChange::ReadyToPaused | gst::StateChange::PlayingToPaused => {
            gst::StateChangeSuccess::NoPreroll
        }
        _ => result,
    }
}
