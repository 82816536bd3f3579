//! SileroVADNode -> AudioBufferAccumulatorNode on the shipped sample: one utterance per
//! sentence, aligned with the known speech times.

use remotemedia_runtime::{AudioFrame, AudioSamples, RuntimeData, execute_unary, load_graph};

#[path = "support/sample.rs"]
mod sample;

#[test]
fn utterances_match_the_spoken_sentences() {
    let audio = sample::sample_at(16000);
    let known: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(sample::root().join("examples/launch/speech.segments.json"))
            .unwrap(),
    )
    .unwrap();
    let graph = load_graph(
        r#"{"version":"v1","nodes":[
            {"id":"vad","node_type":"SileroVADNode","params":{"min_silence_duration_ms":300}},
            {"id":"utterance","node_type":"AudioBufferAccumulatorNode"}],
            "connections":[{"from":"vad","to":"utterance"}]}"#,
        "test",
    )
    .unwrap();
    // 10 ms buffers with timestamps, as a live source delivers them.
    let inputs = audio.chunks(160).enumerate().map(|(i, chunk)| {
        let mut f = AudioFrame::new(AudioSamples::from_vec(chunk.to_vec()), 16000, 1);
        f.pts = Some(i as u64 * 10_000_000);
        RuntimeData::Audio(f)
    });
    let outputs = execute_unary(graph, inputs).unwrap();
    let utterances: Vec<(f64, f64)> = outputs
        .iter()
        .map(|o| match &o.data {
            RuntimeData::Audio(a) => {
                let start = a.pts.unwrap() as f64 / 1e6;
                (start, start + a.frames() as f64 / 16.0)
            }
            other => panic!("only utterances come out, got {other:?}"),
        })
        .collect();
    let segments = known["segments_ms"].as_array().unwrap();
    assert_eq!(utterances.len(), segments.len(), "{utterances:?}");
    for ((start, end), seg) in utterances.iter().zip(segments) {
        let (k_start, k_end) = (seg[0].as_f64().unwrap(), seg[1].as_f64().unwrap());
        assert!(
            (start - k_start).abs() <= 150.0,
            "start {start} vs {k_start}"
        );
        assert!((end - k_end).abs() <= 250.0, "end {end} vs {k_end}");
    }
}
