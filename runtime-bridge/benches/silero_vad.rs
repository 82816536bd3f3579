//! B2: CPU time per 32 ms Silero frame, native (this crate's own implementation) against the reference loop (the
//! onnxruntime Python package as silero-vad's OnnxWrapper runs it), on the same audio, one
//! thread each, measured side by side in one run.
//!
//!     cargo bench -p remotemedia-runtime --bench silero_vad

use std::process::Command;

use remotemedia_runtime::nodes::silero_model::{SileroModel, model_file};

#[path = "../tests/support/sample.rs"]
mod sample;
use sample::{root, sample_at};

#[path = "support/cpu.rs"]
mod cpu;
use cpu::cpu_seconds;

const REPEATS: usize = 10;

fn main() {
    let root = root();
    let audio = sample_at(16000);
    let raw = std::env::temp_dir().join(format!("rm-b2-{}.f32", std::process::id()));
    std::fs::write(&raw, bytemuck::cast_slice::<f32, u8>(&audio)).unwrap();

    let mut model = SileroModel::load(&model_file(None).unwrap(), 16000).unwrap();
    let frames = audio.len() / 512;
    // Warm up once, as the reference's first frames pay for lazy initialisation too.
    for f in audio.chunks_exact(512).take(10) {
        model.infer(f).unwrap();
    }
    let start = cpu_seconds();
    for _ in 0..REPEATS {
        model.reset();
        for f in audio.chunks_exact(512) {
            std::hint::black_box(model.infer(f).unwrap());
        }
    }
    let native = (cpu_seconds() - start) / (frames * REPEATS) as f64;

    let out = Command::new(root.join(".venv/bin/python"))
        .arg(root.join("tests/reference_vad.py"))
        .arg(&raw)
        .args(["--bench", &REPEATS.to_string()])
        .output()
        .expect("run the reference (scripts/setup.sh makes .venv)");
    let _ = std::fs::remove_file(&raw);
    let reference: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)));
    let reference = reference["cpu_s_per_frame"].as_f64().unwrap();

    println!("B2 Silero VAD, {} frames of 32 ms x {REPEATS}", frames);
    println!(
        "  native (Rust)                {:8.1} us CPU per frame",
        native * 1e6
    );
    println!(
        "  reference (onnxruntime, Py)  {:8.1} us CPU per frame",
        reference * 1e6
    );
    println!("  ratio native/reference       {:8.3}", native / reference);
}
