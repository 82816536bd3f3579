//! What the WebRTC elements share: the process's tokio runtime, the webrtc-rs API configured
//! from element properties, signaling (embedded server or external URL), bus messages and the
//! web demo page.

pub mod channel;
pub mod door;
pub mod http_client;
pub mod hub;
pub mod ice;
pub mod messages;
pub mod receive;
pub mod send;
pub mod sessions;
pub mod settings;
pub mod signaling;
pub mod whip_client;

use std::sync::LazyLock;

/// The one tokio runtime of the process (docs/ARCHITECTURE.md, "Threads, runtimes and locks"), created on first use.
pub static RUNTIME: LazyLock<tokio::runtime::Runtime> = LazyLock::new(|| {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("remotemedia-rt")
        .enable_all()
        .build()
        .expect("cannot start the tokio runtime")
});

/// Runs `future` on the runtime and waits for it on this thread. Unlike `block_on`, this also
/// works when the caller is itself inside a tokio runtime (an application's), where `block_on`
/// would panic. `None` if the task died.
pub fn run_blocking<F>(future: F) -> Option<F::Output>
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    let (tx, rx) = std::sync::mpsc::sync_channel(1);
    RUNTIME.spawn(async move {
        let _ = tx.send(future.await);
    });
    rx.recv().ok()
}
