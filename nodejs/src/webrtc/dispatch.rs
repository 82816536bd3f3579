//! Events into JavaScript: the bus thread hands each event to one threadsafe function per
//! running server, so listeners see them in bus order; on the JavaScript thread the event
//! becomes one object that every listener of its kind gets. A listener that throws is reported
//! as an uncaught exception (as for any callback Node calls), and the others still run.
//!
//! The threadsafe function is a strong one: while the server runs (from `start` until
//! `shutdown` ends the bus thread, which owns it) it keeps Node's event loop alive, as a
//! listening `net.Server` does.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;

use napi::bindgen_prelude::{Function, ToNapiValue};
use napi::threadsafe_function::ThreadsafeFunction;
use napi::{Env, Status};

use super::error::WebRtcError;
use super::events::Event;
use super::listeners::{Kind, Listener, Listeners, Made, Membership, Topic};

/// Calls into JavaScript from the bus thread; never blocks it (the queue is unbounded).
pub type Dispatch = ThreadsafeFunction<Event, (), (), Status, false, false, 0>;

/// Made on the JavaScript thread by `start`.
pub fn dispatcher(env: &Env, listeners: Arc<Listeners>) -> napi::Result<Dispatch> {
    // A threadsafe function wraps a JavaScript function, which Node calls after the callback
    // below; the callback has called the listeners already, so this one has nothing to do.
    let delivered: Function<(), ()> =
        env.create_function_from_closure("remotemediaWebRtcEvent", |_| Ok(()))?;
    delivered
        .build_threadsafe_function::<Event>()
        .callee_handled::<false>()
        .weak::<false>()
        .build_callback(move |ctx| {
            let env = ctx.env;
            let delivery = catch_unwind(AssertUnwindSafe(|| deliver(&env, &listeners, ctx.value)));
            let failed = match delivery {
                Ok(Ok(())) => None,
                Ok(Err(e)) => Some(e),
                Err(_) => Some(WebRtcError::internal("delivering an event panicked").to_js(&env)),
            };
            if let Some(e) = failed {
                env.fatal_exception(e);
            }
            Ok(())
        })
}

fn deliver(env: &Env, listeners: &Listeners, event: Event) -> napi::Result<()> {
    let membership = Membership::of(&event).map(|(session, change, peer)| {
        (Topic::Session(session.to_owned(), change), peer.to_owned())
    });
    let server_listeners = listeners.of(env, &Topic::Server(Kind::of(&event)))?;
    if !server_listeners.is_empty() {
        // SAFETY: a threadsafe function's callback runs on the JavaScript thread, in a scope.
        let object = Made(unsafe { to_js(env, event)? });
        call_each(env, server_listeners, object);
    }
    if let Some((topic, peer)) = membership {
        let session_listeners = listeners.of(env, &topic)?;
        if !session_listeners.is_empty() {
            // SAFETY: as above.
            let peer = Made(unsafe { String::to_napi_value(env.raw(), peer)? });
            call_each(env, session_listeners, peer);
        }
    }
    Ok(())
}

/// # Safety
/// On the JavaScript thread of `env`, inside a handle scope (a threadsafe function's callback).
unsafe fn to_js(env: &Env, event: Event) -> napi::Result<napi::sys::napi_value> {
    let raw = env.raw();
    unsafe {
        match event {
            Event::PeerConnected(e) => ToNapiValue::to_napi_value(raw, e),
            Event::PeerDisconnected(e) => ToNapiValue::to_napi_value(raw, e),
            Event::PipelineOutput(e) => ToNapiValue::to_napi_value(raw, e),
            Event::Data(e) => ToNapiValue::to_napi_value(raw, e),
            Event::Error(e) => ToNapiValue::to_napi_value(raw, e),
            Event::Session(e) => ToNapiValue::to_napi_value(raw, e),
        }
    }
}

fn call_each(env: &Env, listeners: Vec<Listener<'_>>, arg: Made) {
    for listener in listeners {
        if let Err(thrown) = listener.call(arg) {
            env.fatal_exception(thrown);
        }
    }
}
