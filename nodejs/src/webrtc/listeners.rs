//! The JavaScript listeners of a server and of its sessions: what `on` registers, looked up
//! for each event on the JavaScript thread.

use std::str::FromStr;
use std::sync::Mutex;

use napi::bindgen_prelude::{Function, FunctionRef, ToNapiValue, Unknown};
use napi::sys;
use napi::threadsafe_function::UnknownReturnValue;
use napi::{Env, JsTypeError, ValueType};
use remotemedia_runtime::sync::lock;

use super::error::WebRtcError;
use super::events::Event;

/// A JavaScript value already made, handed to every listener of an event as it is.
#[derive(Clone, Copy)]
pub struct Made(pub sys::napi_value);

impl ToNapiValue for Made {
    unsafe fn to_napi_value(_env: sys::napi_env, val: Self) -> napi::Result<sys::napi_value> {
        Ok(val.0)
    }
}

/// A listener: a JavaScript function taking the event's object (or, for a session's
/// `peer_joined`/`peer_left`, the peer id); what it returns is not read.
pub type Listener<'env> = Function<'env, Made, UnknownReturnValue>;

/// A listener kept past the call that registered it.
type Callback = FunctionRef<Made, UnknownReturnValue>;

/// `value` as a listener; anything but a function is a `TypeError` (`ERR_INVALID_ARG_TYPE`).
pub fn as_listener<'env>(env: &Env, value: Unknown<'env>) -> napi::Result<Listener<'env>> {
    if value.get_type()? != ValueType::Function {
        let error = napi::Error::new("ERR_INVALID_ARG_TYPE", "the listener must be a function");
        return Err(napi::Error::from(
            JsTypeError::from(error).into_unknown(*env),
        ));
    }
    // SAFETY: a function, as checked above.
    unsafe { value.cast() }
}

/// The server's events, by the names `on` takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    PeerConnected,
    PeerDisconnected,
    PipelineOutput,
    Data,
    Error,
    Session,
}

const KINDS: [(&str, Kind); 6] = [
    ("peer_connected", Kind::PeerConnected),
    ("peer_disconnected", Kind::PeerDisconnected),
    ("pipeline_output", Kind::PipelineOutput),
    ("data", Kind::Data),
    ("error", Kind::Error),
    ("session", Kind::Session),
];

impl FromStr for Kind {
    type Err = WebRtcError;

    fn from_str(name: &str) -> Result<Self, WebRtcError> {
        KINDS
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, kind)| *kind)
            .ok_or_else(|| {
                let names: Vec<&str> = KINDS.iter().map(|(n, _)| *n).collect();
                WebRtcError::config(format!(
                    "no event '{name}': WebRtcServer emits {}",
                    names.join(", ")
                ))
            })
    }
}

impl Kind {
    pub fn of(event: &Event) -> Kind {
        match event {
            Event::PeerConnected(_) => Kind::PeerConnected,
            Event::PeerDisconnected(_) => Kind::PeerDisconnected,
            Event::PipelineOutput(_) => Kind::PipelineOutput,
            Event::Data(_) => Kind::Data,
            Event::Error(_) => Kind::Error,
            Event::Session(_) => Kind::Session,
        }
    }
}

/// A session's own events, by the names its `on` takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Membership {
    Joined,
    Left,
}

impl FromStr for Membership {
    type Err = WebRtcError;

    fn from_str(name: &str) -> Result<Self, WebRtcError> {
        match name {
            "peer_joined" => Ok(Membership::Joined),
            "peer_left" => Ok(Membership::Left),
            _ => Err(WebRtcError::config(format!(
                "no event '{name}': WebRtcSession emits peer_joined, peer_left"
            ))),
        }
    }
}

impl Membership {
    /// The session and change a `session` event reports, when a peer joined or left.
    pub fn of(event: &Event) -> Option<(&str, Membership, &str)> {
        let Event::Session(s) = event else {
            return None;
        };
        let change = match s.event_type.as_str() {
            "peer_joined" => Membership::Joined,
            "peer_left" => Membership::Left,
            _ => return None,
        };
        Some((s.session_id.as_str(), change, s.peer_id.as_deref()?))
    }
}

/// What a listener listens to.
#[derive(Debug, PartialEq, Eq)]
pub enum Topic {
    Server(Kind),
    Session(String, Membership),
}

#[derive(Default)]
pub struct Listeners {
    entries: Mutex<Vec<(Topic, Callback)>>,
}

impl Listeners {
    pub fn add(&self, topic: Topic, listener: &Listener<'_>) -> napi::Result<()> {
        let callback = listener.create_ref()?;
        lock(&self.entries).push((topic, callback));
        Ok(())
    }

    /// The functions listening to `topic`, in the order they were added; the lock is gone
    /// before any of them is called.
    pub fn of<'env>(&self, env: &'env Env, topic: &Topic) -> napi::Result<Vec<Listener<'env>>> {
        lock(&self.entries)
            .iter()
            .filter(|(t, _)| t == topic)
            .map(|(_, callback)| callback.borrow_back(env))
            .collect()
    }
}
