//! `PassThrough`: forwards every input unchanged (the same shared samples, no copy).

use crate::data::Packet;
use crate::node::{Emitter, Node, NodeError, NodeSpec, Threading, no_latency, same_format};

pub static SPEC: NodeSpec = NodeSpec {
    node_type: "PassThrough",
    aliases: &["PassThroughNode"],
    doc: "Forwards every input unchanged.",
    params: &[],
    threading: Threading::Inline,
    create: |_| Ok(Box::new(PassThrough)),
    format: same_format,
    latency_ns: no_latency,
};

/// Emits its input as it came; `Echo` is one too.
pub(crate) struct PassThrough;

impl Node for PassThrough {
    fn process(&mut self, input: Packet, out: &mut Emitter) -> Result<(), NodeError> {
        out.emit_at(input.data, input.pts);
        Ok(())
    }
}
