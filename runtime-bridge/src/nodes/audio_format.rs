//! Shared checks for nodes that take audio.

use crate::node::{NodeError, StreamFormat};

/// The input's (rate, channels) if it is audio, `None` if not known yet, an error otherwise.
pub fn audio_input(node: &str, input: &StreamFormat) -> Result<Option<(u32, u16)>, NodeError> {
    match input {
        StreamFormat::Audio { rate, channels } => Ok(Some((*rate, *channels))),
        StreamFormat::Any => Ok(None),
        other => Err(NodeError::BadInput(format!(
            "{node} takes audio, not {other}"
        ))),
    }
}
