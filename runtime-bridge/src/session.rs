//! The two ways RemoteMedia's runtime core is called: unary (inputs in, all outputs back) and
//! streaming sessions (create / send / recv / close).

use crate::sync::lock;
use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::data::RuntimeData;
use crate::executor::{Graph, NodeMetrics, Output, OutputSink, RuntimeError, Session};

/// Called on a pipeline thread after each output or error is queued, to wake whoever waits
/// for them elsewhere (an event loop). It must not block.
pub type Notify = Box<dyn Fn() + Send + Sync>;

struct ChannelSink {
    tx: Sender<Result<Output, RuntimeError>>,
    notify: Option<Notify>,
}

impl ChannelSink {
    fn queue(&self, item: Result<Output, RuntimeError>) {
        if self.tx.send(item).is_ok()
            && let Some(notify) = &self.notify
        {
            notify();
        }
    }
}

impl OutputSink for ChannelSink {
    fn output(&self, output: Output) {
        self.queue(Ok(output));
    }
    fn error(&self, error: RuntimeError) {
        self.queue(Err(error));
    }
}

/// A streaming session. Outputs wait in the session until `recv` takes them. One thread may
/// send while another receives.
pub struct StreamSession {
    session: Session,
    rx: Mutex<Receiver<Result<Output, RuntimeError>>>,
}

impl StreamSession {
    pub fn create(graph: Arc<Graph>) -> Result<Self, RuntimeError> {
        Self::create_notifying(graph, None)
    }

    /// `create`, calling `notify` each time an output or error is queued.
    pub fn create_notifying(
        graph: Arc<Graph>,
        notify: Option<Notify>,
    ) -> Result<Self, RuntimeError> {
        let (tx, rx) = channel();
        let session = Session::new(graph, Arc::new(ChannelSink { tx, notify }))?;
        Ok(Self {
            session,
            rx: Mutex::new(rx),
        })
    }

    pub fn send(&self, data: RuntimeData) -> Result<(), RuntimeError> {
        self.session.send(data)
    }

    /// Whether `send` returns quickly now (see `Session::send_is_quick`).
    pub fn send_is_quick(&self) -> bool {
        self.session.send_is_quick()
    }

    /// Feeds the source node `node_id` alone.
    pub fn send_to(&self, node_id: &str, data: RuntimeData) -> Result<(), RuntimeError> {
        self.session.send_to(node_id, data)
    }

    /// The next output, if one is ready.
    pub fn try_recv(&self) -> Option<Result<Output, RuntimeError>> {
        self.receiver().try_recv().ok()
    }

    /// Waits up to `timeout` for the next output.
    pub fn recv_timeout(&self, timeout: Duration) -> Option<Result<Output, RuntimeError>> {
        self.receiver().recv_timeout(timeout).ok()
    }

    fn receiver(&self) -> std::sync::MutexGuard<'_, Receiver<Result<Output, RuntimeError>>> {
        lock(&self.rx)
    }

    pub fn metrics(&self) -> Vec<NodeMetrics> {
        self.session.metrics()
    }

    /// Ends the stream: drains every node and returns the outputs not received yet.
    pub fn close(&self) -> Result<Vec<Output>, RuntimeError> {
        let drained = self.session.drain();
        let mut outputs = Vec::new();
        for item in self.receiver().try_iter() {
            outputs.push(item?);
        }
        drained.map(|()| outputs)
    }
}

/// Runs `inputs` through a fresh session of `graph`, drains it and returns every output in
/// the order it was produced.
pub fn execute_unary(
    graph: Arc<Graph>,
    inputs: impl IntoIterator<Item = RuntimeData>,
) -> Result<Vec<Output>, RuntimeError> {
    execute_unary_with_metrics(graph, inputs).map(|(outputs, _)| outputs)
}

/// `execute_unary`, also returning each node's counters.
pub fn execute_unary_with_metrics(
    graph: Arc<Graph>,
    inputs: impl IntoIterator<Item = RuntimeData>,
) -> Result<(Vec<Output>, Vec<NodeMetrics>), RuntimeError> {
    let session = StreamSession::create(graph)?;
    for input in inputs {
        session.send(input)?;
    }
    let outputs = session.close()?;
    Ok((outputs, session.metrics()))
}
