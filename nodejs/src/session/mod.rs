//! The native half of index.js's `StreamSession` (the Python package's `Session` and
//! `runtime.StreamSession` split the same way).
//!
//! Sending: from the JavaScript thread while that is quick (`StreamSession::send_is_quick`:
//! cheap native nodes then run right there), through the session's sending thread (`feeder`)
//! otherwise, so a full queue or a Python node never holds the event loop; an input never
//! overtakes one sent before it. Receiving: outputs go to index.js's `emit` for the session,
//! those an input made on this thread right away, the others when index.js takes what is
//! queued (`sessionTakeReady`); when nothing is, it arms a promise (`sessionArm`, `wakers`)
//! that the pipeline thread queueing the next output settles, so waiting costs no thread and
//! no polling. No pipeline thread ever owns the session: its last owner is the JavaScript
//! object or the sending thread, so no pipeline thread ends up joining itself.

mod deferred;
mod feeder;
mod wakers;

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use napi::bindgen_prelude::{AsyncTask, External, Object, ToNapiValue, TypeName, Unknown};
use napi::{Env, Task, ValueType, sys};
use napi_derive::napi;
use remotemedia_runtime::sync::lock;
use remotemedia_runtime::{Output, RuntimeError, StreamSession};

use crate::error::{Failure, guarded};
use crate::input::to_data;
use crate::manifest::ManifestSource;
use crate::output::{Emit, Metrics, deliver};
use feeder::{Feeder, Job};
use wakers::Wakers;

/// A running session. index.js's `StreamSession` holds it as an external and calls the
/// `session*` functions below with it (an external costs a third of a class method's call).
pub struct NativeSession {
    /// `None` once closed.
    session: Mutex<Option<Arc<StreamSession>>>,
    wakers: Arc<Wakers>,
    feeder: Feeder,
    /// Where outputs go, in order (index.js's `emit` for this session).
    emit: Arc<Emit>,
}

type Handle = External<NativeSession>;

impl NativeSession {
    /// The session, while it is open (taken out of the lock: sending runs nodes and delivering
    /// calls JavaScript).
    fn open(&self) -> Result<Arc<StreamSession>, Failure> {
        lock(&self.session).clone().ok_or(Failure::Closed)
    }

    fn send<'env>(
        &self,
        env: &'env Env,
        kind: Unknown<'_>,
        fields: [Unknown<'_>; 4],
    ) -> Result<Option<Object<'env>>, Failure> {
        let session = self.open()?;
        let data = to_data(env, kind, fields)?;
        if self.feeder.idle() && session.send_is_quick() {
            session.send(data)?;
            deliver(env, &self.emit, ready(&session))?;
            return Ok(None);
        }
        let (deferred, promise) = env.create_deferred()?;
        self.feeder.hand(&session, Job::Send(data, deferred));
        Ok(Some(promise))
    }
}

/// Everything `session` queued now, in order, without waiting.
fn ready(session: &StreamSession) -> Vec<Result<Output, RuntimeError>> {
    std::iter::from_fn(|| session.try_recv()).collect()
}

/// Sends one input, tagged by index.js: from this thread when that is quick, handing what it
/// made to `emit` at once (`null`); otherwise through the sending thread, returning a promise
/// settled once it went in (after the inputs before it).
#[napi(namespace = "internal", catch_unwind)]
pub fn session_send<'env>(
    env: &'env Env,
    handle: &Handle,
    kind: Unknown<'_>,
    a: Unknown<'_>,
    b: Unknown<'_>,
    c: Unknown<'_>,
    d: Unknown<'_>,
) -> napi::Result<Option<Object<'env>>> {
    handle
        .send(env, kind, [a, b, c, d])
        .map_err(|f| f.into_js(env))
}

/// A promise settled when the next output or error is queued (or at `sessionDisarm`). Arm
/// before the last look at `sessionTakeReady`, so no output slips between the two.
#[napi(namespace = "internal", catch_unwind)]
pub fn session_arm<'env>(env: &'env Env, handle: &Handle) -> napi::Result<Object<'env>> {
    let (deferred, promise) = env.create_deferred()?;
    handle.wakers.arm(deferred);
    Ok(promise)
}

/// Settles the armed promises now (their waiters look again).
#[napi(namespace = "internal", catch_unwind)]
pub fn session_disarm(handle: &Handle) {
    handle.wakers.armed.store(false, Ordering::SeqCst);
    handle.wakers.wake_all();
}

/// Hands everything queued now to `emit`, in order, without waiting: outputs, and node
/// failures in their places.
#[napi(namespace = "internal", catch_unwind)]
pub fn session_take_ready(env: &Env, handle: &Handle) -> napi::Result<()> {
    match handle.open() {
        Ok(session) => deliver(env, &handle.emit, ready(&session)),
        Err(_) => Ok(()),
    }
}

/// Ends the input: after the inputs sent before, drains the pipeline, hands the outputs
/// nobody took yet to `emit`, resolves with the metrics, and frees the session.
#[napi(namespace = "internal", catch_unwind)]
pub fn session_close<'env>(env: &'env Env, handle: &Handle) -> napi::Result<Object<'env>> {
    let session = lock(&handle.session).take().ok_or(Failure::Closed);
    let session = session.map_err(|f| f.into_js(env))?;
    let (deferred, promise) = env.create_deferred()?;
    let job = Job::Close(deferred, Arc::clone(&handle.emit));
    handle.feeder.hand(&session, job);
    Ok(promise)
}

/// Each node's counters so far.
#[napi(namespace = "internal", catch_unwind)]
pub fn session_metrics(env: &Env, handle: &Handle) -> napi::Result<Metrics> {
    let session = handle.open().map_err(|f| f.into_js(env))?;
    Ok(Metrics(session.metrics()))
}

/// A started session, as the external index.js holds.
pub struct Opened(Handle);

impl TypeName for Opened {
    fn type_name() -> &'static str {
        "External"
    }
    fn value_type() -> ValueType {
        ValueType::External
    }
}

impl ToNapiValue for Opened {
    unsafe fn to_napi_value(env: sys::napi_env, val: Self) -> napi::Result<sys::napi_value> {
        // SAFETY: napi calls this with the current call's env.
        unsafe { ToNapiValue::to_napi_value(env, val.0) }
    }
}

/// Starting a session: the manifest loads and the nodes start (Python workers too) on a
/// libuv worker thread.
pub struct Open {
    manifest: ManifestSource,
    wakers: Arc<Wakers>,
    emit: Arc<Emit>,
}

impl Task for Open {
    type Output = Result<StreamSession, Failure>;
    type JsValue = Opened;

    fn compute(&mut self) -> napi::Result<Self::Output> {
        Ok(guarded(|| {
            let graph = self.manifest.load()?;
            let wakers = Arc::clone(&self.wakers);
            let notify = Box::new(move || wakers.output_queued());
            Ok(StreamSession::create_notifying(graph, Some(notify))?)
        }))
    }

    fn resolve(&mut self, env: Env, output: Self::Output) -> napi::Result<Opened> {
        let session = output.map_err(|f| f.into_js(&env))?;
        Ok(Opened(External::new(NativeSession {
            session: Mutex::new(Some(Arc::new(session))),
            wakers: Arc::clone(&self.wakers),
            feeder: Feeder::default(),
            emit: Arc::clone(&self.emit),
        })))
    }
}

/// Starts a session of `manifest` off the JavaScript thread; its outputs will go to `emit`.
/// Throws for a manifest argument it cannot take (index.js makes that a rejection).
#[napi(namespace = "internal", catch_unwind)]
pub fn open_session(env: Env, manifest: Unknown<'_>, emit: Emit) -> napi::Result<AsyncTask<Open>> {
    let manifest = ManifestSource::from_js(&env, manifest).map_err(|f| f.into_js(&env))?;
    Ok(AsyncTask::new(Open {
        manifest,
        wakers: Arc::default(),
        emit: Arc::new(emit),
    }))
}
