//! `remotemedia.v1.PipelineExecutionService`: one manifest run over the given inputs, within
//! the server's time and memory limits.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use remotemedia_runtime::{Output, Registry, RuntimeData, RuntimeError, StreamSession};
use tonic::{Request, Response, Status};

use super::convert::{self, to_runtime};
use super::metrics::Metrics;
use super::pb;
use super::pb::error_response::Kind;

/// What one execution may use.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// The longest a call may run; `timeout_ms` asks for less, never more.
    pub max_timeout: Duration,
    /// Bytes of inputs plus outputs one call may hold.
    pub max_memory_bytes: usize,
}

pub struct ExecutionService {
    metrics: Arc<Metrics>,
    limits: Limits,
}

impl ExecutionService {
    pub fn new(metrics: Arc<Metrics>, limits: Limits) -> Self {
        Self { metrics, limits }
    }
}

pub fn error(
    kind: Kind,
    message: impl Into<String>,
    node_id: &str,
    context: &str,
) -> pb::ErrorResponse {
    pb::ErrorResponse {
        kind: kind.into(),
        message: message.into(),
        node_id: node_id.to_owned(),
        context: context.to_owned(),
    }
}

fn failed(e: pb::ErrorResponse) -> pb::ExecuteResponse {
    pb::ExecuteResponse {
        outcome: Some(pb::execute_response::Outcome::Error(e)),
    }
}

fn node_failed(e: &RuntimeError) -> pb::ExecuteResponse {
    failed(error(Kind::Node, &e.message, &e.node_id, ""))
}

pub fn metrics_pb(m: Vec<remotemedia_runtime::NodeMetrics>) -> Vec<pb::NodeMetrics> {
    m.into_iter()
        .map(|m| pb::NodeMetrics {
            node_id: m.node_id,
            processed: m.processed,
            busy_ns: m.busy_ns,
            errors: m.errors,
            counters: m
                .counters
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v))
                .collect(),
        })
        .collect()
}

/// The inputs of a request, checked: each must be a valid buffer for a source node.
type Inputs = Vec<(Option<String>, RuntimeData)>;

struct Run {
    session: StreamSession,
    outputs: Vec<pb::NodeOutput>,
    used: usize,
    limit: usize,
}

impl Run {
    fn keep(&mut self, output: Output) -> Result<(), Status> {
        self.used += convert::size_of(&output.data);
        if self.used > self.limit {
            return Err(Status::resource_exhausted(format!(
                "pipeline output passed the memory limit of {} MB at node '{}'; stopped",
                self.limit >> 20,
                output.node_id
            )));
        }
        self.outputs.push(convert::output(&output));
        Ok(())
    }

    /// Takes what the nodes produced so far; a node error ends the run.
    fn collect(&mut self) -> Result<Result<(), RuntimeError>, Status> {
        while let Some(next) = self.session.try_recv() {
            match next {
                Ok(o) => self.keep(o)?,
                Err(e) => return Ok(Err(e)),
            }
        }
        Ok(Ok(()))
    }
}

/// Runs on a blocking thread; stops between inputs once `cancelled` is set.
fn run_blocking(
    graph: Arc<remotemedia_runtime::Graph>,
    inputs: Inputs,
    used: usize,
    limit: usize,
    cancelled: &AtomicBool,
) -> Result<pb::ExecuteResponse, Status> {
    let started = Instant::now();
    let session = match StreamSession::create(graph) {
        Ok(s) => s,
        Err(e) => return Ok(node_failed(&e)),
    };
    let mut run = Run {
        session,
        outputs: Vec::new(),
        used,
        limit,
    };
    for (node, data) in inputs {
        if cancelled.load(Ordering::Relaxed) {
            return Err(Status::deadline_exceeded("stopped"));
        }
        let sent = match node {
            Some(node) => run.session.send_to(&node, data),
            None => run.session.send(data),
        };
        if let Err(e) = sent {
            return Ok(node_failed(&e));
        }
        if let Err(e) = run.collect()? {
            return Ok(node_failed(&e));
        }
    }
    let rest = match run.session.close() {
        Ok(rest) => rest,
        Err(e) => return Ok(node_failed(&e)),
    };
    if let Err(e) = run.collect()? {
        return Ok(node_failed(&e));
    }
    for o in rest {
        run.keep(o)?;
    }
    Ok(pb::ExecuteResponse {
        outcome: Some(pb::execute_response::Outcome::Result(pb::ExecutionResult {
            metrics: metrics_pb(run.session.metrics()),
            outputs: run.outputs,
            wall_time_us: started.elapsed().as_micros() as u64,
        })),
    })
}

impl ExecutionService {
    async fn execute(&self, req: pb::ExecuteRequest) -> Result<pb::ExecuteResponse, Status> {
        let graph = match remotemedia_runtime::load_graph(&req.manifest_json, "manifest_json") {
            Ok(g) => g,
            Err(report) => {
                return Ok(failed(error(
                    Kind::Manifest,
                    report.to_string(),
                    "",
                    "manifest_json",
                )));
            }
        };
        let sources: Vec<&str> = graph.source_ids().collect();
        let mut inputs = Vec::with_capacity(req.inputs.len());
        let mut used = 0;
        for (i, input) in req.inputs.into_iter().enumerate() {
            let data = input
                .data
                .ok_or_else(|| Status::invalid_argument(format!("inputs[{i}]: no data")))
                .and_then(|d| {
                    to_runtime(d).map_err(|e| Status::invalid_argument(format!("inputs[{i}].{e}")))
                })?;
            let node = (!input.node_id.is_empty()).then_some(input.node_id);
            if let Some(node) = &node
                && !sources.contains(&node.as_str())
            {
                return Ok(failed(error(
                    Kind::Input,
                    format!(
                        "'{node}' is not a source node of this pipeline (sources: {})",
                        sources.join(", ")
                    ),
                    node,
                    &format!("inputs[{i}].node_id"),
                )));
            }
            used += convert::size_of(&data);
            inputs.push((node, data));
        }
        let limit = self.limits.max_memory_bytes;
        if used > limit {
            return Err(Status::resource_exhausted(format!(
                "inputs hold {used} bytes, more than the memory limit of {} MB",
                limit >> 20
            )));
        }
        let timeout = match req.timeout_ms {
            0 => self.limits.max_timeout,
            ms => Duration::from_millis(ms.into()).min(self.limits.max_timeout),
        };
        let cancelled = Arc::new(AtomicBool::new(false));
        let flag = cancelled.clone();
        let task =
            tokio::task::spawn_blocking(move || run_blocking(graph, inputs, used, limit, &flag));
        match tokio::time::timeout(timeout, task).await {
            Err(_) => {
                cancelled.store(true, Ordering::Relaxed);
                Err(Status::deadline_exceeded(format!(
                    "pipeline ran past its time limit of {} ms and was stopped",
                    timeout.as_millis()
                )))
            }
            Ok(Err(e)) => Err(Status::internal(format!("pipeline task failed: {e}"))),
            Ok(Ok(outcome)) => outcome,
        }
    }
}

#[tonic::async_trait]
impl pb::pipeline_execution_service_server::PipelineExecutionService for ExecutionService {
    async fn execute_pipeline(
        &self,
        request: Request<pb::ExecuteRequest>,
    ) -> Result<Response<pb::ExecuteResponse>, Status> {
        let started = Instant::now();
        let outcome = self.execute(request.into_inner()).await;
        let ok = matches!(
            &outcome,
            Ok(pb::ExecuteResponse {
                outcome: Some(pb::execute_response::Outcome::Result(_))
            })
        );
        self.metrics.execution(started.elapsed(), ok);
        outcome.map(Response::new)
    }

    async fn get_version(
        &self,
        _request: Request<pb::VersionRequest>,
    ) -> Result<Response<pb::VersionResponse>, Status> {
        Ok(Response::new(pb::VersionResponse {
            server_version: env!("CARGO_PKG_VERSION").into(),
            protocol_version: super::PROTOCOL_VERSION.into(),
            node_types: Registry::builtin()
                .node_types()
                .map(str::to_owned)
                .collect(),
        }))
    }
}
