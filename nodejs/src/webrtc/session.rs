//! `WebRtcSession`, a session (room) of a server, made by `WebRtcServer.createSession`.

use napi::Env;
use napi::bindgen_prelude::{Buffer, Either, Object, This, Unknown};
use napi_derive::napi;

use super::actions::Payload;
use super::error::WebRtcError;
use super::listeners::{Membership, Topic, as_listener};
use super::reply::Reply;
use super::rooms;
use super::server::payload;
use super::worker::Handle;

/// A named group of peers with metadata.
#[napi]
pub struct WebRtcSession {
    handle: Handle,
    id: String,
}

impl WebRtcSession {
    pub fn new(handle: Handle, id: String) -> Self {
        Self { handle, id }
    }
}

#[napi]
impl WebRtcSession {
    #[napi(getter, catch_unwind)]
    pub fn session_id(&self) -> String {
        self.id.clone()
    }

    /// Calls `listener` with the peer id on `peer_joined` and `peer_left`.
    #[napi(catch_unwind)]
    pub fn on<'this>(
        &self,
        this: This<'this>,
        env: &Env,
        event: String,
        listener: Unknown<'_>,
    ) -> napi::Result<This<'this>> {
        let change: Membership = event.parse().map_err(|e: WebRtcError| e.to_js(env))?;
        let topic = Topic::Session(self.id.clone(), change);
        let listener = as_listener(env, listener)?;
        self.handle.listeners.add(topic, &listener)?;
        Ok(this)
    }

    #[napi(catch_unwind, ts_return_type = "Promise<void>")]
    pub fn add_peer<'env>(&self, env: &'env Env, peer_id: String) -> napi::Result<Object<'env>> {
        let id = self.id.clone();
        self.handle.submit(env, move |worker| {
            worker.pipeline.join_session(&id, &peer_id)?;
            Ok(Reply::Done)
        })
    }

    #[napi(catch_unwind, ts_return_type = "Promise<void>")]
    pub fn remove_peer<'env>(&self, env: &'env Env, peer_id: String) -> napi::Result<Object<'env>> {
        let id = self.id.clone();
        self.handle.submit(env, move |worker| {
            worker.pipeline.leave_session(&id, &peer_id)?;
            Ok(Reply::Done)
        })
    }

    /// The members' peer ids.
    #[napi(catch_unwind, ts_return_type = "Promise<string[]>")]
    pub fn get_peers<'env>(&self, env: &'env Env) -> napi::Result<Object<'env>> {
        let id = self.id.clone();
        self.handle.submit(env, move |worker| {
            let info = rooms::find(worker.pipeline.sessions()?, &id)?;
            Ok(Reply::PeerIds(info.peer_ids))
        })
    }

    #[napi(catch_unwind, ts_return_type = "Promise<SessionInfo>")]
    pub fn get_info<'env>(&self, env: &'env Env) -> napi::Result<Object<'env>> {
        let id = self.id.clone();
        self.handle.submit(env, move |worker| {
            Ok(Reply::Session(rooms::find(
                worker.pipeline.sessions()?,
                &id,
            )?))
        })
    }

    /// Sends to every member with an open data channel, as text (a Buffer must hold UTF-8:
    /// the element sends text to sessions); resolves with how many.
    #[napi(catch_unwind, ts_return_type = "Promise<number>")]
    pub fn broadcast<'env>(
        &self,
        env: &'env Env,
        data: Either<Buffer, String>,
    ) -> napi::Result<Object<'env>> {
        let id = self.id.clone();
        let text = match payload(data) {
            Payload::Text(text) => Ok(text),
            Payload::Binary(bytes) => String::from_utf8(bytes).map_err(|e| {
                WebRtcError::config(format!("a session message is text (UTF-8): {e}"))
            }),
        };
        self.handle.submit(env, move |worker| {
            Ok(Reply::Count(worker.pipeline.send_to_session(&id, &text?)?))
        })
    }

    /// Sends to a member on its data channel; PEER_NOT_FOUND for a peer not in the session.
    #[napi(catch_unwind, ts_return_type = "Promise<void>")]
    pub fn send_to_peer<'env>(
        &self,
        env: &'env Env,
        peer_id: String,
        data: Either<Buffer, String>,
    ) -> napi::Result<Object<'env>> {
        let id = self.id.clone();
        let data = payload(data);
        self.handle.submit(env, move |worker| {
            let info = rooms::find(worker.pipeline.sessions()?, &id)?;
            if !info.peer_ids.contains(&peer_id) {
                let message = format!("peer '{peer_id}' is not in session '{id}'");
                let code = remotemedia_runtime::ErrorCode::PeerNotFound;
                return Err(WebRtcError::new(code, message).peer(&peer_id));
            }
            worker.pipeline.send_to_peer(&peer_id, data)?;
            Ok(Reply::Done)
        })
    }
}
