//! A session's sending thread: inputs that cannot go in from the JavaScript thread, and the
//! close, in the order they were sent.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, Mutex};
use std::thread;

use remotemedia_runtime::sync::lock;
use remotemedia_runtime::{NodeMetrics, Output, RuntimeData, StreamSession};

use super::deferred::{Deferred, settle};
use crate::error::{Failure, guarded};
use crate::output::{Emit, Metrics, deliver_guarded};

/// What a close leaves: the outputs nobody took yet and the counters.
struct Closed {
    outputs: Vec<Output>,
    metrics: Vec<NodeMetrics>,
}

pub enum Job {
    Send(RuntimeData, Deferred<()>),
    /// Settled with the metrics once the outputs went to `emit`.
    Close(Deferred<Metrics>, Arc<Emit>),
}

impl Job {
    fn fail(self, failure: Failure) {
        match self {
            Job::Send(_, deferred) => settle(deferred, Err(failure)),
            Job::Close(deferred, _) => settle(deferred, Err(failure)),
        }
    }
}

/// The session's sending thread, started when the first input cannot go in from the
/// JavaScript thread (or at close).
#[derive(Default)]
pub struct Feeder {
    jobs: Mutex<Option<Sender<Job>>>,
    /// Jobs handed over and not done. The JavaScript thread sends directly only at zero.
    pending: Arc<AtomicUsize>,
}

impl Feeder {
    pub fn idle(&self) -> bool {
        self.pending.load(Ordering::Acquire) == 0
    }

    /// Queues `job` behind the jobs before it; a job that cannot be queued fails at once.
    pub fn hand(&self, session: &Arc<StreamSession>, job: Job) {
        self.pending.fetch_add(1, Ordering::AcqRel);
        let refused = {
            let mut jobs = lock(&self.jobs);
            if jobs.is_none() {
                let (tx, rx) = channel();
                let (session, pending) = (Arc::clone(session), Arc::clone(&self.pending));
                let started = thread::Builder::new()
                    .name("rm-node-send".into())
                    .spawn(move || feed(&session, &rx, &pending));
                match started {
                    Ok(_) => *jobs = Some(tx),
                    Err(e) => {
                        drop(jobs);
                        self.pending.fetch_sub(1, Ordering::AcqRel);
                        return job.fail(Failure::Thread(e));
                    }
                }
            }
            // The thread ends only after a close: then the job is refused.
            jobs.as_ref().and_then(|jobs| jobs.send(job).err())
        };
        if let Some(refused) = refused {
            self.pending.fetch_sub(1, Ordering::AcqRel);
            refused.0.fail(Failure::Closed);
        }
    }
}

/// The sending thread: runs the jobs in order; after a close it ends, and the session goes
/// with it unless JavaScript still holds it.
fn feed(session: &StreamSession, jobs: &Receiver<Job>, pending: &AtomicUsize) {
    for job in jobs {
        match job {
            Job::Send(data, deferred) => {
                let sent = guarded(|| Ok(session.send(data)?));
                pending.fetch_sub(1, Ordering::AcqRel);
                settle(deferred, sent);
            }
            Job::Close(deferred, emit) => {
                let closed = guarded(|| {
                    let outputs = session.close()?;
                    Ok(Closed {
                        outputs,
                        metrics: session.metrics(),
                    })
                });
                pending.fetch_sub(1, Ordering::AcqRel);
                deferred.resolve(Box::new(move |env| {
                    let closed = closed.map_err(|f| f.into_js(&env))?;
                    deliver_guarded(&env, &emit, closed.outputs.into_iter().map(Ok).collect())?;
                    Ok(Metrics(closed.metrics))
                }));
                return;
            }
        }
    }
}
