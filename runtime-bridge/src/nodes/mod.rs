//! The native nodes. Registering a node takes one line in `register_builtin`.

pub mod accumulator;
mod audio_format;
pub mod audio_level;
pub mod channel_balance;
pub mod chunker;
pub mod clipping_detector;
pub mod echo;
mod health;
pub mod locate;
mod onnx_weights;
pub mod passthrough;
pub mod remote_pipeline;
mod remote_target;
pub mod resample;
pub mod silence_detector;
pub mod silero_model;
pub mod silero_vad;
pub mod speculative_gate;
pub mod text_collector;
mod vad_segments;
pub mod wasm;

use crate::registry::Registry;

pub fn register_builtin(r: &mut Registry) {
    r.register(&passthrough::SPEC);
    r.register(&echo::SPEC);
    r.register(&chunker::SPEC);
    r.register(&resample::SPEC);
    r.register(&silero_vad::SPEC);
    r.register(&speculative_gate::SPEC);
    r.register(&accumulator::SPEC);
    r.register(&text_collector::SPEC);
    r.register(&remote_pipeline::SPEC);
    r.register(&audio_level::SPEC);
    r.register(&silence_detector::SPEC);
    r.register(&clipping_detector::SPEC);
    r.register(&channel_balance::SPEC);
    r.register(&wasm::SPEC);
}
