//! What the WebRTC elements share: the process's tokio runtime, the webrtc-rs API configured
//! from element properties, signaling (embedded server or external URL), bus messages and the
//! web demo page.

pub mod hub;
pub mod ice;
pub mod messages;
pub mod settings;
pub mod signaling;

use std::sync::LazyLock;

/// The one tokio runtime of the process (DESIGN §9), created on first use.
pub static RUNTIME: LazyLock<tokio::runtime::Runtime> = LazyLock::new(|| {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("remotemedia-rt")
        .enable_all()
        .build()
        .expect("cannot start the tokio runtime")
});
