//! Shared checks for nodes that take audio.

use crate::node::StreamFormat;

/// The input's (rate, channels) if it is audio, `None` if not known yet, an error otherwise.
pub fn audio_input(node: &str, input: &StreamFormat) -> Result<Option<(u32, u16)>, String> {
    match input {
        StreamFormat::Audio { rate, channels } => Ok(Some((*rate, *channels))),
        StreamFormat::Any => Ok(None),
        other => Err(format!("{node} takes audio, not {other}")),
    }
}
