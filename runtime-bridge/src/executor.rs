//! The streaming graph executor.
//!
//! A `Session` owns one instance of every node of a manifest. Inline nodes run on the thread
//! that delivers their input, so a graph of cheap nodes costs no thread hop at all. Dedicated
//! nodes run on their own thread behind a bounded queue: a full queue blocks the sender, which
//! is the backpressure. Adaptive nodes (Python) have such a thread too, but while their recent
//! calls took less than `INLINE_BUDGET` and their queue is empty, the sender runs them itself:
//! a cheap Python node then costs its two process wake-ups and no thread hand-over. Their cost
//! is learnt, not known: a node that was cheap so far can hold the sender for one slow call,
//! after which it is back on its thread. Outputs of sink nodes and `is_output_node` nodes go to
//! an `OutputSink`.

use crate::sync::lock;
use std::collections::BTreeMap;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use std::{fmt, thread};

use crate::data::{Packet, RuntimeData};
use crate::error_code::ErrorCode;
use crate::manifest::Manifest;
use crate::node::{Emitter, Node, NodeError, StreamFormat, Threading};
use crate::python::{PythonNode, WorkerOptions};

/// Capacity of a dedicated node's input queue, in packets.
pub const QUEUE_CAPACITY: usize = 16;

/// An adaptive node runs on the sender's thread while its recent calls averaged less than
/// this: blocking a streaming thread that long is harmless, and saves two thread hand-overs.
pub const INLINE_BUDGET: Duration = Duration::from_millis(1);

/// Something a node of the graph delivered.
#[derive(Clone, Debug)]
pub struct Output {
    pub node_id: Arc<str>,
    pub data: RuntimeData,
    pub pts: Option<u64>,
}

/// A node that failed at run time, named.
#[derive(Clone, Debug, PartialEq)]
pub struct RuntimeError {
    pub node_id: String,
    /// What kind of failure it is, for users (a node's `NodeError::code`, `Internal` for a
    /// panic or a lost node thread).
    pub code: ErrorCode,
    pub message: String,
}

impl fmt::Display for RuntimeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "node {:?}: {}", self.node_id, self.message)
    }
}

impl std::error::Error for RuntimeError {}

/// Receives a session's outputs and the errors of its dedicated nodes. Called from the
/// sending thread for inline nodes and from node threads otherwise; must not block for long.
pub trait OutputSink: Send + Sync {
    fn output(&self, output: Output);
    fn error(&self, error: RuntimeError);
    /// A problem a node recovered from (a Python worker restarted by its policy).
    fn warning(&self, _warning: RuntimeError) {}
}

/// The static shape of a manifest: who feeds whom, formats, latency.
pub struct Graph {
    manifest: Manifest,
    ids: Vec<Arc<str>>,
    succ: Vec<Vec<usize>>,
    /// First predecessor of each node (its format source), if any.
    first_pred: Vec<Option<usize>>,
    sources: Vec<usize>,
    is_output: Vec<bool>,
}

impl Graph {
    pub fn new(manifest: Manifest) -> Self {
        let n = manifest.nodes.len();
        let mut succ = vec![Vec::new(); n];
        let mut first_pred = vec![None; n];
        for &(from, to) in &manifest.connections {
            succ[from].push(to);
            first_pred[to].get_or_insert(from);
        }
        let sources = (0..n).filter(|&i| first_pred[i].is_none()).collect();
        let is_output = (0..n)
            .map(|i| succ[i].is_empty() || manifest.nodes[i].is_output_node)
            .collect();
        let ids = manifest
            .nodes
            .iter()
            .map(|e| Arc::from(e.id.as_str()))
            .collect();
        Self {
            manifest,
            ids,
            succ,
            first_pred,
            sources,
            is_output,
        }
    }

    /// The ids of the nodes inputs go to (those with no predecessor).
    pub fn source_ids(&self) -> impl Iterator<Item = &str> {
        self.sources.iter().map(|&s| &*self.ids[s])
    }

    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// True when some node runs on a thread of its own, so outputs can arrive at any time.
    pub fn has_dedicated_nodes(&self) -> bool {
        self.manifest
            .nodes
            .iter()
            .any(|n| n.spec.threading != Threading::Inline)
    }

    /// The output format of every node for this input format.
    pub fn formats(&self, input: &StreamFormat) -> Result<Vec<StreamFormat>, RuntimeError> {
        let mut formats = vec![StreamFormat::Any; self.ids.len()];
        for &i in &self.manifest.topo_order {
            let node = &self.manifest.nodes[i];
            let node_in = self.first_pred[i].map_or(input, |p| &formats[p]);
            formats[i] = (node.spec.format)(&node.params, node_in).map_err(|e| RuntimeError {
                node_id: node.id.clone(),
                // Found before data flows: the manifest does not fit its input.
                code: ErrorCode::Config,
                message: format!("cannot take {node_in}: {e}"),
            })?;
        }
        Ok(formats)
    }

    /// The output node whose media is the graph's media output: a sink node (no outgoing
    /// connection) before an `is_output_node` tap, media (audio, video) before text, manifest
    /// order last.
    fn primary_output(&self, formats: &[StreamFormat]) -> Option<usize> {
        let is_media =
            |i: usize| matches!(formats[i], StreamFormat::Audio { .. } | StreamFormat::Video);
        (0..formats.len())
            .filter(|&i| self.is_output[i])
            .min_by_key(|&i| (!self.succ[i].is_empty(), !is_media(i), i))
    }

    /// The format of the media the graph delivers for this input.
    pub fn output_format(&self, input: &StreamFormat) -> Result<StreamFormat, RuntimeError> {
        let formats = self.formats(input)?;
        Ok(self
            .primary_output(&formats)
            .map_or(StreamFormat::Any, |i| formats[i].clone()))
    }

    /// The id of the node that delivers the graph's media output for this input.
    pub fn media_output_node(&self, input: &StreamFormat) -> Option<&str> {
        let formats = self.formats(input).ok()?;
        self.primary_output(&formats).map(|i| &*self.ids[i])
    }

    /// The longest path of node latencies from the input to an output, in ns.
    pub fn latency_ns(&self, input: &StreamFormat) -> u64 {
        let Ok(formats) = self.formats(input) else {
            return 0;
        };
        let mut total = vec![0u64; self.ids.len()];
        let mut worst = 0;
        for &i in &self.manifest.topo_order {
            let node = &self.manifest.nodes[i];
            let node_in = self.first_pred[i].map_or(input, |p| &formats[p]);
            total[i] += (node.spec.latency_ns)(&node.params, node_in);
            for &s in &self.succ[i] {
                total[s] = total[s].max(total[i]);
            }
            if self.is_output[i] {
                worst = worst.max(total[i]);
            }
        }
        worst
    }
}

/// Per-node counters.
#[derive(Clone, Debug, PartialEq)]
pub struct NodeMetrics {
    pub node_id: String,
    pub processed: u64,
    pub busy_ns: u64,
    pub errors: u64,
    /// What the node itself counts (`Emitter::count`), by name.
    pub counters: BTreeMap<&'static str, u64>,
}

#[derive(Default)]
struct Counters {
    processed: AtomicU64,
    busy_ns: AtomicU64,
    errors: AtomicU64,
    /// Locked only when a node counted something.
    own: Mutex<BTreeMap<&'static str, u64>>,
}

enum Msg {
    Data(Packet, u64),
    Finish(SyncSender<()>),
    Reset(SyncSender<()>),
    Barrier(SyncSender<()>),
    Stop,
}

enum Slot {
    Inline(Mutex<Box<dyn Node>>),
    Dedicated(Queued),
}

/// A node with a thread of its own, fed through a bounded queue.
struct Queued {
    tx: SyncSender<Msg>,
    /// Locked by the node's thread for each message, and by a sender running it inline,
    /// until the outputs are routed: so outputs leave in the order their inputs ran.
    node: Mutex<Box<dyn Node>>,
    /// Inputs sent to the thread whose outputs are not routed yet. An adaptive node runs
    /// inline only at zero, so an input never overtakes one queued before it.
    queued: AtomicUsize,
    /// Adaptive: the recent call time, ns (a moving average; `u64::MAX` until measured).
    recent_ns: Option<AtomicU64>,
    /// A Python node: its next call may take any time, whatever the recent ones took.
    unbounded: bool,
}

impl Queued {
    /// One call's time into the moving average. A call over the budget (or a failure)
    /// counts at once, so the next calls go to the thread; cheap ones bring it back slowly.
    fn observe(&self, took: Duration, ok: bool) {
        let Some(recent) = &self.recent_ns else {
            return;
        };
        let sample = if ok { took.as_nanos() as u64 } else { u64::MAX };
        let old = recent.load(Ordering::Relaxed);
        let new = if old == u64::MAX || sample == u64::MAX {
            sample
        } else {
            let average = old - old / 8 + sample / 8;
            if sample >= INLINE_BUDGET.as_nanos() as u64 {
                average.max(sample)
            } else {
                average
            }
        };
        recent.store(new, Ordering::Relaxed);
    }

    fn runs_inline(&self) -> bool {
        self.recent_ns.as_ref().is_some_and(|r| {
            r.load(Ordering::Relaxed) < INLINE_BUDGET.as_nanos() as u64
                && self.queued.load(Ordering::Acquire) == 0
        })
    }
}

struct Shared {
    graph: Arc<Graph>,
    slots: Vec<Slot>,
    counters: Vec<Counters>,
    sink: Arc<dyn OutputSink>,
    /// Bumped by every reset; queued packets of an older epoch are dropped.
    epoch: AtomicU64,
}

/// One running instance of a graph, with its own node state.
pub struct Session {
    shared: Arc<Shared>,
    workers: Vec<JoinHandle<()>>,
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into())
}

impl Shared {
    fn error(&self, idx: usize, code: ErrorCode, message: String) -> RuntimeError {
        RuntimeError {
            node_id: self.graph.ids[idx].to_string(),
            code,
            message,
        }
    }

    /// Runs one input through node `idx` (see `run`), counting it as processed.
    fn process(
        &self,
        idx: usize,
        node: &mut dyn Node,
        packet: Packet,
    ) -> Result<Vec<Packet>, RuntimeError> {
        self.counters[idx].processed.fetch_add(1, Ordering::Relaxed);
        let pts = packet.pts;
        self.run(idx, node, pts, |n, e| n.process(packet, e))
    }

    /// Runs `f` on node `idx`, timing it and turning a panic into an `Internal` error.
    fn run(
        &self,
        idx: usize,
        node: &mut dyn Node,
        pts: Option<u64>,
        f: impl FnOnce(&mut dyn Node, &mut Emitter) -> Result<(), NodeError>,
    ) -> Result<Vec<Packet>, RuntimeError> {
        let mut emitter = Emitter {
            current_pts: pts,
            ..Emitter::default()
        };
        let start = Instant::now();
        let result = catch_unwind(AssertUnwindSafe(|| f(node, &mut emitter)));
        for warning in emitter.warnings.drain(..) {
            self.sink
                .warning(self.error(idx, ErrorCode::Pipeline, warning));
        }
        let c = &self.counters[idx];
        if !emitter.counts.is_empty() {
            let mut own = lock(&c.own);
            for what in emitter.counts.drain(..) {
                *own.entry(what).or_default() += 1;
            }
        }
        c.busy_ns
            .fetch_add(start.elapsed().as_nanos() as u64, Ordering::Relaxed);
        let error = match result {
            Ok(Ok(())) => return Ok(emitter.packets),
            Ok(Err(e)) => self.error(idx, e.code(), e.to_string()),
            Err(payload) => self.error(
                idx,
                ErrorCode::Internal,
                format!("panicked: {}", panic_message(&*payload)),
            ),
        };
        c.errors.fetch_add(1, Ordering::Relaxed);
        Err(error)
    }

    fn deliver(&self, idx: usize, packet: Packet) -> Result<(), RuntimeError> {
        match &self.slots[idx] {
            Slot::Inline(node) => {
                let emitted = {
                    let mut node = lock(node);
                    self.process(idx, node.as_mut(), packet)?
                };
                self.route(idx, emitted)
            }
            Slot::Dedicated(q) => {
                if q.runs_inline()
                    && let Ok(mut node) = q.node.try_lock()
                {
                    let start = Instant::now();
                    let emitted = self.process(idx, node.as_mut(), packet);
                    q.observe(start.elapsed(), emitted.is_ok());
                    // As on its thread: a failure goes to the sink, in order with the
                    // outputs, not to this sender (whether it ran here is a matter of timing).
                    if let Err(e) = emitted.and_then(|p| self.route(idx, p)) {
                        self.sink.error(e);
                    }
                    return Ok(());
                }
                q.queued.fetch_add(1, Ordering::AcqRel);
                q.tx.send(Msg::Data(packet, self.epoch.load(Ordering::Acquire)))
                    .map_err(|_| {
                        q.queued.fetch_sub(1, Ordering::AcqRel);
                        self.error(idx, ErrorCode::Internal, "node thread has stopped".into())
                    })
            }
        }
    }

    fn route(&self, idx: usize, packets: Vec<Packet>) -> Result<(), RuntimeError> {
        let succ = &self.graph.succ[idx];
        for packet in packets {
            if self.graph.is_output[idx] {
                let output = |data| Output {
                    node_id: Arc::clone(&self.graph.ids[idx]),
                    data,
                    pts: packet.pts,
                };
                if succ.is_empty() {
                    self.sink.output(output(packet.data));
                    continue;
                }
                self.sink.output(output(packet.data.clone()));
            }
            if let Some((&last, rest)) = succ.split_last() {
                for &s in rest {
                    self.deliver(s, packet.clone())?;
                }
                self.deliver(last, packet)?;
            }
        }
        Ok(())
    }

    fn worker(&self, idx: usize, rx: Receiver<Msg>) {
        let Slot::Dedicated(q) = &self.slots[idx] else {
            return;
        };
        let node = || lock(&q.node);
        for msg in rx {
            match msg {
                Msg::Data(packet, epoch) => {
                    if epoch == self.epoch.load(Ordering::Acquire) {
                        let start = Instant::now();
                        // The node is unlocked before its outputs are routed: routing may
                        // wait for room downstream.
                        let emitted = self.process(idx, node().as_mut(), packet);
                        q.observe(start.elapsed(), emitted.is_ok());
                        if let Err(e) = emitted.and_then(|p| self.route(idx, p)) {
                            self.sink.error(e);
                        }
                    }
                    q.queued.fetch_sub(1, Ordering::AcqRel);
                }
                Msg::Finish(ack) => {
                    let emitted = self.run(idx, node().as_mut(), None, |n, e| n.finish(e));
                    let result = emitted.and_then(|emitted| self.route(idx, emitted));
                    if let Err(e) = result {
                        self.sink.error(e);
                    }
                    let _ = ack.send(());
                }
                Msg::Reset(ack) => {
                    node().reset();
                    let _ = ack.send(());
                }
                Msg::Barrier(ack) => {
                    let _ = ack.send(());
                }
                Msg::Stop => break,
            }
        }
    }
}

/// One instance of every node. Python workers are all started first and then awaited, so
/// their modules load and initialize in parallel.
fn create_nodes(graph: &Graph) -> Result<Vec<Box<dyn Node>>, RuntimeError> {
    let fail = |entry: &crate::manifest::NodeEntry, e: NodeError| RuntimeError {
        node_id: entry.id.clone(),
        code: e.code(),
        message: e.to_string(),
    };
    let options = graph
        .manifest
        .nodes
        .iter()
        .any(|e| e.python.is_some())
        .then(WorkerOptions::default);
    let mut python = Vec::new();
    for (idx, entry) in graph.manifest.nodes.iter().enumerate() {
        if let (Some(cfg), Some(opts)) = (&entry.python, &options) {
            let node = PythonNode::spawn(&entry.id, cfg, opts).map_err(|e| fail(entry, e))?;
            python.push((idx, node));
        }
    }
    for (idx, node) in &mut python {
        let entry = &graph.manifest.nodes[*idx];
        node.wait_ready().map_err(|e| fail(entry, e))?;
    }
    let mut python = python.into_iter().peekable();
    let mut nodes: Vec<Box<dyn Node>> = Vec::new();
    for (idx, entry) in graph.manifest.nodes.iter().enumerate() {
        match python.next_if(|(i, _)| *i == idx) {
            Some((_, node)) => nodes.push(Box::new(node)),
            None => nodes.push((entry.spec.create)(&entry.params).map_err(|e| fail(entry, e))?),
        }
    }
    Ok(nodes)
}

impl Session {
    /// Instantiates every node of the graph and starts the dedicated ones.
    pub fn new(graph: Arc<Graph>, sink: Arc<dyn OutputSink>) -> Result<Self, RuntimeError> {
        let mut slots = Vec::new();
        let mut pending = Vec::new();
        let nodes = create_nodes(&graph)?;
        for ((idx, entry), node) in graph.manifest.nodes.iter().enumerate().zip(nodes) {
            let threading = entry.spec.threading;
            if threading == Threading::Inline {
                slots.push(Slot::Inline(Mutex::new(node)));
                continue;
            }
            let (tx, rx) = sync_channel(QUEUE_CAPACITY);
            slots.push(Slot::Dedicated(Queued {
                tx,
                node: Mutex::new(node),
                queued: AtomicUsize::new(0),
                recent_ns: (threading == Threading::Adaptive).then(|| AtomicU64::new(u64::MAX)),
                unbounded: entry.python.is_some(),
            }));
            pending.push((idx, rx));
        }
        let counters = slots.iter().map(|_| Counters::default()).collect();
        let shared = Arc::new(Shared {
            graph,
            slots,
            counters,
            sink,
            epoch: AtomicU64::new(0),
        });
        let mut workers = Vec::new();
        for (idx, rx) in pending {
            let worker_shared = Arc::clone(&shared);
            let name = format!("rm-{}", shared.graph.ids[idx]);
            let spawned = thread::Builder::new()
                .name(name.chars().take(15).collect())
                .spawn(move || worker_shared.worker(idx, rx));
            match spawned {
                Ok(handle) => workers.push(handle),
                Err(e) => {
                    let session = Self { shared, workers };
                    return Err(session.shared.error(
                        idx,
                        ErrorCode::Internal,
                        format!("cannot start node thread: {e}"),
                    ));
                }
            }
        }
        tracing::debug!(
            nodes = shared.graph.ids.len(),
            threads = workers.len(),
            "session started"
        );
        Ok(Self { shared, workers })
    }

    /// Feeds one input to the source node `node_id` alone. Blocks like `send`.
    pub fn send_to(&self, node_id: &str, data: RuntimeData) -> Result<(), RuntimeError> {
        let graph = &self.shared.graph;
        let source = graph
            .sources
            .iter()
            .copied()
            .find(|&s| &*graph.ids[s] == node_id)
            .ok_or_else(|| RuntimeError {
                node_id: node_id.to_owned(),
                code: ErrorCode::Config,
                message: format!(
                    "not a source node of this pipeline (sources: {})",
                    graph.source_ids().collect::<Vec<_>>().join(", ")
                ),
            })?;
        self.shared.deliver(source, Packet::new(data))
    }

    /// Feeds one input to every source node. Blocks while a dedicated node's queue is full.
    pub fn send(&self, data: RuntimeData) -> Result<(), RuntimeError> {
        let packet = Packet::new(data);
        let sources = &self.shared.graph.sources;
        if let Some((&last, rest)) = sources.split_last() {
            for &s in rest {
                self.shared.deliver(s, packet.clone())?;
            }
            self.shared.deliver(last, packet)?;
        }
        Ok(())
    }

    /// Whether `send` returns quickly now: no dedicated node has more than half a queue
    /// waiting (one input rarely makes more than a few packets for one node), and no Python
    /// node would run on the sender (its next call may be slow, whatever the recent ones
    /// took; a native adaptive node's calls are bounded). A caller that must not block (an
    /// event loop) sends directly while this holds and from a thread otherwise.
    pub fn send_is_quick(&self) -> bool {
        self.shared.slots.iter().all(|slot| match slot {
            Slot::Inline(_) => true,
            Slot::Dedicated(q) => {
                !(q.unbounded && q.runs_inline())
                    && q.queued.load(Ordering::Acquire) <= QUEUE_CAPACITY / 2
            }
        })
    }

    /// End of stream: every node, in graph order, processes what is queued and emits what
    /// it held back. Returns when all of it reached the sink.
    pub fn drain(&self) -> Result<(), RuntimeError> {
        let mut first_error = None;
        for &idx in &self.shared.graph.manifest.topo_order {
            let result = match &self.shared.slots[idx] {
                Slot::Inline(node) => {
                    let emitted = {
                        let mut node = lock(node);
                        self.shared
                            .run(idx, node.as_mut(), None, |n, e| n.finish(e))
                    };
                    emitted.and_then(|p| self.shared.route(idx, p))
                }
                Slot::Dedicated(q) => self.round_trip(idx, &q.tx, Msg::Finish),
            };
            if let Err(e) = result {
                first_error.get_or_insert(e);
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    /// Returns once every input sent so far has been processed by every node (without
    /// ending the stream), so what comes next is ordered after its outputs.
    pub fn barrier(&self) {
        for &idx in &self.shared.graph.manifest.topo_order {
            if let Slot::Dedicated(q) = &self.shared.slots[idx] {
                let _ = self.round_trip(idx, &q.tx, Msg::Barrier);
            }
        }
    }

    /// Flush: drops queued data and resets every node's state.
    pub fn reset(&self) {
        self.shared.epoch.fetch_add(1, Ordering::AcqRel);
        for (idx, slot) in self.shared.slots.iter().enumerate() {
            match slot {
                Slot::Inline(node) => lock(node).reset(),
                Slot::Dedicated(q) => {
                    let _ = self.round_trip(idx, &q.tx, Msg::Reset);
                }
            }
        }
    }

    fn round_trip(
        &self,
        idx: usize,
        tx: &SyncSender<Msg>,
        msg: fn(SyncSender<()>) -> Msg,
    ) -> Result<(), RuntimeError> {
        let (ack_tx, ack_rx) = sync_channel(1);
        tx.send(msg(ack_tx))
            .ok()
            .and_then(|()| ack_rx.recv().ok())
            .ok_or_else(|| {
                self.shared
                    .error(idx, ErrorCode::Internal, "node thread has stopped".into())
            })
    }

    pub fn metrics(&self) -> Vec<NodeMetrics> {
        self.shared
            .counters
            .iter()
            .zip(&self.shared.graph.ids)
            .map(|(c, id)| NodeMetrics {
                node_id: id.to_string(),
                processed: c.processed.load(Ordering::Relaxed),
                busy_ns: c.busy_ns.load(Ordering::Relaxed),
                errors: c.errors.load(Ordering::Relaxed),
                counters: lock(&c.own).clone(),
            })
            .collect()
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        for slot in &self.shared.slots {
            if let Slot::Dedicated(q) = slot {
                let _ = q.tx.send(Msg::Stop);
            }
        }
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
    }
}
