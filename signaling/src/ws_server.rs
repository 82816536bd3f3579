//! JSON-RPC 2.0 over WebSocket, plus static pages (the web demo) and routes (WHIP, WHEP) on
//! the same port. With tokens set, the WebSocket needs `?token=` (browsers cannot set headers
//! on it) and routes need `Authorization: Bearer`; pages stay open.
//!
//! Each connection has one reader (parses, rate-limits, answers) and one writer draining a
//! bounded queue; relays to other peers never wait on them (see `PeerRegistry::route`).

use remotemedia_runtime::ErrorCode;
use std::borrow::Cow;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role, WebSocketConfig};
use tokio_tungstenite::tungstenite::{Error as WsError, Message};

use crate::http::{self, HttpResponse, Route};
use crate::protocol::{
    self, MESSAGE_TOO_LARGE, Method, NOT_ANNOUNCED, PeerInfo, RATE_LIMITED, Request, RpcError,
    Signal,
};
use crate::rate::TokenBucket;
use crate::registry::{PeerRegistry, announce_result};
use crate::tokens::Tokens;

/// A file served over plain HTTP GET next to the WebSocket endpoint.
#[derive(Clone)]
pub struct Page {
    pub path: &'static str,
    pub content_type: &'static str,
    pub body: Cow<'static, [u8]>,
}

#[derive(Clone)]
pub struct ServerOptions {
    /// Largest accepted WebSocket message; a larger one closes the connection with 1009.
    pub max_message_bytes: usize,
    /// Sustained messages per second one connection may send, and its burst.
    pub rate_per_sec: f64,
    pub burst: f64,
    /// Outbound frames queued per connection before relays to it are refused.
    pub queue_len: usize,
    /// A connection that sends nothing (not even a pong) for this long is dropped.
    pub idle_timeout: Duration,
    pub pages: Vec<Page>,
    /// Handlers for other paths (WHIP, WHEP).
    pub routes: Vec<Route>,
    /// When not empty, every door but the pages needs one of these.
    pub tokens: Tokens,
}

impl Default for ServerOptions {
    fn default() -> Self {
        Self {
            max_message_bytes: 256 * 1024,
            rate_per_sec: 200.0,
            burst: 400.0,
            queue_len: 256,
            idle_timeout: Duration::from_secs(45),
            pages: Vec::new(),
            routes: Vec::new(),
            tokens: Tokens::default(),
        }
    }
}

/// A running server; dropping it stops accepting and closes every connection.
pub struct SignalingServer {
    addr: SocketAddr,
    stop: watch::Sender<bool>,
    accepting: Option<tokio::task::JoinHandle<()>>,
}

impl SignalingServer {
    /// Binds `addr` and serves on the current tokio runtime.
    pub async fn bind(
        addr: SocketAddr,
        registry: Arc<PeerRegistry>,
        options: ServerOptions,
    ) -> std::io::Result<Self> {
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let (stop, stopped) = watch::channel(false);
        let options = Arc::new(options);
        let accepting = tokio::spawn(accept_loop(listener, registry, options, stopped));
        Ok(Self {
            addr,
            stop,
            accepting: Some(accepting),
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops like drop, and returns once the port is closed, so it can be bound again.
    pub async fn close(mut self) {
        let _ = self.stop.send(true);
        if let Some(task) = self.accepting.take() {
            let _ = task.await;
        }
    }
}

impl Drop for SignalingServer {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

async fn accept_loop(
    listener: TcpListener,
    registry: Arc<PeerRegistry>,
    options: Arc<ServerOptions>,
    mut stopped: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            _ = stopped.changed() => return,
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                let _ = stream.set_nodelay(true);
                let conn = serve(stream, registry.clone(), options.clone(), stopped.clone());
                tokio::spawn(conn);
            }
        }
    }
}

async fn serve(
    mut stream: TcpStream,
    registry: Arc<PeerRegistry>,
    options: Arc<ServerOptions>,
    stopped: watch::Receiver<bool>,
) {
    let (head, rest) =
        match tokio::time::timeout(Duration::from_secs(10), http::read_head(&mut stream)).await {
            Ok(Ok(head)) => head,
            _ => return,
        };
    let Some(mut req) = http::parse_head(&head) else {
        let _ = http::respond(&mut stream, &HttpResponse::text(400, "bad request")).await;
        return;
    };
    let open = options.tokens.is_empty();
    if let Some(key) = req.header("sec-websocket-key") {
        if req.method != "GET"
            || !req
                .header("upgrade")
                .is_some_and(|u| u.eq_ignore_ascii_case("websocket"))
        {
            let _ = http::respond(&mut stream, &HttpResponse::text(400, "bad upgrade")).await;
            return;
        }
        let presented = req.query_param("token").map(str::as_bytes);
        if !open && !presented.is_some_and(|t| options.tokens.accepts(t)) {
            let why = if presented.is_some() {
                "invalid token"
            } else {
                "this server needs ?token=<token> on the WebSocket URL"
            };
            let _ = http::respond(&mut stream, &HttpResponse::text(401, why)).await;
            return;
        }
        let accept = derive_accept_key(key.as_bytes());
        let reply = format!(
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n\r\n"
        );
        if stream.write_all(reply.as_bytes()).await.is_err() {
            return;
        }
        let config = WebSocketConfig::default()
            .max_message_size(Some(options.max_message_bytes))
            .max_frame_size(Some(options.max_message_bytes));
        let ws = WebSocketStream::from_raw_socket(stream, Role::Server, Some(config)).await;
        let (tx, rx) = mpsc::channel::<Arc<str>>(options.queue_len);
        Connection::new(registry, options, tx)
            .run(ws, rx, stopped)
            .await;
        return;
    }
    if let Some(route) = options.routes.iter().find(|r| r.matches(&req.path)) {
        // A CORS preflight carries no credentials.
        let response = if req.method == "OPTIONS" {
            HttpResponse::new(204, "text/plain", Vec::new())
        } else if !open
            && !options
                .tokens
                .accepts_bearer(req.header("authorization").map(str::as_bytes))
        {
            HttpResponse::text(
                401,
                "needs 'Authorization: Bearer <token>' with a valid token",
            )
            .with_header("WWW-Authenticate", "Bearer")
        } else {
            match http::read_body(&mut stream, &mut req, rest).await {
                Ok(()) => (route.handler)(req).await,
                Err(response) => response,
            }
        };
        let _ = http::respond(&mut stream, &response).await;
        return;
    }
    let path = if req.path == "/" {
        "/index.html"
    } else {
        req.path.as_str()
    };
    let response = match options.pages.iter().find(|p| p.path == path) {
        Some(page) if req.method == "GET" => {
            HttpResponse::new(200, page.content_type, page.body.to_vec())
        }
        Some(_) => HttpResponse::text(405, "pages are read with GET"),
        None => HttpResponse::text(404, "not found"),
    };
    let _ = http::respond(&mut stream, &response).await;
}

struct Connection {
    registry: Arc<PeerRegistry>,
    options: Arc<ServerOptions>,
    outbound: mpsc::Sender<Arc<str>>,
    peer_id: Option<(String, u64)>,
    limit: TokenBucket,
}

impl Connection {
    fn new(
        registry: Arc<PeerRegistry>,
        options: Arc<ServerOptions>,
        outbound: mpsc::Sender<Arc<str>>,
    ) -> Self {
        let limit = TokenBucket::new(options.rate_per_sec, options.burst);
        Self {
            registry,
            options,
            outbound,
            peer_id: None,
            limit,
        }
    }

    async fn run(
        mut self,
        ws: WebSocketStream<TcpStream>,
        mut rx: mpsc::Receiver<Arc<str>>,
        mut stopped: watch::Receiver<bool>,
    ) {
        let (mut sink, mut stream) = ws.split();
        let tx = self.outbound.clone();
        let (close_tx, mut close_rx) = mpsc::channel::<CloseFrame>(1);
        let writer = tokio::spawn(async move {
            let mut ping = tokio::time::interval(Duration::from_secs(15));
            ping.tick().await;
            loop {
                tokio::select! {
                    frame = rx.recv() => match frame {
                        Some(text) => {
                            if sink.send(Message::text(text.as_ref())).await.is_err() {
                                return;
                            }
                        }
                        None => break,
                    },
                    _ = ping.tick() => {
                        if sink.send(Message::Ping(Vec::new().into())).await.is_err() {
                            return;
                        }
                    }
                }
            }
            // Every queued frame went out first; then the reader's close reason, if any.
            let _ = sink.send(Message::Close(close_rx.try_recv().ok())).await;
            let _ = sink.close().await;
        });

        let idle = self.options.idle_timeout;
        loop {
            let next = tokio::select! {
                _ = stopped.changed() => break,
                next = tokio::time::timeout(idle, stream.next()) => next,
            };
            let message = match next {
                Err(_) => {
                    let _ = close_tx.try_send(close(CloseCode::Away, "idle timeout"));
                    break;
                }
                Ok(None) => break,
                Ok(Some(Err(WsError::Capacity(e)))) => {
                    let err = RpcError::new(
                        MESSAGE_TOO_LARGE,
                        ErrorCode::Signaling,
                        format!("message refused: {e}"),
                    );
                    let _ = tx
                        .send(protocol::error_response(&Value::Null, &err).into())
                        .await;
                    let _ = close_tx.try_send(close(CloseCode::Size, "message too large"));
                    break;
                }
                Ok(Some(Err(_))) => break,
                Ok(Some(Ok(m))) => m,
            };
            let reply = match message {
                Message::Text(text) => self.handle(text.as_str()),
                Message::Binary(_) => Some(protocol::error_response(
                    &Value::Null,
                    &RpcError::new(
                        protocol::INVALID_REQUEST,
                        ErrorCode::Signaling,
                        "binary frames are not JSON-RPC; send text",
                    ),
                )),
                Message::Close(_) => break,
                _ => None,
            };
            // Waiting here only slows this connection: it is its own queue.
            if let Some(reply) = reply
                && tx.send(reply.into()).await.is_err()
            {
                break;
            }
        }
        if let Some((id, serial)) = self.peer_id.take() {
            self.registry.leave(&id, serial, "connection closed");
        }
        drop((tx, self));
        let _ = writer.await;
    }

    /// Answers one text frame; `None` for JSON-RPC notifications that succeed.
    fn handle(&mut self, text: &str) -> Option<String> {
        if !self.limit.allow() {
            let err = RpcError::new(
                RATE_LIMITED,
                ErrorCode::Signaling,
                format!(
                    "rate limit of {} messages/s exceeded; message dropped",
                    self.options.rate_per_sec
                ),
            );
            return Some(protocol::error_response(&Value::Null, &err));
        }
        let request = match protocol::parse_request(text) {
            Ok(r) => r,
            Err((id, err)) => return Some(protocol::error_response(&id, &err)),
        };
        let id = request.id.clone();
        match (self.call(request), id) {
            (Ok(result), Some(id)) => Some(protocol::response(&id, result)),
            (Err(err), id) => Some(protocol::error_response(&id.unwrap_or(Value::Null), &err)),
            (Ok(_), None) => None,
        }
    }

    fn call(&mut self, request: Request) -> Result<Value, RpcError> {
        match request.method {
            Method::Announce => self.announce(request.params),
            Method::List => Ok(json!({"peers": self.registry.peers()})),
            method => {
                let (me, serial) = self.peer_id.as_ref().ok_or_else(|| {
                    RpcError::new(
                        NOT_ANNOUNCED,
                        ErrorCode::Signaling,
                        format!("{}: call peer.announce first", method.name()),
                    )
                })?;
                if method == Method::Disconnect
                    && request.params.get("to").is_none_or(|t| t.is_null())
                {
                    let id = me.to_owned();
                    self.registry.leave(&id, *serial, "disconnect");
                    self.peer_id = None;
                    return Ok(json!({"disconnected": id}));
                }
                let signal = Signal::from_params(method, request.params, me)?;
                self.registry.route(signal)?;
                Ok(json!({"delivered": true}))
            }
        }
    }

    fn announce(&mut self, params: Value) -> Result<Value, RpcError> {
        if let Some((id, _)) = &self.peer_id {
            return Err(RpcError::invalid_params(format!(
                "peer.announce: this connection is already announced as '{id}'"
            )));
        }
        let info: PeerInfo = serde_json::from_value(params)
            .map_err(|e| RpcError::invalid_params(format!("peer.announce: {e}")))?;
        let peer_id = info.peer_id.clone();
        let announced = self.registry.announce_remote(info, self.outbound.clone())?;
        self.peer_id = Some((peer_id.clone(), announced.serial));
        Ok(announce_result(&peer_id, &announced.others))
    }
}

fn close(code: CloseCode, reason: &'static str) -> CloseFrame {
    CloseFrame {
        code,
        reason: reason.into(),
    }
}
