//! A peer that reaches an external JSON-RPC signaling server (`signaling-url=ws://...`): it
//! announces itself, hands what it hears to a [`Handler`] and sends signals on request. When
//! the server goes away it reconnects with the backoff the URL asks for (`max_attempts`,
//! `initial_backoff_ms`, `max_backoff_ms`, `backoff_multiplier`), announces itself again and
//! reports the peers present then as joined, so calls to them start again.

use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::{self, Message};

use crate::protocol::{self, PeerInfo, RpcError, Signal};
use crate::reconnect::{LinkHandler, reopen, settle_early, ws_backoff};
use crate::registry::{Event, Handler};

/// What the client reports besides peer events: errors the server answered with.
pub type ErrorHandler = Arc<dyn Fn(RpcError) + Send + Sync>;

pub struct WsClient {
    peer_id: String,
    /// The other peers the server listed in its answer to our announce.
    present: Vec<PeerInfo>,
    outbound: mpsc::Sender<String>,
}

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Connects and announces `info`; returns the socket, the other peers present, and signals
/// that came before the answer (see `settle_early`).
async fn open(url: &str, info: &PeerInfo) -> Result<(Socket, Vec<PeerInfo>, Vec<Event>), RpcError> {
    let connect = tokio_tungstenite::connect_async(url);
    let (mut ws, _) = tokio::time::timeout(Duration::from_secs(10), connect)
        .await
        .map_err(|_| RpcError::link(url, "no answer within 10 s"))?
        .map_err(|e| RpcError::link(url, e))?;
    let announce = json!({"jsonrpc": "2.0", "id": 0, "method": "peer.announce", "params": info});
    ws.send(Message::text(announce.to_string()))
        .await
        .map_err(|e| RpcError::link(url, e))?;
    let mut early = Vec::new();
    let reply = tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(Ok(m)) = ws.next().await {
            if let Message::Text(t) = m
                && let Ok(v) = serde_json::from_str::<Value>(t.as_str())
            {
                if v.get("id") == Some(&json!(0)) {
                    return Some(v);
                }
                early.extend(notification_event(&v, &info.peer_id));
            }
        }
        None
    })
    .await
    .map_err(|_| RpcError::link(url, "no answer to peer.announce within 10 s"))?
    .ok_or_else(|| RpcError::link(url, "closed the connection during peer.announce"))?;
    if let Some(err) = reply.get("error") {
        return Err(RpcError::link(url, format!("peer.announce refused: {err}")));
    }
    let mut present: Vec<PeerInfo> = reply
        .pointer("/result/other_peers")
        .cloned()
        .and_then(|v| serde_json::from_value(v).ok())
        .unwrap_or_default();
    let signals = settle_early(&mut present, early);
    Ok((ws, present, signals))
}

/// Why a served connection to the server was lost.
#[derive(Debug, thiserror::Error)]
enum ConnectionLost {
    #[error("sending failed: {0}")]
    Send(#[source] tungstenite::Error),
    #[error("the server closed the connection")]
    Closed,
    #[error(transparent)]
    Receive(tungstenite::Error),
}

/// Serves one connection until it is lost (`Err`) or the client is dropped (`Ok`).
async fn serve(
    ws: Socket,
    me: &str,
    url: &str,
    queue: &mut mpsc::Receiver<String>,
    handler: &Handler,
    on_error: &ErrorHandler,
) -> Result<(), ConnectionLost> {
    let (mut sink, mut stream) = ws.split();
    loop {
        tokio::select! {
            outgoing = queue.recv() => match outgoing {
                Some(text) => {
                    if let Err(e) = sink.send(Message::text(text)).await {
                        return Err(ConnectionLost::Send(e));
                    }
                }
                None => {
                    let _ = sink.close().await;
                    return Ok(());
                }
            },
            incoming = stream.next() => match incoming {
                Some(Ok(Message::Text(t))) => {
                    let Ok(v) = serde_json::from_str::<Value>(t.as_str()) else { continue };
                    if let Some(err) = v.get("error") {
                        on_error(RpcError::link(url, err));
                        continue;
                    }
                    if let Some(event) = notification_event(&v, me) {
                        let _ = handler(event);
                    }
                }
                Some(Ok(Message::Close(_))) | None => return Err(ConnectionLost::Closed),
                Some(Err(e)) => return Err(ConnectionLost::Receive(e)),
                Some(Ok(_)) => {}
            },
        }
    }
}

impl WsClient {
    /// Connects, announces `info` and waits for the server's answer (within 10 s). Later
    /// losses of the server are retried in the background, reported through `on_link`.
    pub async fn connect(
        url: &str,
        info: PeerInfo,
        handler: Handler,
        on_error: ErrorHandler,
        on_link: LinkHandler,
    ) -> Result<Self, RpcError> {
        let backoff = ws_backoff(url).map_err(|e| RpcError::link(url, e))?;
        let (first, present, mut early) = open(url, &info).await?;
        let (outbound, mut queue) = mpsc::channel::<String>(256);
        let me = info.peer_id.clone();
        let url_owned = url.to_owned();
        let peer_id = info.peer_id.clone();
        tokio::spawn(async move {
            let url = url_owned;
            let mut ws = first;
            loop {
                for event in early.drain(..) {
                    let _ = handler(event);
                }
                let reason = match serve(ws, &me, &url, &mut queue, &handler, &on_error).await {
                    Ok(()) => return,
                    Err(reason) => reason,
                };
                // Signals queued while the server is away were meant for the old session:
                // they are dropped, until the client itself is dropped (the queue closes).
                let dropped = async { while queue.recv().await.is_some() {} };
                let opened = reopen(&backoff, &url, reason, &on_link, dropped, || async {
                    open(&url, &info).await.map_err(|e| e.message)
                });
                let Some((socket, present, signals)) = opened.await else {
                    return;
                };
                early = signals;
                for peer in present {
                    let _ = handler(Event::Joined(peer));
                }
                ws = socket;
            }
        });
        Ok(Self {
            peer_id,
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
            .map_err(|_| RpcError::link("(external)", "outbound queue full or closed"))
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
