//! `Echo`: RemoteMedia's example node. In a WebRTC server each peer's media output goes back
//! to that peer, so Echo returns the peer's own media; in any other graph it is a PassThrough
//! (the same shared samples, pixels or values, no copy).

use super::passthrough::PassThrough;
use crate::node::{NodeSpec, Threading, no_latency, same_format};

pub static SPEC: NodeSpec = NodeSpec {
    node_type: "Echo",
    aliases: &[],
    doc: "RemoteMedia's example node: a peer's own media back to it; elsewhere a PassThrough.",
    params: &[],
    threading: Threading::Inline,
    create: |_| Ok(Box::new(PassThrough)),
    format: same_format,
    latency_ns: no_latency,
};
