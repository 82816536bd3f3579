//! Server metrics in the Prometheus text format, served over plain HTTP at `/metrics`.

use std::collections::HashSet;
use std::fmt::Write;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use crate::registry::PeerRegistry;

/// Signaling message types counted by `remotemedia_signaling_messages_total`.
pub const MESSAGE_TYPES: [&str; 6] = [
    "announce",
    "offer",
    "answer",
    "ice_candidate",
    "disconnect",
    "list_peers",
];

/// Upper bounds (seconds) of the execution latency histogram.
const LATENCY_BUCKETS: [f64; 10] = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0];

#[derive(Default)]
pub struct Metrics {
    signal_streams: AtomicU64,
    pipeline_streams: AtomicU64,
    messages: [AtomicU64; MESSAGE_TYPES.len()],
    /// (offerer, answerer) pairs with an offer relayed and no answer yet.
    pending_offers: Mutex<HashSet<(String, String)>>,
    executions_ok: AtomicU64,
    executions_failed: AtomicU64,
    latency_buckets: [AtomicU64; LATENCY_BUCKETS.len()],
    latency_sum_us: AtomicU64,
}

/// Counts an open stream until dropped.
pub struct StreamGuard<'a>(&'a AtomicU64);

impl Drop for StreamGuard<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Metrics {
    pub fn signal_stream(&self) -> StreamGuard<'_> {
        self.signal_streams.fetch_add(1, Ordering::Relaxed);
        StreamGuard(&self.signal_streams)
    }

    pub fn pipeline_stream(&self) -> StreamGuard<'_> {
        self.pipeline_streams.fetch_add(1, Ordering::Relaxed);
        StreamGuard(&self.pipeline_streams)
    }

    /// Counts one signaling message of `kind` (one of [`MESSAGE_TYPES`]).
    pub fn message(&self, kind: &str) {
        if let Some(i) = MESSAGE_TYPES.iter().position(|t| *t == kind) {
            self.messages[i].fetch_add(1, Ordering::Relaxed);
        }
    }

    fn pending(&self) -> std::sync::MutexGuard<'_, HashSet<(String, String)>> {
        self.pending_offers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    pub fn offer_relayed(&self, from: &str, to: &str) {
        self.pending().insert((from.to_owned(), to.to_owned()));
    }

    pub fn answer_relayed(&self, from: &str, to: &str) {
        self.pending().remove(&(to.to_owned(), from.to_owned()));
    }

    /// Forgets the offers a leaving peer made or was waiting to answer.
    pub fn peer_left(&self, peer_id: &str) {
        self.pending()
            .retain(|(from, to)| from != peer_id && to != peer_id);
    }

    pub fn execution(&self, took: Duration, ok: bool) {
        if ok {
            &self.executions_ok
        } else {
            &self.executions_failed
        }
        .fetch_add(1, Ordering::Relaxed);
        let secs = took.as_secs_f64();
        for (bound, count) in LATENCY_BUCKETS.iter().zip(&self.latency_buckets) {
            if secs <= *bound {
                count.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.latency_sum_us
            .fetch_add(took.as_micros() as u64, Ordering::Relaxed);
    }

    pub fn render(&self, registry: &PeerRegistry) -> String {
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let mut out = String::new();
        let mut gauge = |name: &str, help: &str, value: u64| {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}"
            );
        };
        let peers = registry.len() as u64;
        let pending = self.pending().len() as u64;
        gauge(
            "remotemedia_signaling_peers",
            "Peers announced on any transport.",
            peers,
        );
        gauge(
            "remotemedia_signaling_pending_offers",
            "Offers relayed and not answered yet.",
            pending,
        );
        // The same under the names RemoteMedia's documents give them, so its dashboards work.
        gauge(
            "grpc_webrtc_signaling_peers_total",
            "Peers announced on any transport (RemoteMedia's name).",
            peers,
        );
        gauge(
            "grpc_webrtc_signaling_pending_offers",
            "Offers relayed and not answered yet (RemoteMedia's name).",
            pending,
        );
        gauge(
            "grpc_webrtc_signaling_streams_active",
            "Open gRPC signaling streams (RemoteMedia's name).",
            load(&self.signal_streams),
        );
        let _ = writeln!(
            out,
            "# HELP remotemedia_active_streams Open gRPC streams by service.\n\
             # TYPE remotemedia_active_streams gauge\n\
             remotemedia_active_streams{{service=\"signaling\"}} {}\n\
             remotemedia_active_streams{{service=\"pipeline\"}} {}",
            load(&self.signal_streams),
            load(&self.pipeline_streams)
        );
        for (name, help) in [
            (
                "remotemedia_signaling_messages_total",
                "gRPC signaling messages by type.",
            ),
            (
                "grpc_webrtc_signaling_messages_total",
                "gRPC signaling messages by type (RemoteMedia's name).",
            ),
        ] {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
            for (kind, count) in MESSAGE_TYPES.iter().zip(&self.messages) {
                let _ = writeln!(out, "{name}{{type=\"{kind}\"}} {}", load(count));
            }
        }
        let ok = load(&self.executions_ok);
        let failed = load(&self.executions_failed);
        let _ = writeln!(
            out,
            "# HELP remotemedia_pipeline_executions_total ExecutePipeline calls by outcome.\n\
             # TYPE remotemedia_pipeline_executions_total counter\n\
             remotemedia_pipeline_executions_total{{outcome=\"ok\"}} {ok}\n\
             remotemedia_pipeline_executions_total{{outcome=\"error\"}} {failed}\n\
             # HELP remotemedia_pipeline_execution_seconds ExecutePipeline latency.\n\
             # TYPE remotemedia_pipeline_execution_seconds histogram"
        );
        for (bound, count) in LATENCY_BUCKETS.iter().zip(&self.latency_buckets) {
            let _ = writeln!(
                out,
                "remotemedia_pipeline_execution_seconds_bucket{{le=\"{bound}\"}} {}",
                load(count)
            );
        }
        let _ = writeln!(
            out,
            "remotemedia_pipeline_execution_seconds_bucket{{le=\"+Inf\"}} {}\n\
             remotemedia_pipeline_execution_seconds_sum {}\n\
             remotemedia_pipeline_execution_seconds_count {}",
            ok + failed,
            load(&self.latency_sum_us) as f64 / 1e6,
            ok + failed
        );
        out
    }
}

/// Serves `GET /metrics` on `addr` until the task is dropped; returns the bound address.
pub async fn serve(
    addr: SocketAddr,
    metrics: Arc<Metrics>,
    registry: Arc<PeerRegistry>,
) -> std::io::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let listener = TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    let task = tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let metrics = metrics.clone();
            let registry = registry.clone();
            tokio::spawn(async move {
                let mut head = [0u8; 1024];
                let read = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut head));
                let Ok(Ok(n)) = read.await else { return };
                let request = String::from_utf8_lossy(&head[..n]);
                let (status, body) = if request.starts_with("GET /metrics") {
                    ("200 OK", metrics.render(&registry))
                } else {
                    ("404 Not Found", "metrics are at /metrics\n".to_owned())
                };
                let reply = format!(
                    "HTTP/1.1 {status}\r\ncontent-type: text/plain; version=0.0.4\r\n\
                     content-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = stream.write_all(reply.as_bytes()).await;
            });
        }
    });
    Ok((bound, task))
}
