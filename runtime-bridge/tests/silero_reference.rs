//! SileroVADNode's native inference against the reference: the same ONNX file run by the
//! onnxruntime Python package as silero-vad's OnnxWrapper runs it, on the shipped sample, at
//! 16 and 8 kHz.

use std::process::Command;

use remotemedia_runtime::nodes::silero_model::{SileroModel, model_file};

#[path = "support/sample.rs"]
mod sample;
use sample::{root, sample_at};

fn compare_with_reference(rate: u32) {
    let audio = sample_at(rate);
    let raw = std::env::temp_dir().join(format!("rm-vad-ref-{}-{rate}.f32", std::process::id()));
    std::fs::write(&raw, bytemuck::cast_slice::<f32, u8>(&audio)).unwrap();
    let python = root().join(".venv/bin/python");
    let out = Command::new(&python)
        .arg(root().join("tests/reference_vad.py"))
        .arg(&raw)
        .args(["--rate", &rate.to_string()])
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run {} (run the README's setup): {e}",
                python.display()
            )
        });
    let _ = std::fs::remove_file(&raw);
    assert!(
        out.status.success(),
        "reference failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let reference: Vec<f32> = serde_json::from_slice(&out.stdout).unwrap();

    let mut model = SileroModel::load(&model_file(None).unwrap(), rate).unwrap();
    let ours: Vec<f32> = audio
        .chunks_exact(model.window())
        .map(|f| model.infer(f).unwrap())
        .collect();

    assert_eq!(ours.len(), reference.len());
    assert!(ours.len() > 300, "the sample is over 10 s long");
    let worst = ours
        .iter()
        .zip(&reference)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    assert!(worst <= 0.02, "{rate} Hz: largest difference {worst}");
    println!(
        "{rate} Hz: {} frames, largest difference {worst:e}",
        ours.len()
    );
    // The sample has speech and silence: the model must see both.
    assert!(ours.iter().any(|p| *p > 0.9) && ours.iter().any(|p| *p < 0.1));
}

#[test]
fn probabilities_match_the_onnxruntime_python_reference_at_16_khz() {
    compare_with_reference(16000);
}

#[test]
fn probabilities_match_the_onnxruntime_python_reference_at_8_khz() {
    compare_with_reference(8000);
}
