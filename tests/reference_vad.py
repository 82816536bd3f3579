"""Reference Silero VAD probabilities: the silero-vad package's ONNX model run by the
onnxruntime Python package exactly as silero_vad.utils_vad.OnnxWrapper runs it (512-sample
frames at 16 kHz, each prefixed with the previous frame's last 64 samples, one thread).

Usage: python reference_vad.py audio.f32 [--rate 8000] [--bench REPEATS]
audio.f32 holds raw little-endian float32 mono samples at 16 kHz (or --rate 8000: 256-sample
frames with 32 samples of context). Prints a JSON list of
probabilities, or with --bench the CPU seconds per frame of the loop run REPEATS times.
"""

import json
import pathlib
import sys
import time

import numpy as np
import onnxruntime


def model_path() -> str:
    # Locate the file without importing silero_vad (its __init__ imports torch).
    for entry in sys.path:
        candidate = pathlib.Path(entry) / "silero_vad" / "data" / "silero_vad.onnx"
        if candidate.is_file():
            return str(candidate)
    raise SystemExit("silero_vad/data/silero_vad.onnx not found on sys.path")


def main() -> None:
    samples = np.fromfile(sys.argv[1], dtype="<f4")
    opts = onnxruntime.SessionOptions()
    opts.inter_op_num_threads = 1
    opts.intra_op_num_threads = 1
    session = onnxruntime.InferenceSession(
        model_path(), providers=["CPUExecutionProvider"], sess_options=opts
    )
    rate = int(sys.argv[sys.argv.index("--rate") + 1]) if "--rate" in sys.argv else 16000
    window, ctx = (512, 64) if rate == 16000 else (256, 32)
    sr = np.array(rate, dtype=np.int64)
    frames = len(samples) // window
    repeats = int(sys.argv[sys.argv.index("--bench") + 1]) if "--bench" in sys.argv else 1
    start = time.process_time()
    for _ in range(repeats):
        state = np.zeros((2, 1, 128), dtype=np.float32)
        context = np.zeros((1, ctx), dtype=np.float32)
        probs = []
        for i in range(frames):
            x = samples[i * window : (i + 1) * window].reshape(1, window)
            x = np.concatenate([context, x], axis=1)
            out, state = session.run(None, {"input": x, "state": state, "sr": sr})
            context = x[..., -ctx:]
            probs.append(float(out[0][0]))
    cpu = time.process_time() - start
    if "--bench" in sys.argv:
        print(json.dumps({"frames": frames * repeats, "cpu_s_per_frame": cpu / max(frames * repeats, 1)}))
    else:
        print(json.dumps(probs))


if __name__ == "__main__":
    main()
