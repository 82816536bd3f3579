//! The Silero VAD ONNX model run natively through ONNX Runtime, exactly as the silero-vad
//! package's OnnxWrapper runs it: each 512-sample frame (256 at 8 kHz) is prefixed with the
//! last 64 (32) samples of the previous one, and the recurrent state is carried over.

use std::path::Path;
use std::sync::OnceLock;

use ort::environment::Environment;
use ort::session::Session;
use ort::session::builder::GraphOptimizationLevel;
use ort::value::Tensor;

use super::locate;

const STATE_LEN: usize = 2 * 128;

static ENVIRONMENT: OnceLock<Result<Environment, String>> = OnceLock::new();

fn environment() -> Result<&'static Environment, String> {
    ENVIRONMENT
        .get_or_init(|| {
            let lib = locate::onnxruntime_library()?;
            ort::init_from(&lib)
                .map_err(|e| format!("cannot load ONNX Runtime from {}: {e}", lib.display()))?
                .with_name("remotemedia")
                .build()
                .map_err(|e| format!("cannot start ONNX Runtime: {e}"))
        })
        .as_ref()
        .map_err(Clone::clone)
}

/// The model file: `model_path` if given, else the one the silero-vad package ships.
pub fn model_file(model_path: Option<&str>) -> Result<std::path::PathBuf, String> {
    match model_path {
        Some(p) if Path::new(p).is_file() => Ok(p.into()),
        Some(p) => Err(format!("model_path {p:?} is not a file")),
        None => locate::find_file(
            "silero_vad/data/silero_vad.onnx",
            "Silero VAD model",
            "install the silero-vad Python package (the README's setup does) or give model_path",
        ),
    }
}

pub struct SileroModel {
    session: Session,
    input: Tensor<f32>,
    state: Tensor<f32>,
    sr: Tensor<i64>,
    window: usize,
    context: usize,
}

impl SileroModel {
    pub fn load(path: &Path, sampling_rate: u32) -> Result<Self, String> {
        let env = environment()?;
        let fail = |e: ort::Error| format!("cannot load Silero model {}: {e}", path.display());
        let builder = |e: ort::Error<ort::session::builder::SessionBuilder>| {
            format!("cannot configure ONNX Runtime: {e}")
        };
        let session = Session::builder(env)
            .map_err(fail)?
            .with_optimization_level(GraphOptimizationLevel::Level3)
            .map_err(builder)?
            .with_intra_threads(1)
            .map_err(builder)?
            .with_inter_threads(1)
            .map_err(builder)?
            .commit_from_file(path)
            .map_err(fail)?;
        let (window, context) = if sampling_rate == 8000 {
            (256, 32)
        } else {
            (512, 64)
        };
        let tensor = |e: ort::Error| format!("cannot allocate model inputs: {e}");
        Ok(Self {
            session,
            input: Tensor::from_array(([1usize, context + window], vec![0.0f32; context + window]))
                .map_err(tensor)?,
            state: Tensor::from_array(([2usize, 1, 128], vec![0.0f32; STATE_LEN]))
                .map_err(tensor)?,
            sr: Tensor::from_array(((), vec![i64::from(sampling_rate)])).map_err(tensor)?,
            window,
            context,
        })
    }

    /// Samples per frame: 512 at 16 kHz, 256 at 8 kHz.
    pub fn window(&self) -> usize {
        self.window
    }

    /// Clears the recurrent state and the context.
    pub fn reset(&mut self) {
        if let Ok((_, s)) = self.state.try_extract_tensor_mut() {
            s.fill(0.0);
        }
        if let Ok((_, x)) = self.input.try_extract_tensor_mut() {
            x.fill(0.0);
        }
    }

    /// Speech probability of one frame of `window()` samples.
    pub fn infer(&mut self, frame: &[f32]) -> Result<f32, String> {
        let err = |e: ort::Error| format!("Silero inference failed: {e}");
        {
            let (_, x) = self.input.try_extract_tensor_mut().map_err(err)?;
            // Keep the previous frame's tail as context, then the new frame.
            x.copy_within(self.window.., 0);
            x[self.context..].copy_from_slice(frame);
        }
        let mut next_state = [0.0f32; STATE_LEN];
        let prob = {
            let outputs = self
                .session
                .run(ort::inputs![
                    "input" => &self.input,
                    "state" => &self.state,
                    "sr" => &self.sr,
                ])
                .map_err(err)?;
            let (_, prob) = outputs["output"].try_extract_tensor::<f32>().map_err(err)?;
            let (_, state) = outputs["stateN"].try_extract_tensor::<f32>().map_err(err)?;
            next_state.copy_from_slice(&state[..STATE_LEN]);
            prob[0]
        };
        let (_, s) = self.state.try_extract_tensor_mut().map_err(err)?;
        s.copy_from_slice(&next_state);
        Ok(prob)
    }
}
