//! `WebRtcServer`, the class JavaScript uses (webrtc.d.ts). Every method returns at once: the
//! work runs on the server's command thread (worker.rs) and a promise settles with it.

use napi::Env;
use napi::bindgen_prelude::{Buffer, Either, Object, This, Unknown};
use napi_derive::napi;
use serde_json::Value;

use super::actions::Payload;
use super::config::Mode;
use super::dispatch::dispatcher;
use super::error::WebRtcError;
use super::listeners::{Kind, Topic, as_listener};
use super::reply::Reply;
use super::rooms;
use super::session::WebRtcSession;
use super::worker::{self, Handle};

/// RemoteMedia's WebRTC server: every connected peer gets its own run of the manifest.
#[napi]
pub struct WebRtcServer {
    handle: Handle,
}

impl WebRtcServer {
    pub fn new(handle: Handle) -> Self {
        Self { handle }
    }
}

/// A data-channel message from JavaScript: a string goes as text, a Buffer as binary.
pub fn payload(data: Either<Buffer, String>) -> Payload {
    match data {
        Either::A(buffer) => Payload::Binary(buffer.to_vec()),
        Either::B(text) => Payload::Text(text),
    }
}

#[napi]
impl WebRtcServer {
    /// A server with embedded signaling on `port` (0 picks a free one, see `port`), or on
    /// `signalingUrl` when the config has one.
    #[napi(catch_unwind, ts_return_type = "Promise<WebRtcServer>")]
    pub fn create<'env>(env: &'env Env, config: Value) -> napi::Result<Object<'env>> {
        worker::spawn(env, config, Mode::Create)
    }

    /// A server that announces itself on an external signaling server (`signalingUrl`:
    /// ws://, grpc:// or grpcs://), reconnecting as `reconnect` says.
    #[napi(catch_unwind, ts_return_type = "Promise<WebRtcServer>")]
    pub fn connect<'env>(env: &'env Env, config: Value) -> napi::Result<Object<'env>> {
        worker::spawn(env, config, Mode::Connect)
    }

    /// created, starting, running, stopping or stopped.
    #[napi(getter, catch_unwind)]
    pub fn state(&self) -> &'static str {
        self.handle.pipeline.state().as_str()
    }

    /// The embedded signaling port (the one bound, once started, for port 0); null with an
    /// external signaling server.
    #[napi(getter, catch_unwind)]
    pub fn port(&self) -> Option<u32> {
        self.handle.pipeline.port().map(u32::from)
    }

    /// Calls `listener` with each `event` (peer_connected, peer_disconnected,
    /// pipeline_output, data, error, session), on the JavaScript thread, in bus order.
    #[napi(catch_unwind)]
    pub fn on<'this>(
        &self,
        this: This<'this>,
        env: &Env,
        event: String,
        listener: Unknown<'_>,
    ) -> napi::Result<This<'this>> {
        let kind: Kind = event.parse().map_err(|e: WebRtcError| e.to_js(env))?;
        let listener = as_listener(env, listener)?;
        self.handle.listeners.add(Topic::Server(kind), &listener)?;
        Ok(this)
    }

    /// Binds the signaling port (or connects to the signaling server) and serves.
    #[napi(catch_unwind, ts_return_type = "Promise<void>")]
    pub fn start<'env>(&self, env: &'env Env) -> napi::Result<Object<'env>> {
        let dispatch = dispatcher(env, self.handle.listeners.clone())?;
        self.handle.submit(env, move |worker| {
            worker.start(dispatch)?;
            Ok(Reply::Done)
        })
    }

    /// Tells every peer goodbye, stops every run and frees the port; the last events are
    /// delivered before the promise resolves.
    #[napi(catch_unwind, ts_return_type = "Promise<void>")]
    pub fn shutdown<'env>(&self, env: &'env Env) -> napi::Result<Object<'env>> {
        self.handle.submit(env, |worker| {
            worker.shutdown();
            Ok(Reply::Done)
        })
    }

    /// Sends on the peer's data channel.
    #[napi(catch_unwind, ts_return_type = "Promise<void>")]
    pub fn send_to_peer<'env>(
        &self,
        env: &'env Env,
        peer_id: String,
        data: Either<Buffer, String>,
    ) -> napi::Result<Object<'env>> {
        let data = payload(data);
        self.handle.submit(env, move |worker| {
            worker.pipeline.send_to_peer(&peer_id, data)?;
            Ok(Reply::Done)
        })
    }

    /// Sends to every peer with an open data channel; resolves with how many.
    #[napi(catch_unwind, ts_return_type = "Promise<number>")]
    pub fn broadcast<'env>(
        &self,
        env: &'env Env,
        data: Either<Buffer, String>,
    ) -> napi::Result<Object<'env>> {
        let data = payload(data);
        self.handle.submit(env, move |worker| {
            Ok(Reply::Count(worker.pipeline.broadcast(data)?))
        })
    }

    /// Hangs up on a peer, which hears `reason` first.
    #[napi(catch_unwind, ts_return_type = "Promise<void>")]
    pub fn disconnect_peer<'env>(
        &self,
        env: &'env Env,
        peer_id: String,
        reason: Option<String>,
    ) -> napi::Result<Object<'env>> {
        let reason = reason.unwrap_or_default();
        self.handle.submit(env, move |worker| {
            worker.pipeline.disconnect_peer(&peer_id, &reason)?;
            Ok(Reply::Done)
        })
    }

    /// The connected peers.
    #[napi(catch_unwind, ts_return_type = "Promise<PeerInfo[]>")]
    pub fn get_peers<'env>(&self, env: &'env Env) -> napi::Result<Object<'env>> {
        self.handle
            .submit(env, |worker| Ok(Reply::Peers(worker.pipeline.peers()?)))
    }

    /// A new session (room); peers join it with `addPeer` or by announcing
    /// `user_data.session`.
    #[napi(catch_unwind, ts_return_type = "Promise<WebRtcSession>")]
    pub fn create_session<'env>(
        &self,
        env: &'env Env,
        session_id: String,
        metadata: Option<Value>,
    ) -> napi::Result<Object<'env>> {
        let handle = self.handle.clone();
        self.handle.submit(env, move |worker| {
            worker.pipeline.create_session(&session_id, metadata)?;
            Ok(Reply::Room(WebRtcSession::new(handle, session_id)))
        })
    }

    #[napi(catch_unwind, ts_return_type = "Promise<SessionInfo[]>")]
    pub fn get_sessions<'env>(&self, env: &'env Env) -> napi::Result<Object<'env>> {
        self.handle.submit(env, |worker| {
            Ok(Reply::Sessions(worker.pipeline.sessions()?))
        })
    }

    /// The session, or null.
    #[napi(catch_unwind, ts_return_type = "Promise<SessionInfo | null>")]
    pub fn get_session<'env>(
        &self,
        env: &'env Env,
        session_id: String,
    ) -> napi::Result<Object<'env>> {
        self.handle.submit(env, move |worker| {
            let found = rooms::find(worker.pipeline.sessions()?, &session_id).ok();
            Ok(Reply::MaybeSession(found))
        })
    }

    #[napi(catch_unwind, ts_return_type = "Promise<void>")]
    pub fn delete_session<'env>(
        &self,
        env: &'env Env,
        session_id: String,
    ) -> napi::Result<Object<'env>> {
        self.handle.submit(env, move |worker| {
            worker.pipeline.delete_session(&session_id)?;
            Ok(Reply::Done)
        })
    }
}
