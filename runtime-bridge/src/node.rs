//! The node contract: what a node declares (its spec) and what it does (the `Node` trait).

use std::fmt;

use crate::data::{Packet, RuntimeData};
use crate::error_code::ErrorCode;
use crate::params::{ParamSpec, Params};

/// The format of a stream between two nodes, as far as it is known before data flows.
#[derive(Clone, Debug, PartialEq)]
pub enum StreamFormat {
    Audio { rate: u32, channels: u16 },
    Video,
    Text,
    Json,
    Any,
}

impl fmt::Display for StreamFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Audio { rate, channels } => write!(f, "audio {rate} Hz, {channels} channel(s)"),
            Self::Video => f.write_str("video"),
            Self::Text => f.write_str("text"),
            Self::Json => f.write_str("json"),
            Self::Any => f.write_str("any"),
        }
    }
}

/// Where a node runs in a session.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Threading {
    /// Synchronous and cheap: runs on the thread that delivers its input.
    Inline,
    /// Heavy or blocking: gets its own thread behind a bounded queue.
    Dedicated,
    /// Cost unknown until it runs (Python nodes): a thread of its own like `Dedicated`, but
    /// run inline while its recent calls were cheap and nothing waits in its queue.
    Adaptive,
}

/// A node type as the registry knows it. One `static` per node type.
pub struct NodeSpec {
    pub node_type: &'static str,
    pub aliases: &'static [&'static str],
    pub doc: &'static str,
    pub params: &'static [ParamSpec],
    pub threading: Threading,
    /// Builds an instance; an error here is reported at manifest load with the node id.
    pub create: fn(&Params) -> Result<Box<dyn Node>, NodeError>,
    /// The output format for an input format, or why the input cannot be taken
    /// (`BadInput`) or the params contradict each other (`Config`).
    pub format: fn(&Params, &StreamFormat) -> Result<StreamFormat, NodeError>,
    /// How long (ns) the node may hold data back for this input format.
    pub latency_ns: fn(&Params, &StreamFormat) -> u64,
}

/// `format` for nodes that do not change the stream format.
pub fn same_format(_: &Params, input: &StreamFormat) -> Result<StreamFormat, NodeError> {
    Ok(input.clone())
}

/// `latency_ns` for nodes that never hold data back.
pub fn no_latency(_: &Params, _: &StreamFormat) -> u64 {
    0
}

impl fmt::Debug for NodeSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.node_type)
    }
}

/// Collects what a node emits while it processes one input.
#[derive(Default)]
pub struct Emitter {
    pub(crate) packets: Vec<Packet>,
    pub(crate) current_pts: Option<u64>,
    pub(crate) warnings: Vec<String>,
    pub(crate) counts: Vec<&'static str>,
}

impl Emitter {
    /// Emits data; text/JSON take the timestamp of the input being processed.
    pub fn emit(&mut self, data: RuntimeData) {
        let pts = data.pts().or(self.current_pts);
        self.packets.push(Packet::at(data, pts));
    }

    pub fn emit_at(&mut self, data: RuntimeData, pts: Option<u64>) {
        self.packets.push(Packet::at(data, pts));
    }

    /// What was emitted, for a caller that runs a node itself.
    pub fn into_packets(self) -> Vec<Packet> {
        self.packets
    }

    /// Counts an occurrence of `what` in the node's metrics (the element's `metrics`
    /// property shows them under `counters`).
    pub fn count(&mut self, what: &'static str) {
        self.counts.push(what);
    }

    /// Reports a problem the node recovered from (the graph goes on).
    pub fn warn(&mut self, message: String) {
        self.warnings.push(message);
    }
}

/// Why a node failed; the message says what happened, the variant what kind of failure it is.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum NodeError {
    /// The input is not what the node takes (its kind, rate, channels or size).
    #[error("{0}")]
    BadInput(String),
    /// A parameter, model file or package the node needs is wrong or missing.
    #[error("{0}")]
    Config(String),
    /// The node's own work failed (inference, a Python exception, a remote call).
    #[error("{0}")]
    Failed(String),
    /// The node's worker process or thread is gone.
    #[error("{0}")]
    Gone(String),
}

impl NodeError {
    /// The code users see for this failure.
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::Config(_) => ErrorCode::Config,
            Self::BadInput(_) | Self::Failed(_) | Self::Gone(_) => ErrorCode::Pipeline,
        }
    }

    /// The same kind of failure with its message rewritten (context added).
    pub fn map_message(self, f: impl FnOnce(String) -> String) -> Self {
        match self {
            Self::BadInput(m) => Self::BadInput(f(m)),
            Self::Config(m) => Self::Config(f(m)),
            Self::Failed(m) => Self::Failed(f(m)),
            Self::Gone(m) => Self::Gone(f(m)),
        }
    }
}

pub trait Node: Send {
    /// Handles one input and emits zero or more outputs.
    fn process(&mut self, input: Packet, out: &mut Emitter) -> Result<(), NodeError>;

    /// End of stream: emit whatever is held back.
    fn finish(&mut self, _out: &mut Emitter) -> Result<(), NodeError> {
        Ok(())
    }

    /// Flush: forget held data and state, as if the stream started anew.
    fn reset(&mut self) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_node_error_has_the_code_of_its_kind_and_shows_its_message() {
        let cases = [
            (
                NodeError::BadInput("takes audio".into()),
                ErrorCode::Pipeline,
            ),
            (NodeError::Config("no model".into()), ErrorCode::Config),
            (NodeError::Failed("raised".into()), ErrorCode::Pipeline),
            (NodeError::Gone("exited".into()), ErrorCode::Pipeline),
        ];
        for (error, code) in cases {
            assert_eq!(error.code(), code, "{error:?}");
        }
        let error = NodeError::Config("no model".into());
        assert_eq!(error.to_string(), "no model");
        let error = error.map_message(|m| format!("{m}; restarting failed"));
        assert_eq!(
            error,
            NodeError::Config("no model; restarting failed".into())
        );
    }
}
