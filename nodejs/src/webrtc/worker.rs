//! A server's command thread. Its first job makes the server (GStreamer's first start can scan
//! the plugin registry); then every call JavaScript makes (start, shutdown, data, peers,
//! sessions) is a job on it, run in the order the calls were made, so two sends reach the peer
//! in the order they were called. Each job settles its promise; the thread blocks where
//! GStreamer blocks, the JavaScript thread never does. The thread ends when the JavaScript
//! object is collected; a server still running then keeps running (its bus thread holds it),
//! as a listening `net.Server` nobody refers to does.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::mpsc::{self, Receiver, Sender};
use std::thread;

use napi::bindgen_prelude::Object;
use napi::{Env, JsDeferred};
use serde_json::Value;

use super::bus_watch::BusWatch;
use super::config::{Mode, Settings};
use super::dispatch::Dispatch;
use super::error::WebRtcError;
use super::listeners::Listeners;
use super::pipeline::ServerPipeline;
use super::reply::Reply;
use super::server::WebRtcServer;

type Settle = Box<dyn FnOnce(Env) -> napi::Result<Reply> + Send>;
type Pending = JsDeferred<Reply, Settle>;
type Job = Box<dyn FnOnce(&mut Worker) + Send>;

/// What the command thread owns: the server and, while it runs, its bus thread.
pub struct Worker {
    pub pipeline: Arc<ServerPipeline>,
    watch: Option<BusWatch>,
}

impl Worker {
    pub fn start(&mut self, dispatch: Dispatch) -> Result<(), WebRtcError> {
        self.watch = Some(self.pipeline.start(dispatch)?);
        Ok(())
    }

    pub fn shutdown(&mut self) {
        self.pipeline.stop(self.watch.take());
    }
}

/// A server as its JavaScript objects (the server and its sessions) hold it.
#[derive(Clone)]
pub struct Handle {
    pub pipeline: Arc<ServerPipeline>,
    pub listeners: Arc<Listeners>,
    jobs: Sender<Job>,
}

impl Handle {
    /// Runs `work` on the command thread; the promise settles with its outcome.
    pub fn submit<'env>(
        &self,
        env: &'env Env,
        work: impl FnOnce(&mut Worker) -> Result<Reply, WebRtcError> + Send + 'static,
    ) -> napi::Result<Object<'env>> {
        let (pending, promise) = env.create_deferred::<Reply, Settle>()?;
        let job: Job = Box::new(move |worker| settle(pending, guarded(|| work(worker))));
        self.jobs.send(job).map_err(|_| {
            WebRtcError::internal("the server's command thread has ended").to_js(env)
        })?;
        Ok(promise)
    }
}

/// Starts a server's command thread; the promise resolves with the `WebRtcServer`.
pub fn spawn<'env>(env: &'env Env, config: Value, mode: Mode) -> napi::Result<Object<'env>> {
    let (pending, promise) = env.create_deferred::<Reply, Settle>()?;
    let (jobs, queue) = mpsc::channel();
    thread::Builder::new()
        .name("rm-webrtc-server".into())
        .spawn(move || run(config, mode, pending, jobs, queue))
        .map_err(|e| {
            WebRtcError::internal(format!("cannot start the server's thread: {e}")).to_js(env)
        })?;
    Ok(promise)
}

fn run(config: Value, mode: Mode, pending: Pending, jobs: Sender<Job>, queue: Receiver<Job>) {
    let built = guarded(|| ServerPipeline::build(Settings::from_js(config, mode)?));
    let pipeline = match built {
        Ok(pipeline) => Arc::new(pipeline),
        Err(e) => return settle(pending, Err(e)),
    };
    let handle = Handle {
        pipeline: pipeline.clone(),
        listeners: Arc::default(),
        jobs,
    };
    settle(pending, Ok(Reply::Server(WebRtcServer::new(handle))));
    let mut worker = Worker {
        pipeline,
        watch: None,
    };
    // Ends when the last `Handle` (the JavaScript objects') is gone.
    for job in queue {
        job(&mut worker);
    }
}

fn settle(pending: Pending, outcome: Result<Reply, WebRtcError>) {
    pending.resolve(Box::new(move |env| outcome.map_err(|e| e.to_js(&env))));
}

/// Runs `f`, a panic of ours becoming an INTERNAL_ERROR instead of ending the thread.
fn guarded<T>(f: impl FnOnce() -> Result<T, WebRtcError>) -> Result<T, WebRtcError> {
    catch_unwind(AssertUnwindSafe(f)).unwrap_or_else(|payload| {
        let what = payload
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown panic".to_owned());
        Err(WebRtcError::internal(format!("panicked: {what}")))
    })
}
