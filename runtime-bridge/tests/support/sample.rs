//! The shipped speech sample, decoded and resampled; shared by the Silero test and bench.

use std::path::{Path, PathBuf};

use remotemedia_runtime::{AudioFrame, AudioSamples, RuntimeData, execute_unary, load_graph};

pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The shipped sample as mono f32 at `rate`, resampled by FastResampleNode.
pub fn sample_at(rate: u32) -> Vec<f32> {
    let mut reader = hound::WavReader::open(root().join("examples/launch/speech.wav")).unwrap();
    let spec = reader.spec();
    let samples: Vec<f32> = reader
        .samples::<i16>()
        .map(|s| f32::from(s.unwrap()) / 32768.0)
        .collect();
    let graph = load_graph(
        &format!(
            r#"{{"version":"v1","nodes":[{{"id":"r","node_type":"FastResampleNode",
                "params":{{"target_rate":{rate},"channels":1}}}}]}}"#
        ),
        "test",
    )
    .unwrap();
    let input = AudioFrame::new(
        AudioSamples::from_vec(samples),
        spec.sample_rate,
        spec.channels,
    );
    let out = execute_unary(graph, [RuntimeData::Audio(input)]).unwrap();
    out.into_iter()
        .flat_map(|o| match o.data {
            RuntimeData::Audio(a) => a.samples.to_vec(),
            other => panic!("unexpected {other:?}"),
        })
        .collect()
}
