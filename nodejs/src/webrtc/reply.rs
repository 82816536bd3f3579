//! What a server's promise resolves with: made on the command thread, turned into JavaScript
//! on the JavaScript thread.

use napi::bindgen_prelude::ToNapiValue;
use napi::sys;

use super::peers::PeerInfo;
use super::rooms::SessionInfo;
use super::server::WebRtcServer;
use super::session::WebRtcSession;

pub enum Reply {
    /// `undefined`.
    Done,
    Count(u32),
    Peers(Vec<PeerInfo>),
    PeerIds(Vec<String>),
    Sessions(Vec<SessionInfo>),
    Session(SessionInfo),
    /// `null` when there is no such session.
    MaybeSession(Option<SessionInfo>),
    Room(WebRtcSession),
    Server(WebRtcServer),
}

impl ToNapiValue for Reply {
    unsafe fn to_napi_value(env: sys::napi_env, reply: Self) -> napi::Result<sys::napi_value> {
        unsafe {
            match reply {
                Reply::Done => <()>::to_napi_value(env, ()),
                Reply::Count(n) => u32::to_napi_value(env, n),
                Reply::Peers(peers) => Vec::to_napi_value(env, peers),
                Reply::PeerIds(ids) => Vec::to_napi_value(env, ids),
                Reply::Sessions(sessions) => Vec::to_napi_value(env, sessions),
                Reply::Session(session) => SessionInfo::to_napi_value(env, session),
                Reply::MaybeSession(session) => Option::to_napi_value(env, session),
                Reply::Room(room) => WebRtcSession::to_napi_value(env, room),
                Reply::Server(server) => WebRtcServer::to_napi_value(env, server),
            }
        }
    }
}
