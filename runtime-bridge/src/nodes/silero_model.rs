//! The Silero VAD model, run natively. The weights come from the ONNX file that the
//! silero-vad package ships; the graph is computed here: a windowed real FFT (the model's STFT
//! basis is a Hann-windowed DFT, checked at load), four conv + ReLU blocks, an LSTM cell, and a
//! 1x1 conv + sigmoid. Each frame of 512 samples (256 at 8 kHz) is prefixed with the last 64
//! (32) samples of the previous one, as silero-vad's OnnxWrapper feeds the model.
//!
//! Every layer is a set of dot products over contiguous memory (weights are re-laid out at load
//! so a conv output is one dot product), so the compiler vectorises them; on x86_64 CPUs with
//! AVX2 and FMA, the whole frame runs in a function compiled for them.

use crate::node::NodeError;
use crate::sync::lock;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, LazyLock, Mutex};

use realfft::num_complex::Complex;
use realfft::{RealFftPlanner, RealToComplex};

use super::locate::{self, NotFound};
use super::onnx_weights::{self, OnnxError, Tensor};

/// Why the Silero model cannot be found, loaded or run.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("model_path {0:?} is not a file")]
    NotAFile(String),
    #[error(transparent)]
    NotInstalled(#[from] NotFound),
    #[error("cannot load Silero model {}: {source}", path.display())]
    Load {
        path: PathBuf,
        #[source]
        source: LoadError,
    },
    #[error("a frame has {expected} samples, got {got}")]
    FrameSize { expected: usize, got: usize },
}

impl From<ModelError> for NodeError {
    fn from(e: ModelError) -> Self {
        match e {
            ModelError::FrameSize { .. } => NodeError::BadInput(e.to_string()),
            ModelError::NotAFile(_) | ModelError::NotInstalled(_) | ModelError::Load { .. } => {
                NodeError::Config(e.to_string())
            }
        }
    }
}

/// Why a file is not a Silero model that this code can run.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error(transparent)]
    Read(#[from] std::io::Error),
    #[error(transparent)]
    Onnx(#[from] OnnxError),
    #[error("not a Silero VAD model: no tensor {0:?}")]
    MissingTensor(String),
    #[error("{layer}: expected a [cout, cin, 3] kernel, got {dims:?}")]
    ConvKernel { layer: String, dims: Vec<usize> },
    #[error("{layer}: bias has {values} values for {outputs} outputs")]
    ConvBias {
        layer: String,
        values: usize,
        outputs: usize,
    },
    #[error("unexpected STFT basis shape {0:?}")]
    BasisShape(Vec<usize>),
    #[error("STFT basis has {rows} rows for {n_fft} points")]
    BasisRows { rows: usize, n_fft: usize },
    #[error("the STFT basis is not a windowed DFT")]
    BasisNotDft,
    #[error("encoder.0 takes {takes} channels, the STFT gives {bins}")]
    EncoderInput { takes: usize, bins: usize },
    #[error("unexpected LSTM shapes {ih:?} and {hh:?}")]
    LstmShapes { ih: Vec<usize>, hh: Vec<usize> },
    #[error("empty head bias")]
    EmptyHeadBias,
    #[error("unexpected decoder shapes")]
    DecoderShapes,
}

/// The model file: `model_path` if given, else the one the silero-vad package ships.
pub fn model_file(model_path: Option<&str>) -> Result<PathBuf, ModelError> {
    match model_path {
        Some(p) if Path::new(p).is_file() => Ok(p.into()),
        Some(p) => Err(ModelError::NotAFile(p.to_owned())),
        None => Ok(locate::find_file(
            "silero_vad/data/silero_vad.onnx",
            "Silero VAD model",
            "install the silero-vad Python package (the README's setup does) or give model_path",
        )?),
    }
}

/// A 1-D convolution (kernel 3, padding 1) laid out for dot products: row `o` holds
/// weight[o][i][k] at k * cin + i, matching a time-major input window of 3 steps.
struct Conv {
    cin: usize,
    cout: usize,
    stride: usize,
    weights: Vec<f32>,
    bias: Vec<f32>,
}

impl Conv {
    fn from(w: &Tensor, b: &Tensor, stride: usize, name: &str) -> Result<Self, LoadError> {
        let [cout, cin, 3] = w.dims[..] else {
            return Err(LoadError::ConvKernel {
                layer: name.to_owned(),
                dims: w.dims.clone(),
            });
        };
        if b.data.len() != cout {
            return Err(LoadError::ConvBias {
                layer: name.to_owned(),
                values: b.data.len(),
                outputs: cout,
            });
        }
        let mut weights = vec![0.0; cout * cin * 3];
        for o in 0..cout {
            for i in 0..cin {
                for k in 0..3 {
                    weights[o * cin * 3 + k * cin + i] = w.data[(o * cin + i) * 3 + k];
                }
            }
        }
        Ok(Self {
            cin,
            cout,
            stride,
            weights,
            bias: b.data.clone(),
        })
    }

    /// `input`: `steps` time steps of `cin` values, with a zero step before and after
    /// (the padding). Writes the ReLU'd output, padded the same way, into `out`.
    #[inline(always)]
    fn run<const FMA: bool>(&self, input: &[f32], steps: usize, out: &mut Vec<f32>) -> usize {
        let out_steps = (steps - 1) / self.stride + 1;
        out.clear();
        out.resize((out_steps + 2) * self.cout, 0.0);
        for t in 0..out_steps {
            let window = &input[t * self.stride * self.cin..][..3 * self.cin];
            let row = &mut out[(t + 1) * self.cout..][..self.cout];
            for (o, value) in row.iter_mut().enumerate() {
                let w = &self.weights[o * 3 * self.cin..][..3 * self.cin];
                *value = (dot::<FMA>(w, window) + self.bias[o]).max(0.0);
            }
        }
        out_steps
    }
}

/// With `FMA` (only inside a function compiled for FMA) products are fused into the sums.
#[inline(always)]
fn dot<const FMA: bool>(a: &[f32], b: &[f32]) -> f32 {
    const LANES: usize = 32;
    let mut acc = [0.0f32; LANES];
    let (ca, ra) = a.as_chunks::<LANES>();
    let (cb, rb) = b.as_chunks::<LANES>();
    for (x, y) in ca.iter().zip(cb) {
        for j in 0..LANES {
            acc[j] = if FMA {
                x[j].mul_add(y[j], acc[j])
            } else {
                acc[j] + x[j] * y[j]
            };
        }
    }
    let tail: f32 = ra.iter().zip(rb).map(|(x, y)| x * y).sum();
    acc.iter().sum::<f32>() + tail
}

fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + (-x).exp())
}

/// The weights, laid out for inference; shared by every instance that runs the same file at
/// the same rate.
struct Weights {
    window: usize,
    context: usize,
    n_fft: usize,
    fft: Arc<dyn RealToComplex<f32>>,
    hann: Vec<f32>,
    convs: [Conv; 4],
    /// [W_ih | W_hh] rows, 4 * hidden of them, gates in PyTorch order i, f, g, o.
    lstm: Vec<f32>,
    lstm_bias: Vec<f32>,
    hidden: usize,
    head: Vec<f32>,
    head_bias: f32,
}

type CacheKey = (std::path::PathBuf, u32);

/// Loaded weights by (file, rate), so a hundred streams share one copy, and manifest
/// validation followed by a session reads the file once. Kept for the process: one entry per
/// model file used, about 1 MB each.
static WEIGHTS: LazyLock<Mutex<HashMap<CacheKey, Arc<Weights>>>> =
    LazyLock::new(|| Mutex::new(HashMap::new()));

/// One stream's model: shared weights, its own recurrent state.
pub struct SileroModel {
    w: Arc<Weights>,
    input: Vec<f32>,
    h: Vec<f32>,
    c: Vec<f32>,
    scratch: Scratch,
    #[cfg(target_arch = "x86_64")]
    avx2: bool,
}

#[derive(Default)]
struct Scratch {
    padded: Vec<f32>,
    fft_in: Vec<f32>,
    fft_out: Vec<Complex<f32>>,
    fft_work: Vec<Complex<f32>>,
    a: Vec<f32>,
    b: Vec<f32>,
    xh: Vec<f32>,
    gates: Vec<f32>,
}

fn take<'a>(t: &'a HashMap<String, Tensor>, name: &str) -> Result<&'a Tensor, LoadError> {
    t.get(name)
        .ok_or_else(|| LoadError::MissingTensor(name.to_owned()))
}

impl SileroModel {
    pub fn load(path: &Path, sampling_rate: u32) -> Result<Self, ModelError> {
        let key = (
            path.canonicalize().unwrap_or_else(|_| path.to_path_buf()),
            sampling_rate,
        );
        let mut cache = lock(&WEIGHTS);
        let weights = match cache.get(&key) {
            Some(w) => Arc::clone(w),
            None => {
                let w = Weights::read(path, sampling_rate).map_err(|source| ModelError::Load {
                    path: path.to_owned(),
                    source,
                })?;
                let w = Arc::new(w);
                cache.insert(key, Arc::clone(&w));
                w
            }
        };
        drop(cache);
        let fft = &weights.fft;
        let scratch = Scratch {
            fft_in: fft.make_input_vec(),
            fft_out: fft.make_output_vec(),
            fft_work: fft.make_scratch_vec(),
            ..Scratch::default()
        };
        Ok(Self {
            input: vec![0.0; weights.context + weights.window],
            h: vec![0.0; weights.hidden],
            c: vec![0.0; weights.hidden],
            scratch,
            w: weights,
            #[cfg(target_arch = "x86_64")]
            avx2: is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma"),
        })
    }
}

impl Weights {
    fn read(path: &Path, sampling_rate: u32) -> Result<Self, LoadError> {
        let bytes = std::fs::read(path)?;
        // The model branches on the rate: `then` is 16 kHz, `else` 8 kHz.
        let branch = if sampling_rate == 8000 {
            "else_branch"
        } else {
            "then_branch"
        };
        let t = onnx_weights::load(&bytes, Some(branch))?;
        Self::from_tensors(&t, sampling_rate)
    }

    fn from_tensors(t: &HashMap<String, Tensor>, sampling_rate: u32) -> Result<Self, LoadError> {
        let (window, context) = if sampling_rate == 8000 {
            (256, 32)
        } else {
            (512, 64)
        };
        let basis = take(t, "stft.forward_basis_buffer")?;
        let [rows, 1, n_fft] = basis.dims[..] else {
            return Err(LoadError::BasisShape(basis.dims.clone()));
        };
        let bins = n_fft / 2 + 1;
        if rows != 2 * bins {
            return Err(LoadError::BasisRows { rows, n_fft });
        }
        // Row 0 is the window itself (cos 0 = 1); every row must be window * cos / -sin.
        let hann = basis.data[..n_fft].to_vec();
        for k in [1, bins / 2, bins - 1] {
            for n in (0..n_fft).step_by(7) {
                let phase = 2.0 * std::f64::consts::PI * (k * n) as f64 / n_fft as f64;
                let re = f64::from(hann[n]) * phase.cos();
                let im = -f64::from(hann[n]) * phase.sin();
                let (got_re, got_im) = (
                    basis.data[k * n_fft + n],
                    basis.data[(bins + k) * n_fft + n],
                );
                if (f64::from(got_re) - re).abs() > 1e-4 || (f64::from(got_im) - im).abs() > 1e-4 {
                    return Err(LoadError::BasisNotDft);
                }
            }
        }
        let conv = |i: usize, stride: usize| {
            let name = format!("encoder.{i}.reparam_conv");
            Conv::from(
                take(t, &format!("{name}.weight"))?,
                take(t, &format!("{name}.bias"))?,
                stride,
                &name,
            )
        };
        let convs = [conv(0, 1)?, conv(1, 2)?, conv(2, 2)?, conv(3, 1)?];
        if convs[0].cin != bins {
            return Err(LoadError::EncoderInput {
                takes: convs[0].cin,
                bins,
            });
        }
        let (w_ih, w_hh) = (
            take(t, "decoder.rnn.weight_ih")?,
            take(t, "decoder.rnn.weight_hh")?,
        );
        let hidden = w_hh.dims.get(1).copied().unwrap_or(0);
        if w_ih.dims != [4 * hidden, convs[3].cout] || w_hh.dims != [4 * hidden, hidden] {
            return Err(LoadError::LstmShapes {
                ih: w_ih.dims.clone(),
                hh: w_hh.dims.clone(),
            });
        }
        let mut lstm = Vec::with_capacity(4 * hidden * (convs[3].cout + hidden));
        for r in 0..4 * hidden {
            lstm.extend_from_slice(&w_ih.data[r * convs[3].cout..][..convs[3].cout]);
            lstm.extend_from_slice(&w_hh.data[r * hidden..][..hidden]);
        }
        let lstm_bias: Vec<f32> = take(t, "decoder.rnn.bias_ih")?
            .data
            .iter()
            .zip(&take(t, "decoder.rnn.bias_hh")?.data)
            .map(|(a, b)| a + b)
            .collect();
        let head = take(t, "decoder.decoder.2.weight")?.data.clone();
        let head_bias = *take(t, "decoder.decoder.2.bias")?
            .data
            .first()
            .ok_or(LoadError::EmptyHeadBias)?;
        if head.len() != hidden || lstm_bias.len() != 4 * hidden {
            return Err(LoadError::DecoderShapes);
        }
        Ok(Self {
            window,
            context,
            n_fft,
            fft: RealFftPlanner::<f32>::new().plan_fft_forward(n_fft),
            hann,
            convs,
            lstm,
            lstm_bias,
            hidden,
            head,
            head_bias,
        })
    }
}

impl SileroModel {
    /// Samples per frame: 512 at 16 kHz, 256 at 8 kHz.
    pub fn window(&self) -> usize {
        self.w.window
    }

    /// Clears the recurrent state and the context.
    pub fn reset(&mut self) {
        self.input.fill(0.0);
        self.h.fill(0.0);
        self.c.fill(0.0);
    }

    /// Speech probability of one frame of `window()` samples.
    pub fn infer(&mut self, frame: &[f32]) -> Result<f32, ModelError> {
        if frame.len() != self.w.window {
            return Err(ModelError::FrameSize {
                expected: self.w.window,
                got: frame.len(),
            });
        }
        #[cfg(target_arch = "x86_64")]
        if self.avx2 {
            // SAFETY: the CPU was checked for AVX2 and FMA at load.
            return Ok(unsafe { self.infer_avx2(frame) });
        }
        Ok(self.compute::<false>(frame))
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn infer_avx2(&mut self, frame: &[f32]) -> f32 {
        self.compute::<true>(frame)
    }

    #[inline(always)]
    fn compute<const FMA: bool>(&mut self, frame: &[f32]) -> f32 {
        // Context: the previous frame's tail, then the new frame.
        self.input.copy_within(self.w.window.., 0);
        self.input[self.w.context..].copy_from_slice(frame);

        // STFT: reflect-pad n_fft/4 on the right, frames of n_fft every n_fft/2 samples.
        let s = &mut self.scratch;
        let pad = self.w.n_fft / 4;
        let len = self.input.len();
        s.padded.clear();
        s.padded.extend_from_slice(&self.input);
        s.padded.extend((0..pad).map(|j| self.input[len - 2 - j]));
        let hop = self.w.n_fft / 2;
        let steps = (s.padded.len() - self.w.n_fft) / hop + 1;
        let bins = self.w.n_fft / 2 + 1;
        // Magnitudes, time-major with a zero step on each side for the first conv.
        s.a.clear();
        s.a.resize((steps + 2) * bins, 0.0);
        for t in 0..steps {
            for (n, x) in s.fft_in.iter_mut().enumerate() {
                *x = s.padded[t * hop + n] * self.w.hann[n];
            }
            // Lengths come from the planner, so this cannot fail.
            let _ = self
                .w
                .fft
                .process_with_scratch(&mut s.fft_in, &mut s.fft_out, &mut s.fft_work);
            for (k, z) in s.fft_out.iter().enumerate() {
                s.a[(t + 1) * bins + k] = (z.re * z.re + z.im * z.im).sqrt();
            }
        }

        // Encoder: four conv + ReLU blocks, ping-ponging between two buffers.
        let mut steps = steps;
        let (mut cur, mut next) = (std::mem::take(&mut s.a), std::mem::take(&mut s.b));
        for conv in &self.w.convs {
            steps = conv.run::<FMA>(&cur, steps, &mut next);
            std::mem::swap(&mut cur, &mut next);
        }
        // One step remains: the features of this frame.
        let features = &cur[self.w.convs[3].cout..][..self.w.convs[3].cout];

        // LSTM cell.
        let hdim = self.w.hidden;
        s.xh.clear();
        s.xh.extend_from_slice(features);
        s.xh.extend_from_slice(&self.h);
        let width = s.xh.len();
        s.gates.clear();
        // A plain loop, not a closure: closures do not inherit the caller's target features.
        for (row, b) in self.w.lstm.chunks_exact(width).zip(&self.w.lstm_bias) {
            s.gates.push(dot::<FMA>(row, &s.xh) + b);
        }
        for j in 0..hdim {
            let i = sigmoid(s.gates[j]);
            let f = sigmoid(s.gates[hdim + j]);
            let g = s.gates[2 * hdim + j].tanh();
            let o = sigmoid(s.gates[3 * hdim + j]);
            self.c[j] = f * self.c[j] + i * g;
            self.h[j] = o * self.c[j].tanh();
        }
        s.a = cur;
        s.b = next;

        // Head: ReLU, 1x1 conv, sigmoid.
        let logit: f32 = self
            .w
            .head
            .iter()
            .zip(&self.h)
            .map(|(w, h)| w * h.max(0.0))
            .sum::<f32>()
            + self.w.head_bias;
        sigmoid(logit)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The portable path and the AVX2/FMA path compute the same probabilities.
    #[test]
    fn portable_and_vectorised_paths_agree() {
        let path = model_file(None).expect("the setup installs silero-vad");
        let mut model = SileroModel::load(&path, 16000).unwrap();
        let mut portable = SileroModel::load(&path, 16000).unwrap();
        #[cfg(target_arch = "x86_64")]
        {
            portable.avx2 = false;
        }
        // A chirp with noise: speech-like enough to move the probabilities around.
        let mut seed = 1u32;
        for frame in 0..60 {
            let samples: Vec<f32> = (0..512)
                .map(|n| {
                    seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                    let t = (frame * 512 + n) as f32 / 16000.0;
                    0.3 * (2.0 * std::f32::consts::PI * (200.0 + 300.0 * t) * t).sin()
                        + (seed >> 9) as f32 / (1u32 << 23) as f32 * 0.05
                })
                .collect();
            let (a, b) = (
                model.infer(&samples).unwrap(),
                portable.infer(&samples).unwrap(),
            );
            assert!((a - b).abs() < 1e-4, "frame {frame}: {a} vs {b}");
        }
        let err = model.infer(&[0.0; 100]).unwrap_err();
        assert!(
            matches!(
                err,
                ModelError::FrameSize {
                    expected: 512,
                    got: 100
                }
            ),
            "{err:?}"
        );
        assert!(matches!(NodeError::from(err), NodeError::BadInput(_)));
    }

    #[test]
    fn a_file_that_is_not_a_silero_model_is_refused() {
        let path = std::env::temp_dir().join(format!("rm-not-a-model-{}.onnx", std::process::id()));
        std::fs::write(&path, b"\x3a\x02\x0a\x00not a model").unwrap();
        let err = SileroModel::load(&path, 16000).err().unwrap();
        let _ = std::fs::remove_file(&path);
        assert!(
            matches!(&err, ModelError::Load { path: p, .. } if *p == path),
            "{err:?}"
        );
        assert!(matches!(NodeError::from(err), NodeError::Config(_)));
    }
}
