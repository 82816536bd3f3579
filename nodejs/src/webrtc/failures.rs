//! Why a call into the element failed. The element posts the reason on the bus from the
//! thread that called it (an ERROR with `remotemedia-error` details when a state change fails,
//! an `error` element message with its `code` when an action signal is refused). The bus sync
//! handler keeps the first one posted on each thread, so a caller reads the failure of its own
//! call and never another thread's.

use std::cell::Cell;

use super::error::WebRtcError;
use super::events::Event;

thread_local! {
    static FIRST: Cell<Option<WebRtcError>> = const { Cell::new(None) };
}

/// The bus sync handler's part: runs on the posting thread, never blocks, never panics.
pub fn note(msg: &gst::MessageRef) {
    let reports_failure = match msg.view() {
        gst::MessageView::Error(_) => true,
        gst::MessageView::Element(e) => e.structure().is_some_and(|s| s.name() == "error"),
        _ => false,
    };
    if !reports_failure {
        return;
    }
    let failure = Event::from_message(msg).and_then(|e| e.failure());
    if let Some(failure) = failure {
        let _ = FIRST.try_with(|first| {
            let kept = first.take().unwrap_or(failure);
            first.set(Some(kept));
        });
    }
}

/// Forgets what this thread saw, before a call.
pub fn clear() {
    let _ = FIRST.try_with(|first| first.set(None));
}

/// What this thread's call made the element post, if anything.
pub fn take() -> Option<WebRtcError> {
    FIRST.try_with(Cell::take).ok().flatten()
}
