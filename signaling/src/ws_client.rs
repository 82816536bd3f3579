//! A peer that reaches an external JSON-RPC signaling server (`signaling-url=ws://...`): it
//! announces itself, hands what it hears to a [`Handler`] and sends signals on request.

use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;

use crate::protocol::{self, PeerInfo, RpcError, Signal};
use crate::registry::{Event, Handler};

/// What the client reports besides peer events: errors the server answered with.
pub type ErrorHandler = Arc<dyn Fn(RpcError) + Send + Sync>;

pub struct WsClient {
    peer_id: String,
    /// The other peers the server listed in its answer to our announce.
    present: Vec<PeerInfo>,
    outbound: mpsc::Sender<String>,
}

fn fail(url: &str, what: impl std::fmt::Display) -> RpcError {
    RpcError::new(
        protocol::INTERNAL,
        "SIGNALING_ERROR",
        format!("signaling server {url}: {what}"),
    )
}

impl WsClient {
    /// Connects, announces `info` and waits for the server's answer (within 10 s).
    pub async fn connect(
        url: &str,
        info: PeerInfo,
        handler: Handler,
        on_error: ErrorHandler,
    ) -> Result<Self, RpcError> {
        let connect = tokio_tungstenite::connect_async(url);
        let (ws, _) = tokio::time::timeout(Duration::from_secs(10), connect)
            .await
            .map_err(|_| fail(url, "no answer within 10 s"))?
            .map_err(|e| fail(url, e))?;
        let (mut sink, mut stream) = ws.split();
        let announce =
            json!({"jsonrpc": "2.0", "id": 0, "method": "peer.announce", "params": info});
        sink.send(Message::text(announce.to_string()))
            .await
            .map_err(|e| fail(url, e))?;
        let reply = tokio::time::timeout(Duration::from_secs(10), async {
            while let Some(Ok(m)) = stream.next().await {
                if let Message::Text(t) = m
                    && let Ok(v) = serde_json::from_str::<Value>(t.as_str())
                    && v.get("id") == Some(&json!(0))
                {
                    return Some(v);
                }
            }
            None
        })
        .await
        .map_err(|_| fail(url, "no answer to peer.announce within 10 s"))?
        .ok_or_else(|| fail(url, "closed the connection during peer.announce"))?;
        if let Some(err) = reply.get("error") {
            return Err(fail(url, format!("peer.announce refused: {err}")));
        }
        let present: Vec<PeerInfo> = reply
            .pointer("/result/other_peers")
            .cloned()
            .and_then(|v| serde_json::from_value(v).ok())
            .unwrap_or_default();

        let (outbound, mut rx) = mpsc::channel::<String>(256);
        tokio::spawn(async move {
            while let Some(text) = rx.recv().await {
                if sink.send(Message::text(text)).await.is_err() {
                    break;
                }
            }
            let _ = sink.close().await;
        });
        let me = info.peer_id.clone();
        let url = url.to_owned();
        tokio::spawn(async move {
            while let Some(Ok(m)) = stream.next().await {
                let Message::Text(t) = m else { continue };
                let Ok(v) = serde_json::from_str::<Value>(t.as_str()) else {
                    continue;
                };
                if let Some(err) = v.get("error") {
                    on_error(fail(&url, err));
                    continue;
                }
                if let Some(event) = notification_event(&v, &me) {
                    let _ = handler(event);
                }
            }
            on_error(fail(&url, "connection lost"));
        });
        Ok(Self {
            peer_id: info.peer_id,
            present,
            outbound,
        })
    }

    pub fn peer_id(&self) -> &str {
        &self.peer_id
    }

    /// The other peers the server listed in its answer to our announce.
    pub fn present(&self) -> &[PeerInfo] {
        &self.present
    }

    pub fn send(&self, signal: Signal) -> Result<(), RpcError> {
        let request = json!({
            "jsonrpc": "2.0",
            "method": signal.method().name(),
            "params": signal.params(),
        });
        self.outbound
            .try_send(request.to_string())
            .map_err(|_| fail("(external)", "outbound queue full or closed"))
    }
}

/// Turns a server notification into the event a local peer would have received in-process.
fn notification_event(v: &Value, me: &str) -> Option<Event> {
    let method = v.get("method")?.as_str()?;
    let params = v.get("params")?.clone();
    match method {
        "peer.joined" => serde_json::from_value(params).ok().map(Event::Joined),
        "peer.left" => Some(Event::Left {
            peer_id: params.get("peer_id")?.as_str()?.to_owned(),
            reason: params
                .get("reason")
                .and_then(Value::as_str)
                .unwrap_or("left")
                .to_owned(),
        }),
        name => {
            let method = protocol::Method::parse(name)?;
            let from = params.get("from")?.as_str()?.to_owned();
            // The server already checked `from`; parse as if we were that sender.
            let signal = Signal::from_params(method, params, &from).ok()?;
            (signal.to() == me).then_some(Event::Signal(signal))
        }
    }
}
